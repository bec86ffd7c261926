"""Jobs that wait: for other jobs to complete (prerequisites), or for a domain app's gate to
open (a credential's session to be checked in). The engine stays blind to what a gate checks.

A waiting job has status ``waiting`` and no message in the broker; the sweeper leaves it be.
- A prerequisite completes: each dependent whose prerequisites have all completed is released
  (pending again, its message sent). This also releases a dependent that was "not run"
  because the prerequisite had failed, once a Retry of the prerequisite completes.
- A prerequisite fails for good: each waiting dependent fails with "not run: #123 failed: …".
- A gate (registered per job type) is asked when a job is claimed; a reason to hold puts the
  job back to waiting instead of running it, and the domain app calls ``release`` later.
"""

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.dispatch import receiver
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, JobDependency, JobEvent, JobStatus
from jobs.signals import job_status_changed

NOT_RUN_ERROR_CLASS = "NotRun"
# Says why a job about to run must wait, or None to let it run; called with the job's row
# locked, inside the claim's transaction.
Gate = Callable[[Job], str | None]

_gates: dict[str, Gate] = {}


def register_gate(job_type: str) -> Callable[[Gate], Gate]:
    """Decorator: ``@register_gate("credential_rotation") def gate(job): ...``."""

    def decorator(gate: Gate) -> Gate:
        _gates[job_type] = gate
        return gate

    return decorator


def gated_job_types() -> list[str]:
    return sorted(_gates)


def waiting_label(prerequisite_ids: Sequence[int]) -> str:
    label = "waiting for " + ", ".join(f"#{pk}" for pk in prerequisite_ids)
    return label if len(label) <= 255 else label[:250].rsplit(",", 1)[0] + ", …"


def not_run_message(prerequisite: Job) -> str:
    reason = prerequisite.error_message or prerequisite.get_status_display().lower()
    return f"not run: #{prerequisite.pk} failed: {reason}"[:10_000]


def initial_state(prerequisites: Iterable[Job]) -> tuple[str, dict[str, Any]]:
    """The status and fields a new job starts with, given the jobs it must wait for.

    Locks the prerequisites' rows, so none of them can finish between this look and the
    commit of the new job's links (its completion would not see them)."""
    ids = sorted({job.pk for job in prerequisites})
    rows = list(Job.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    failed = next((job for job in rows if job.status == JobStatus.FAILED), None)
    if failed is not None:
        return JobStatus.FAILED, {
            "completed_at": timezone.now(),
            "error_class": NOT_RUN_ERROR_CLASS,
            "error_message": not_run_message(failed),
        }
    open_ids = [job.pk for job in rows if job.status != JobStatus.COMPLETED]
    if open_ids:
        return JobStatus.WAITING, {"waiting_reason": waiting_label(open_ids)}
    return JobStatus.PENDING, {}


def link(job: Job, prerequisites: Iterable[Job]) -> None:
    link_many({job: list(prerequisites)})


def link_many(waiting: dict[Job, list[Job]]) -> None:
    """Record what each new waiting job waits for (all of it still to run, as in one
    enqueue_many batch), and say so on the job: one INSERT, one UPDATE."""
    links = [
        JobDependency(job=job, prerequisite=p)
        for job, prerequisites in waiting.items()
        for p in {p.pk: p for p in prerequisites}.values()
    ]
    JobDependency.objects.bulk_create(links)
    # Their rows are locked (initial_state) or new in this transaction, so a completion
    # that has not seen this flag cannot commit before these links do.
    Job.objects.filter(pk__in={link.prerequisite_id for link in links}).update(has_dependents=True)
    for link in links:
        link.prerequisite.has_dependents = True
    for job, prerequisites in waiting.items():
        if job.status == JobStatus.WAITING:
            job.waiting_reason = waiting_label(sorted({p.pk for p in prerequisites}))
    Job.objects.bulk_update(list(waiting), ["waiting_reason"])


def list_prerequisites(job: Job) -> list[Job]:
    return list(
        Job.objects.filter(dependent_links__job=job).only("pk", "status", "job_type").order_by("pk")
    )


def hold_at_claim(job: Job) -> bool:
    """Called by start_attempt with the job row locked: True when the job must not run now.

    A job retried by hand while a prerequisite has not completed waits for it again (or is
    not run, if it failed); a job whose type's gate gives a reason waits until released."""
    prerequisites = list_prerequisites(job) if job.has_prerequisites else []
    failed = next((p for p in prerequisites if p.status == JobStatus.FAILED), None)
    if failed is not None:
        lifecycle.transition(
            job.pk,
            allowed=(JobStatus.PENDING, JobStatus.RETRYING),
            to_status=JobStatus.FAILED,
            completed_at=timezone.now(),
            error_class=NOT_RUN_ERROR_CLASS,
            error_message=not_run_message(Job.objects.get(pk=failed.pk)),
            error_traceback="",
        )
        return True
    open_ids = [p.pk for p in prerequisites if p.status != JobStatus.COMPLETED]
    reason = waiting_label(open_ids) if open_ids else None
    gate = _gates.get(job.job_type)
    if reason is None and gate is not None:
        reason = gate(job)
    if not reason:
        return False
    lifecycle.transition(
        job.pk,
        allowed=(JobStatus.PENDING, JobStatus.RETRYING),
        to_status=JobStatus.WAITING,
        waiting_reason=reason[:255],
        next_attempt_at=None,
    )
    JobEvent.objects.create(job_id=job.pk, kind=JobEvent.Kind.HELD, message=reason)
    return True


def release(job_id: int, *, message: str, from_failed: bool = False) -> bool:
    """Waiting (or, with ``from_failed``, failed as "not run") → pending, under a new message
    id, and send it once the transaction commits; False if the job was in no such state."""
    from jobs.services import send_on_commit

    allowed: tuple[str, ...] = (JobStatus.WAITING,)
    condition = None
    if from_failed:
        allowed = (JobStatus.WAITING, JobStatus.FAILED)
        condition = Q(status=JobStatus.WAITING) | Q(error_class=NOT_RUN_ERROR_CLASS)
    now = timezone.now()
    with transaction.atomic():
        row = Job.objects.select_for_update().filter(pk=job_id).only("retries").first()
        if row is None:
            return False
        left = lifecycle.transition(
            job_id,
            allowed=allowed,
            to_status=JobStatus.RETRYING if row.retries else JobStatus.PENDING,
            condition=condition,
            celery_task_id=uuid.uuid4(),
            waiting_reason="",
            dispatched_at=now,
            completed_at=None,
            error_class="",
            error_message="",
            error_traceback="",
        )
        if left is None:
            return False
        JobEvent.objects.create(job_id=job_id, kind=JobEvent.Kind.RELEASED, message=message)
        send_on_commit(Job.objects.get(pk=job_id))
    return True


def release_dependents(prerequisite_id: int) -> None:
    """A prerequisite completed: release each dependent whose prerequisites all completed."""
    dependent_ids = JobDependency.objects.filter(prerequisite_id=prerequisite_id).values_list(
        "job_id", flat=True
    )
    for job_id in sorted(dependent_ids):
        open_ids = list(
            JobDependency.objects.filter(job_id=job_id)
            .exclude(prerequisite__status=JobStatus.COMPLETED)
            .values_list("prerequisite_id", flat=True)
            .order_by("prerequisite_id")
        )
        if open_ids:
            Job.objects.filter(pk=job_id, status=JobStatus.WAITING).update(
                waiting_reason=waiting_label(open_ids)
            )
            continue
        release(job_id, message=f"#{prerequisite_id} completed", from_failed=True)


def fail_dependents(prerequisite_id: int) -> None:
    """A prerequisite failed for good: its waiting dependents are not run (nor theirs)."""
    prerequisite = Job.objects.get(pk=prerequisite_id)
    message = not_run_message(prerequisite)
    dependent_ids = JobDependency.objects.filter(
        prerequisite_id=prerequisite_id, job__status=JobStatus.WAITING
    ).values_list("job_id", flat=True)
    for job_id in sorted(dependent_ids):
        # Each move sends job_status_changed, so a chain fails link by link.
        lifecycle.transition(
            job_id,
            allowed=(JobStatus.WAITING,),
            to_status=JobStatus.FAILED,
            completed_at=timezone.now(),
            waiting_reason="",
            error_class=NOT_RUN_ERROR_CLASS,
            error_message=message,
            error_traceback="",
        )


@receiver(job_status_changed)
def follow_prerequisites(sender: Any, *, job_id: int, to_status: str, **kwargs: Any) -> None:
    """Every status change passes here, inside its transaction. A sender that read the row's
    has_dependents as it changed it passes it on, saving the lookup when nothing waits."""
    if to_status == JobStatus.COMPLETED:
        if kwargs.get("has_dependents", True):
            release_dependents(job_id)
    elif to_status == JobStatus.FAILED:
        fail_dependents(job_id)
