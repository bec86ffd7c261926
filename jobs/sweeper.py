"""Finds jobs whose message was lost or whose worker died, and sets them going again."""

import logging
import uuid
from datetime import timedelta

from billiard.exceptions import WorkerLostError
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs import lifecycle, metrics, routing, services
from jobs.models import AttemptOutcome, Job, JobAttempt, JobEvent, JobStatus

log = logging.getLogger(__name__)


def sweep() -> dict[str, int]:
    now = timezone.now()
    grace = timedelta(seconds=settings.JOB_SWEEP_GRACE)
    undelivered = Job.objects.filter(
        status__in=(JobStatus.PENDING, JobStatus.RETRYING), dispatched_at__lt=now - grace
    ).values_list("pk", flat=True)
    # Candidates by the shortest hard limit; recover() checks each job against its type's own.
    abandoned = Job.objects.filter(
        status=JobStatus.RUNNING,
        attempt_started_at__lt=now - grace - timedelta(seconds=settings.JOB_HARD_TIMEOUT),
    ).values_list("pk", flat=True)
    resent = sum(resend(job_id, cutoff=now - grace) for job_id in undelivered[:1000])
    recovered = sum(recover(job_id, now=now, grace=grace) for job_id in abandoned[:1000])
    if resent or recovered:
        log.warning("jobs.sweep", extra={"resent": resent, "recovered": recovered})
    return {"resent": resent, "recovered": recovered}


def resend(job_id: int, *, cutoff: object) -> bool:
    """Send a pending or retrying job again under a new message id; its old message, if it
    ever turns up, no longer matches and is ignored."""
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status not in (JobStatus.PENDING, JobStatus.RETRYING):
            return False
        if job.dispatched_at >= cutoff:  # type: ignore[operator]
            return False
        Job.objects.filter(pk=job_id).update(celery_task_id=uuid.uuid4(), dispatched_at=now)
        JobEvent.objects.create(
            job_id=job_id,
            kind=JobEvent.Kind.RESENT,
            at=now,
            message="Its message was not picked up in time (broker restarted or flushed?); "
            "sent again.",
        )
        job.refresh_from_db()
        services.send_on_commit(job)
    return True


def recover(job_id: int, *, now: object, grace: timedelta) -> bool:
    """A job still running long past the hard time limit lost its worker: count the attempt
    as lost, then retry it if its budget allows, else fail it."""
    message = "The worker running this attempt stopped before it finished."
    exc = WorkerLostError(message)
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status != JobStatus.RUNNING or not job.attempt_started_at:
            return False
        hard_limit = timedelta(seconds=routing.time_limits_for(job.job_type)[1])
        if job.attempt_started_at >= timezone.now() - grace - hard_limit:
            return False
        will_retry = job.retries < settings.JOB_MAX_RETRIES
        errors = lifecycle.error_fields(exc, message)
        moved = lifecycle.transition(
            job_id,
            allowed=(JobStatus.RUNNING,),
            to_status=JobStatus.RETRYING if will_retry else JobStatus.FAILED,
            condition=Q(attempt_count=job.attempt_count),
            retries=job.retries + 1 if will_retry else job.retries,
            celery_task_id=uuid.uuid4(),
            dispatched_at=timezone.now(),
            next_attempt_at=timezone.now() if will_retry else None,
            completed_at=None if will_retry else timezone.now(),
            **errors,
        )
        if moved is None:
            return False
        lost = JobAttempt.objects.filter(job_id=job_id, outcome=AttemptOutcome.RUNNING).update(
            outcome=AttemptOutcome.LOST, finished_at=timezone.now(), **errors
        )
        if lost:
            job_type = job.job_type
            transaction.on_commit(lambda: metrics.record_attempt(job_type, "lost", count=lost))
        JobEvent.objects.create(
            job_id=job_id,
            kind=JobEvent.Kind.RECOVERED,
            message="Recovered from a lost worker; "
            + ("retrying." if will_retry else "no retries left."),
        )
        if will_retry:
            job.refresh_from_db()
            services.send_on_commit(job)
    return True
