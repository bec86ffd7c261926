"""Per-type delivery: the queue a type's messages go to (settings.JOB_QUEUES), so workers
can specialise, and its time limits (settings.JOB_TIMEOUTS)."""

from django.conf import settings


def queue_for(job_type: str) -> str:
    """The queue for this type; types the setting does not name share the default queue."""
    return str(settings.JOB_QUEUES.get(job_type, settings.JOB_DEFAULT_QUEUE))


def queue_names() -> list[str]:
    """Every queue a message of ours can be in, the default one included."""
    return list(settings.JOB_QUEUE_NAMES)


def time_limits_for(job_type: str) -> tuple[int, int]:
    """(soft, hard) seconds for one attempt of this type."""
    soft = int(settings.JOB_TIMEOUTS.get(job_type, settings.JOB_TIMEOUT))
    return soft, soft + int(settings.JOB_HARD_TIMEOUT_GRACE)


def shortest_hard_limit() -> int:
    """The hard limit of the type that has the shortest: no running job of any type can be
    lost before it."""
    return min(
        [int(settings.JOB_HARD_TIMEOUT), *(time_limits_for(t)[1] for t in settings.JOB_TIMEOUTS)]
    )
