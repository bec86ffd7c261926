"""The directory_sync engine: claim the source, stream it into staging rows page by page,
compare staging with the snapshot in SQL, apply the safety brake, then swap the snapshot and
record joiner/mover/leaver events (with their jobs) in one transaction.

Memory stays bounded by one page: pages go straight to staging tables, and every comparison
(leavers are an anti-join of the snapshot against staging, movers a join) runs in the
database, read back through a server-side cursor a chunk at a time. Until the final
transaction commits, the snapshot is untouched, so a failure or the brake changes nothing.
"""

import contextvars
import logging
import queue
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F
from django.utils import timezone

from directory.models import (
    DirectoryEvent,
    DirectoryGroup,
    DirectoryMembership,
    DirectoryUser,
    EventKind,
    IdentitySource,
    JmlRule,
    StagedGroup,
    StagedMembership,
    StagedUser,
    SyncRun,
)
from directory.rules import needs_job, planned_actions
from directory.sources import Batch, reader_for
from jobs.errors import JobError, PermanentError, TransientError
from jobs.models import Job, JobType, Trigger
from jobs.services import JobRequest, enqueue_many

log = logging.getLogger(__name__)

# The most problems kept on a run for the page; all of them are counted.
MAX_PROBLEMS_LISTED = 100
EVENT_BATCH = 500
# Staging writes wait for this many rows or seconds, whichever comes first.
FLUSH_ROWS = 5000
FLUSH_SECONDS = 1.0
FETCH_CHUNK = 2000
USER_FIELDS = (
    "ref",
    "username",
    "email",
    "given_name",
    "family_name",
    "display_name",
    "department",
    "title",
    "manager",
    "org_unit",
    "disabled",
)
# A change to one of these makes a mover (names too: the platform's user carries them).
MOVER_FIELDS = ("department", "org_unit", "title", "manager", "given_name", "family_name")

U = DirectoryUser._meta.db_table
G = DirectoryGroup._meta.db_table
M = DirectoryMembership._meta.db_table
SU = StagedUser._meta.db_table
SG = StagedGroup._meta.db_table
SM = StagedMembership._meta.db_table


class SyncBusy(PermanentError):
    """Another sync of the same source holds it."""


class BrakeApplied(PermanentError):
    """The safety brake stopped the sync; nothing was changed."""


def sync_source(source_id: int, *, job: Job | None = None, force: bool = False) -> dict[str, Any]:
    """Run one sync of the source; the result counts joiners, movers, leavers and errors."""
    source = IdentitySource.objects.select_related("platform").filter(pk=source_id).first()
    if source is None:
        raise PermanentError(f"Directory source #{source_id} no longer exists")
    run = claim(source, job=job, force=force)
    try:
        reader = reader_for(source)
        stager = Stager(run)
        try:
            with closing(read_ahead(reader.batches())) as batches:
                for batch in batches:
                    stager.add(batch)
            stager.flush()
        finally:
            reader.close()
        result = commit(run, source, force=force)
    except BaseException as exc:
        finish(run, exc)
        if isinstance(exc, JobError) and source.name not in str(exc):
            raise type(exc)(f"Directory source {source.name}: {exc}") from exc
        raise
    finally:
        drop_staging(run)
        IdentitySource.objects.filter(pk=source.pk, running_run=run).update(running_run=None)
    return result


# --- one sync at a time ---------------------------------------------------------------------


def stale_after() -> timedelta:
    return timedelta(seconds=settings.DIRECTORY_SYNC_STALE_SECONDS)


def claim(source: IdentitySource, *, job: Job | None, force: bool) -> SyncRun:
    """Take the source for a new run, or fail fast if another sync holds it.

    The source row is locked while deciding, so two syncs starting together take turns and
    the second sees the first's run. A claim whose run stopped reporting progress (its worker
    died) is taken over, as is one left by an earlier attempt of this same job.
    """
    now = timezone.now()
    with transaction.atomic():
        locked = IdentitySource.objects.select_for_update().get(pk=source.pk)
        current = (
            SyncRun.objects.filter(pk=locked.running_run_id, status=SyncRun.Status.RUNNING).first()
            if locked.running_run_id is not None
            else None
        )
        if current is not None:
            abandoned = current.heartbeat_at < now - stale_after()
            same_job = job is not None and current.job_id == job.pk
            if not (abandoned or same_job):
                by = f" (job #{current.job_id})" if current.job_id else ""
                raise SyncBusy(
                    f"Directory source {source.name} is already being synced by run "
                    f"#{current.pk}{by}, started {current.started_at:%Y-%m-%d %H:%M:%S} UTC; "
                    "one sync per source at a time, so this one did not run. Start it again "
                    "once that run has finished."
                )
            SyncRun.objects.filter(pk=current.pk, status=SyncRun.Status.RUNNING).update(
                status=SyncRun.Status.FAILED,
                finished_at=now,
                message="Abandoned: its worker stopped reporting progress.",
            )
            drop_staging(current)
        run = SyncRun.objects.create(
            source=locked,
            job=job,
            forced=force,
            baseline=locked.generation == 0,
            started_at=now,
            heartbeat_at=now,
        )
        IdentitySource.objects.filter(pk=locked.pk).update(running_run=run, last_run=run)
    return run


def finish(run: SyncRun, exc: BaseException) -> None:
    status = SyncRun.Status.BRAKED if isinstance(exc, BrakeApplied) else SyncRun.Status.FAILED
    message = str(exc) or type(exc).__name__
    if isinstance(exc, TransientError):
        message += " (the job will retry)"
    SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.RUNNING).update(
        status=status, message=message, finished_at=timezone.now(), phase="stopped"
    )


# --- reading ahead --------------------------------------------------------------------------

# Pages read but not yet staged, at most: memory stays bounded by a few pages.
READ_AHEAD = 8


def read_ahead(batches: Iterator[Batch], depth: int = READ_AHEAD) -> Generator[Batch, None, None]:
    """The batches, read by a thread of their own while this one stages the previous ones.

    Waiting for the source and writing to the database then overlap instead of taking turns.
    The reader's client is used by that thread alone (neither httplib2 nor ldap3 is
    thread-safe), and it does not touch the database: all of that stays on this thread's
    connection and transaction. Its exception, if any, is raised here; if this side stops
    early, the thread stops at its next page.
    """
    pages: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not hand_over(("batch", batch)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            hand_over(("error", exc))
        else:
            hand_over(("done", None))

    # A copy of the context, so the reader's log lines still name the job and attempt.
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(produce,), name="sync-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = pages.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)


# --- staging --------------------------------------------------------------------------------


class Stager:
    """Writes pages to the staging tables in batches, with the run's progress.

    Rows wait in a small buffer (at most FLUSH_ROWS, or FLUSH_SECONDS) so a member page of 30
    rows does not cost a transaction of its own; each flush is one transaction holding the
    COPYs and the progress update, so progress on the page never runs ahead of the rows.
    """

    def __init__(self, run: SyncRun) -> None:
        self.run = run
        self.users: list[tuple[Any, ...]] = []
        self.groups: list[tuple[Any, ...]] = []
        self.memberships: list[tuple[Any, ...]] = []
        self.problems: list[dict[str, str]] = []
        self.counts = {"pages": 0, "users": 0, "groups": 0, "memberships": 0, "errors": 0}
        self.phase = "users"
        self.listed = 0
        self.flushed_at = time.monotonic()

    def add(self, batch: Batch) -> None:
        run_id = self.run.pk
        self.users += [
            (run_id, u.external_id, *(getattr(u, name) for name in USER_FIELDS))
            for u in unique_by_id(batch.users)
        ]
        self.groups += [
            (run_id, g.external_id, g.ref, g.name, g.email) for g in unique_by_id(batch.groups)
        ]
        self.memberships += [(run_id, group, user) for group, user in batch.memberships]
        room = MAX_PROBLEMS_LISTED - self.listed - len(self.problems)
        self.problems += [{"object": p.object, "message": p.message} for p in batch.problems][
            : max(0, room)
        ]
        self.counts["pages"] += 1
        self.counts["users"] += len(batch.users)
        self.counts["groups"] += len(batch.groups)
        self.counts["memberships"] += len(batch.memberships)
        self.counts["errors"] += len(batch.problems)
        self.phase = batch.phase
        buffered = len(self.users) + len(self.groups) + len(self.memberships)
        if buffered >= FLUSH_ROWS or time.monotonic() - self.flushed_at >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        changes: dict[str, Any] = {
            "phase": self.phase,
            "pages_read": F("pages_read") + self.counts["pages"],
            "users_read": F("users_read") + self.counts["users"],
            "groups_read": F("groups_read") + self.counts["groups"],
            "memberships_read": F("memberships_read") + self.counts["memberships"],
            "errors": F("errors") + self.counts["errors"],
            "heartbeat_at": timezone.now(),
        }
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # Staging rows are thrown away if anything goes wrong, so waiting for each of
                # these commits to reach the disk buys nothing (and cost half the sync's time).
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            insert_rows(StagedUser, ("run_id", "external_id", *USER_FIELDS), self.users)
            insert_rows(StagedGroup, ("run_id", "external_id", "ref", "name", "email"), self.groups)
            insert_rows(StagedMembership, ("run_id", "group_ref", "user_ref"), self.memberships)
            if self.problems:
                run = SyncRun.objects.select_for_update().only("problems").get(pk=self.run.pk)
                changes["problems"] = [*run.problems, *self.problems]
                self.listed += len(self.problems)
            SyncRun.objects.filter(pk=self.run.pk).update(**changes)
        self.users, self.groups, self.memberships, self.problems = [], [], [], []
        self.counts = dict.fromkeys(self.counts, 0)
        self.flushed_at = time.monotonic()


def unique_by_id(records: Sequence[Any]) -> list[Any]:
    seen: dict[str, Any] = {}
    for record in records:
        seen.setdefault(record.external_id, record)
    return list(seen.values())


def insert_rows(
    model: type[models.Model], columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Append rows fast: COPY on PostgreSQL, a multi-row INSERT elsewhere. An id seen on an
    earlier page (a source listing an object twice) keeps its first reading."""
    if not rows:
        return
    table = model._meta.db_table
    if connection.vendor == "postgresql":
        try:
            # A savepoint, so a duplicate can fall back without losing the rest.
            with transaction.atomic(), connection.cursor() as cursor:
                copy_sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                with cursor.cursor.copy(copy_sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            return
        except IntegrityError:
            pass  # a duplicate across pages: fall through to the conflict-ignoring insert
    objects = [model(**dict(zip(columns, row, strict=True))) for row in rows]
    model._default_manager.bulk_create(objects, batch_size=500, ignore_conflicts=True)


def drop_staging(run: SyncRun) -> None:
    for model in (StagedMembership, StagedGroup, StagedUser):
        model._default_manager.filter(run=run).delete()


# --- compare, brake, commit -----------------------------------------------------------------


def fetch(sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
    """Rows a chunk at a time through a server-side cursor (PostgreSQL), so a result of
    100,000 rows never sits in memory at once."""
    cursor = connection.chunked_cursor()
    try:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(FETCH_CHUNK):
            yield from rows
    finally:
        cursor.close()


def scalar(sql: str, params: Sequence[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return int(row[0]) if row else 0


LEAVERS_FROM = f"""
    FROM {U} u LEFT JOIN {SU} s ON s.run_id = %s AND s.external_id = u.external_id
    WHERE u.source_id = %s AND NOT u.deleted AND NOT u.disabled
      AND (s.id IS NULL OR s.disabled)
"""


def max_leaver_share() -> float:
    share = float(settings.DIRECTORY_MAX_LEAVER_SHARE)
    if not 0 <= share <= 1:
        raise PermanentError(
            f"DIRECTORY_MAX_LEAVER_SHARE must be between 0 and 1 (a share), not {share}"
        )
    return share


def check_brake(run: SyncRun, source: IdentitySource, *, force: bool) -> dict[str, int]:
    """Stop here, before anything changes, if the source looks wrong."""
    read = StagedUser.objects.filter(run=run).count()
    active_before = DirectoryUser.objects.filter(
        source=source, deleted=False, disabled=False
    ).count()
    leavers = scalar(f"SELECT COUNT(*) {LEAVERS_FROM}", [run.pk, source.pk])
    figures = {"users": read, "active_before": active_before, "leavers": leavers}
    if force:
        return figures
    how = (
        " Nothing was changed: the previous snapshot is intact. If this is expected, run "
        "“Sync now” on the source's page with “Override the safety brake” ticked (a forced "
        'sync; the directory_sync job parameter "force": true).'
    )
    if read == 0:
        raise BrakeApplied(
            f"Safety brake: directory source {source.name} returned no users (check its "
            "base DN, filter or domain)." + how
        )
    share = max_leaver_share()
    if active_before and leavers > share * active_before:
        raise BrakeApplied(
            f"Safety brake: this sync of directory source {source.name} would make {leavers} "
            f"of {active_before} active users leavers ({leavers / active_before:.1%}), more "
            f"than the allowed {share:.0%} (DIRECTORY_MAX_LEAVER_SHARE)." + how
        )
    return figures


def analyze(*tables: str) -> None:
    """Refresh the planner's statistics: staging tables fill within seconds, long before
    autovacuum looks, and with "empty" statistics PostgreSQL picks nested loops that take
    minutes over 100,000 rows."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {table}")


def commit(run: SyncRun, source: IdentitySource, *, force: bool) -> dict[str, Any]:
    SyncRun.objects.filter(pk=run.pk).update(phase="comparing", heartbeat_at=timezone.now())
    analyze(SU, SG, SM, U, G, M)
    check_brake(run, source, force=force)
    SyncRun.objects.filter(pk=run.pk).update(phase="committing", heartbeat_at=timezone.now())
    now = timezone.now()
    with transaction.atomic():
        locked = IdentitySource.objects.select_for_update().get(pk=source.pk)
        if locked.running_run_id != run.pk:
            raise PermanentError(
                f"Directory source {source.name}: run #{run.pk} lost its claim on the source "
                "(it was taken over as abandoned); nothing was changed"
            )
        generation = locked.generation + 1
        baseline = locked.generation == 0
        if connection.vendor == "postgresql":
            # The joins below hash and sort 100,000s of rows: at the default 4 MB they spill
            # to disk in batches.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL work_mem TO '64MB'")
        rule = JmlRule.objects.select_related("platform").filter(source=source).first()
        recorder = EventRecorder(run, source, rule)
        insert_new_users(run, source, generation, now)
        analyze(U)
        if not baseline:
            record_joiners(recorder, generation)
            record_leavers(recorder)
            record_movers(recorder, generation)
        recorder.flush()
        if not baseline:  # a baseline's users were all just inserted as read
            update_users(run, source, now)
        sync_groups_and_memberships(run, source)
        counts = recorder.counts
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncRun.Status.COMMITTED,
            phase="done",
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            baseline=baseline,
            joiners=counts[EventKind.JOINER],
            movers=counts[EventKind.MOVER],
            leavers=counts[EventKind.LEAVER],
            message=(
                "Baseline: the first sync of this source records its users; changes after it "
                "become joiner, mover and leaver events."
                if baseline
                else ""
            ),
        )
        IdentitySource.objects.filter(pk=source.pk).update(
            generation=generation, last_synced_at=now
        )
    run.refresh_from_db()
    result = {
        "source": source.name,
        "run": run.pk,
        "baseline": baseline,
        "forced": force,
        "pages_read": run.pages_read,
        "users": run.users_read,
        "groups": run.groups_read,
        "memberships": run.memberships_read,
        "joiners": run.joiners,
        "movers": run.movers,
        "leavers": run.leavers,
        "errors": run.errors,
        "events_with_jobs": recorder.jobs,
        "problems": run.problems[:20],
    }
    log.info("directory.sync.committed", extra={"source_id": source.pk, "run_id": run.pk})
    return result


class EventRecorder:
    """Collects events, writes them in batches and enqueues one jml_automation job each
    (when the rule acts on that kind); everything inside the commit's transaction."""

    def __init__(self, run: SyncRun, source: IdentitySource, rule: JmlRule | None) -> None:
        self.run, self.source, self.rule = run, source, rule
        self.pending: list[DirectoryEvent] = []
        self.counts: dict[str, int] = {kind: 0 for kind in EventKind.values}
        self.jobs = 0

    def add(
        self, kind: str, user_id: int, email: str, username: str, changes: dict[str, Any]
    ) -> None:
        acts = needs_job(self.rule, kind)
        self.pending.append(
            DirectoryEvent(
                source_id=self.source.pk,
                run_id=self.run.pk,
                user_id=user_id,
                kind=kind,
                label=(email or username)[:320],
                changes=changes,
                planned_actions=planned_actions(self.rule, kind, email, username, changes),
                status=DirectoryEvent.Status.PENDING if acts else DirectoryEvent.Status.SKIPPED,
            )
        )
        self.counts[kind] += 1
        if len(self.pending) >= EVENT_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        events = DirectoryEvent.objects.bulk_create(self.pending)
        self.pending = []
        with_jobs = [event for event in events if event.status == DirectoryEvent.Status.PENDING]
        jobs = enqueue_many(
            (
                JobRequest(
                    JobType.JML_AUTOMATION,
                    subject=event,
                    params={"event_id": event.pk},
                    trigger_label=f"{event.get_kind_display().lower()} from {self.source.name}",
                )
                for event in with_jobs
            ),
            trigger=Trigger.EVENT,
        )
        for event, job in zip(with_jobs, jobs, strict=True):
            event.job = job
        DirectoryEvent.objects.bulk_update(with_jobs, ["job"])
        self.jobs += len(with_jobs)


def insert_new_users(run: SyncRun, source: IdentitySource, generation: int, now: Any) -> None:
    columns = ", ".join(USER_FIELDS)
    selected = ", ".join(f"s.{name}" for name in USER_FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {U} (source_id, external_id, {columns}, deleted, first_seen_at,
                             first_seen_generation, changed_at)
            SELECT %s, s.external_id, {selected}, %s, %s, %s, %s
            FROM {SU} s
            WHERE s.run_id = %s
            ON CONFLICT (source_id, external_id) DO NOTHING
            """,  # noqa: S608 - table and column names are ours
            [source.pk, False, now, generation, now, run.pk],
        )


def record_joiners(recorder: EventRecorder, generation: int) -> None:
    run, source = recorder.run, recorder.source
    new = f"""
        SELECT id, email, username FROM {U}
        WHERE source_id = %s AND first_seen_generation = %s AND NOT disabled
        ORDER BY id
    """  # noqa: S608
    for user_id, email, username in fetch(new, [source.pk, generation]):
        recorder.add(EventKind.JOINER, user_id, email, username, {"state": [None, "active"]})
    returning = f"""
        SELECT u.id, u.email, u.username, u.deleted FROM {U} u
        JOIN {SU} s ON s.run_id = %s AND s.external_id = u.external_id
        WHERE u.source_id = %s AND (u.deleted OR u.disabled) AND NOT s.disabled
          AND u.first_seen_generation < %s
        ORDER BY u.id
    """  # noqa: S608
    for user_id, email, username, deleted in fetch(returning, [run.pk, source.pk, generation]):
        before = "deleted" if deleted else "disabled"
        recorder.add(EventKind.JOINER, user_id, email, username, {"state": [before, "active"]})


def record_leavers(recorder: EventRecorder) -> None:
    sql = f"""
        SELECT u.id, u.email, u.username, s.id IS NULL {LEAVERS_FROM} ORDER BY u.id
    """
    for user_id, email, username, gone in fetch(sql, [recorder.run.pk, recorder.source.pk]):
        after = "deleted" if gone else "disabled"
        recorder.add(EventKind.LEAVER, user_id, email, username, {"state": ["active", after]})


def record_movers(recorder: EventRecorder, generation: int) -> None:
    """Merge two streams ordered by user id: changed fields, and changed group memberships."""
    run, source = recorder.run, recorder.source
    pairs = ", ".join(f"u.{name}, s.{name}" for name in MOVER_FIELDS)
    differs = " OR ".join(f"u.{name} <> s.{name}" for name in MOVER_FIELDS)
    fields_sql = f"""
        SELECT u.id, s.email, s.username, {pairs} FROM {U} u
        JOIN {SU} s ON s.run_id = %s AND s.external_id = u.external_id
        WHERE u.source_id = %s AND NOT u.deleted AND NOT u.disabled AND NOT s.disabled
          AND u.first_seen_generation < %s AND ({differs})
        ORDER BY u.id
    """  # noqa: S608
    groups_sql = f"""
        WITH p AS (
            SELECT DISTINCT su.external_id AS uxid, sg.external_id AS gxid,
                   sg.name AS gname, sg.email AS gemail
            FROM {SM} sm
            JOIN {SU} su ON su.run_id = sm.run_id AND su.ref = sm.user_ref
            JOIN {SG} sg ON sg.run_id = sm.run_id AND sg.ref = sm.group_ref
            WHERE sm.run_id = %s AND NOT su.disabled
        ), q AS (
            SELECT u.external_id AS uxid, g.external_id AS gxid,
                   g.name AS gname, g.email AS gemail
            FROM {M} m JOIN {U} u ON u.id = m.user_id JOIN {G} g ON g.id = m.group_id
            WHERE m.source_id = %s
        )
        SELECT u.id, 1, p.gxid, p.gname, p.gemail, u.email, u.username FROM p
        JOIN {U} u ON u.source_id = %s AND u.external_id = p.uxid
        WHERE NOT u.deleted AND NOT u.disabled AND u.first_seen_generation < %s
          AND NOT EXISTS (SELECT 1 FROM q WHERE q.uxid = p.uxid AND q.gxid = p.gxid)
        UNION ALL
        SELECT u.id, 0, q.gxid, q.gname, q.gemail, u.email, u.username FROM q
        JOIN {U} u ON u.source_id = %s AND u.external_id = q.uxid
        JOIN {SU} s ON s.run_id = %s AND s.external_id = q.uxid
        WHERE NOT u.deleted AND NOT u.disabled AND NOT s.disabled
          AND NOT EXISTS (SELECT 1 FROM p WHERE p.uxid = q.uxid AND p.gxid = q.gxid)
        ORDER BY 1
    """  # noqa: S608
    field_rows = fetch(fields_sql, [run.pk, source.pk, generation])
    group_rows = fetch(groups_sql, [run.pk, source.pk, source.pk, generation, source.pk, run.pk])
    for user_id, email, username, changes in merge_changes(field_rows, group_rows):
        recorder.add(EventKind.MOVER, user_id, email, username, changes)


def merge_changes(
    field_rows: Iterator[tuple[Any, ...]], group_rows: Iterator[tuple[Any, ...]]
) -> Iterator[tuple[int, str, str, dict[str, Any]]]:
    """One (user id, email, username, changes) per user found in either ordered stream."""
    field_row = next(field_rows, None)
    group_row = next(group_rows, None)
    while field_row is not None or group_row is not None:
        user_id = min(row[0] for row in (field_row, group_row) if row is not None)
        changes: dict[str, Any] = {}
        email = username = ""
        if field_row is not None and field_row[0] == user_id:
            email, username = field_row[1], field_row[2]
            values = field_row[3:]
            for index, name in enumerate(MOVER_FIELDS):
                old, new = values[2 * index], values[2 * index + 1]
                if old != new:
                    changes[name] = [old, new]
            field_row = next(field_rows, None)
        added: list[dict[str, str]] = []
        removed: list[dict[str, str]] = []
        while group_row is not None and group_row[0] == user_id:
            _, is_added, gxid, gname, gemail, email_now, username_now = group_row
            email, username = email or email_now, username or username_now
            (added if is_added else removed).append({"id": gxid, "name": gname, "email": gemail})
            group_row = next(group_rows, None)
        if added or removed:
            changes["groups"] = {"added": added, "removed": removed}
        yield user_id, email, username, changes


def update_users(run: SyncRun, source: IdentitySource, now: Any) -> None:
    assignments = ", ".join(f"{name} = s.{name}" for name in USER_FIELDS)
    differs = " OR ".join(f"{U}.{name} <> s.{name}" for name in USER_FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {U} SET {assignments}, deleted = %s, changed_at = %s
            FROM {SU} s
            WHERE s.run_id = %s AND {U}.source_id = %s AND {U}.external_id = s.external_id
              AND ({differs} OR {U}.deleted)
            """,  # noqa: S608
            [False, now, run.pk, source.pk],
        )
        cursor.execute(
            f"""
            UPDATE {U} SET deleted = %s, changed_at = %s
            WHERE source_id = %s AND NOT deleted AND NOT EXISTS (
                SELECT 1 FROM {SU} s WHERE s.run_id = %s AND s.external_id = {U}.external_id)
            """,  # noqa: S608
            [True, now, source.pk, run.pk],
        )


def sync_groups_and_memberships(run: SyncRun, source: IdentitySource) -> None:
    staged_pairs = f"""
        SELECT DISTINCT su.external_id AS uxid, sg.external_id AS gxid
        FROM {SM} sm
        JOIN {SU} su ON su.run_id = sm.run_id AND su.ref = sm.user_ref
        JOIN {SG} sg ON sg.run_id = sm.run_id AND sg.ref = sm.group_ref
        WHERE sm.run_id = %s
    """  # noqa: S608
    with connection.cursor() as cursor:
        # Memberships that ended (including those of deleted users and groups) go first, so
        # deleted groups have none left when they go.
        cursor.execute(
            f"""
            WITH p AS ({staged_pairs})
            DELETE FROM {M} WHERE id IN (
                SELECT m.id FROM {M} m
                JOIN {U} u ON u.id = m.user_id JOIN {G} g ON g.id = m.group_id
                WHERE m.source_id = %s AND NOT EXISTS (
                    SELECT 1 FROM p WHERE p.uxid = u.external_id AND p.gxid = g.external_id))
            """,  # noqa: S608
            [run.pk, source.pk],
        )
        cursor.execute(
            f"""
            DELETE FROM {G} WHERE source_id = %s AND NOT EXISTS (
                SELECT 1 FROM {SG} s WHERE s.run_id = %s AND s.external_id = {G}.external_id)
            """,  # noqa: S608
            [source.pk, run.pk],
        )
        cursor.execute(
            f"""
            UPDATE {G} SET ref = s.ref, name = s.name, email = s.email
            FROM {SG} s
            WHERE s.run_id = %s AND {G}.source_id = %s AND {G}.external_id = s.external_id
              AND ({G}.ref <> s.ref OR {G}.name <> s.name OR {G}.email <> s.email)
            """,  # noqa: S608
            [run.pk, source.pk],
        )
        cursor.execute(
            f"""
            INSERT INTO {G} (source_id, external_id, ref, name, email)
            SELECT %s, s.external_id, s.ref, s.name, s.email FROM {SG} s
            WHERE s.run_id = %s
            ON CONFLICT (source_id, external_id) DO NOTHING
            """,  # noqa: S608
            [source.pk, run.pk],
        )
        analyze(G)
        # ON CONFLICT, not NOT EXISTS on the table being filled: PostgreSQL would re-scan
        # the pages this very statement writes, once per row (quadratic). In user order, two
        # of the table's three secondary indexes fill from one end (a quarter faster at
        # 250,000 memberships).
        cursor.execute(
            f"""
            WITH p AS ({staged_pairs})
            INSERT INTO {M} (source_id, group_id, user_id)
            SELECT %s, g.id, u.id FROM p
            JOIN {U} u ON u.source_id = %s AND u.external_id = p.uxid
            JOIN {G} g ON g.source_id = %s AND g.external_id = p.gxid
            ORDER BY u.id, g.id
            ON CONFLICT (group_id, user_id) DO NOTHING
            """,  # noqa: S608
            [run.pk, source.pk, source.pk, source.pk],
        )
