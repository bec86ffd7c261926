"""Audit ingestion's domain operations: per-platform settings, scheduling runs, storing a page
of activities, moving a checkpoint forward."""

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from psycopg.types.json import Jsonb

from audit.models import AuditCheckpoint, AuditEvent, AuditLateCheck, AuditSettings
from connectors.google_reports import APPLICATIONS, Activity
from identities.models import Platform
from jobs.models import ACTIVE_STATUSES, Job, JobType, Trigger
from jobs.services import enqueue
from trail.services import record

JOB_TYPE = JobType.AUDIT_INGESTION
_LIMITS = {"event_name": 200, "event_type": 200, "actor_email": 320, "actor_profile_id": 64}


# A day: a longer overlap re-reads more than the daily late-arrival check would.
MAX_OVERLAP_MINUTES = 24 * 60
LATE_CHECK_PARAM = "late_check_day"


class InvalidSettingsError(ValueError):
    """Audit settings a platform cannot have (an unknown application, a zero interval)."""


def connected_platforms() -> list[Platform]:
    """Google Workspace platforms with an admin and a stored key: the ones ingestion can read."""
    return list(
        Platform.objects.filter(kind=Platform.Kind.GOOGLE_WORKSPACE)
        .exclude(service_account_key_ref="")
        .exclude(admin_email="")
        .order_by("name")
    )


def get_settings(platform: Platform) -> AuditSettings:
    """The platform's audit settings, created with the defaults the first time they are asked."""
    audit_settings, _ = AuditSettings.objects.get_or_create(platform=platform)
    return audit_settings


def read_settings(platform: Platform) -> AuditSettings:
    """The platform's audit settings for display: the defaults, unsaved, if it has none yet
    (a page view writes nothing)."""
    return AuditSettings.objects.filter(platform=platform).first() or AuditSettings(
        platform=platform
    )


def settings_values(audit_settings: AuditSettings) -> tuple[bool, list[str], int, int]:
    return (
        audit_settings.enabled,
        list(audit_settings.applications),
        audit_settings.interval_minutes,
        audit_settings.overlap_minutes,
    )


def update_settings(
    platform: Platform,
    *,
    enabled: bool,
    applications: list[str],
    interval_minutes: int,
    actor: Any,
    overlap_minutes: int | None = None,
) -> AuditSettings:
    unknown = [app for app in applications if app not in APPLICATIONS]
    if unknown or not applications:
        raise InvalidSettingsError(
            f"Unknown Reports applications {unknown}" if unknown else "Choose an application"
        )
    if interval_minutes < 1:
        raise InvalidSettingsError("The interval is at least one minute")
    if overlap_minutes is not None and not 0 <= overlap_minutes <= MAX_OVERLAP_MINUTES:
        raise InvalidSettingsError(f"The overlap is 0 to {MAX_OVERLAP_MINUTES} minutes")
    with transaction.atomic():
        audit_settings = get_settings(platform)
        before = settings_values(audit_settings)
        audit_settings.enabled = enabled
        # Kept in the order Google lists them, whatever order the form sent.
        audit_settings.applications = [app for app in APPLICATIONS if app in applications]
        audit_settings.interval_minutes = interval_minutes
        if overlap_minutes is not None:
            audit_settings.overlap_minutes = overlap_minutes
        audit_settings.save()
        if settings_values(audit_settings) != before:
            record(
                "audit.settings_changed",
                actor=actor,
                target=platform,
                enabled=enabled,
                applications=audit_settings.applications,
                interval_minutes=interval_minutes,
                overlap_minutes=audit_settings.overlap_minutes,
            )
    return audit_settings


def list_ingestion_jobs(platform: Platform, *, limit: int = 10) -> list[Job]:
    return list(
        Job.objects.filter(
            job_type=JOB_TYPE,
            subject_type=ContentType.objects.get_for_model(Platform),
            subject_id=str(platform.pk),
        )
        .defer("params", "result", "error_traceback")
        .order_by("-id")[:limit]
    )


def active_ingestion(platform: Platform) -> Job | None:
    return (
        Job.objects.filter(
            job_type=JOB_TYPE,
            subject_type=ContentType.objects.get_for_model(Platform),
            subject_id=str(platform.pk),
            status__in=ACTIVE_STATUSES,
        )
        .order_by("-id")
        .first()
    )


def ingest_now(platform: Platform, *, actor: Any) -> tuple[Job, bool]:
    """Start an ingestion run now, unless one is on its way: (the job, whether it is new)."""
    with transaction.atomic():
        audit_settings = AuditSettings.objects.select_for_update().get(pk=get_settings(platform).pk)
        running = active_ingestion(platform)
        if running is not None:
            return running, False
        audit_settings.last_enqueued_at = timezone.now()
        audit_settings.save(update_fields=["last_enqueued_at", "updated_at"])
        job = enqueue(JOB_TYPE, subject=platform, triggered_by=actor, trigger=Trigger.USER)
        record("audit.ingestion_started", actor=actor, target=platform, job=job.pk)
        return job, True


def enqueue_due_ingestions(now: dt.datetime | None = None) -> int:
    """The beat's part: a run for every connected, enabled platform whose interval has passed
    (or whose last run stopped early), unless one is on its way. Returns how many were sent."""
    now = now or timezone.now()
    sent = 0
    for platform in connected_platforms():
        audit_settings = get_settings(platform)
        last = audit_settings.last_enqueued_at
        interval = dt.timedelta(minutes=audit_settings.interval_minutes)
        due = last is None or audit_settings.catching_up or last + interval <= now
        if not audit_settings.enabled or not due or active_ingestion(platform) is not None:
            continue
        with transaction.atomic():
            # Claimed by a conditional update: two beats, or a beat and a click, send one run.
            claimed = AuditSettings.objects.filter(
                pk=audit_settings.pk, last_enqueued_at=audit_settings.last_enqueued_at
            ).update(last_enqueued_at=now, catching_up=False)
            if claimed:
                enqueue(JOB_TYPE, subject=platform, trigger=Trigger.SCHEDULE, trigger_label="beat")
                sent += 1
    return sent


def enqueue_late_checks(now: dt.datetime | None = None) -> int:
    """The beat's daily part: an audit_ingestion run per connected, enabled platform that
    re-reads the previous day (UTC) to count what the overlap missed."""
    day = ((now or timezone.now()) - dt.timedelta(days=1)).date()
    sent = 0
    for platform in connected_platforms():
        audit_settings = get_settings(platform)
        done = AuditLateCheck.objects.filter(platform=platform, day=day).count()
        if not audit_settings.enabled or done >= len(audit_settings.applications):
            continue
        enqueue(
            JOB_TYPE,
            subject=platform,
            params={LATE_CHECK_PARAM: day.isoformat()},
            trigger=Trigger.SCHEDULE,
            trigger_label="daily late-arrival check",
        )
        sent += 1
    return sent


def record_late_check(
    platform: Platform,
    application: str,
    day: dt.date,
    *,
    read_to: dt.datetime,
    read: int,
    missed: int,
    overlap_minutes: int,
) -> AuditLateCheck:
    """The day's first check of this report is the one kept: a repeat finds nothing new."""
    check, _ = AuditLateCheck.objects.get_or_create(
        platform=platform,
        application=application,
        day=day,
        defaults={
            "read_to": read_to,
            "read": read,
            "missed": missed,
            "overlap_minutes": overlap_minutes,
        },
    )
    return check


def list_late_checks(platform: Platform, *, days: int = 14) -> list[AuditLateCheck]:
    return list(AuditLateCheck.objects.filter(platform=platform)[: days * len(APPLICATIONS)])


def set_catching_up(platform: Platform, behind: bool) -> None:
    AuditSettings.objects.filter(platform=platform).update(catching_up=behind)


def get_checkpoint(platform: Platform, application: str) -> AuditCheckpoint:
    checkpoint, _ = AuditCheckpoint.objects.get_or_create(
        platform=platform, application=application
    )
    return checkpoint


def list_checkpoints(platform: Platform) -> list[AuditCheckpoint]:
    return list(AuditCheckpoint.objects.filter(platform=platform).order_by("application"))


def advance_checkpoint(platform: Platform, application: str, to: dt.datetime) -> bool:
    """Move the checkpoint to ``to``, never back (two runs may overlap). False if it was
    already there or further."""
    moved = AuditCheckpoint.objects.filter(
        Q(position__isnull=True) | Q(position__lt=to), platform=platform, application=application
    ).update(position=to, updated_at=timezone.now())
    return bool(moved)


@dataclass
class Stored:
    """What storing one page did, counted in activities (read, malformed, unidentifiable)
    and in event rows (stored, duplicates)."""

    read: int = 0
    stored: int = 0
    duplicates: int = 0
    malformed: int = 0
    unidentifiable: int = 0
    samples: list[str] = field(default_factory=list)


def _cut(value: str, name: str, problems: list[str]) -> str:
    limit = _LIMITS[name]
    if len(value) <= limit:
        return value
    problems.append(f"{name} longer than {limit} characters, cut")
    return value[:limit]


# The columns a stored event fills, in the order event_values() gives them.
COLUMNS = (
    "platform_id",
    "application",
    "occurred_at",
    "unique_qualifier",
    "event_index",
    "event_name",
    "event_type",
    "actor_email",
    "actor_profile_id",
    "caller_type",
    "ip_address",
    "parameters",
    "malformed",
    "raw",
    "ingested_at",
)
Row = tuple[Any, ...]


def event_values(platform_id: int, activity: Activity, ingested_at: dt.datetime) -> list[Row]:
    """The rows of one identifiable activity, one per event, as COLUMNS-ordered tuples (no
    model instances: a million of them cost more than the database does)."""
    assert activity.time is not None
    rows = []
    for index, event in enumerate(activity.events):
        problems = list(activity.problems)
        name = _cut(event.name, "event_name", problems)
        event_type = _cut(event.type, "event_type", problems)
        actor_email = _cut(activity.actor_email, "actor_email", problems)
        profile_id = _cut(activity.actor_profile_id, "actor_profile_id", problems)
        raw = {"problems": problems, "activity": activity.raw} if problems else None
        rows.append(
            (
                platform_id,
                activity.application,
                activity.time,
                activity.unique_qualifier,
                index,
                name,
                event_type,
                actor_email,
                profile_id,
                activity.caller_type[:32],
                activity.ip_address or None,
                event.parameters,
                bool(problems),
                raw,
                ingested_at,
            )
        )
    return rows


def store_activities(platform: Platform, application: str, activities: list[Activity]) -> Stored:
    """Store a page of activities; ones already stored are dropped by Google's id. Activities
    without a time cannot be told apart or placed, so they are counted and not stored."""
    result = Stored(read=len(activities))
    rows: list[Row] = []
    now = timezone.now()
    for activity in activities:
        if not activity.identifiable:
            result.unidentifiable += 1
            if len(result.samples) < 3:
                result.samples.append("; ".join(activity.problems))
            continue
        result.malformed += bool(activity.problems)
        rows += event_values(platform.pk, activity, now)
    if rows:
        insert = _copy_insert if connection.vendor == "postgresql" else _bulk_insert
        result.stored = insert(platform, application, rows)
        result.duplicates = len(rows) - result.stored
    return result


_COLUMN_LIST = ", ".join(COLUMNS)
_JSON_COLUMNS = (COLUMNS.index("parameters"), COLUMNS.index("raw"))
# Built from COLUMNS, our own names: nothing from outside reaches these statements.
_STAGE_SQL = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS audit_event_incoming ON COMMIT DELETE ROWS "  # noqa: S608
    f"AS SELECT {_COLUMN_LIST} FROM audit_auditevent WITH NO DATA"
)
_COPY_SQL = f"COPY audit_event_incoming ({_COLUMN_LIST}) FROM STDIN"
_INSERT_SQL = (
    f"INSERT INTO audit_auditevent ({_COLUMN_LIST}) "  # noqa: S608
    f"SELECT {_COLUMN_LIST} FROM audit_event_incoming ON CONFLICT DO NOTHING"
)


def _copy_insert(platform: Platform, application: str, rows: list[Row]) -> int:
    """PostgreSQL: COPY the page into a temporary table, then one INSERT … ON CONFLICT DO
    NOTHING whose row count is exactly the new events. About 4 times faster than
    bulk_create, which builds every value in Python first."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_STAGE_SQL)
        with cursor.cursor.copy(_COPY_SQL) as copy:
            for row in rows:
                values = list(row)
                for index in _JSON_COLUMNS:
                    if values[index] is not None:
                        values[index] = Jsonb(values[index])
                copy.write_row(values)
        cursor.execute(_INSERT_SQL)
        return int(cursor.rowcount)


def _bulk_insert(platform: Platform, application: str, rows: list[Row]) -> int:
    """Other databases (SQLite for `make run`): one indexed range read tells which rows are
    there already, as ignore_conflicts does not say what it skipped."""
    events = [AuditEvent(**dict(zip(COLUMNS, row, strict=True))) for row in rows]
    times = [event.occurred_at for event in events]
    existing = set(
        AuditEvent.objects.filter(
            platform=platform,
            application=application,
            occurred_at__gte=min(times),
            occurred_at__lte=max(times),
        ).values_list("occurred_at", "unique_qualifier", "event_index")
    )
    new = []
    for event in events:
        key = (event.occurred_at, event.unique_qualifier, event.event_index)
        if key not in existing:
            existing.add(key)  # a record repeated within the page is stored once too
            new.append(event)
    # ignore_conflicts still guards a run overlapping another one between read and insert.
    AuditEvent.objects.bulk_create(new, ignore_conflicts=True, batch_size=500)
    return len(new)
