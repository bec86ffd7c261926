"""The checks behind /healthz: this web process, its database and its broker (failures), and
whether jobs are moving and beat is ticking (degradations)."""

import os
import time
from collections.abc import Callable
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone
from kombu import Connection

from jobs.models import Job, JobStatus


def check_database() -> None:
    """One round trip on the connection requests use."""
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        # Leave no half-broken connection behind for the next request of this process.
        connection.close()
        raise


def check_broker() -> None:
    """The broker answers (Redis: PING; filesystem: its folders are writable)."""
    url = settings.CELERY_BROKER_URL
    timeout = settings.HEALTH_CHECK_TIMEOUT
    if url.startswith(("redis://", "rediss://")):
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    elif settings.BROKER_IS_FILESYSTEM:
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        for key in ("data_folder_in", "control_folder"):
            folder = Path(str(options[key]))
            if not (folder.is_dir() and os.access(folder, os.W_OK)):
                raise OSError(f"broker folder {key} is missing or read-only")
    else:
        with Connection(url, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=max(1, round(timeout)))


CHECKS: dict[str, Callable[[], None]] = {"database": check_database, "broker": check_broker}


def oldest_due_job_age() -> float:
    """Seconds the longest-waiting due job (pending, or retrying past its retry time) has
    waited for a worker: one index lookup per status (job_active_dispatch)."""
    now = timezone.now()
    oldest = [
        Job.objects.filter(status=status, dispatched_at__lte=now)
        .order_by("dispatched_at")
        .values_list("dispatched_at", flat=True)
        .first()
        for status in (JobStatus.PENDING, JobStatus.RETRYING)
    ]
    waits = [(now - at).total_seconds() for at in oldest if at is not None]
    return max(waits, default=0.0)


def degradations() -> dict[str, str]:
    """What is wrong although every service answers, by name, each with a reason an operator
    can act on. Needs the database (call it only when the database check passed)."""
    from ops.beat import beat_age

    found: dict[str, str] = {}
    limit = settings.HEALTH_MAX_JOB_DELAY
    waited = oldest_due_job_age()
    if waited > limit:
        found["jobs"] = (
            f"the oldest due job has waited {waited:.0f} s for a worker (limit {limit} s): "
            "are the workers running and reaching the database and the broker?"
        )
    try:
        age = beat_age()
    except redis.RedisError:
        age = None  # the broker check names Redis already
    else:
        beat_limit = settings.BEAT_HEARTBEAT_MAX_AGE
        if age is None or age > beat_limit:
            said = "no heartbeat" if age is None else f"last heartbeat {age:.0f} s ago"
            found["beat"] = f"beat: {said} (limit {beat_limit} s); no sweeps or schedules run"
    return found


def run_checks() -> tuple[bool, dict[str, dict[str, object]]]:
    """(all passed, per check: ok, milliseconds and, when failed, the error's class).

    Only the class: an error message may quote a URL with its password in it.
    """
    results: dict[str, dict[str, object]] = {"web": {"ok": True}}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:
            results[name] = {"ok": False, "error": type(exc).__name__}
        else:
            results[name] = {"ok": True}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return all(result["ok"] for result in results.values()), results
