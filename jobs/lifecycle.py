"""Every status change of a job: conditional updates that never move a job backwards."""

import contextlib
import json
import logging
import traceback
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from jobs import dependencies, metrics, routing, signals
from jobs.models import (
    AttemptOutcome,
    Job,
    JobAttempt,
    JobEvent,
    JobStatus,
    JobStatusCount,
)

log = logging.getLogger(__name__)


_types_with_counters: set[str] = set()

JOBS, ATTEMPTS, COUNTS = (
    Job._meta.db_table,
    JobAttempt._meta.db_table,
    JobStatusCount._meta.db_table,
)
JOB_COLUMNS = [str(f.column) for f in Job._meta.concrete_fields]
JOB_ATTNAMES = [f.attname for f in Job._meta.concrete_fields]
JSON_ATTNAMES = ("params", "result")


def fast_sql() -> bool:
    """The hot path (claim, complete, counters) speaks SQL directly on PostgreSQL; the ORM
    builds the same statements elsewhere (SQLite for make run)."""
    return connection.vendor == "postgresql"


@contextlib.contextmanager
def hot_cursor() -> Iterator[Any]:
    """A cursor for the statements every job runs (insert, claim, completion): bound on the
    server and prepared on first use in each connection, so PostgreSQL parses and plans each
    of them once per connection, not once a job. Django's own cursors bind on the client,
    which never prepares."""
    with connection.cursor() as wrapper:
        # While queries are logged (DEBUG, CaptureQueriesContext) Django's own cursor stays:
        # psycopg does not keep the text of a prepared statement for the log.
        if not connection.queries_logged:
            raw = connection.connection
            if raw.prepare_threshold is None:  # Django's default: nothing is prepared
                raw.prepare_threshold = 0  # only server-binding cursors (these) prepare
            wrapper.cursor = psycopg.Cursor(raw)
        yield wrapper


def lock_job(job_id: int) -> Job | None:
    """The job's row, locked until the transaction ends."""
    if not fast_sql():
        return Job.objects.select_for_update().filter(pk=job_id).first()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(JOB_COLUMNS)} FROM {JOBS} WHERE id = %s FOR UPDATE",  # noqa: S608
            [job_id],
        )
        row = cursor.fetchone()
    return None if row is None else job_from_row(row)


def counted(changed: str, to_status: str) -> str:
    """A CTE that moves the counters for the rows of CTE ``changed`` (job_type,
    from_status) to ``to_status``, taking the counter rows in status order."""
    to_status = JobStatus(to_status).value
    return f"""
        counted AS (
            INSERT INTO {COUNTS} AS c (job_type, status, count)
            SELECT d.job_type, d.status, d.delta FROM (
                SELECT job_type, from_status AS status, -1 AS delta FROM {changed}
                UNION ALL SELECT job_type, '{to_status}', 1 FROM {changed}
            ) AS d
            ORDER BY d.status
            ON CONFLICT (job_type, status) DO UPDATE SET count = c.count + EXCLUDED.count
        )"""  # noqa: S608 - names and status keys are ours


def announce(job: Job, from_status: str, to_status: str, **known: Any) -> None:
    """The signal of a status change whose counters the same statement already moved;
    ``known`` carries what the statement read of the changed row (has_dependents)."""
    signals.job_status_changed.send(
        sender=Job,
        job_id=job.pk,
        job_type=job.job_type,
        subject_type_id=job.subject_type_id,
        subject_id=job.subject_id,
        from_status=from_status,
        to_status=to_status,
        **known,
    )


def job_from_row(row: tuple[Any, ...]) -> Job:
    values = dict(zip(JOB_ATTNAMES, row, strict=True))
    for name in JSON_ATTNAMES:
        if isinstance(values[name], str):
            values[name] = json.loads(values[name])
    return Job.from_db(connection.alias, JOB_ATTNAMES, list(values.values()))


INSERT_FIELDS = [f for f in Job._meta.concrete_fields if not f.primary_key]


def insert_job(job: Job) -> None:
    """Write a new job's row and count it pending, in one statement (so in one transaction
    even outside any); PostgreSQL only."""
    columns = ", ".join(str(f.column) for f in INSERT_FIELDS)
    placeholders = ", ".join("%s" for _ in INSERT_FIELDS)
    with hot_cursor() as cursor:
        cursor.execute(
            f"""
            WITH inserted AS (
                INSERT INTO {JOBS} ({columns}) VALUES ({placeholders})
                RETURNING id, job_type
            ), counted AS (
                INSERT INTO {COUNTS} AS c (job_type, status, count)
                SELECT job_type, %s, 1 FROM inserted
                ON CONFLICT (job_type, status) DO UPDATE SET count = c.count + 1
            )
            SELECT id FROM inserted
            """,  # noqa: S608 - names are ours
            [
                *(f.get_db_prep_save(getattr(job, f.attname), connection) for f in INSERT_FIELDS),
                JobStatus.PENDING,
            ],
        )
        row = cursor.fetchone()
    assert row is not None
    job.pk = row[0]
    job._state.adding = False
    job._state.db = connection.alias


def shift_counts(job_type: str, changes: dict[str, int]) -> None:
    """Apply +/- deltas to the per-status counters in one statement. Call it last in a
    transaction: the counter rows are the hottest rows there are."""
    changes = {status: delta for status, delta in changes.items() if delta}
    if not changes:
        return
    if fast_sql():
        # One upsert, rows taken in status order (so two transactions never wait on each
        # other's rows crosswise); a type's first job makes its rows. The ORM spends longer
        # building such a statement than PostgreSQL spends running it.
        items = sorted(changes.items())
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {COUNTS} AS c (job_type, status, count) "  # noqa: S608
                f"VALUES {', '.join('(%s, %s, %s)' for _ in items)} "
                "ON CONFLICT (job_type, status) DO UPDATE SET count = c.count + EXCLUDED.count",
                [v for status, delta in items for v in (job_type, status, delta)],
            )
        return
    if job_type not in _types_with_counters:
        # The migration makes rows for the nine product types; other types get theirs here.
        JobStatusCount.objects.bulk_create(
            [JobStatusCount(job_type=job_type, status=status, count=0) for status in JobStatus],
            ignore_conflicts=True,
        )
        # Only once they are there for good: a rollback takes them away again.
        transaction.on_commit(lambda: _types_with_counters.add(job_type))
    delta = Case(*(When(status=s, then=Value(d)) for s, d in changes.items()), default=Value(0))
    JobStatusCount.objects.filter(job_type=job_type, status__in=changes).update(
        count=F("count") + delta
    )


def moved(
    job_id: int,
    job_type: str,
    subject: tuple[int | None, str],
    from_status: str,
    to_status: str,
) -> None:
    """What follows every status change, once the row is updated: counters and the signal."""
    signals.job_status_changed.send(
        sender=Job,
        job_id=job_id,
        job_type=job_type,
        subject_type_id=subject[0],
        subject_id=subject[1],
        from_status=from_status,
        to_status=to_status,
    )
    shift_counts(job_type, {from_status: -1, to_status: +1})


def transition(
    job_id: int,
    *,
    allowed: tuple[str, ...],
    to_status: str,
    condition: Q | None = None,
    **fields: Any,
) -> str | None:
    """Move a job to ``to_status`` if it is in one of ``allowed`` (and matches ``condition``).

    Returns the status it left, or None when the job was not in a state that allows the
    move. Call inside a transaction: the row is locked until it commits.
    """
    row = (
        Job.objects.select_for_update()
        .filter(pk=job_id)
        .values_list("status", "job_type", "subject_type_id", "subject_id")
        .first()
    )
    if row is None or row[0] not in allowed:
        return None
    from_status, job_type, subject_type_id, subject_id = row
    query = Q(pk=job_id, status=from_status)
    if condition is not None:
        query &= condition
    if not Job.objects.filter(query).update(status=to_status, **fields):
        return None
    if from_status != to_status:
        moved(job_id, job_type, (subject_type_id, subject_id), from_status, to_status)
    return str(from_status)


def error_fields(exc: BaseException, message: str | None = None) -> dict[str, str]:
    return {
        "error_class": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "error_message": message or str(exc) or type(exc).__name__,
        "error_traceback": "".join(traceback.format_exception(exc)),
    }


# The condition, on a claim's locked row ``old``, that no receiver follows the job.
UNFOLLOWED = """AND NOT old.job_type = ANY(%(followed_types)s::text[])
    AND NOT COALESCE(old.subject_type_id = ANY(%(followed_subjects)s::int[]), false)"""


def followed() -> tuple[list[str], list[int]]:
    """The job types and subject content types receivers follow (jobs.signals.follow)."""
    models = ContentType.objects.get_for_models(*signals.followed_subjects)  # cached
    return sorted(signals.followed_job_types), sorted(ct.pk for ct in models.values())


def is_followed(job: Job) -> bool:
    types, subjects = followed()
    return job.job_type in types or job.subject_type_id in subjects


def start_attempt(job_id: int, *, task_id: str, retries: int, worker: str) -> JobAttempt | None:
    """Claim the job for one delivery of its message; None means the delivery is stale."""
    now = timezone.now()
    if fast_sql():
        # A job nobody follows, claimed by one statement in autocommit (jobs.signals.follow).
        claimed = claim_ready(
            job_id, task_id=task_id, retries=retries, worker=worker, now=now, unfollowed=True
        )
        if claimed is not None:
            return claimed
    with transaction.atomic():
        if fast_sql():
            attempt = claim_ready(job_id, task_id=task_id, retries=retries, worker=worker, now=now)
            if attempt is not None:
                return attempt
        # Not a job this message may simply claim: stale, a duplicate, the job's previous
        # attempt lost its worker, or a job that may have to wait (jobs.dependencies).
        job = lock_job(job_id)
        if job is None or str(job.celery_task_id) != str(task_id):
            return None
        lost_cutoff = now - timedelta(seconds=routing.time_limits_for(job.job_type)[1])
        if job.status in (JobStatus.PENDING, JobStatus.RETRYING) and job.retries == retries:
            if dependencies.hold_at_claim(job):
                return None
        elif job.status == JobStatus.RUNNING and (
            retries > job.retries
            or (
                retries == job.retries
                and job.attempt_started_at
                and job.attempt_started_at < lost_cutoff
            )
        ):
            # Celery re-sent the message because the process running the previous attempt
            # died (retry_on_worker_lost), or the broker redelivered it long after any attempt
            # could still be alive: the previous attempt is lost.
            lost = JobAttempt.objects.filter(job_id=job_id, outcome=AttemptOutcome.RUNNING).update(
                outcome=AttemptOutcome.LOST,
                finished_at=now,
                error_class="celery.exceptions.WorkerLostError",
                error_message="The worker running this attempt stopped before it finished.",
            )
            if lost:
                job_type = job.job_type
                transaction.on_commit(lambda: metrics.record_attempt(job_type, "lost", count=lost))
        else:
            return None
        number = job.attempt_count + 1
        attempt = claim(job, number=number, retries=retries, worker=worker, now=now)
        if job.status != JobStatus.RUNNING:
            moved(job_id, job.job_type, subject_of(job), job.status, JobStatus.RUNNING)
        # The rest stays as it was before the claim: defer_attempt restores it from here.
        job.status, job.attempt_count = JobStatus.RUNNING, number
        return attempt


def claim_ready(
    job_id: int, *, task_id: str, retries: int, worker: str, now: datetime, unfollowed: bool = False
) -> JobAttempt | None:
    """The common claim in one statement: lock the job; if it is pending or retrying for this
    very message, and nothing could make it wait (no prerequisites, no gate on its type),
    mark it running, record the attempt and move the counters. None otherwise
    (start_attempt then looks closer). ``unfollowed``: only a job no receiver follows."""
    try:
        task_uuid = uuid.UUID(str(task_id))
    except ValueError:
        return None
    followed_types, followed_subjects = followed() if unfollowed else ([], [])
    with hot_cursor() as cursor:
        cursor.execute(
            f"""
            WITH old AS (
                SELECT * FROM {JOBS} WHERE id = %(job_id)s FOR UPDATE
            ), claimed AS (
                UPDATE {JOBS} AS j SET status = %(running)s,
                    attempt_count = old.attempt_count + 1, attempt_started_at = %(now)s,
                    started_at = COALESCE(old.started_at, %(now)s), next_attempt_at = NULL
                FROM old
                WHERE j.id = old.id AND old.status IN (%(pending)s, %(retrying)s)
                    AND old.retries = %(retries)s AND old.celery_task_id = %(task_id)s
                    AND NOT old.has_prerequisites AND NOT old.job_type = ANY(%(gated)s)
                    {UNFOLLOWED if unfollowed else ""}
                RETURNING j.id, j.job_type, old.status AS from_status, j.attempt_count
            ), attempt AS (
                INSERT INTO {ATTEMPTS} (job_id, number, retries, worker, started_at, outcome,
                                        error_class, error_message, error_traceback)
                SELECT id, attempt_count, %(retries)s, %(worker)s, %(now)s, %(outcome)s,
                    '', '', ''
                FROM claimed
                RETURNING id
            ), {counted("claimed", JobStatus.RUNNING)}
            SELECT attempt.id, {", ".join(f"old.{c}" for c in JOB_COLUMNS)} FROM attempt, old
            """,  # noqa: S608 - names are ours
            {
                "job_id": job_id,
                "running": JobStatus.RUNNING,
                "pending": JobStatus.PENDING,
                "retrying": JobStatus.RETRYING,
                "now": now,
                "retries": retries,
                "task_id": task_uuid,
                "worker": worker,
                "outcome": AttemptOutcome.RUNNING,
                "gated": dependencies.gated_job_types(),
                "followed_types": followed_types,
                "followed_subjects": followed_subjects,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    # As start_attempt returns it: the row as it was, but running as this attempt.
    job = job_from_row(row[1:])
    from_status, number = job.status, job.attempt_count + 1
    job.status, job.attempt_count = JobStatus.RUNNING, number
    attempt = JobAttempt(
        id=row[0], job_id=job.pk, number=number, retries=retries, worker=worker, started_at=now
    )
    attempt.job = job
    announce(job, from_status, JobStatus.RUNNING)
    return attempt


def claim(job: Job, *, number: int, retries: int, worker: str, now: datetime) -> JobAttempt:
    """Mark the locked job running as attempt ``number`` and record the attempt."""
    if not fast_sql():
        Job.objects.filter(pk=job.pk).update(
            status=JobStatus.RUNNING,
            retries=retries,
            attempt_count=number,
            attempt_started_at=now,
            started_at=job.started_at or now,
            next_attempt_at=None,
        )
        return JobAttempt.objects.create(
            job=job, number=number, retries=retries, worker=worker, started_at=now
        )
    with connection.cursor() as cursor:
        # One statement: the job's row and its new attempt's.
        cursor.execute(
            f"""
            WITH claimed AS (
                UPDATE {JOBS} SET status = %(running)s, retries = %(retries)s,
                    attempt_count = %(number)s, attempt_started_at = %(now)s,
                    started_at = COALESCE(started_at, %(now)s), next_attempt_at = NULL
                WHERE id = %(job_id)s
                RETURNING id
            )
            INSERT INTO {ATTEMPTS} (job_id, number, retries, worker, started_at, outcome,
                                    error_class, error_message, error_traceback)
            SELECT id, %(number)s, %(retries)s, %(worker)s, %(now)s, %(outcome)s, '', '', ''
            FROM claimed
            RETURNING id
            """,  # noqa: S608 - table names are ours
            {
                "running": JobStatus.RUNNING,
                "retries": retries,
                "number": number,
                "now": now,
                "job_id": job.pk,
                "worker": worker,
                "outcome": AttemptOutcome.RUNNING,
            },
        )
        row = cursor.fetchone()
    assert row is not None  # the row is locked by this transaction
    attempt = JobAttempt(
        id=row[0], job_id=job.pk, number=number, retries=retries, worker=worker, started_at=now
    )
    attempt.job = job
    return attempt


def subject_of(job: Job) -> tuple[int | None, str]:
    return job.subject_type_id, job.subject_id


def finish(attempt: JobAttempt, to_status: str, **fields: Any) -> bool:
    """Running → ``to_status``, only if this attempt is still the job's current one."""
    job = attempt.job
    updated = Job.objects.filter(
        pk=job.pk, status=JobStatus.RUNNING, attempt_count=attempt.number
    ).update(status=to_status, **fields)
    if updated:
        moved(job.pk, job.job_type, subject_of(job), JobStatus.RUNNING, to_status)
    return bool(updated)


def complete_attempt(attempt: JobAttempt, result: dict[str, Any]) -> bool:
    now = timezone.now()
    if not fast_sql():
        return complete_attempt_orm(attempt, result, now)
    job = attempt.job
    if (
        not job.has_dependents
        and not is_followed(job)
        and complete_unfollowed(attempt, result, now)
    ):
        return True
    with transaction.atomic():
        with hot_cursor() as cursor:
            # One statement: the attempt's row, the job's and the counters, only if this
            # attempt is still the job's current one.
            cursor.execute(
                f"""
                WITH attempt AS (
                    UPDATE {ATTEMPTS} SET outcome = %(succeeded)s, finished_at = %(now)s
                    WHERE id = %(attempt_id)s AND outcome = %(running_attempt)s
                ), done AS (
                    UPDATE {JOBS} SET status = %(completed)s, result = %(result)s::jsonb,
                        completed_at = %(now)s, next_attempt_at = NULL, error_class = '',
                        error_message = '', error_traceback = ''
                    WHERE id = %(job_id)s AND status = %(running)s
                        AND attempt_count = %(number)s
                    RETURNING job_type, %(running)s AS from_status, has_dependents
                ), {counted("done", JobStatus.COMPLETED)}
                SELECT count(*), bool_or(has_dependents) FROM done
                """,  # noqa: S608 - table names are ours
                completion_params(attempt, result, now),
            )
            row = cursor.fetchone()
        if row and row[0]:
            # The row as updated: a dependent linked since the claim is seen here.
            announce(job, JobStatus.RUNNING, JobStatus.COMPLETED, has_dependents=bool(row[1]))
            return True
        transaction.set_rollback(True)  # a newer attempt owns the job now
        return False


def completion_params(attempt: JobAttempt, result: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The parameters of both completion statements."""
    return {
        "succeeded": AttemptOutcome.SUCCEEDED,
        "now": now,
        "attempt_id": attempt.pk,
        "running_attempt": AttemptOutcome.RUNNING,
        "completed": JobStatus.COMPLETED,
        "result": json.dumps(result),
        "job_id": attempt.job.pk,
        "running": JobStatus.RUNNING,
        "number": attempt.number,
    }


def complete_unfollowed(attempt: JobAttempt, result: dict[str, Any], now: datetime) -> bool:
    """complete_attempt of a job no receiver follows, by one statement in autocommit: done
    only if this attempt is still the job's current one and no job waits for it (a dependent
    linked since the claim is released in complete_attempt's transaction)."""
    job = attempt.job
    with hot_cursor() as cursor:
        cursor.execute(
            f"""
            WITH done AS (
                UPDATE {JOBS} SET status = %(completed)s, result = %(result)s::jsonb,
                    completed_at = %(now)s, next_attempt_at = NULL, error_class = '',
                    error_message = '', error_traceback = ''
                WHERE id = %(job_id)s AND status = %(running)s AND attempt_count = %(number)s
                    AND NOT has_dependents
                RETURNING job_type, %(running)s AS from_status
            ), attempt AS (
                UPDATE {ATTEMPTS} SET outcome = %(succeeded)s, finished_at = %(now)s
                WHERE id = %(attempt_id)s AND outcome = %(running_attempt)s
                    AND EXISTS (SELECT FROM done)
            ), {counted("done", JobStatus.COMPLETED)}
            SELECT count(*) FROM done
            """,  # noqa: S608 - table names are ours
            completion_params(attempt, result, now),
        )
        row = cursor.fetchone()
    if not (row and row[0]):
        return False
    announce(job, JobStatus.RUNNING, JobStatus.COMPLETED, has_dependents=False)
    return True


def complete_attempt_orm(attempt: JobAttempt, result: dict[str, Any], now: datetime) -> bool:
    with transaction.atomic():
        JobAttempt.objects.filter(pk=attempt.pk, outcome=AttemptOutcome.RUNNING).update(
            outcome=AttemptOutcome.SUCCEEDED, finished_at=now
        )
        if finish(
            attempt,
            JobStatus.COMPLETED,
            result=result,
            completed_at=now,
            next_attempt_at=None,
            error_class="",
            error_message="",
            error_traceback="",
        ):
            return True
        transaction.set_rollback(True)  # a newer attempt owns the job now
        return False


def fail_attempt(
    attempt: JobAttempt,
    exc: BaseException,
    *,
    will_retry: bool,
    timed_out: bool = False,
    message: str | None = None,
) -> bool:
    """Record a failed attempt; the job becomes retrying, or failed when it will not retry."""
    now = timezone.now()
    errors = error_fields(exc, message)
    next_at = now + timedelta(seconds=backoff_seconds(attempt.retries)) if will_retry else None
    with transaction.atomic():
        JobAttempt.objects.filter(pk=attempt.pk, outcome=AttemptOutcome.RUNNING).update(
            outcome=AttemptOutcome.TIMED_OUT if timed_out else AttemptOutcome.FAILED,
            finished_at=now,
            next_attempt_at=next_at,
            **errors,
        )
        if finish(
            attempt,
            JobStatus.RETRYING if will_retry else JobStatus.FAILED,
            completed_at=None if will_retry else now,
            next_attempt_at=next_at,
            retries=attempt.retries + 1 if will_retry else attempt.retries,
            dispatched_at=now,
            **errors,
        ):
            return True
        transaction.set_rollback(True)
        return False


def defer_attempt(attempt: JobAttempt, *, delay: float) -> Job | None:
    """Undo a claim whose job must wait for a rate limit: as if the attempt never started.

    The attempt row goes, attempt_count and retries are what they were before the claim, the
    job is pending (or retrying) again under a new message id, due in ``delay`` seconds. The
    caller sends that message; the one running now then matches nothing and is ignored if it
    is ever delivered again. Returns the job as it now is, or None if the attempt was no
    longer the job's current one.
    """
    before = attempt.job  # loaded by start_attempt before it changed the row
    to_status = JobStatus.RETRYING if attempt.retries > 0 else JobStatus.PENDING
    due = timezone.now() + timedelta(seconds=delay)
    with transaction.atomic():
        updated = Job.objects.filter(
            pk=before.pk, status=JobStatus.RUNNING, attempt_count=attempt.number
        ).update(
            status=to_status,
            attempt_count=attempt.number - 1,
            celery_task_id=uuid.uuid4(),
            started_at=before.started_at,
            attempt_started_at=before.attempt_started_at,
            next_attempt_at=due,
            # The sweeper counts its grace from here: the message is due then, not now.
            dispatched_at=due,
        )
        if not updated:
            return None
        JobAttempt.objects.filter(pk=attempt.pk).delete()
        moved(before.pk, before.job_type, subject_of(before), JobStatus.RUNNING, to_status)
    return Job.objects.filter(pk=before.pk).first()


def backoff_seconds(retries: int) -> int:
    """The wait before the retry that follows attempt ``retries`` (0-based), as Celery computes
    it for ``retry_backoff`` without jitter: base * 2**retries, capped."""
    return int(min(settings.JOB_BACKOFF_MAX, settings.JOB_BACKOFF_BASE * (2**retries)))


def record_next_attempt(job_id: int, *, retries: int, at: datetime) -> None:
    """Store the time Celery actually scheduled the retry for (it may add jitter)."""
    with transaction.atomic():
        job = (
            Job.objects.select_for_update()
            .filter(pk=job_id, status=JobStatus.RETRYING, retries=retries)
            .first()
        )
        if job is None:
            return
        Job.objects.filter(pk=job_id).update(next_attempt_at=at, dispatched_at=at)
        JobAttempt.objects.filter(job_id=job_id, number=job.attempt_count).update(
            next_attempt_at=at
        )


def reset_for_retry(job_id: int, *, actor: Any) -> bool:
    """Failed → pending with a fresh retry budget and a new message id; atomic, once."""
    now = timezone.now()
    with transaction.atomic():
        left = transition(
            job_id,
            allowed=(JobStatus.FAILED,),
            to_status=JobStatus.PENDING,
            celery_task_id=uuid.uuid4(),
            retries=0,
            completed_at=None,
            next_attempt_at=None,
            dispatched_at=now,
        )
        if left is None:
            return False
        JobEvent.objects.create(
            job_id=job_id,
            kind=JobEvent.Kind.RETRIED,
            actor=actor,
            at=now,
            message=f"Retried by {actor.get_username()}",
        )
    return True


CANCELLED_ERROR_CLASS = "Cancelled"


def cancel(job_id: int, *, actor: Any) -> str | None:
    """Pending or retrying → failed, before its next attempt starts; atomic, once.

    Returns the status it left, or None when the job was in no state to cancel. Its message,
    already in the broker, then finds nothing to claim (start_attempt takes only pending or
    retrying jobs), and a later retry gives the job a new message id.
    """
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).only("attempt_count").first()
        if job is None:
            return None
        message = f"Cancelled by {actor.get_username()} before attempt {job.attempt_count + 1}"
        left = transition(
            job_id,
            allowed=(JobStatus.PENDING, JobStatus.RETRYING, JobStatus.WAITING),
            to_status=JobStatus.FAILED,
            completed_at=now,
            next_attempt_at=None,
            error_class=CANCELLED_ERROR_CLASS,
            error_message=message,
            error_traceback="",
            waiting_reason="",
        )
        if left is None:
            return None
        JobEvent.objects.create(
            job_id=job_id, kind=JobEvent.Kind.CANCELLED, actor=actor, at=now, message=message
        )
    return left
