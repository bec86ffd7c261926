"""The way into the job engine: enqueue a job, retry a failed one, cancel a waiting one, send
or re-send messages."""

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.utils import timezone

from jobs import delivery, dependencies, lifecycle, registry, routing
from jobs.models import Job, JobStatus, JobType, Trigger
from jobs.queries import JobFilters, list_job_ids
from trail.services import record

log = logging.getLogger(__name__)

# Parameters are shown on the dashboard and stored in plain text: a key that names a secret
# is refused outright, so a caller cannot put one there by accident. Store a vault reference.
SECRET_KEY_PATTERN = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|credential(?!_ref)", re.I
)


CANCELLABLE = (JobStatus.PENDING, JobStatus.RETRYING)

TASK_NAME = "jobs.run_job"


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


@dataclass(frozen=True)
class JobRequest:
    """One job of an enqueue_many batch: its type, what it acts on and its parameters."""

    job_type: str
    subject: models.Model | None = None
    params: dict[str, Any] = field(default_factory=dict)
    # Overrides the batch's trigger_label for this job (a directory event names its kind).
    trigger_label: str = ""
    # Positions of earlier requests in the same batch that this job waits for (see
    # jobs.dependencies): it starts waiting and is released when they have completed.
    after: tuple[int, ...] = ()


def check_type(job_type: str) -> None:
    if job_type not in JobType.values and registry.get_handler(job_type) is None:
        raise InvalidJobError(f"unknown job type: {job_type!r}")


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
    check_type(job_type)
    params = params or {}
    check_params(params)
    if triggered_by is not None and not trigger_label:
        trigger_label = triggered_by.get_username()
    job = Job(
        job_type=job_type,
        subject_type=ContentType.objects.get_for_model(subject) if subject else None,
        subject_id=str(subject.pk) if subject else "",
        subject_label=str(subject)[:255] if subject else "",
        params=params,
        trigger=trigger,
        triggered_by=triggered_by,
        trigger_label=trigger_label,
    )
    if not after and lifecycle.fast_sql():
        lifecycle.insert_job(job)  # the row and its count in one statement
        send_on_commit(job)
        return job
    with transaction.atomic():
        status, fields = dependencies.initial_state(after) if after else (JobStatus.PENDING, {})
        job.status = status
        job.has_prerequisites = bool(after)
        for name, value in fields.items():
            setattr(job, name, value)
        job.save(force_insert=True)
        if after:
            dependencies.link(job, after)
        lifecycle.shift_counts(job_type, {status: +1})
        if status == JobStatus.PENDING:
            send_on_commit(job)
    return job


def enqueue_many(
    requests: Iterable[JobRequest],
    *,
    triggered_by: Any = None,
    trigger: str = Trigger.USER,
    trigger_label: str = "",
) -> list[Job]:
    """Record many jobs with one INSERT and send their messages together once the surrounding
    transaction commits: all of them, or (if it rolls back or a request is refused) none."""
    requests = list(requests)
    for position, request in enumerate(requests):
        check_type(request.job_type)
        check_params(request.params)
        if any(not 0 <= earlier < position for earlier in request.after):
            raise InvalidJobError("a job of a batch can only wait for jobs before it")
    if not requests:
        return []
    if triggered_by is not None and not trigger_label:
        trigger_label = triggered_by.get_username()
    content_types: dict[type[models.Model], ContentType] = {}

    def subject_type(subject: models.Model | None) -> ContentType | None:
        if subject is None:
            return None
        model = type(subject)
        if model not in content_types:
            content_types[model] = ContentType.objects.get_for_model(subject)
        return content_types[model]

    now = timezone.now()
    jobs = [
        Job(
            job_type=request.job_type,
            subject_type=subject_type(request.subject),
            subject_id=str(request.subject.pk) if request.subject else "",
            subject_label=str(request.subject)[:255] if request.subject else "",
            params=request.params,
            trigger=trigger,
            triggered_by=triggered_by,
            trigger_label=request.trigger_label or trigger_label,
            created_at=now,
            dispatched_at=now,
            status=JobStatus.WAITING if request.after else JobStatus.PENDING,
            has_prerequisites=bool(request.after),
        )
        for request in requests
    ]
    per_status = Counter((job.job_type, job.status) for job in jobs)
    with transaction.atomic():
        Job.objects.bulk_create(jobs)
        waiting = {
            job: [jobs[earlier] for earlier in request.after]
            for job, request in zip(jobs, requests, strict=True)
            if request.after
        }
        if waiting:
            dependencies.link_many(waiting)
        for (job_type, status), count in sorted(per_status.items()):
            lifecycle.shift_counts(job_type, {status: +count})
        messages = [
            (job.pk, str(job.celery_task_id), job.retries, job.job_type)
            for job in jobs
            if job.status == JobStatus.PENDING
        ]
        transaction.on_commit(lambda: send_many(messages), robust=True)
    return jobs


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


def retry_jobs(filters: JobFilters, *, limit: int, actor: Any) -> list[int]:
    """Retry up to ``limit`` failed jobs matching the list's filters, each in its own
    transaction; one trail entry records the bulk action and how many were retried."""
    retried = []
    for job_id in list_job_ids(filters, statuses=(JobStatus.FAILED,), limit=limit):
        with transaction.atomic():
            if lifecycle.reset_for_retry(job_id, actor=actor):
                send_on_commit(Job.objects.get(pk=job_id))
                retried.append(job_id)
    record("jobs.bulk_retried", actor=actor, count=len(retried), filters=filters.as_query())
    return retried


def cancel_jobs(filters: JobFilters, *, limit: int, actor: Any) -> list[int]:
    """Cancel up to ``limit`` pending or retrying jobs matching the list's filters, each in
    its own transaction; one trail entry records the bulk action and the count."""
    cancelled = [
        job_id
        for job_id in list_job_ids(filters, statuses=CANCELLABLE, limit=limit)
        if lifecycle.cancel(job_id, actor=actor) is not None
    ]
    record("jobs.bulk_cancelled", actor=actor, count=len(cancelled), filters=filters.as_query())
    return cancelled


def trail_label(job: Job) -> str:
    """The job as the trail names it; without its status, which changes after the entry."""
    label = f"{job.type_label} #{job.pk}"
    return f"{label}: {job.subject_label}" if job.subject_label else label


def send_on_commit(job: Job) -> None:
    job_id, task_id, retries, job_type = job.pk, str(job.celery_task_id), job.retries, job.job_type
    transaction.on_commit(
        lambda: send(job_id, task_id=task_id, retries=retries, job_type=job_type), robust=True
    )


def send_many(messages: list[tuple[int, str, int, str]]) -> None:
    """Publish (job id, task id, retries, job type) messages through one producer connection.
    A failure leaves the rest pending for the sweeper, as send() does for one."""
    from jobs.tasks import run_job

    try:
        with run_job.app.producer_or_acquire() as producer, delivery.marked_together():
            for job_id, task_id, retries, job_type in messages:
                send(job_id, task_id=task_id, retries=retries, job_type=job_type, producer=producer)
    except Exception:
        log.exception("jobs.send.failed", extra={"jobs": len(messages)})


def task_name(job_type: str | None) -> str:
    """The name the message shows in worker logs and monitors (Flower): the one task's name
    with the job's type, ``jobs.run_job:create_gws_user``. Celery's retries keep it."""
    return f"{TASK_NAME}:{job_type}" if job_type else TASK_NAME


def send(
    job_id: int,
    *,
    task_id: str,
    retries: int,
    job_type: str | None = None,
    countdown: float | None = None,
    producer: Any = None,
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
        if producer is not None:
            options["producer"] = producer
        run_job.apply_async(args=(job_id,), task_id=task_id, shadow=task_name(job_type), **options)
    except Exception:
        log.exception("jobs.send.failed", extra={"job_id": job_id})
