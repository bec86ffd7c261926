"""1,000 identity creations against a Google Workspace sandbox that allows 10 requests a second.

A fresh PostgreSQL database, Redis, one real prefork worker (default concurrency 4) and the
sandbox Directory API over HTTP, which answers 429 to any call beyond 10 a second (bucket of
10). Each identity is a managed shared credential: one create_domain_user job, one
users.insert. The platform's limit in AccessHive is the default, 10/s with a burst of 5. The
bare tool's figure is the limit itself: 1,000 calls at 10 a second take at least 100 s; the
report gives the ratio of our wall time to that. With --unlimited it first runs the same
jobs with no limit on either side, to show what the stack does when the limit is not what
binds.

    .venv/bin/python bench/bench_rate_limit.py [--identities 1000] [--concurrency 4]
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import support  # noqa: E402

VAULT_KEY = "bench1:YmVuY2gtb25seS1rZXktZG8tbm90LXVzZS0wMDAwMDA="
RATE, SERVER_BURST = 10.0, 10


def start_worker(env: dict[str, str], concurrency: int, limits: str) -> "subprocess.Popen[bytes]":
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "accesshive", "worker", "--pool", "prefork"),
            *("--concurrency", str(concurrency), "-l", "warning"),
            *("--without-mingle", "--without-gossip"),
        ],
        cwd=ROOT,
        env={**env, "ACCESSHIVE_RATE_LIMITS": limits},
    )
    time.sleep(4)  # up and consuming: the first jobs would otherwise wait for it
    return worker


def run(count: int, concurrency: int, *, limited: bool, label: str) -> dict[str, Any]:
    """Submit ``count`` identities to a fresh sandbox and wait for every job to finish."""
    import redis
    from django.db.models import Max, Sum

    from identities.models import IdentityType, Platform
    from identities.services import IdentityInput, create_identity, create_platform
    from jobs import metrics
    from jobs.models import Job, JobAttempt, JobStatus
    from sandbox import google_directory

    redis.Redis.from_url(support.REDIS_URL).flushdb()
    Job.objects.all().delete()
    gws = google_directory.start(domains=["example.com"])
    if limited:
        gws.set_rate_limit(RATE, burst=SERVER_BURST)
    platform = create_platform(
        name=f"Bench Workspace {label}",
        kind=Platform.Kind.GOOGLE_WORKSPACE,
        primary_domain="example.com",
        admin_email="admin@example.com",
        api_endpoint=gws.base_url,
        service_account_key=gws.issue_key(),
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    limits = "google_workspace=10/5" if limited else "google_workspace=0"
    worker = start_worker(env, concurrency, limits)
    try:
        started = time.time()
        for n in range(count):
            create_identity(
                IdentityInput(
                    identity_type=IdentityType.SHARED_CREDENTIAL_MANAGED,
                    platform=platform,
                    display_name=f"Bench {label} {n}",
                    login=f"{label}{n}@example.com",
                ),
                actor=None,
            )
        submitted = time.time() - started
        deadline = time.monotonic() + 20 * 60
        while True:
            finished = Job.objects.filter(status__in=[JobStatus.COMPLETED, JobStatus.FAILED])
            if finished.count() == count:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{finished.count()} of {count} jobs finished in 20 minutes")
            time.sleep(0.5)
        last = Job.objects.aggregate(last=Max("completed_at"))["last"]
        assert last is not None
        wall = last.timestamp() - started
        paced = metrics.read()
    finally:
        worker.terminate()
        worker.wait(60)
        gws.shutdown()
    jobs = Job.objects.all()
    return {
        "label": label,
        "wall": wall,
        "submitted": submitted,
        "completed": jobs.filter(status=JobStatus.COMPLETED).count(),
        "failed": jobs.filter(status=JobStatus.FAILED).count(),
        "attempts": JobAttempt.objects.count(),
        "retries": jobs.aggregate(total=Sum("retries"))["total"] or 0,
        "inserts": gws.calls().count("users.insert"),
        "throttled": gws.throttled(),
        "waited": int(sum(v for k, v in paced.items() if k[0] == "paced" and k[2] == "waited")),
        "deferred": int(sum(v for k, v in paced.items() if k[0] == "paced" and k[2] == "deferred")),
        "per_10s": completions_per_window(started, 10.0),
    }


def completions_per_window(started: float, window: float) -> list[int]:
    from jobs.models import Job

    counts: dict[int, int] = {}
    for at in Job.objects.exclude(completed_at=None).values_list("completed_at", flat=True):
        assert at is not None
        index = int((at.timestamp() - started) // window)
        counts[index] = counts.get(index, 0) + 1
    return [counts.get(i, 0) for i in range(max(counts, default=-1) + 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--unlimited", action="store_true", help="also run once with no rate limit anywhere"
    )
    args = parser.parse_args()
    support.require_services(redis=True)
    os.environ.update(
        {
            "ACCESSHIVE_VAULT_KEYS": VAULT_KEY,
            "ACCESSHIVE_RATE_LIMITS": "google_workspace=10/5",
            # A job's message is already in Redis when its row commits: no sweeper needed.
            "ACCESSHIVE_JOB_SWEEP_GRACE": "3600",
        }
    )
    print(f"machine: {support.machine_summary()}")
    results = []
    with support.django_on_fresh_database(f"ah_bench_rate_limit_{os.getpid()}"):
        if args.unlimited:
            results.append(run(args.identities, args.concurrency, limited=False, label="free"))
        results.append(run(args.identities, args.concurrency, limited=True, label="paced"))
    minimum = args.identities / RATE
    print(
        f"\n{args.identities} managed shared credentials (one users.insert each), worker "
        f"concurrency {args.concurrency}; sandbox limit {RATE:g}/s (burst {SERVER_BURST}), "
        f"AccessHive's limit 10/s (burst 5); minimum at the limit {minimum:.0f} s"
    )
    support.print_table(
        [
            *("run", "wall s", "wall/min", "submit s", "completed", "failed", "attempts"),
            *("retries", "inserts", "429s", "waited", "deferred"),
        ],
        [
            [
                r["label"],
                f"{r['wall']:.1f}",
                f"{r['wall'] / minimum:.3f}" if r["label"] == "paced" else "-",
                f"{r['submitted']:.1f}",
                r["completed"],
                r["failed"],
                r["attempts"],
                r["retries"],
                r["inserts"],
                r["throttled"],
                r["waited"],
                r["deferred"],
            ]
            for r in results
        ],
    )
    for r in results:
        print(f"{r['label']}: jobs completed per 10 s: {r['per_10s']}")
    paced = results[-1]
    ok = paced["failed"] == 0 and paced["completed"] == args.identities
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
