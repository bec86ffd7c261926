"""The audit-trail API (/api/v1/audit-trail/): the trail page's filters and keyset paging."""

import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from trail import queries, serializers
from trail.actions import ACTIONS
from trail.models import Source, TrailEntry
from web.api.auth import allowed
from web.api.paging import BEFORE_DESCRIPTION, as_params, next_url
from web.api.problems import Problem
from web.api.schemas import Out
from web.api.types import Day, Id, Line

VIEW_PERMISSION = "trail.view_trailentry"

router = Router(tags=["audit trail"])
ERRORS: dict[int, Any] = {400: Problem, 401: Problem, 403: Problem}


class TrailActor(Out):
    id: int | None
    username: str


class TrailTarget(Out):
    type: str | None
    id: str | None
    label: str
    url: str | None


class TrailEntryOut(Out):
    id: int
    time: dt.datetime
    actor: TrailActor | None
    action: str
    action_label: str
    target: TrailTarget | None
    detail: dict[str, Any]
    source: Source
    source_label: str
    ip: str | None


class TrailEntryPage(Out):
    results: list[TrailEntryOut]
    next: str | None


class TrailQuery(Schema):
    actor: Line | None = Field(None, description="A username")
    action: Line | None = Field(None, json_schema_extra={"enum": list(ACTIONS)})
    target: Line | None = Field(
        None, description="A kind of thing (identities.identity) or one thing (…:12)"
    )
    source: Source | None = None
    ip: Line | None = Field(None, description="An IPv4 or IPv6 address")
    since: Day | None = None
    until: Day | None = None
    before: Id | None = Field(None, description=BEFORE_DESCRIPTION)


def entry_data(request: HttpRequest, entry: TrailEntry) -> dict[str, Any]:
    data = serializers.entry_data(entry)
    del data["detail_text"], data["actor_label"]
    if data["target"] and data["target"]["url"]:
        data["target"]["url"] = request.build_absolute_uri(data["target"]["url"])
    return data


@router.get("audit-trail/", response={200: TrailEntryPage, **ERRORS}, auth=allowed(VIEW_PERMISSION))
def list_entries(request: HttpRequest, query: Query[TrailQuery]) -> dict[str, Any]:
    """What people and AccessHive did, newest first, filtered like the trail page."""
    filters = queries.parse_filters(as_params(query, "before"))
    page = queries.list_entries(filters, before=query.before)
    return {
        "results": [entry_data(request, entry) for entry in page.entries],
        "next": next_url(request, "trail:api-list", filters.as_query(), page.next_before),
    }
