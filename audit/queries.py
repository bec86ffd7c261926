"""Read side of the audit log: filter parsing, keyset pages newest first, one event."""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q, QuerySet

from audit.models import AuditEvent
from connectors.google_reports import APPLICATIONS
from identities.models import Platform
from web.inputs import (
    BoundedDateTimeField,
    InvalidInputError,
    SingleLineCharField,
    check_datetime,
    check_integer,
)
from web.pages import InvalidFilterError, QueryForm, choice_parameter, id_parameter


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
        try:
            seconds, rest = divmod(check_integer(micros, "before", minimum=-(2**62)), 1_000_000)
            moment = dt.datetime.fromtimestamp(seconds, dt.UTC).replace(microsecond=rest)
            return cls(check_datetime(moment, "before"), check_integer(event_id, "before"))
        except (InvalidInputError, ValueError, OverflowError, OSError):
            raise InvalidFilterError("before", "before must be a page cursor") from None


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


class EventFilterForm(QueryForm):
    platform = id_parameter("platform", "platform")
    actor = SingleLineCharField(required=False, max_length=320, label="actor")
    application = choice_parameter("application", APPLICATIONS, "application")
    event = SingleLineCharField(required=False, max_length=200, label="event")
    since = BoundedDateTimeField(required=False, label="since")
    until = BoundedDateTimeField(required=False, label="until")


def parse_filters(params: Mapping[str, str]) -> EventFilters:
    """Read platform (an id), actor (an email), application, event, since and until."""
    values = EventFilterForm.parse(params)
    platform = None
    if values["platform"] is not None:
        platform = Platform.objects.filter(pk=values["platform"]).first()
        if platform is None:
            raise InvalidFilterError(
                "platform", f"There is no platform with id {values['platform']}"
            )
    since, until = values["since"], values["until"]
    if since and until and since >= until:
        raise InvalidFilterError("until", "until must be later than since")
    return EventFilters(
        platform=platform,
        # Stored lower-cased (Google's addresses are case-insensitive), so matched that way.
        actor=values["actor"].lower(),
        application=values["application"],
        event_name=values["event"],
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
