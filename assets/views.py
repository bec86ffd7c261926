"""Asset pages and "Discover now": parse, check permissions, call one query or service, render."""

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST, require_safe

from assets import queries, services
from assets.models import AssetKind
from identities.queries import get_google_workspace_platform_or_404
from jobs.models import JobStatus
from web import pages
from web.pages import InvalidFilterError, require_permissions, wants_fragment

VIEW_PERMISSION = "assets.view_asset"
DISCOVER_PERMISSION = "assets.discover_assets"


def list_url(filters: queries.AssetFilters, *, before: int | None = None) -> str:
    return pages.list_url("assets:list", filters.as_query(), before=before)


@require_safe
@login_required
def asset_list(request: HttpRequest) -> HttpResponse:
    require_permissions(request, VIEW_PERMISSION)
    context: dict[str, Any] = {
        "nav": "assets",
        "platforms": queries.list_platforms(),
        "kinds": AssetKind.choices,
        "states": queries.STATES,
    }
    try:
        filters = queries.parse_filters(request.GET)
        before = queries.parse_before(request.GET)
    except InvalidFilterError as exc:
        context.update(filters=queries.AssetFilters(), filter_error=exc)
        return render(request, "assets/asset_list.html", context, status=400)
    page = queries.list_assets(filters, before=before)
    context.update(
        filters=filters,
        page=page,
        newest_url=list_url(filters) if before is not None else None,
        next_url=list_url(filters, before=page.next_before) if page.next_before else None,
    )
    template = (
        "assets/asset_list.html#live" if wants_fragment(request) else "assets/asset_list.html"
    )
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_safe
@login_required
def asset_detail(request: HttpRequest, asset_id: int) -> HttpResponse:
    require_permissions(request, VIEW_PERMISSION)
    asset = queries.get_asset(asset_id)
    if asset is None:
        raise Http404("No such asset")
    context = {
        "nav": "assets",
        "asset": asset,
        "attributes_json": json.dumps(asset.attributes, indent=2, sort_keys=True),
    }
    return render(request, "assets/asset_detail.html", context)


@require_safe
@login_required
def platform_list(request: HttpRequest) -> HttpResponse:
    require_permissions(request, VIEW_PERMISSION)
    rows = [
        {
            "platform": platform,
            "last": next(iter(services.list_discovery_jobs(platform, limit=1)), None),
        }
        for platform in queries.list_platforms()
    ]
    return render(request, "assets/platform_list.html", {"nav": "assets", "rows": rows})


@require_safe
@login_required
def platform_detail(request: HttpRequest, platform_id: int) -> HttpResponse:
    require_permissions(request, VIEW_PERMISSION)
    platform = get_google_workspace_platform_or_404(platform_id)
    jobs = services.list_discovery_jobs(platform)
    last_done = next((job for job in jobs if job.status == JobStatus.COMPLETED), None)
    counts = (last_done.result or {}).get("kinds", {}) if last_done else {}
    is_active = any(job.is_active for job in jobs)
    context = {
        "nav": "assets",
        "platform": platform,
        "jobs": jobs,
        "last_done": last_done,
        "counts": [(kind, label, counts.get(kind)) for kind, label in AssetKind.choices],
        "is_active": is_active,
        "can_discover": request.user.has_perm(DISCOVER_PERMISSION),
    }
    template = (
        "assets/platform_detail.html#live"
        if wants_fragment(request)
        else "assets/platform_detail.html"
    )
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_POST
@login_required
def discover(request: HttpRequest, platform_id: int) -> HttpResponse:
    require_permissions(request, VIEW_PERMISSION, DISCOVER_PERMISSION)
    platform = get_google_workspace_platform_or_404(platform_id)
    job, created = services.discover_now(platform, actor=request.user)
    if created:
        messages.success(request, f"Discovery queued (job #{job.pk})")
    else:
        messages.info(request, f"A discovery is already on its way (job #{job.pk})")
    return redirect("assets:platform", platform_id=platform.pk)
