"""Read side of the audit log: filter parsing, keyset pages newest first, one event."""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.models import AuditEvent
from connectors.google_reports import APPLICATIONS
from identities.models import Platform
from web.pages import InvalidFilterError


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the last event's time and id (events share times, ids break ties)."""

    occurred_at: dt.datetime
    id: int

    def __str__(self) -> str:
        micros = int(self.occurred_at.timestamp()) * 1_000_000 + self.occurred_at.microsecond
        return f"{micros}_{self.id}"

    @classmethod
    def parse(cls, raw: str) -> "Cursor":
        micros, _, event_id = raw.partition("_")
        if not (micros.lstrip("-").isdigit() and event_id.isdigit()):
            raise InvalidFilterError("before", f"before must be a page cursor, got {raw!r}")
        seconds, rest = divmod(int(micros), 1_000_000)
        moment = dt.datetime.fromtimestamp(seconds, dt.UTC).replace(microsecond=rest)
        return cls(moment, int(event_id))


@dataclass(frozen=True)
class EventFilters:
    """The filters of the audit log; empty (or None) means "any". Times are UTC."""

    platform: Platform | None = None
    actor: str = ""
    application: str = ""
    event_name: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def as_query(self) -> dict[str, str]:
        query = {
            "platform": str(self.platform.pk) if self.platform else "",
            "actor": self.actor,
            "application": self.application,
            "event": self.event_name,
            "since": _format(self.since),
            "until": _format(self.until),
        }
        return {key: value for key, value in query.items() if value}

    @property
    def active(self) -> bool:
        return bool(self.as_query())


@dataclass(frozen=True)
class EventPage:
    events: list[AuditEvent]
    before: Cursor | None
    next_before: Cursor | None


def _format(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") if moment else ""


def page_size() -> int:
    return int(settings.AUDIT_PAGE_SIZE)


def _parse_time(params: Mapping[str, str], name: str) -> dt.datetime | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        moment = parse_datetime(raw)
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidFilterError(
            name, f"{name} must be a date and time like 2025-01-31T09:30 (UTC), got {raw!r}"
        )
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=dt.UTC)


def parse_filters(params: Mapping[str, str]) -> EventFilters:
    """Read platform (an id), actor (an email), application, event, since and until."""
    raw_platform = params.get("platform", "").strip()
    platform = None
    if raw_platform:
        if not raw_platform.isdigit():
            raise InvalidFilterError(
                "platform", f"platform must be a platform id, got {raw_platform!r}"
            )
        platform = Platform.objects.filter(pk=int(raw_platform)).first()
        if platform is None:
            raise InvalidFilterError("platform", f"There is no platform with id {raw_platform}")
    application = params.get("application", "").strip()
    if application and application not in APPLICATIONS:
        raise InvalidFilterError(
            "application",
            f"Unknown application {application!r}; expected one of: {', '.join(APPLICATIONS)}",
        )
    since, until = _parse_time(params, "since"), _parse_time(params, "until")
    if since and until and since >= until:
        raise InvalidFilterError("until", "until must be later than since")
    return EventFilters(
        platform=platform,
        # Stored lower-cased (Google's addresses are case-insensitive), so matched that way.
        actor=params.get("actor", "").strip().lower(),
        application=application,
        event_name=params.get("event", "").strip(),
        since=since,
        until=until,
    )


def parse_before(params: Mapping[str, str]) -> Cursor | None:
    raw = params.get("before", "").strip()
    return Cursor.parse(raw) if raw else None


def filtered_events(filters: EventFilters) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    if filters.platform is not None:
        events = events.filter(platform=filters.platform)
    if filters.actor:
        events = events.filter(actor_email=filters.actor)
    if filters.application:
        events = events.filter(application=filters.application)
    if filters.event_name:
        events = events.filter(event_name=filters.event_name)
    if filters.since:
        events = events.filter(occurred_at__gte=filters.since)
    if filters.until:
        events = events.filter(occurred_at__lt=filters.until)
    return events


def list_events(
    filters: EventFilters,
    *,
    before: Cursor | None = None,
    size: int | None = None,
    with_parameters: bool = False,
) -> EventPage:
    """The page of events older than ``before``, newest first.

    Keyset paging on (occurred_at, id): each filter has an index ending in those two columns,
    so page 1 and page 10,000 cost the same and nothing is counted.
    """
    size = size or page_size()
    events = filtered_events(filters).select_related("platform").order_by("-occurred_at", "-id")
    events = events.defer("raw") if with_parameters else events.defer("raw", "parameters")
    if before is not None:
        # The first condition alone is what the index can seek to; the second breaks ties.
        events = events.filter(
            Q(occurred_at__lt=before.occurred_at)
            | Q(occurred_at=before.occurred_at, id__lt=before.id),
            occurred_at__lte=before.occurred_at,
        )
    rows = list(events[: size + 1])
    last = rows[size - 1] if len(rows) > size else None
    return EventPage(
        events=rows[:size],
        before=before,
        next_before=Cursor(last.occurred_at, last.pk) if last else None,
    )


def get_event(event_id: int) -> AuditEvent | None:
    return AuditEvent.objects.select_related("platform").filter(pk=event_id).first()


def list_activity_events(event: AuditEvent) -> list[AuditEvent]:
    """Every event of the activity this one belongs to, in Google's order."""
    return list(
        AuditEvent.objects.filter(
            platform_id=event.platform_id,
            application=event.application,
            occurred_at=event.occurred_at,
            unique_qualifier=event.unique_qualifier,
        )
        .defer("raw")
        .order_by("event_index")
    )


def list_platforms() -> list[Platform]:
    return list(Platform.objects.filter(kind=Platform.Kind.GOOGLE_WORKSPACE).order_by("name"))
