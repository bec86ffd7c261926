"""The audit-events JSON API (/api/v1/audit-events/): list and detail, over session or
bearer-token auth, with the audit log page's filters and keyset paging."""

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from audit import queries
from audit.models import AuditEvent
from jobs.api import endpoint, error
from web.pages import InvalidFilterError

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


@endpoint("GET", VIEW_PERMISSION)
def event_list(request: HttpRequest) -> HttpResponse:
    try:
        filters = queries.parse_filters(request.GET)
        before = queries.parse_before(request.GET)
    except InvalidFilterError as exc:
        return error(400, exc.message, parameter=exc.parameter)
    page = queries.list_events(filters, before=before, with_parameters=True)
    next_url = None
    if page.next_before:
        query = urlencode({**filters.as_query(), "before": str(page.next_before)})
        next_url = request.build_absolute_uri(f"{reverse('audit:api-list')}?{query}")
    return JsonResponse(
        {
            "results": [event_data(request, event, parameters=True) for event in page.events],
            "next": next_url,
        }
    )


@endpoint("GET", VIEW_PERMISSION)
def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    event = queries.get_event(event_id)
    if event is None:
        return error(404, f"no audit event with id {event_id}")
    data = event_data(request, event, parameters=True)
    data["problems"] = event.problems
    data["activity_events"] = [
        {"id": sibling.pk, "event_index": sibling.event_index, "event_name": sibling.event_name}
        for sibling in queries.list_activity_events(event)
    ]
    return JsonResponse(data)
