"""Runs one delivery of a job: claim it, call its handler, record the outcome."""

import json
import logging
import random
import time
from typing import Any, NoReturn

from billiard.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from jobs import connections, context, delivery, lifecycle, metrics, registry, routing, services
from jobs.errors import PermanentError, RateLimited, TransientError
from jobs.models import AttemptOutcome, JobAttempt

log = logging.getLogger(__name__)


class NotClaimed(Exception):
    """The delivery could not claim its job because the database is unreachable: nothing
    ran, and the message must go back rather than be acknowledged (jobs.tasks.postpone)."""


def execute(
    job_id: int, *, task_id: str, retries: int, max_retries: int, worker: str
) -> dict[str, Any]:
    try:
        attempt = lifecycle.start_attempt(job_id, task_id=task_id, retries=retries, worker=worker)
    except connections.INFRASTRUCTURE_ERRORS as exc:
        connections.drop_unusable()
        raise NotClaimed(f"Could not claim job {job_id}: {type(exc).__name__}") from exc
    if attempt is None:
        delivery.unmark(task_id)
        log.info(
            "jobs.delivery.ignored",
            extra={"job_id": job_id, "task_id": task_id, "retries": retries},
        )
        return {"job_id": job_id, "ignored": "stale or duplicate delivery"}
    job = attempt.job
    outer = context.current_attempt.get()
    # Every line logged until the attempt ends, by us, the handler or a connector, names it.
    with context.attempt_context(
        job_id=job_id, job_type=job.job_type, attempt=attempt.number
    ) as fields:
        try:
            return run_attempt(attempt, task_id=task_id, retries=retries, max_retries=max_retries)
        finally:
            if outer is not None:
                # Celery's own lines about this delivery (succeeded, retry, raised) come
                # after the attempt, inside the task's context (jobs.tasks): name it there too.
                outer.update(fields)


def run_attempt(
    attempt: JobAttempt, *, task_id: str, retries: int, max_retries: int
) -> dict[str, Any]:
    """Run the claimed attempt and record how it ended. The message's delivery marker goes
    only then (finished), with the attempt's metrics, in one Redis round trip: a retry Celery
    sends after that, under the same message id, is marked queued afresh."""
    job = attempt.job
    log.info("jobs.attempt.started")
    handler = registry.get_handler(job.job_type)
    will_retry = retries < max_retries
    started = time.monotonic()
    try:
        if handler is None:
            raise PermanentError(f"No handler for this job type yet: {job.job_type}")
        result = handler(job) or {}
        # A result must be storable as JSON; find out now, not in the database driver.
        result = json.loads(json.dumps(result, cls=DjangoJSONEncoder))
    except RateLimited as exc:
        return defer(attempt, exc, task_id=task_id)
    except connections.INFRASTRUCTURE_ERRORS as exc:
        infrastructure_failed(attempt, exc, task_id=task_id, will_retry=will_retry, started=started)
    except SoftTimeLimitExceeded as exc:
        message = f"Attempt timed out after {routing.time_limits_for(job.job_type)[0]} s"
        lifecycle.fail_attempt(attempt, exc, will_retry=will_retry, timed_out=True, message=message)
        finished(attempt, task_id, AttemptOutcome.TIMED_OUT, started)
        log.warning("jobs.attempt.timed_out", extra={"will_retry": will_retry})
        raise
    except TransientError as exc:
        lifecycle.fail_attempt(attempt, exc, will_retry=will_retry)
        finished(attempt, task_id, AttemptOutcome.FAILED, started)
        log.warning("jobs.attempt.failed", extra={"will_retry": will_retry})
        raise
    except Exception as exc:
        # Permanent errors, and bugs: retrying cannot fix either, so fail now and show why.
        lifecycle.fail_attempt(attempt, exc, will_retry=False)
        finished(attempt, task_id, AttemptOutcome.FAILED, started)
        log.error("jobs.attempt.failed", extra={"will_retry": False})
        raise
    try:
        lifecycle.complete_attempt(attempt, result)
    except connections.INFRASTRUCTURE_ERRORS as exc:
        # The work is done but not recorded: the retry runs the (idempotent) handler again.
        infrastructure_failed(attempt, exc, task_id=task_id, will_retry=will_retry, started=started)
    finished(attempt, task_id, AttemptOutcome.SUCCEEDED, started)
    log.info("jobs.attempt.succeeded")
    return {"job_id": job.pk, "status": "completed"}


def infrastructure_failed(
    attempt: JobAttempt, exc: Exception, *, task_id: str, will_retry: bool, started: float
) -> NoReturn:
    """The database failed under a claimed attempt: a transient failure, never a permanent
    one. Record it if the database lets us; if not, the retry's message (one more retry
    than the job row shows) finds the attempt still running and takes over from it."""
    connections.drop_unusable()
    try:
        lifecycle.fail_attempt(attempt, exc, will_retry=will_retry)
    except connections.INFRASTRUCTURE_ERRORS:
        connections.drop_unusable()
        log.warning("jobs.attempt.unrecorded", extra={"error": type(exc).__name__})
    finished(attempt, task_id, AttemptOutcome.FAILED, started)
    log.warning("jobs.attempt.failed", extra={"will_retry": will_retry, "cause": "database"})
    raise TransientError(f"The database was unreachable: {type(exc).__name__}") from exc


def finished(attempt: JobAttempt, task_id: str, outcome: str, started: float) -> None:
    metrics.record_attempt(
        attempt.job.job_type,
        outcome,
        time.monotonic() - started,
        also_delete=delivery.marker_keys(task_id),
    )


def defer(attempt: JobAttempt, exc: RateLimited, *, task_id: str) -> dict[str, Any]:
    """Put a job that must wait for its rate limit back in its queue until its place in line
    (exc.retry_after): no retry counted, no failed attempt recorded, no pool slot held."""
    job = attempt.job
    delay = exc.retry_after + random.uniform(0, max(0.1, settings.RATE_LIMIT_MAX_WAIT))  # noqa: S311
    again = lifecycle.defer_attempt(attempt, delay=delay)
    delivery.unmark(task_id)
    if again is None:
        return {"job_id": job.pk, "ignored": "attempt superseded"}
    services.send(
        again.pk,
        task_id=str(again.celery_task_id),
        retries=again.retries,
        job_type=again.job_type,
        countdown=delay,
    )
    metrics.record_pacing(job.job_type, "deferred", delay)
    log.info("jobs.attempt.deferred", extra={"delay_seconds": round(delay, 3), "reason": str(exc)})
    return {
        "job_id": job.pk,
        "deferred_seconds": round(delay, 3),
        "next_task_id": str(again.celery_task_id),
    }
