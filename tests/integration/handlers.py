"""Job handlers that only the tests register: they fail, sleep and count on purpose."""

import os
import time
from typing import Any

import redis
from celery.signals import task_postrun, worker_process_init

from jobs.errors import PermanentError, TransientError
from jobs.models import Job
from jobs.registry import register


def _redis() -> "redis.Redis[bytes]":
    return redis.Redis.from_url(os.environ["TEST_REDIS_URL"])


@register("test_noop")
def noop(job: Job) -> dict[str, Any]:
    return {"ok": True}


@register("test_flaky")
def flaky(job: Job) -> dict[str, Any]:
    if job.attempt_count <= job.params["fail_times"]:
        raise TransientError(f"Sandbox upstream answered 503 on attempt {job.attempt_count}")
    return {"succeeded_on_attempt": job.attempt_count}


@register("test_always_transient")
def always_transient(job: Job) -> dict[str, Any]:
    raise TransientError("Sandbox upstream answered 503 Service Unavailable")


@register("test_permanent")
def permanent(job: Job) -> dict[str, Any]:
    raise PermanentError("Sandbox rejected the request: 400 Invalid Input: primaryEmail")


@register("test_slow_first")
def slow_first(job: Job) -> dict[str, Any]:
    """Overruns the soft time limit on its first attempt only."""
    if job.attempt_count == 1:
        time.sleep(job.params["seconds"])
    return {"attempt": job.attempt_count}


@register("test_effect")
def effect(job: Job) -> dict[str, Any]:
    """Sleeps on its first attempt (so a test can kill it), then counts its one effect."""
    client = _redis()
    client.set(f"pid:{job.pk}", os.getpid())
    if job.attempt_count == 1:
        time.sleep(job.params["seconds"])
    count = client.incr(f"effect:{job.pk}")
    return {"effects": count}


@worker_process_init.connect
def save_coverage_after_each_task(**kwargs: Any) -> None:
    """Under `make coverage`, a pool process saves what it ran after every task: pool
    processes end by SIGKILL or os._exit when the worker stops, past coverage's exit hook."""
    try:
        import coverage
    except ImportError:
        return
    measuring = coverage.Coverage.current()
    if measuring is None:
        return

    def save(**kwargs: Any) -> None:
        measuring.save()

    task_postrun.connect(save, weak=False)
