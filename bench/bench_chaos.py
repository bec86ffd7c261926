"""Fault figures (issue 21): the chaos suite (tests/chaos) run on this tree, and with --before
on a temporary worktree of an older commit with today's chaos suite copied in, measuring only
(nothing asserted; a fault the old engine never recovers from is cut off after --give-up s).

Each run starts its own PostgreSQL and Redis (scripts/services.sh under <tree>/var/chaos), a
real prefork worker (concurrency 2) and beat, and the Google and SCIM sandboxes; each fault is a
batch of --identities Human Interactive identities (two jobs each). The bare figure beside
each fault is the same batch with no fault (the baseline row): the ratio says what the fault
cost. Prints one table per tree.

    .venv/bin/python bench/bench_chaos.py [--identities 200] [--before 4b5a7df] [--give-up 240]
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("unfinished", "resent", "lost_attempts", "postponed_deliveries", "google_users")


def run(tree: Path, identities: int, measuring: bool, give_up: float) -> list[dict[str, Any]]:
    report = Path(tempfile.mkdtemp(prefix="accesshive-chaos-")) / "report.jsonl"
    chaos = tree / "var" / "chaos"
    chaos.mkdir(parents=True, exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"TEST_DATABASE_URL", "TEST_REDIS_URL"}
    }
    env.update(
        ACCESSHIVE_PRIVATE_SERVICES="1",
        ACCESSHIVE_SERVICES_DIR=str(chaos),
        ACCESSHIVE_CHAOS_PG_DIR=str(chaos / "postgres"),
        ACCESSHIVE_CHAOS_REPORT=str(report),
        ACCESSHIVE_CHAOS_IDENTITIES=str(identities),
        ACCESSHIVE_CHAOS_MEASURE="1" if measuring else "0",
        ACCESSHIVE_CHAOS_GIVE_UP=str(give_up),
        PYTHONPATH=str(tree),
    )
    pytest = [str(ROOT / ".venv" / "bin" / "pytest"), "tests/chaos", "-q", "-p", "no:cacheprovider"]
    try:
        subprocess.run(["bash", "scripts/services.sh", *pytest], cwd=tree, env=env, check=False)
    finally:
        subprocess.run(["bash", "scripts/services.sh", "stop"], cwd=tree, env=env, check=False)
    if not report.exists():
        return []
    return [json.loads(line) for line in report.read_text().splitlines() if line.strip()]


def table(title: str, rows: list[dict[str, Any]], args_give_up: float) -> None:
    print(f"\n## {title}")
    base = next((r for r in rows if r["fault"].startswith("none")), None)
    bare = base["seconds_to_all_done"] if base else None
    print("| fault | all done (s) | after fault (s) | ratio to no fault | " + " | ".join(COLUMNS))
    print("|---" * (4 + len(COLUMNS)) + "|")
    for row in rows:
        done = row["seconds_to_all_done"]
        ratio = f"{done / bare:.2f}x" if done and bare else "-"
        extra = " | ".join(str(row.get(column, "-")) for column in COLUMNS)
        after = "-" if row["seconds_after_fault"] is None else row["seconds_after_fault"]
        shown = f"not done in {args_give_up:g} s" if done is None or row["unfinished"] else done
        print(f"| {row['fault']} | {shown} | {after} | {ratio} | {extra}")
        if row.get("recovery_seconds"):
            print(f"|   recovery of the dead worker's running jobs: {row['recovery_seconds']} s |")
        if "check_worker_red" in row:
            print(
                f"|   while stopped: /healthz {row['healthz_while_stopped']}, "
                f"check_worker red: {row['check_worker_red']} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--identities", type=int, default=200)
    parser.add_argument("--before", help="an older commit to measure the same faults on")
    parser.add_argument("--give-up", type=float, default=240.0)
    args = parser.parse_args()
    if args.before:
        old = Path(tempfile.mkdtemp(prefix="accesshive-before-"))
        old.chmod(0o755)  # the private PostgreSQL runs as the postgres user and must enter it
        archive = subprocess.run(
            ["git", "archive", args.before], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        try:
            shutil.copytree(ROOT / "tests" / "chaos", old / "tests" / "chaos", dirs_exist_ok=True)
            # The suite restarts a worker under its name (CeleryProcess(name=...)).
            shutil.copy(ROOT / "tests/integration/worker.py", old / "tests/integration/worker.py")
            rows = run(old, args.identities, measuring=True, give_up=args.give_up)
            table(f"before ({args.before})", rows, args.give_up)
        finally:
            shutil.rmtree(old, ignore_errors=True)
    rows = run(ROOT, args.identities, measuring=False, give_up=args.give_up)
    table("this tree", rows, args.give_up)


if __name__ == "__main__":
    main()
