"""The directory JSON API (/api/v1/directory/): sources with their latest run's progress,
starting a sync, and the joiner/mover/leaver events; session or bearer-token auth."""

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from directory import queries, services
from directory.models import DirectoryEvent, IdentitySource, SyncRun
from jobs.api import endpoint, error

VIEW_SOURCE = "directory.view_identitysource"
SYNC_SOURCE = "directory.sync_identitysource"
VIEW_EVENT = "directory.view_directoryevent"


def run_data(run: SyncRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.pk,
        "status": run.status,
        "phase": run.phase,
        "job": run.job_id,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "pages_read": run.pages_read,
        "users_read": run.users_read,
        "groups_read": run.groups_read,
        "memberships_read": run.memberships_read,
        "joiners": run.joiners,
        "movers": run.movers,
        "leavers": run.leavers,
        "errors": run.errors,
        "message": run.message,
    }


def source_data(request: HttpRequest, source: IdentitySource) -> dict[str, Any]:
    """A source's settings and state; the bind password appears only as stored or not."""
    return {
        "id": source.pk,
        "name": source.name,
        "kind": source.kind,
        "enabled": source.enabled,
        "sync_interval_minutes": source.sync_interval_minutes,
        "next_sync_at": source.next_sync_at,
        "last_synced_at": source.last_synced_at,
        "bind_password_stored": bool(source.ldap_password_ref),
        "last_run": run_data(source.last_run),
        "url": request.build_absolute_uri(reverse("directory:api-source", args=[source.pk])),
    }


@endpoint("GET", VIEW_SOURCE)
def source_collection(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"results": [source_data(request, s) for s in queries.list_sources()]})


@endpoint("GET", VIEW_SOURCE)
def source_detail(request: HttpRequest, source_id: int) -> HttpResponse:
    source = queries.get_source(source_id)
    if source is None:
        return error(404, "no such directory source")
    return JsonResponse(source_data(request, source))


@endpoint("POST", VIEW_SOURCE, SYNC_SOURCE)
def source_sync(request: HttpRequest, source_id: int) -> HttpResponse:
    """Queue a sync; {"force": true} overrides the safety brake for this one."""
    source = queries.get_source(source_id)
    if source is None:
        return error(404, "no such directory source")
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return error(400, "the body is not JSON")
    if not isinstance(body, dict) or not isinstance(body.get("force", False), bool):
        return error(400, 'the body is {"force": true|false}')
    try:
        job = services.request_sync(source, actor=request.user, force=body.get("force", False))
    except services.SyncAlreadyQueued as exc:
        return error(409, str(exc), job=exc.job.pk)
    return JsonResponse({"job": job.pk, "status": job.status}, status=202)


def event_data(event: DirectoryEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "source": event.source_id,
        "kind": event.kind,
        "user": event.label,
        "status": event.status,
        "job": event.job_id,
        "created_at": event.created_at,
    }


@endpoint("GET", VIEW_EVENT)
def event_collection(request: HttpRequest) -> HttpResponse:
    raw_source, raw_before = request.GET.get("source", ""), request.GET.get("before", "")
    source = queries.get_source(int(raw_source)) if raw_source.isdigit() else None
    if raw_source and source is None:
        return error(400, "no such directory source")
    page = queries.list_events(
        source=source,
        kind=queries.parse_kind(request.GET.get("kind")),
        before=int(raw_before) if raw_before.isdigit() else None,
    )
    return JsonResponse(
        {"results": [event_data(e) for e in page.events], "next_before": page.next_before}
    )
