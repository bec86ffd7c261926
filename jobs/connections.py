"""Database connections a worker process can trust: checked before every task and after any
database error, so a PostgreSQL restart never leaves a pool process with a dead one."""

import select
import time
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections

# Errors that say the database (not the job) is the problem: unreachable, restarting, a
# connection it dropped. Integrity and data errors are the job's own.
INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)

# Before a task, a connection idle this long gets a round trip (SELECT 1); one in use more
# recently only has its socket looked at, which costs no round trip under a steady stream.
PROBE_AFTER_IDLE_SECONDS = 1.0
_last_used = 0.0


def check_before_task() -> None:
    drop_unusable(probe=time.monotonic() - _last_used > PROBE_AFTER_IDLE_SECONDS)


def check_after_task() -> None:
    global _last_used
    drop_unusable(probe=False)
    _last_used = time.monotonic()


def drop_unusable(*, probe: bool = True) -> None:
    """Close every connection of this thread that saw an error and fails a round trip, or
    that the server has ended; with ``probe``, every one that fails a round trip. The next
    query then opens a fresh one.

    Celery's Django fix-up reuses connections for CELERY_DB_REUSE_MAX tasks without looking at
    them, and Django's own health check runs on the first cursor, too late for a transaction
    already begun on a connection PostgreSQL dropped.
    """
    for conn in connections.all(initialized_only=True):
        try:
            conn.close_if_unusable_or_obsolete()
            if conn.connection is None:
                continue
            if ended_by_server(conn.vendor, conn.connection) or (probe and not conn.is_usable()):
                conn.close()
            else:
                # Judged here: Django's own check (CONN_HEALTH_CHECKS) would spend another
                # round trip on the task's first query.
                conn.health_check_done = True  # type: ignore[attr-defined]  # not in the stubs
        except DatabaseError:
            conn.close()


def ended_by_server(vendor: str, raw: Any) -> bool:
    """PostgreSQL says goodbye when it ends a session (a restart, a terminated backend) and
    closes the socket: an idle connection with anything to read has been ended. A connection
    silently cut off shows nothing here; the round trip after an idle second finds it."""
    if vendor != "postgresql":
        return False
    try:
        readable, _, _ = select.select([raw.fileno()], [], [], 0)
    except Exception:  # a driver that cannot even name its socket is done
        return True
    return bool(readable)
