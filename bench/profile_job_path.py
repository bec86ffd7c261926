"""Runs N no-op jobs through enqueue() and the runner in one process, for py-spy to sample.

    py-spy record --format raw -o var/job-path.txt -- .venv/bin/python bench/profile_job_path.py
    .venv/bin/python bench/profile_job_path.py --summary var/job-path.txt

The first runs the path a pool process takes per job (claim, handler, finish) without Celery,
on a fresh database; the second prints the share of samples under each of the engine's own
functions and in the database driver, for docs/benchmarks.md.
"""

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import support

# Frames whose inclusive share the summary reports, in the order they run.
WATCHED = (
    "enqueue",
    "enqueue_many",
    "start_attempt",
    "run_attempt",
    "complete_attempt",
    "moved",
    "shift_counts",
    "record_attempt",
    "execute",  # psycopg's cursor.execute: time in the driver and on the wire
    "_compile",  # Django compiling querysets to SQL
)


def run(jobs: int) -> None:
    with support.django_on_fresh_database(f"ah_bench_prof_{os.getpid()}"):
        from bench import noop_tasks
        from jobs import runner
        from jobs.models import Trigger
        from jobs.services import enqueue

        assert noop_tasks.NOOP_JOB_TYPE == "bench_noop"
        started = time.perf_counter()
        for _ in range(jobs):
            job = enqueue("bench_noop", trigger=Trigger.SYSTEM, trigger_label="bench")
            runner.execute(
                job.pk, task_id=str(job.celery_task_id), retries=0, max_retries=0, worker="p"
            )
        elapsed = time.perf_counter() - started
        each = elapsed / jobs * 1000
        print(f"{jobs} jobs enqueued and run in {elapsed:.1f} s: {each:.2f} ms each")
        import redis

        redis.Redis.from_url(support.REDIS_URL).flushdb()


def summary(path: str) -> None:
    total = 0
    inclusive: Counter[str] = Counter()
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        names = {frame.split(" (")[0] for frame in stack.split(";")}
        for name in WATCHED:
            if name in names:
                inclusive[name] += samples
    print(f"{total} samples")
    for name in WATCHED:
        print(f"  {name:<18} {inclusive[name] / total * 100:5.1f}%")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--summary", help="a py-spy --format raw file to summarise")
    args = parser.parse_args()
    if args.summary:
        summary(args.summary)
    else:
        support.require_services(redis=False)
        run(args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
