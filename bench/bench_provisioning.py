"""Time from submitting a Human Interactive identity to both of its jobs completed.

Two stacks, each with a real prefork worker (concurrency 2) and the sandbox Google Directory and
SCIM servers over HTTP: `make run`'s defaults (SQLite + the filesystem broker + the embedded
vault) and production's (PostgreSQL + Redis). Each submission waits for the previous one to
finish; the figure is the median of 20.

    .venv/bin/python bench/bench_provisioning.py [--runs 20]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import support  # noqa: E402

TEST_KEY = "bench1:YmVuY2gtb25seS1rZXktZG8tbm90LXVzZS0wMDAwMDA="


def measure(runs: int) -> dict[str, float]:
    """Runs inside a child process whose environment picks the stack."""
    import django

    django.setup()
    from identities.models import Identity, IdentityStatus, IdentityType, Platform
    from identities.services import (
        IdentityInput,
        create_identity,
        create_identity_provider,
        create_platform,
    )
    from sandbox import google_directory, scim

    gws = google_directory.start(domains=["example.com"])
    idp = scim.start()
    provider = create_identity_provider(
        name="Sandbox IdP", scim_base_url=idp.base_url, token=idp.bearer_token
    )
    platform = create_platform(
        name="Sandbox Workspace",
        kind=Platform.Kind.GOOGLE_WORKSPACE,
        identity_provider=provider,
        primary_domain="example.com",
        admin_email="admin@example.com",
        api_endpoint=gws.base_url,
        service_account_key=gws.issue_key(),
    )
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "accesshive", "worker", "--pool", "prefork"),
            *("--concurrency", "2", "-l", "warning", "--without-mingle", "--without-gossip"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    times = []
    try:
        for n in range(runs + 2):  # two warm-up submissions first
            start = time.perf_counter()
            identity = create_identity(
                IdentityInput(
                    identity_type=IdentityType.HUMAN_INTERACTIVE,
                    platform=platform,
                    display_name=f"Bench User {n}",
                    login=f"bench{n}@example.com",
                    given_name="Bench",
                    family_name=f"User {n}",
                ),
                actor=None,
            )
            deadline = time.monotonic() + 60
            while True:
                status = Identity.objects.filter(pk=identity.pk).values_list("status", flat=True)[0]
                if status == IdentityStatus.PROVISIONED:
                    break
                if status == IdentityStatus.FAILED or time.monotonic() > deadline:
                    raise RuntimeError(f"identity {identity.pk} ended {status}")
                time.sleep(0.005)
            if n >= 2:
                times.append(time.perf_counter() - start)
    finally:
        worker.terminate()
        worker.wait(30)
        gws.shutdown()
        idp.shutdown()
    return {"median_ms": support.median(times) * 1000, "p95_ms": support.p95(times) * 1000}


def run_stack(name: str, runs: int) -> dict[str, float]:
    var_dir = tempfile.mkdtemp(prefix=f"bench-provisioning-{name}-")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "accesshive.settings",
        "DJANGO_SECRET_KEY": "bench-only-secret-key",
        "ACCESSHIVE_VAR_DIR": var_dir,
        "ACCESSHIVE_VAULT_KEYS": TEST_KEY,
        "ACCESSHIVE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    db_name = "ah_bench_provisioning"
    if name == "postgres+redis":
        support.drop_database(db_name)
        with support.admin_connection() as conn:
            conn.execute(f'CREATE DATABASE "{db_name}"')
        env["DATABASE_URL"] = f"{support.POSTGRES_URL}/{db_name}"
        env["CELERY_BROKER_URL"] = support.REDIS_URL
        import redis

        redis.Redis.from_url(support.REDIS_URL).flushdb()
    else:
        env.pop("DATABASE_URL", None)
        env.pop("CELERY_BROKER_URL", None)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0", "--skip-checks"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        out = subprocess.run(
            [sys.executable, __file__, "--measure", "--runs", str(runs)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return dict(json.loads(out.strip().splitlines()[-1]))
    finally:
        if name == "postgres+redis":
            support.drop_database(db_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.runs)))
        return
    support.require_services(redis=True)
    print(support.machine_summary())
    rows = []
    for name in ("sqlite+filesystem (make run)", "postgres+redis"):
        figures = run_stack(name.split(" ")[0], args.runs)
        rows.append([name, f"{figures['median_ms']:.0f}", f"{figures['p95_ms']:.0f}"])
    print(f"\nHuman Interactive identity submitted -> both jobs completed ({args.runs} runs)")
    support.print_table(["stack", "median ms", "p95 ms"], rows)


if __name__ == "__main__":
    main()
