"""The audit-events API (/api/v1/audit-events/): list and detail, with the audit log page's
filters and keyset paging."""

import datetime as dt
from typing import Annotated, Any

from django.http import HttpRequest
from django.urls import reverse
from ninja import Query, Router, Schema, Status
from pydantic import AfterValidator, Field, WithJsonSchema

from audit import queries, services
from audit.models import AuditEvent
from audit.views import INGEST_NOW
from connectors.google_reports import APPLICATIONS
from identities.queries import get_google_workspace_platform_or_404
from jobs.api import JobQueued, queued
from web.api.auth import allowed
from web.api.paging import as_params, next_url
from web.api.problems import Problem, not_found
from web.api.schemas import Out
from web.api.types import Id, Line, Moment
from web.inputs import EARLIEST, LATEST, InvalidInputError

VIEW_PERMISSION = "audit.view_auditevent"


def event_data(request: HttpRequest, event: AuditEvent, *, parameters: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": event.pk,
        "url": request.build_absolute_uri(reverse("audit:api-detail", args=[event.pk])),
        "time": event.occurred_at,
        "platform": {"id": event.platform_id, "name": event.platform.name},
        "application": event.application,
        "event_name": event.event_name,
        "event_type": event.event_type,
        "actor": {
            "email": event.actor_email or None,
            "profile_id": event.actor_profile_id or None,
            "caller_type": event.caller_type or None,
        },
        "ip_address": event.ip_address,
        "google_id": {
            "time": event.occurred_at,
            "unique_qualifier": event.unique_qualifier,
            "event_index": event.event_index,
        },
        "malformed": event.malformed,
        "ingested_at": event.ingested_at,
    }
    if parameters:
        data["parameters"] = event.parameters
    return data


router = Router(tags=["audit"])
ERRORS: dict[int, Any] = {400: Problem, 401: Problem, 403: Problem}
CURSOR_PATTERN = "^-?[0-9]{1,19}_[0-9]{1,19}$"


def _cursor(raw: str) -> str:
    """A page cursor (microseconds_id) whose time lies within web.inputs' range."""
    micros, _, event_id = raw.partition("_")
    try:
        seconds = int(micros) // 1_000_000
        moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
        if not (EARLIEST <= moment <= LATEST and int(event_id) > 0):
            raise ValueError
    except (ValueError, OverflowError, OSError):
        raise InvalidInputError("before", "before must be a page cursor from a next URL") from None
    return raw


AuditCursor = Annotated[
    Line,
    AfterValidator(_cursor),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": CURSOR_PATTERN,
            "description": "Keyset cursor (time_id of the last event shown); `next` carries it",
        }
    ),
]
Application = Annotated[Line, WithJsonSchema({"type": "string", "enum": list(APPLICATIONS)})]


class AuditPlatform(Out):
    id: int
    name: str


class AuditActor(Out):
    email: str | None
    profile_id: str | None
    caller_type: str | None


class GoogleId(Out):
    time: dt.datetime
    unique_qualifier: str | int
    event_index: int


class AuditEventOut(Out):
    id: int
    url: str
    time: dt.datetime
    platform: AuditPlatform
    application: str
    event_name: str
    event_type: str
    actor: AuditActor
    ip_address: str | None
    google_id: GoogleId
    malformed: bool
    ingested_at: dt.datetime
    parameters: Any


class ActivitySibling(Out):
    id: int
    event_index: int
    event_name: str


class AuditEventDetail(AuditEventOut):
    problems: Any
    activity_events: list[ActivitySibling]


class AuditEventPage(Out):
    results: list[AuditEventOut]
    next: str | None


class AuditEventQuery(Schema):
    platform: Id | None = Field(None, description="A platform id")
    actor: Line | None = Field(None, description="The actor's email address")
    application: Application | None = None
    event: Line | None = Field(None, description="An event name")
    since: Moment | None = None
    until: Moment | None = None
    before: AuditCursor | None = None


@router.get(
    "audit-events/", response={200: AuditEventPage, **ERRORS}, auth=allowed(VIEW_PERMISSION)
)
def list_events(request: HttpRequest, query: Query[AuditEventQuery]) -> dict[str, Any]:
    """Google Workspace audit events newest first, filtered like the audit log page."""
    params = as_params(query)
    filters = queries.parse_filters(params)
    page = queries.list_events(filters, before=queries.parse_before(params), with_parameters=True)
    return {
        "results": [event_data(request, event, parameters=True) for event in page.events],
        "next": next_url(request, "audit:api-list", filters.as_query(), page.next_before),
    }


@router.get(
    "audit-events/{int:event_id}/",
    response={200: AuditEventDetail, 404: Problem, **ERRORS},
    auth=allowed(VIEW_PERMISSION),
)
def get_event(request: HttpRequest, event_id: Id) -> dict[str, Any]:
    """One audit event, its problems and the other events of the same activity."""
    event = queries.get_event(event_id)
    if event is None:
        raise not_found("audit event", event_id)
    data = event_data(request, event, parameters=True)
    data["problems"] = event.problems
    data["activity_events"] = [
        {"id": sibling.pk, "event_index": sibling.event_index, "event_name": sibling.event_name}
        for sibling in queries.list_activity_events(event)
    ]
    return data


@router.post(
    "audit/platforms/{int:platform_id}/ingest/",
    response={202: JobQueued, 404: Problem, **ERRORS},
    auth=allowed(VIEW_PERMISSION, INGEST_NOW),
)
def ingest_now(request: HttpRequest, platform_id: Id) -> Status[dict[str, Any]]:
    """Ingest now: queue an audit-log ingestion of a Google Workspace platform (or answer
    the one already on its way)."""
    platform = get_google_workspace_platform_or_404(platform_id)
    job, created = services.ingest_now(platform, actor=request.user)
    return Status(202, queued(request, job, created))
