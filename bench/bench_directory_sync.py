"""A directory_sync of 100,000 users and 5,000 groups from the sandbox Directory API: wall time
and peak memory of the process running it, beside the bare tools in the same run.

Three processes: the sandbox Google Directory server (seeded in-process, serving over HTTP on
127.0.0.1), the process under test, and this one (orchestrating). Figures:

- sync: the directory_sync handler run through the job engine's own runner (as a worker's
  pool process runs it, without Celery) in a fresh child process: wall time, and its peak RSS
  (ru_maxrss) beside its RSS after Django had loaded, before the sync.
- second sync: the same again with nothing changed (no events).
- bare paging: the same users.list / groups.list / members.list calls through the same
  GoogleWorkspaceClient in a fresh child process, no database (wall, peak RSS); once before
  the syncs and once after, and their mean is the figure: on a shared machine the load drifts
  over the minutes a full-size run takes, and a single measurement on one side of the syncs
  moved the ratio by a third.
- bare COPY: the rows the sync staged, COPYed by psycopg into three unindexed tables.

    .venv/bin/python bench/bench_directory_sync.py [--users 100000 --groups 5000]
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import support  # noqa: E402

DB_NAME = "ah_bench_directory"
TEST_KEY = "bench1:YmVuY2gtb25seS1rZXktZG8tbm90LXVzZS0wMDAwMDA="
MAX_GROUPS_PER_USER = 5
DEPARTMENTS = ["Research", "Sales", "Finance", "Support", "Legal", "Marketing", "Operations"]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --- the sandbox process --------------------------------------------------------------------


def serve(users: int, groups: int, seed: int) -> None:
    """Seed a sandbox and serve it; prints {"url", "key", "memberships"} once ready."""
    from sandbox import google_directory

    rng = random.Random(seed)
    sandbox = google_directory.GoogleDirectorySandbox(["example.com"])
    emails = [f"user{n:06d}@example.com" for n in range(users)]
    members: dict[str, list[str]] = {f"group{g:05d}@example.com": [] for g in range(groups)}
    group_emails = list(members)
    for email in emails:
        for group in rng.sample(group_emails, rng.randint(0, MAX_GROUPS_PER_USER)):
            members[group].append(email)
    start = time.perf_counter()
    sandbox.seed(
        users=(
            {
                "primaryEmail": email,
                "name": {"givenName": f"Given{n}", "familyName": f"Family{n}"},
                "orgUnitPath": f"/Staff/{DEPARTMENTS[n % len(DEPARTMENTS)]}",
                "organizations": [
                    {
                        "primary": True,
                        "department": DEPARTMENTS[n % len(DEPARTMENTS)],
                        "title": "Engineer",
                    }
                ],
                "relations": [{"type": "manager", "value": emails[n // 10]}],
            }
            for n, email in enumerate(emails)
        ),
        groups=({"email": email, "name": email.split("@")[0]} for email in group_emails),
        members=members,
    )
    seeded = time.perf_counter() - start
    key = sandbox.issue_key()
    print(
        json.dumps(
            {
                "url": sandbox.base_url,
                "key": key,
                "memberships": sum(len(m) for m in members.values()),
                "seed_seconds": seeded,
            }
        ),
        flush=True,
    )
    sandbox.serve_forever()


# --- the processes under test ---------------------------------------------------------------


def measure_sync(platform_id: int, repeat: int) -> dict[str, Any]:
    """Run the directory_sync handler through the engine's runner, `repeat` times."""
    import django

    django.setup()
    from directory import services
    from directory.models import IdentitySource
    from identities.models import Platform
    from jobs import runner

    platform = Platform.objects.get(pk=platform_id)
    source = IdentitySource.objects.filter(name="bench").first() or services.create_source(
        name="bench",
        kind=IdentitySource.Kind.GOOGLE_WORKSPACE,
        platform=platform,
        page_size=500,
        sync_interval_minutes=0,
    )
    rss_before = current_rss_mib()
    runs = []
    for _ in range(repeat):
        job = services.request_sync(source, actor=None)
        start = time.perf_counter()
        runner.execute(
            job.pk, task_id=str(job.celery_task_id), retries=0, max_retries=0, worker="bench"
        )
        wall = time.perf_counter() - start
        job.refresh_from_db()
        if job.status != "completed":
            raise RuntimeError(f"sync job {job.pk} ended {job.status}: {job.error_message}")
        result = dict(job.result or {})
        runs.append({"wall": wall, "result": result})
    return {"runs": runs, "rss_before_mib": rss_before, "peak_rss_mib": rss_mib()}


def measure_paging(url: str, key: dict[str, str]) -> dict[str, Any]:
    """The same listing calls through the same client, and nothing else."""
    from connectors.google_workspace import DIRECTORY_SCOPES, GoogleWorkspaceClient

    rss_before = current_rss_mib()
    client = GoogleWorkspaceClient(
        key, "admin@example.com", api_endpoint=url, scopes=DIRECTORY_SCOPES
    )
    start = time.perf_counter()
    users = groups = memberships = pages = 0
    for page in client.user_pages(page_size=500):
        users += len(page.items)
        pages += 1
    for group_page in client.group_pages(page_size=200):
        groups += len(group_page.items)
        pages += 1
        for group in group_page.items:
            for member_page in client.member_pages(group.id, page_size=200):
                memberships += len(member_page.items)
                pages += 1
    return {
        "wall": time.perf_counter() - start,
        "users": users,
        "groups": groups,
        "memberships": memberships,
        "pages": pages,
        "rss_before_mib": rss_before,
        "peak_rss_mib": rss_mib(),
    }


def measure_copy(users: int, groups: int, memberships: int) -> float:
    """COPY rows shaped like the staged ones into plain tables: the database's floor."""
    import psycopg

    rng = random.Random(7)
    with psycopg.connect(f"{support.POSTGRES_URL}/{DB_NAME}") as conn:
        conn.execute(
            "CREATE TEMP TABLE u (external_id text, ref text, username text, email text, "
            "given_name text, family_name text, display_name text, department text, "
            "title text, manager text, org_unit text, disabled boolean)"
        )
        conn.execute("CREATE TEMP TABLE g (external_id text, ref text, name text, email text)")
        conn.execute("CREATE TEMP TABLE m (group_ref text, user_ref text)")
        start = time.perf_counter()
        with conn.cursor() as cursor:
            with cursor.copy("COPY u FROM STDIN") as copy:
                for n in range(users):
                    uid = f"1{n:020d}"
                    email = f"user{n:06d}@example.com"
                    copy.write_row(
                        (
                            uid,
                            uid,
                            email,
                            email,
                            f"Given{n}",
                            f"Family{n}",
                            f"Given{n} Family{n}",
                            "Research",
                            "Engineer",
                            f"user{n // 10:06d}@example.com",
                            "/Staff/Research",
                            False,
                        )
                    )
            with cursor.copy("COPY g FROM STDIN") as copy:
                for n in range(groups):
                    gid = f"0{n:014d}"
                    copy.write_row((gid, gid, f"group{n:05d}", f"group{n:05d}@example.com"))
            with cursor.copy("COPY m FROM STDIN") as copy:
                for _ in range(memberships):
                    copy.write_row(
                        (f"0{rng.randrange(groups):014d}", f"1{rng.randrange(users):020d}")
                    )
        conn.commit()
        return time.perf_counter() - start


# --- orchestration --------------------------------------------------------------------------


def child(env: dict[str, str], *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=5_000)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sync", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--paging", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.serve:
        serve(args.users, args.groups, args.seed)
        return
    if args.sync is not None:
        print(json.dumps(measure_sync(args.sync, repeat=2)))
        return
    if args.paging:
        info = json.loads(args.paging)
        print(json.dumps(measure_paging(info["url"], info["key"])))
        return

    support.require_services(redis=False)
    print(support.machine_summary())
    os.environ["ACCESSHIVE_VAULT_KEYS"] = TEST_KEY
    with support.django_on_fresh_database(DB_NAME) as env:
        env = {**env, "ACCESSHIVE_VAULT_KEYS": TEST_KEY}
        server = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                "--users",
                str(args.users),
                "--groups",
                str(args.groups),
                "--seed",
                str(args.seed),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            info = json.loads(server.stdout.readline())
            print(
                f"sandbox: {args.users:,} users, {args.groups:,} groups, "
                f"{info['memberships']:,} memberships seeded in {info['seed_seconds']:.1f} s"
            )
            from identities.models import Platform
            from identities.services import create_platform

            platform = create_platform(
                name="bench",
                kind=Platform.Kind.GOOGLE_WORKSPACE,
                primary_domain="example.com",
                admin_email="admin@example.com",
                api_endpoint=info["url"],
                service_account_key=info["key"],
            )
            paging_before = child(env, "--paging", json.dumps(info))
            synced = child(env, "--sync", str(platform.pk))
            paging_after = child(env, "--paging", json.dumps(info))
            copy_wall = measure_copy(args.users, args.groups, info["memberships"])
        finally:
            server.terminate()
            server.wait(30)
    first, second = synced["runs"]
    paging_wall = (paging_before["wall"] + paging_after["wall"]) / 2
    bare = paging_wall + copy_wall
    rows = [
        ["directory_sync, first (baseline)", f"{first['wall']:.1f}", f"{first['wall'] / bare:.2f}"],
        ["directory_sync, no changes", f"{second['wall']:.1f}", f"{second['wall'] / bare:.2f}"],
        [
            "bare: client paging, before the syncs",
            f"{paging_before['wall']:.1f}",
            f"{paging_before['wall'] / bare:.2f}",
        ],
        [
            "bare: client paging, after the syncs",
            f"{paging_after['wall']:.1f}",
            f"{paging_after['wall'] / bare:.2f}",
        ],
        ["bare: client paging, mean", f"{paging_wall:.1f}", f"{paging_wall / bare:.2f}"],
        ["bare: COPY of the same rows", f"{copy_wall:.1f}", f"{copy_wall / bare:.2f}"],
        ["bare: paging + COPY", f"{bare:.1f}", "1.00"],
    ]
    result = first["result"]
    print(
        f"\nsync read {result['users']:,} users, {result['groups']:,} groups, "
        f"{result['memberships']:,} memberships in {result['pages_read']:,} pages; "
        f"errors {result['errors']}; second sync: {second['result']['joiners']} joiners, "
        f"{second['result']['movers']} movers, {second['result']['leavers']} leavers"
    )
    support.print_table(["", "wall s", "vs bare"], rows)
    print()
    support.print_table(
        ["process", "RSS before MiB", "peak RSS MiB"],
        [
            ["sync (2 runs)", f"{synced['rss_before_mib']:.0f}", f"{synced['peak_rss_mib']:.0f}"],
            [
                "bare paging (after)",
                f"{paging_after['rss_before_mib']:.0f}",
                f"{paging_after['peak_rss_mib']:.0f}",
            ],
        ],
    )


if __name__ == "__main__":
    main()
