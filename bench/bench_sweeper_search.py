"""What the sweeper's search of the queues costs during a backlog, beside a bare LRANGE.

Overdue jobs whose message is marked "queued" are looked for in their queues and among the
messages workers have taken (jobs.delivery.vanished): a worker killed between kombu's BRPOP and
its unacked entry loses a message while its marker still says queued. This fills a fresh
database and Redis with N overdue jobs whose messages wait in the queue (no worker), then times
a whole sweep, the search alone, and the bare `LRANGE` of the same queue.

    .venv/bin/python bench/bench_sweeper_search.py [--jobs 10000] [--runs 5]
"""

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import support


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    support.require_services(redis=True)
    with support.django_on_fresh_database("ah_bench_sweeper"):
        import redis
        from django.utils import timezone

        from jobs import delivery, routing, services, sweeper
        from jobs.models import Job, JobType

        broker = redis.Redis.from_url(support.REDIS_URL)
        broker.flushdb()
        try:
            requests = [services.JobRequest(JobType.REMEDIATION) for _ in range(args.jobs)]
            for start in range(0, args.jobs, 1000):
                services.enqueue_many(requests[start : start + 1000])
            Job.objects.update(dispatched_at=timezone.now() - timedelta(hours=1))
            queue = routing.queue_for(JobType.REMEDIATION)
            queued = broker.llen(queue)
            task_ids = [str(t) for t in Job.objects.values_list("celery_task_id", flat=True)]
            sweep, search, bare = [], [], []
            for _ in range(args.runs):
                started = time.perf_counter()
                result = sweeper.sweep()
                sweep.append(time.perf_counter() - started)
                assert result["resent"] == 0, result
                started = time.perf_counter()
                delivery.vanished(task_ids[:1000])
                search.append(time.perf_counter() - started)
                started = time.perf_counter()
                broker.lrange(queue, 0, -1)
                bare.append(time.perf_counter() - started)
        finally:
            broker.flushdb()
    print(support.machine_summary())
    print(
        f"{args.jobs:,} overdue jobs, {queued:,} messages waiting in {queue!r};",
        f"median of {args.runs}",
    )
    rows = [
        ("sweep (1,000 overdue looked at, queues searched)", support.median(sweep)),
        ("the search alone (delivery.vanished)", support.median(search)),
        ("bare LRANGE of the queue", support.median(bare)),
    ]
    support.print_table(
        ["what", "seconds", "ratio to LRANGE"],
        [(what, f"{s:.3f}", f"{s / support.median(bare):.1f}") for what, s in rows],
    )


if __name__ == "__main__":
    main()
