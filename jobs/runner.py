"""Runs one delivery of a job: claim it, call its handler, record the outcome."""

import json
import logging
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from jobs import lifecycle, registry
from jobs.errors import PermanentError, TransientError

log = logging.getLogger(__name__)


def execute(
    job_id: int, *, task_id: str, retries: int, max_retries: int, worker: str
) -> dict[str, Any]:
    attempt = lifecycle.start_attempt(job_id, task_id=task_id, retries=retries, worker=worker)
    if attempt is None:
        log.info(
            "jobs.delivery.ignored",
            extra={"job_id": job_id, "task_id": task_id, "retries": retries},
        )
        return {"job_id": job_id, "ignored": "stale or duplicate delivery"}
    job = attempt.job
    context = {"job_id": job_id, "job_type": job.job_type, "attempt": attempt.number}
    log.info("jobs.attempt.started", extra=context)
    handler = registry.get_handler(job.job_type)
    will_retry = retries < max_retries
    try:
        if handler is None:
            raise PermanentError(f"No handler for this job type yet: {job.job_type}")
        result = handler(job) or {}
        # A result must be storable as JSON; find out now, not in the database driver.
        result = json.loads(json.dumps(result, cls=DjangoJSONEncoder))
    except SoftTimeLimitExceeded as exc:
        message = f"Attempt timed out after {settings.JOB_TIMEOUT} s"
        lifecycle.fail_attempt(attempt, exc, will_retry=will_retry, timed_out=True, message=message)
        log.warning("jobs.attempt.timed_out", extra=context)
        raise
    except TransientError as exc:
        lifecycle.fail_attempt(attempt, exc, will_retry=will_retry)
        log.warning("jobs.attempt.failed", extra={**context, "will_retry": will_retry})
        raise
    except Exception as exc:
        # Permanent errors, and bugs: retrying cannot fix either, so fail now and show why.
        lifecycle.fail_attempt(attempt, exc, will_retry=False)
        log.error("jobs.attempt.failed", extra={**context, "will_retry": False})
        raise
    lifecycle.complete_attempt(attempt, result)
    log.info("jobs.attempt.succeeded", extra=context)
    return {"job_id": job_id, "status": "completed"}
