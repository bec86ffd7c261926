"""The no-op job handler and bare Celery tasks that bench_throughput runs on a real worker."""

import os
from typing import Any

import redis
from celery import shared_task

from jobs.models import Job
from jobs.registry import register

NOOP_JOB_TYPE = "bench_noop"
BARE_RESULT_TASK = "bench.bare_noop"
BARE_COUNTED_TASK = "bench.bare_noop_counted"
# The counted bare task stores no result; it INCRs this key so the benchmark sees it finish.
COUNTED_KEY = "bench:bare_noop_counted:done"

_client: "redis.Redis[bytes] | None" = None


def redis_client() -> "redis.Redis[bytes]":
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    return _client


@register(NOOP_JOB_TYPE)
def run(job: Job) -> dict[str, Any]:
    return {}


@shared_task(name=BARE_RESULT_TASK, ignore_result=False)
def bare_noop() -> None:
    """Does nothing; its result goes to the same django-db result backend as a job's."""


@shared_task(name=BARE_COUNTED_TASK, ignore_result=True)
def bare_noop_counted() -> None:
    """Does nothing but count itself in Redis: the bare task without a result backend."""
    redis_client().incr(COUNTED_KEY)
