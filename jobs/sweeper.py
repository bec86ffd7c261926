"""Finds jobs whose message was lost or whose worker died, and sets them going again."""

import logging
import uuid
from datetime import timedelta

from billiard.exceptions import WorkerLostError
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs import delivery, lifecycle, metrics, routing, services
from jobs.models import AttemptOutcome, Job, JobAttempt, JobEvent, JobStatus
from jobs.workers import holds, live_instances

log = logging.getLogger(__name__)


def sweep() -> dict[str, int]:
    now = timezone.now()
    grace = timedelta(seconds=settings.JOB_SWEEP_GRACE)
    overdue = Job.objects.filter(
        status__in=(JobStatus.PENDING, JobStatus.RETRYING), dispatched_at__lt=now - grace
    ).values_list("pk", "celery_task_id")[:1000]
    undelivered, waiting = lost_messages([(pk, str(task_id)) for pk, task_id in overdue])
    # Candidates by the shortest hard limit; recover() checks each job against its type's own.
    abandoned = Job.objects.filter(
        status=JobStatus.RUNNING,
        attempt_started_at__lt=now - grace - timedelta(seconds=routing.shortest_hard_limit()),
    ).values_list("pk", flat=True)
    resent = sum(resend(job_id, cutoff=now - grace) for job_id in undelivered)
    recovered = sum(recover(job_id, grace=grace) for job_id in abandoned[:1000])
    if resent or recovered:
        log.warning(
            "jobs.sweep", extra={"resent": resent, "recovered": recovered, "waiting": waiting}
        )
    return {"resent": resent, "recovered": recovered, "waiting": waiting}


def lost_messages(overdue: list[tuple[int, str]]) -> tuple[list[int], int]:
    """(the overdue jobs whose message is gone, how many are overdue but still in the broker).

    A message is gone when its marker is (a flush, a restart without persistence), when the
    worker holding it is dead, or when a "queued" one is in no queue and no worker's hands two
    sweeps running (delivery.vanished). Without markers every overdue job counts as gone.
    """
    markers = delivery.where([task_id for _, task_id in overdue])
    if markers is None:
        return [job_id for job_id, _ in overdue], 0
    held = {m for m in markers.values() if m is not None and m != delivery.QUEUED}
    alive = live_instances({m.partition(" ")[0] for m in held}) if held else {}
    vanished = delivery.vanished([t for t, m in markers.items() if m == delivery.QUEUED])
    lost = [
        job_id
        for job_id, task_id in overdue
        if (marker := markers[task_id]) is None
        or task_id in vanished
        or (marker != delivery.QUEUED and alive is not None and not holds(alive, marker))
    ]
    return lost, len(overdue) - len(lost)


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


def recover_lost() -> int:
    """Recover at once the running jobs whose attempt's worker stopped beating, or beats again
    as a new instance (jobs.workers' keys in Redis): seconds after a worker dies, instead of
    its jobs' hard time limit later.

    Still exactly once in effect: recover() moves only the attempt it saw, so a worker that
    was merely slow finds its attempt superseded and its result is not recorded.
    """
    running = dict(
        Job.objects.filter(status=JobStatus.RUNNING).values_list("pk", "attempt_count")[:1000]
    )
    if not running:
        return 0
    attempts = [
        (job_id, number, worker, started)
        for job_id, number, worker, started in JobAttempt.objects.filter(
            job_id__in=running, outcome=AttemptOutcome.RUNNING
        ).values_list("job_id", "number", "worker", "started_at")
        if worker
        and running.get(job_id) == number
        and started < timezone.now() - timedelta(seconds=settings.WORKER_LOST_AFTER)
    ]
    alive = live_instances({worker for _, _, worker, _ in attempts})
    if alive is None:
        return 0
    # A worker beating under the name, but started after the attempt, is a restart of the one
    # that ran it (a supervisor keeps the name): the attempt's instance is dead.
    recovered = sum(
        recover(job_id, grace=timedelta(0), dead_attempt=number)
        for job_id, number, worker, started in attempts
        if worker not in alive or started.timestamp() < alive[worker]
    )
    if recovered:
        log.warning("jobs.recover_lost", extra={"recovered": recovered})
    return recovered


def recover(job_id: int, *, grace: timedelta, dead_attempt: int | None = None) -> bool:
    """A job still running long past the hard time limit, or whose worker is known dead, lost
    its worker: count the attempt as lost, then retry it if its budget allows, else fail it.
    ``dead_attempt``: the number of the attempt whose worker is known dead; nothing happens
    if the job has moved on from it."""
    message = "The worker running this attempt stopped before it finished."
    exc = WorkerLostError(message)
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status != JobStatus.RUNNING or not job.attempt_started_at:
            return False
        hard_limit = timedelta(seconds=routing.time_limits_for(job.job_type)[1])
        if dead_attempt is not None:
            if job.attempt_count != dead_attempt:
                return False
        elif job.attempt_started_at >= timezone.now() - grace - hard_limit:
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
