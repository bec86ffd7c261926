"""Audit log pages: parse, check permissions, call one query or service, render."""

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from audit import queries, services
from audit.forms import AuditSettingsForm
from connectors.google_reports import APPLICATIONS
from identities.queries import get_google_workspace_platform_or_404
from web import pages
from web.pages import InvalidFilterError, require_permissions, wants_fragment

VIEW_PERMISSION = "audit.view_auditevent"
CHANGE_SETTINGS = "audit.change_auditsettings"
INGEST_NOW = "audit.ingest_auditevents"


def list_url(filters: queries.EventFilters, *, before: queries.Cursor | None = None) -> str:
    return pages.list_url("audit:list", filters.as_query(), before=before)


@require_safe
@login_required
def event_list(request: HttpRequest) -> HttpResponse:
    require_permissions(request, VIEW_PERMISSION)
    context: dict[str, Any] = {
        "nav": "audit",
        "platforms": queries.list_platforms(),
        "applications": APPLICATIONS,
    }
    try:
        filters = queries.parse_filters(request.GET)
        before = queries.parse_before(request.GET)
    except InvalidFilterError as exc:
        context.update(filters=queries.EventFilters(), filter_error=exc)
        return render(request, "audit/event_list.html", context, status=400)
    page = queries.list_events(filters, before=before)
    context.update(
        filters=filters,
        page=page,
        newest_url=list_url(filters) if before is not None else None,
        next_url=list_url(filters, before=page.next_before) if page.next_before else None,
    )
    template = "audit/event_list.html#live" if wants_fragment(request) else "audit/event_list.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_safe
@login_required
def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    require_permissions(request, VIEW_PERMISSION)
    event = queries.get_event(event_id)
    if event is None:
        raise Http404("No such audit event")
    context = {
        "nav": "audit",
        "event": event,
        "activity_events": queries.list_activity_events(event),
        "parameters_json": json.dumps(event.parameters, indent=2, sort_keys=True),
        "raw_json": json.dumps(event.raw, indent=2, sort_keys=True, cls=DjangoJSONEncoder)
        if event.raw
        else "",
    }
    return render(request, "audit/event_detail.html", context)


@require_safe
@login_required
def platform_list(request: HttpRequest) -> HttpResponse:
    require_permissions(request, VIEW_PERMISSION)
    connected = {platform.pk for platform in services.connected_platforms()}
    rows = [
        {
            "platform": platform,
            "connected": platform.pk in connected,
            "settings": services.read_settings(platform),
            "checkpoints": services.list_checkpoints(platform),
        }
        for platform in queries.list_platforms()
    ]
    return render(request, "audit/platform_list.html", {"nav": "audit", "rows": rows})


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def platform_settings(request: HttpRequest, platform_id: int) -> HttpResponse:
    require_permissions(request, VIEW_PERMISSION)
    platform = get_google_workspace_platform_or_404(platform_id)
    audit_settings = services.read_settings(platform)
    can_change = request.user.has_perm(CHANGE_SETTINGS)
    status = 200
    if request.method == "POST":
        require_permissions(request, CHANGE_SETTINGS)
        form = AuditSettingsForm(request.POST)
        if form.is_valid():
            try:
                services.update_settings(platform, **form.cleaned_data, actor=request.user)
            except services.InvalidSettingsError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, "Audit settings saved")
                return redirect("audit:platform", platform_id=platform.pk)
        status = 400
    else:
        form = AuditSettingsForm(
            initial={
                "enabled": audit_settings.enabled,
                "applications": audit_settings.applications,
                "interval_minutes": audit_settings.interval_minutes,
                "overlap_minutes": audit_settings.overlap_minutes,
            }
        )
    context = {
        "nav": "audit",
        "platform": platform,
        "audit_settings": audit_settings,
        "form": form,
        "can_change": can_change,
        "can_ingest": request.user.has_perm(INGEST_NOW),
        "connected": platform in services.connected_platforms(),
        "checkpoints": services.list_checkpoints(platform),
        "jobs": services.list_ingestion_jobs(platform),
        "late_checks": services.list_late_checks(platform),
    }
    return render(request, "audit/platform_settings.html", context, status=status)


@require_POST
@login_required
def ingest_now(request: HttpRequest, platform_id: int) -> HttpResponse:
    require_permissions(request, VIEW_PERMISSION, INGEST_NOW)
    platform = get_google_workspace_platform_or_404(platform_id)
    job, created = services.ingest_now(platform, actor=request.user)
    if created:
        messages.success(request, f"Ingestion queued (job #{job.pk})")
    else:
        messages.info(request, f"An ingestion is already on its way (job #{job.pk})")
    return redirect("audit:platform", platform_id=platform.pk)
