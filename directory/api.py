"""The directory API (/api/v1/directory/): sources with their latest run's progress, starting
a sync, and the joiner/mover/leaver events."""

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from ninja import Query, Router, Schema, Status
from pydantic import Field, StrictBool

from directory import queries, services
from directory.forms import SOURCE_FORMS, LdapSourceForm, RuleForm
from directory.models import DirectoryEvent, EventKind, IdentitySource, JmlRule, SyncRun
from web.api import forms as api_forms
from web.api.auth import allowed
from web.api.paging import BEFORE_DESCRIPTION
from web.api.problems import ApiError, Problem, not_found
from web.api.schemas import Out
from web.api.types import Id, one_of

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


router = Router(tags=["directory"])
ERRORS: dict[int, Any] = {400: Problem, 401: Problem, 403: Problem}


class SyncRunOut(Out):
    id: int
    status: one_of(SyncRun.Status.values)  # type: ignore[valid-type]
    phase: str
    job: int | None
    started_at: datetime
    finished_at: datetime | None
    pages_read: int
    users_read: int
    groups_read: int
    memberships_read: int
    joiners: int
    movers: int
    leavers: int
    errors: int
    message: str


class DirectorySource(Out):
    id: int
    name: str
    kind: one_of(IdentitySource.Kind.values)  # type: ignore[valid-type]
    enabled: bool
    sync_interval_minutes: int
    next_sync_at: datetime | None
    last_synced_at: datetime | None
    bind_password_stored: bool
    last_run: SyncRunOut | None
    url: str


class SourceList(Out):
    results: list[DirectorySource]


class SyncRequest(Schema):
    model_config = {"extra": "forbid"}
    force: StrictBool = Field(False, description="Override the safety brake for this one sync")


class SyncRefused(Problem):
    job: int = Field(description="The sync already queued")


class SyncQueued(Out):
    job: int
    status: str


class DirectoryEventOut(Out):
    id: int
    source: int
    kind: EventKind
    user: str
    status: one_of(DirectoryEvent.Status.values)  # type: ignore[valid-type]
    job: int | None
    created_at: datetime


class DirectoryEventPage(Out):
    results: list[DirectoryEventOut]
    next_before: int | None = Field(description="Pass as `before` for the next page")


class DirectoryEventQuery(Schema):
    source: Id | None = Field(None, description="A source id")
    kind: EventKind | None = None
    before: Id | None = Field(None, description=BEFORE_DESCRIPTION)


def get_or_404(source_id: int) -> IdentitySource:
    source = queries.get_source(source_id)
    if source is None:
        raise not_found("directory source", source_id)
    return source


@router.get("directory/sources/", response={200: SourceList, **ERRORS}, auth=allowed(VIEW_SOURCE))
def list_sources(request: HttpRequest) -> dict[str, Any]:
    """Every directory source with its latest run."""
    return {"results": [source_data(request, s) for s in queries.list_sources()]}


@router.get(
    "directory/sources/{int:source_id}/",
    response={200: DirectorySource, 404: Problem, **ERRORS},
    auth=allowed(VIEW_SOURCE),
)
def get_source(request: HttpRequest, source_id: Id) -> dict[str, Any]:
    """One source and its latest run's progress."""
    return source_data(request, get_or_404(source_id))


@router.post(
    "directory/sources/{int:source_id}/sync/",
    response={202: SyncQueued, 404: Problem, 409: SyncRefused, **ERRORS},
    auth=allowed(VIEW_SOURCE, SYNC_SOURCE),
)
def sync_source(
    request: HttpRequest, source_id: Id, body: SyncRequest | None = None
) -> Status[dict[str, Any]]:
    """Sync now: queue a sync of the source (the page's "Sync now")."""
    source = get_or_404(source_id)
    force = body.force if body else False
    try:
        job = services.request_sync(source, actor=request.user, force=force)
    except services.SyncAlreadyQueued as exc:
        raise ApiError(409, str(exc), job=exc.job.pk) from None
    return Status(202, {"job": job.pk, "status": job.status})


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


@router.get(
    "directory/events/", response={200: DirectoryEventPage, **ERRORS}, auth=allowed(VIEW_EVENT)
)
def list_events(request: HttpRequest, query: Query[DirectoryEventQuery]) -> dict[str, Any]:
    """Joiner, mover and leaver events, newest first."""
    source = None
    if query.source is not None:
        source = queries.get_source(query.source)
        if source is None:
            message = f"no directory source with id {query.source}"
            raise ApiError(400, message, {"source": [message]})
    page = queries.list_events(
        source=source, kind=query.kind.value if query.kind else "", before=query.before
    )
    return {"results": [event_data(e) for e in page.events], "next_before": page.next_before}


# --- sources and rules (the Directory pages' create and edit) -------------------------------

ADD_SOURCE = "directory.add_identitysource"
CHANGE_SOURCE = "directory.change_identitysource"
CHANGE_RULE = "directory.change_jmlrule"


def source_body() -> dict[str, Any]:
    variants = []
    for kind, form_class in SOURCE_FORMS.items():
        schema = api_forms.body_schema(form_class)["requestBody"]["content"]["application/json"]
        variant = dict(schema["schema"])
        variant["properties"] = {"kind": {"const": kind}, **variant["properties"]}
        variant["required"] = ["kind", *variant["required"]]
        variants.append(variant)
    content = {"application/json": {"schema": {"oneOf": variants}}}
    return {"requestBody": {"required": True, "content": content}}


def save_source(request: HttpRequest, kind: str, source: IdentitySource | None) -> IdentitySource:
    """Bind the kind's page form to the body (``kind`` itself is not a form field)."""
    form_class = SOURCE_FORMS[kind]
    body = api_forms.read_object(request)
    body.pop("kind", None)
    form = api_forms.bind(form_class, body, instance=source)
    fields = {name: form.cleaned_data[name] for name in form._meta.fields or ()}
    extra: dict[str, Any] = {}
    if isinstance(form, LdapSourceForm):
        extra = {
            "ldap_mapping": form.mapping(),
            "bind_password": form.cleaned_data["bind_password"],
        }
    if source is None:
        return services.create_source(kind=kind, actor=request.user, **fields, **extra)
    services.update_source(source, actor=request.user, **fields, **extra)
    return get_or_404(source.pk)


@router.post(
    "directory/sources/",
    response={201: DirectorySource, **ERRORS},
    auth=allowed(VIEW_SOURCE, ADD_SOURCE),
    openapi_extra=source_body(),
)
def create_source(request: HttpRequest) -> Status[dict[str, Any]]:
    """Create a directory source of a ``kind``, with that kind's page form fields."""
    kind = api_forms.read_object(request).get("kind")
    if not isinstance(kind, str) or kind not in SOURCE_FORMS:
        message = f"kind must be one of: {', '.join(SOURCE_FORMS)}"
        raise ApiError(400, message, {"kind": [message]})
    source = save_source(request, kind, None)
    return Status(201, source_data(request, get_or_404(source.pk)))


@router.put(
    "directory/sources/{int:source_id}/",
    response={200: DirectorySource, 404: Problem, **ERRORS},
    auth=allowed(VIEW_SOURCE, CHANGE_SOURCE),
    openapi_extra=source_body(),
)
def update_source(request: HttpRequest, source_id: Id) -> dict[str, Any]:
    """Save a source's settings, as its edit page does (its kind cannot change)."""
    source = get_or_404(source_id)
    return source_data(request, save_source(request, source.kind, source))


class RuleOut(Out):
    source: int
    platform: int | None
    dry_run: bool
    on_joiner: bool
    on_mover: bool
    on_leaver: bool
    login_domain: str
    sync_groups: bool
    run_as: int | None


@router.put(
    "directory/sources/{int:source_id}/rule/",
    response={200: RuleOut, 404: Problem, **ERRORS},
    auth=allowed(VIEW_SOURCE, CHANGE_RULE),
    openapi_extra=api_forms.body_schema(RuleForm),
)
def save_rule(request: HttpRequest, source_id: Id) -> dict[str, Any]:
    """Save the source's joiner/mover/leaver rule, as its rule page does."""
    source = get_or_404(source_id)
    rule = JmlRule.objects.filter(source=source).first()
    form = api_forms.bind(RuleForm, api_forms.read_object(request), instance=rule)
    fields = {name: form.cleaned_data[name] for name in RuleForm.Meta.fields}
    saved = services.save_rule(source, actor=request.user, **fields)
    return {
        "source": source.pk,
        "platform": saved.platform_id,
        "dry_run": saved.dry_run,
        "on_joiner": saved.on_joiner,
        "on_mover": saved.on_mover,
        "on_leaver": saved.on_leaver,
        "login_domain": saved.login_domain,
        "sync_groups": saved.sync_groups,
        "run_as": saved.run_as_id,
    }
