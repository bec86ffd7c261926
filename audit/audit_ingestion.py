"""audit_ingestion: read a platform's activity reports from its checkpoints (minus the
platform's overlap window for late activities) up to now, window by window, storing each page
as it comes; or, once a day, re-read the previous day to count what that overlap missed."""

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

from audit import services
from connectors.google_reports import GoogleReportsClient
from identities.handlers.common import platform_pacer, read_secret
from identities.models import Platform
from jobs.errors import PermanentError
from jobs.models import Job
from jobs.registry import register


def load_platform(job: Job) -> Platform:
    platform = Platform.objects.filter(pk=job.subject_id or 0).first()
    if platform is None:
        raise PermanentError(f"Job {job.pk} names platform {job.subject_id!r}, which is gone")
    return platform


def reports_client(platform: Platform) -> GoogleReportsClient:
    if not platform.is_google_workspace:
        raise PermanentError(f"Platform {platform.name} is not a Google Workspace platform")
    secret = read_secret(
        platform.service_account_key_ref, f"The service-account key of platform {platform.name}"
    )
    return GoogleReportsClient(
        json.loads(secret["json"]),
        platform.admin_email,
        api_endpoint=platform.api_endpoint or None,
        label=f"platform {platform.name}",
        # The platform's one bucket: Reports calls count against the same Admin SDK project.
        before_call=platform_pacer(platform),
    )


@dataclass
class Progress:
    """One application's run: the span read, what was stored, where the checkpoint stands."""

    application: str
    read_from: str
    read_to: str = ""
    windows: int = 0
    pages: int = 0
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    malformed: int = 0
    unidentifiable: int = 0
    checkpoint: str | None = None
    caught_up: bool = False
    stuck: str = field(default="", repr=False)


def ingest_application(
    client: GoogleReportsClient,
    platform: Platform,
    application: str,
    *,
    now: dt.datetime,
    deadline: float,
    overlap: dt.timedelta,
) -> Progress:
    """Read one application's report in windows, oldest first.

    Google answers each window newest first, so the checkpoint moves to a window's end only
    once all of its pages are stored: an error halfway leaves it where it was, and the retry
    reads that window again (what was stored is dropped as a duplicate). A window holding an
    activity without a time keeps the checkpoint before it too, and ends this application's
    run.
    """
    checkpoint = services.get_checkpoint(platform, application)
    lookback = dt.timedelta(hours=settings.AUDIT_INITIAL_LOOKBACK_HOURS)
    window = dt.timedelta(minutes=settings.AUDIT_WINDOW_MINUTES)
    start = (checkpoint.position or now - lookback) - overlap
    progress = Progress(application, read_from=start.isoformat())
    if checkpoint.position:
        progress.checkpoint = checkpoint.position.isoformat()
    # Every application gets at least one window per run, however the others fared.
    while start < now and (progress.windows == 0 or time.monotonic() < deadline):
        end = min(start + window, now)
        unidentifiable = 0
        for page in client.list_activities(application, start=start, end=end):
            stored = services.store_activities(platform, application, page)
            progress.pages += 1
            progress.read += stored.read
            progress.stored += stored.stored
            progress.duplicates += stored.duplicates
            progress.malformed += stored.malformed
            unidentifiable += stored.unidentifiable
            if stored.samples and not progress.stuck:
                progress.stuck = stored.samples[0]
        progress.windows += 1
        progress.read_to = end.isoformat()
        if unidentifiable:
            progress.unidentifiable += unidentifiable
            progress.stuck = (
                f"{unidentifiable} activities between {start.isoformat()} and "
                f"{end.isoformat()} have no usable time ({progress.stuck}); the checkpoint "
                "stays before them"
            )
            return progress
        services.advance_checkpoint(platform, application, end)
        progress.checkpoint = end.isoformat()
        start = end
    progress.caught_up = start >= now
    return progress


def late_check(
    client: GoogleReportsClient,
    platform: Platform,
    application: str,
    day: dt.date,
    overlap: dt.timedelta,
) -> dict[str, Any]:
    """Read ``day`` of one report again, up to where the runs' overlap has stopped re-reading
    (the checkpoint minus the overlap): every event stored now was published later than the
    overlap, and would have been missed. The count is kept per day (AuditLateCheck)."""
    checkpoint = services.get_checkpoint(platform, application)
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    if checkpoint.position is None:
        return {"skipped": "not read yet"}
    read_to = min(start + dt.timedelta(days=1), checkpoint.position - overlap)
    if read_to <= start:
        return {"skipped": "the runs have not read past this day yet"}
    read = missed = 0
    for page in client.list_activities(application, start=start, end=read_to):
        stored = services.store_activities(platform, application, page)
        read += stored.read
        missed += stored.stored
    check = services.record_late_check(
        platform,
        application,
        day,
        read_to=read_to,
        read=read,
        missed=missed,
        overlap_minutes=int(overlap.total_seconds() // 60),
    )
    return {"read": check.read, "missed": check.missed, "read_to": check.read_to.isoformat()}


def run_late_check(job: Job, platform: Platform, raw_day: object) -> dict[str, Any]:
    try:
        day = dt.date.fromisoformat(str(raw_day))
    except ValueError:
        raise PermanentError(f"Job {job.pk}: {raw_day!r} is not a day (YYYY-MM-DD)") from None
    audit_settings = services.get_settings(platform)
    client = reports_client(platform)
    overlap = dt.timedelta(minutes=audit_settings.overlap_minutes)
    return {
        "platform": platform.name,
        "late_check_day": day.isoformat(),
        "applications": {
            application: late_check(client, platform, application, day, overlap)
            for application in audit_settings.applications
        },
    }


@register("audit_ingestion")
def run(job: Job) -> dict[str, Any]:
    platform = load_platform(job)
    params = job.params if isinstance(job.params, dict) else {}
    if services.LATE_CHECK_PARAM in params:
        return run_late_check(job, platform, params[services.LATE_CHECK_PARAM])
    audit_settings = services.get_settings(platform)
    client = reports_client(platform)
    deadline = time.monotonic() + settings.AUDIT_RUN_BUDGET_SECONDS
    now = timezone.now()
    overlap = dt.timedelta(minutes=audit_settings.overlap_minutes)
    results = [
        ingest_application(
            client, platform, application, now=now, deadline=deadline, overlap=overlap
        )
        for application in audit_settings.applications
    ]
    behind = any(not progress.caught_up and not progress.stuck for progress in results)
    services.set_catching_up(platform, behind)
    stuck = [progress for progress in results if progress.stuck and progress.unidentifiable]
    if stuck:
        details = "; ".join(f"{progress.application}: {progress.stuck}" for progress in stuck)
        raise PermanentError(
            f"Google Workspace sent activities AccessHive cannot place for platform "
            f"{platform.name} ({details}). The other applications were read. The next run "
            "tries again; to stop this error until Google sends them whole, turn the "
            "application off in the platform's audit settings."
        )
    return {
        "platform": platform.name,
        "until": now.isoformat(),
        "caught_up": not behind,
        "applications": {
            progress.application: {
                key: value
                for key, value in asdict(progress).items()
                if key not in ("application", "stuck")
            }
            for progress in results
        },
    }
