"""The audit-trail JSON API (/api/v1/audit-trail/): the trail page's filters and keyset
paging, over session or bearer-token auth."""

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from jobs.api import endpoint, error
from trail import queries, serializers
from trail.models import TrailEntry
from web.pages import InvalidFilterError

VIEW_PERMISSION = "trail.view_trailentry"


def entry_data(request: HttpRequest, entry: TrailEntry) -> dict[str, Any]:
    data = serializers.entry_data(entry)
    del data["detail_text"], data["actor_label"]
    if data["target"] and data["target"]["url"]:
        data["target"]["url"] = request.build_absolute_uri(data["target"]["url"])
    return data


@endpoint("GET", VIEW_PERMISSION)
def entry_list(request: HttpRequest) -> HttpResponse:
    try:
        filters = queries.parse_filters(request.GET)
        before = queries.parse_before(request.GET)
    except InvalidFilterError as exc:
        return error(400, exc.message, parameter=exc.parameter)
    page = queries.list_entries(filters, before=before)
    next_url = None
    if page.next_before:
        query = urlencode({**filters.as_query(), "before": str(page.next_before)})
        next_url = request.build_absolute_uri(f"{reverse('trail:api-list')}?{query}")
    return JsonResponse(
        {"results": [entry_data(request, entry) for entry in page.entries], "next": next_url}
    )
