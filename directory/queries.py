"""Read-only queries for the directory pages and API: sources, runs, events (keyset paged)."""

from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet

from directory.models import DirectoryEvent, EventKind, IdentitySource, SyncRun
from web.pages import InvalidFilterError, QueryForm, choice_parameter, id_parameter, parse_id_cursor

RUNS_SHOWN = 10


@dataclass(frozen=True)
class EventPage:
    events: list[DirectoryEvent]
    next_before: int | None


def list_sources() -> QuerySet[IdentitySource]:
    return IdentitySource.objects.select_related("platform", "last_run", "running_run").order_by(
        "name"
    )


def get_source(source_id: int) -> IdentitySource | None:
    return (
        IdentitySource.objects.select_related("platform", "last_run", "running_run")
        .filter(pk=source_id)
        .first()
    )


def list_runs(source: IdentitySource) -> list[SyncRun]:
    return list(SyncRun.objects.filter(source=source).defer("problems")[:RUNS_SHOWN])


def get_run(run_id: int) -> SyncRun | None:
    return SyncRun.objects.select_related("source", "job").filter(pk=run_id).first()


class EventFilterForm(QueryForm):
    source = id_parameter("source", "source")
    kind = choice_parameter("kind", EventKind.values, "event kind")


@dataclass(frozen=True)
class EventFilters:
    source: IdentitySource | None
    kind: str
    before: int | None


def parse_event_filters(params: Mapping[str, str]) -> EventFilters:
    """Read source (an id), kind and the cursor ``before`` of the directory events list."""
    values = EventFilterForm.parse(params)
    source = None
    if values["source"] is not None:
        source = get_source(values["source"])
        if source is None:
            raise InvalidFilterError("source", f"There is no source with id {values['source']}")
    return EventFilters(source, values["kind"], parse_id_cursor(params, "event"))


def parse_kind(raw: str | None) -> str:
    return raw if raw in EventKind.values else ""


def list_events(
    *, source: IdentitySource | None = None, kind: str = "", before: int | None = None
) -> EventPage:
    """Newest first, one page; ``before`` is the id to continue below (keyset paging)."""
    size = settings.DIRECTORY_EVENT_PAGE_SIZE
    events = DirectoryEvent.objects.select_related("source", "job").defer(
        "changes", "planned_actions", "dry_run_outcome", "outcome", "job__params", "job__result"
    )
    if source is not None:
        events = events.filter(source=source)
    if kind:
        events = events.filter(kind=kind)
    if before is not None:
        events = events.filter(pk__lt=before)
    rows = list(events.order_by("-id")[: size + 1])
    next_before = rows[size - 1].pk if len(rows) > size else None
    return EventPage(rows[:size], next_before)


def get_event(event_id: int) -> DirectoryEvent | None:
    return (
        DirectoryEvent.objects.select_related("source", "user__identity", "job", "run")
        .filter(pk=event_id)
        .first()
    )
