"""The audit trail page (Settings > Audit trail): parse, check permissions, query, render."""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_safe

from trail import queries, serializers
from trail.actions import action_choices
from trail.models import Source
from web import pages
from web.pages import InvalidFilterError, require_permissions, wants_fragment

VIEW_PERMISSION = "trail.view_trailentry"


def list_url(filters: queries.TrailFilters, *, before: int | None = None) -> str:
    return pages.list_url("trail:list", filters.as_query(), before=before)


@require_safe
@login_required
def entry_list(request: HttpRequest) -> HttpResponse:
    require_permissions(request, VIEW_PERMISSION)
    context: dict[str, Any] = {
        "nav": "trail",
        "trail_url": reverse("trail:list"),
        "actions": action_choices(),
        "sources": Source.choices,
    }
    try:
        filters = queries.parse_filters(request.GET)
        before = queries.parse_before(request.GET)
    except InvalidFilterError as exc:
        context.update(filters=queries.TrailFilters(), filter_error=exc)
        return render(request, "trail/entry_list.html", context, status=400)
    page = queries.list_entries(filters, before=before)
    context.update(
        filters=filters,
        rows=[serializers.entry_data(entry) for entry in page.entries],
        newest_url=list_url(filters) if before is not None else None,
        next_url=list_url(filters, before=page.next_before) if page.next_before else None,
    )
    template = "trail/entry_list.html#live" if wants_fragment(request) else "trail/entry_list.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response
