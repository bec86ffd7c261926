"""The way into the job engine: enqueue a job, retry a failed one, cancel a waiting one, send
or re-send messages."""

import logging
import re
from collections.abc import Sequence
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction

from jobs import dependencies, lifecycle, registry, routing
from jobs.models import Job, JobStatus, JobType, Trigger
from trail.services import record

log = logging.getLogger(__name__)

# Parameters are shown on the dashboard and stored in plain text: a key that names a secret
# is refused outright, so a caller cannot put one there by accident. Store a vault reference.
SECRET_KEY_PATTERN = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|credential(?!_ref)", re.I
)


class InvalidJobError(ValueError):
    """The job cannot be enqueued as asked (unknown type, a secret in its parameters)."""


class NotCancellableError(ValueError):
    """The job is not pending or retrying (any more), so there is no attempt to cancel."""

    def __init__(self, job_id: int, status: str) -> None:
        if status == JobStatus.RUNNING:
            message = f"Job #{job_id} is running now; it will finish or time out"
        else:
            message = f"Job #{job_id} has already {status}; there is nothing to cancel"
        super().__init__(message)
        self.status = status


def check_params(params: dict[str, Any], path: str = "params") -> None:
    for key, value in params.items():
        if SECRET_KEY_PATTERN.search(str(key)) and not str(key).endswith("_ref"):
            raise InvalidJobError(
                f"{path}.{key}: job parameters must not carry secrets; pass a vault reference"
            )
        if isinstance(value, dict):
            check_params(value, f"{path}.{key}")


def enqueue(
    job_type: str,
    *,
    subject: models.Model | None = None,
    params: dict[str, Any] | None = None,
    triggered_by: Any = None,
    trigger: str = Trigger.USER,
    trigger_label: str = "",
    after: Sequence[Job] = (),
) -> Job:
    """Record a job and send its message once the surrounding transaction commits.

    With ``after``, the job waits until those jobs have completed (jobs.dependencies).
    """
    if job_type not in JobType.values and registry.get_handler(job_type) is None:
        raise InvalidJobError(f"unknown job type: {job_type!r}")
    params = params or {}
    check_params(params)
    if triggered_by is not None and not trigger_label:
        trigger_label = triggered_by.get_username()
    with transaction.atomic():
        status, fields = dependencies.initial_state(after) if after else (JobStatus.PENDING, {})
        job = Job.objects.create(
            job_type=job_type,
            status=status,
            has_prerequisites=bool(after),
            **fields,
            subject_type=ContentType.objects.get_for_model(subject) if subject else None,
            subject_id=str(subject.pk) if subject else "",
            subject_label=str(subject)[:255] if subject else "",
            params=params,
            trigger=trigger,
            triggered_by=triggered_by,
            trigger_label=trigger_label,
        )
        if after:
            dependencies.link(job, after)
        lifecycle.shift_counts(job_type, {status: +1})
        if status == JobStatus.PENDING:
            send_on_commit(job)
    return job


def retry_job(job: Job, *, actor: Any) -> bool:
    """Retry a failed job with a fresh retry budget; False if it was not failed (any more)."""
    with transaction.atomic():
        if not lifecycle.reset_for_retry(job.pk, actor=actor):
            return False
        job.refresh_from_db()
        record("job.retried", actor=actor, target=job, target_label=trail_label(job))
        send_on_commit(job)
    return True


def cancel_job(job_id: int, *, actor: Any) -> Job:
    """Fail a pending or retrying job before its next attempt, so no worker runs it.

    A running job is refused: its attempt will finish or time out on its own. Raises
    NotCancellableError when the job is in no state to cancel, Job.DoesNotExist when there is
    no such job.
    """
    with transaction.atomic():
        left = lifecycle.cancel(job_id, actor=actor)
        job = Job.objects.get(pk=job_id)
        if left is None:
            raise NotCancellableError(job_id, job.status)
        record(
            "job.cancelled",
            actor=actor,
            target=job,
            target_label=trail_label(job),
            previous=left,
            attempt=job.attempt_count + 1,
        )
    return job


def trail_label(job: Job) -> str:
    """The job as the trail names it; without its status, which changes after the entry."""
    label = f"{job.type_label} #{job.pk}"
    return f"{label}: {job.subject_label}" if job.subject_label else label


def send_on_commit(job: Job) -> None:
    job_id, task_id, retries, job_type = job.pk, str(job.celery_task_id), job.retries, job.job_type
    transaction.on_commit(
        lambda: send(job_id, task_id=task_id, retries=retries, job_type=job_type), robust=True
    )


def send(
    job_id: int,
    *,
    task_id: str,
    retries: int,
    job_type: str | None = None,
    countdown: float | None = None,
) -> None:
    """Publish the job's message to its type's queue. If the broker is down the job stays
    pending and the sweeper sends it again later, so a failure here is logged, not raised."""
    from jobs.tasks import run_job

    try:
        if job_type is None:
            job_type = Job.objects.filter(pk=job_id).values_list("job_type", flat=True).first()
        # The type's time limits and queue travel with the message; Celery's retries copy
        # both from the delivery they retry, so they hold for every retry too.
        soft_limit, hard_limit = routing.time_limits_for(job_type or "")
        options: dict[str, Any] = {
            "retries": retries,
            "soft_time_limit": soft_limit,
            "time_limit": hard_limit,
            "queue": routing.queue_for(job_type or ""),
        }
        if countdown:
            options["countdown"] = countdown
        run_job.apply_async(args=(job_id,), task_id=task_id, **options)
    except Exception:
        log.exception("jobs.send.failed", extra={"job_id": job_id})
