"""Plain dicts of jobs, attempts and events, shared by the Settings > Jobs pages and API."""

from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType

from jobs.lifecycle import CANCELLED_ERROR_CLASS
from jobs.models import Job, JobAttempt, JobEvent, JobStatus
from jobs.services import SECRET_KEY_PATTERN

REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    """A copy of a JSON value with the value of every secret-looking key replaced.

    enqueue() already refuses such keys in params; this guards rows written some other way
    and handler results, which nothing checks on the way in.
    """
    if isinstance(value, dict):
        return {
            key: REDACTED if _names_secret(str(key)) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _names_secret(key: str) -> bool:
    return bool(SECRET_KEY_PATTERN.search(key)) and not key.endswith("_ref")


def job_summary(job: Job) -> dict[str, Any]:
    """One row of the jobs list; reads no heavy (deferred) column."""
    return {
        "id": job.pk,
        "type": job.job_type,
        "type_label": job.type_label,
        "status": job.status,
        "status_label": job.get_status_display(),
        "subject": {"id": job.subject_id or None, "label": job.subject_label},
        "trigger": job.trigger,
        "triggered_by": job.triggered_by_label,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
        "next_attempt_at": job.next_attempt_at,
        "duration_seconds": job.duration_seconds,
        "attempt_count": job.attempt_count,
        "is_active": job.is_active,
        "cancelled": job.status == JobStatus.FAILED and job.error_class == CANCELLED_ERROR_CLASS,
        "gave_up_after": gave_up_after(job),
        "waiting_reason": job.waiting_reason,
    }


def gave_up_after(job: Job) -> int | None:
    """How many attempts a job failed for good made in its last round (an admin's Retry
    starts a new one), when it used up every retry; None otherwise."""
    if job.status != JobStatus.FAILED or job.error_class == CANCELLED_ERROR_CLASS:
        return None
    if job.retries < settings.JOB_MAX_RETRIES:
        return None
    return job.retries + 1


def job_detail(
    job: Job,
    attempts: list[JobAttempt],
    events: list[JobEvent],
    prerequisites: list[Job] | None = None,
) -> dict[str, Any]:
    """Everything about one job: its input, outcome, every attempt, its history and the jobs
    it waits for."""
    data = job_summary(job)
    data["prerequisites"] = [
        {"id": p.pk, "type": p.job_type, "status": p.status, "status_label": p.get_status_display()}
        for p in prerequisites or []
    ]
    if job.subject_type_id:
        subject_type = ContentType.objects.get_for_id(job.subject_type_id)
        data["subject"]["type"] = f"{subject_type.app_label}.{subject_type.model}"
    else:
        data["subject"]["type"] = None
    data["params"] = redact(job.params)
    data["result"] = redact(job.result)
    data["error"] = (
        {
            "class": job.error_class,
            "message": job.error_message,
            "traceback": job.error_traceback,
        }
        if job.error_class or job.error_message
        else None
    )
    data["attempts"] = [attempt_dict(attempt) for attempt in attempts]
    data["events"] = [event_dict(event) for event in events]
    return data


def attempt_dict(attempt: JobAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "started_at": attempt.started_at,
        "finished_at": attempt.finished_at,
        "duration_seconds": attempt.duration_seconds,
        "worker": attempt.worker,
        "outcome": attempt.outcome,
        "outcome_label": attempt.get_outcome_display(),
        "error_class": attempt.error_class,
        "error_message": attempt.error_message,
        "next_attempt_at": attempt.next_attempt_at,
        "wait_before_next_seconds": attempt.wait_before_next_seconds,
    }


def event_dict(event: JobEvent) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "kind_label": event.get_kind_display(),
        "at": event.at,
        "actor": event.actor.get_username() if event.actor else None,
        "message": event.message,
    }


def job_settings() -> dict[str, Any]:
    """The engine's retry and timeout settings, read-only on the dashboard."""
    return {
        "max_attempts": settings.JOB_MAX_RETRIES + 1,
        "max_retries": settings.JOB_MAX_RETRIES,
        "backoff_base_seconds": settings.JOB_BACKOFF_BASE,
        "backoff_max_seconds": settings.JOB_BACKOFF_MAX,
        "backoff_jitter": settings.JOB_BACKOFF_JITTER,
        "timeout_seconds": settings.JOB_TIMEOUT,
        "timeout_overrides": dict(sorted(settings.JOB_TIMEOUTS.items())),
    }
