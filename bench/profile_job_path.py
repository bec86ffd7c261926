"""Runs N no-op jobs through enqueue() and the runner in one process, for py-spy to sample.

    py-spy record --format raw -o var/job-path.txt -- .venv/bin/python bench/profile_job_path.py
    .venv/bin/python bench/profile_job_path.py --summary var/job-path.txt

The first runs the path a pool process takes per job (claim, handler, finish) without Celery,
on a fresh database; the second prints the share of samples under each of the engine's own
functions and in the database driver, for docs/benchmarks.md.
"""

import argparse
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import support

# The engine's own steps, whose inclusive share (the step and all it calls) is reported.
STEPS = (
    "services.enqueue",
    "lifecycle.insert_job",
    "services.send",
    "runner.execute",
    "lifecycle.start_attempt",
    "runner.run_attempt",
    "lifecycle.complete_attempt",
    "lifecycle.claim_ready",
    "lifecycle.moved",
    "lifecycle.shift_counts",
    "metrics.record_attempt",
)
FRAME = re.compile(r"(?P<function>[^ ]+) \((?P<path>[^:]+):\d+\)")


def run(jobs: int) -> None:
    with support.django_on_fresh_database(f"ah_bench_prof_{os.getpid()}"):
        from bench import noop_tasks
        from jobs import runner
        from jobs.models import Trigger
        from jobs.services import enqueue

        assert noop_tasks.NOOP_JOB_TYPE == "bench_noop"
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(jobs):
            job = enqueue("bench_noop", trigger=Trigger.SYSTEM, trigger_label="bench")
            runner.execute(
                job.pk, task_id=str(job.celery_task_id), retries=0, max_retries=0, worker="p"
            )
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(
            f"{jobs} jobs enqueued and run in {elapsed:.1f} s: {elapsed / jobs * 1000:.2f} ms "
            f"wall, {cpu / jobs * 1000:.2f} ms CPU in this process per job"
        )
        import redis

        redis.Redis.from_url(support.REDIS_URL).flushdb()


def summary(path: str) -> None:
    """Of the samples taken while a job was enqueued or run: per step, the share with it on
    the stack; per package, the share whose innermost frame is in it (where the time was)."""
    total = 0
    steps: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        frames = [m.groupdict() for m in map(FRAME.match, stack.split(";")) if m]
        names = {
            f"{Path(f['path']).stem}.{f['function'].split('.')[-1]}"
            for f in frames
            if f["path"].startswith("jobs/")
        }
        if not names & {"services.enqueue", "runner.execute"}:
            continue  # setting up: the database, migrations, imports
        total += samples
        for step in STEPS:
            if step in names:
                steps[step] += samples
        if frames:
            packages[frames[-1]["path"].split("/")[0].removesuffix(".py")] += samples
    print(f"{total} samples; steps (inclusive):")
    for step in STEPS:
        print(f"  {step:<28} {steps[step] / total * 100:5.1f}%")
    print("where the innermost frame was (self time), by package:")
    for package, samples in packages.most_common(8):
        print(f"  {package:<28} {samples / total * 100:5.1f}%")


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
