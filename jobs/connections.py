"""Database connections a worker process can trust: checked before every task and after any
database error, so a PostgreSQL restart never leaves a pool process with a dead one."""

from django.db import DatabaseError, InterfaceError, OperationalError, connections

# Errors that say the database (not the job) is the problem: unreachable, restarting, a
# connection it dropped. Integrity and data errors are the job's own.
INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)


def drop_unusable(*, probe: bool = True) -> None:
    """Close every connection of this thread that saw an error and fails a round trip (with
    ``probe``, every one that fails a round trip), so the next query opens a fresh one.

    Celery's Django fix-up reuses connections for CELERY_DB_REUSE_MAX tasks without looking at
    them, and Django's own health check runs on the first cursor, too late for a transaction
    already begun on a connection PostgreSQL dropped.
    """
    for conn in connections.all(initialized_only=True):
        try:
            conn.close_if_unusable_or_obsolete()
            if probe and conn.connection is not None and not conn.is_usable():
                conn.close()
        except DatabaseError:
            conn.close()
