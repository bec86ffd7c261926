"""Directory pages: sources (create, edit, sync now, progress), their rule, and the
joiner/mover/leaver events. Parse, check permissions, call one service, render."""

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from directory import queries, services
from directory.forms import SOURCE_FORMS, LdapSourceForm, RuleForm, SyncNowForm
from directory.models import EventKind, IdentitySource, JmlRule
from web.inputs import InvalidInputError
from web.pages import bad_request, require_permissions, wants_fragment

VIEW_SOURCE = "directory.view_identitysource"
ADD_SOURCE = "directory.add_identitysource"
CHANGE_SOURCE = "directory.change_identitysource"
SYNC_SOURCE = "directory.sync_identitysource"
VIEW_EVENT = "directory.view_directoryevent"
CHANGE_RULE = "directory.change_jmlrule"


def render_live(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    """The whole page, or only its ``live`` partial when htmx refreshes it."""
    name = f"{template}#live" if wants_fragment(request) else template
    response = render(request, name, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def get_source_or_404(source_id: int) -> IdentitySource:
    source = queries.get_source(source_id)
    if source is None:
        raise Http404("No such directory source")
    return source


@require_safe
@login_required
def source_list(request: HttpRequest) -> HttpResponse:
    require_permissions(request, VIEW_SOURCE)
    context = {
        "sources": queries.list_sources(),
        "kinds": IdentitySource.Kind.choices,
        "can_add": request.user.has_perm(ADD_SOURCE),
    }
    return render(request, "directory/source_list.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def source_create(request: HttpRequest, kind: str) -> HttpResponse:
    require_permissions(request, VIEW_SOURCE, ADD_SOURCE)
    form_class = SOURCE_FORMS.get(kind)
    if form_class is None:
        raise Http404("No such kind of source")
    form = form_class(request.POST, request.FILES) if request.method == "POST" else form_class()
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in form._meta.fields or ()}
        extra: dict[str, Any] = {}
        if isinstance(form, LdapSourceForm):
            extra = {
                "ldap_mapping": form.mapping(),
                "bind_password": form.cleaned_data["bind_password"],
            }
        source = services.create_source(kind=kind, actor=request.user, **fields, **extra)
        messages.success(request, f"Directory source {source.name} created.")
        return redirect("directory:source-detail", source_id=source.pk)
    context = {
        "form": form,
        "source": None,
        "kind": kind,
        "kind_label": IdentitySource.Kind(kind).label,
    }
    return render(request, "directory/source_form.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def source_edit(request: HttpRequest, source_id: int) -> HttpResponse:
    require_permissions(request, VIEW_SOURCE, CHANGE_SOURCE)
    source = get_source_or_404(source_id)
    form_class = SOURCE_FORMS[source.kind]
    if request.method == "POST":
        form = form_class(request.POST, request.FILES, instance=source)
    else:
        form = form_class(instance=source)
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in form._meta.fields or ()}
        extra: dict[str, Any] = {}
        if isinstance(form, LdapSourceForm):
            extra = {
                "ldap_mapping": form.mapping(),
                "bind_password": form.cleaned_data["bind_password"],
            }
        services.update_source(source, actor=request.user, **fields, **extra)
        messages.success(request, f"Directory source {source.name} saved.")
        return redirect("directory:source-detail", source_id=source.pk)
    context = {
        "form": form,
        "source": source,
        "kind": source.kind,
        "kind_label": source.get_kind_display(),
    }
    return render(request, "directory/source_form.html", context)


@require_safe
@login_required
def source_detail(request: HttpRequest, source_id: int) -> HttpResponse:
    require_permissions(request, VIEW_SOURCE)
    source = get_source_or_404(source_id)
    runs = queries.list_runs(source)
    active_job = services.get_active_sync(source)
    context = {
        "source": source,
        "runs": runs,
        "latest": runs[0] if runs else None,
        "active_job": active_job,
        "live": active_job is not None or any(run.is_running for run in runs[:1]),
        "sync_form": SyncNowForm(),
        "can_sync": request.user.has_perm(SYNC_SOURCE),
        "can_change": request.user.has_perm(CHANGE_SOURCE),
        "rule": JmlRule.objects.select_related("platform", "run_as").filter(source=source).first(),
        "events": queries.list_events(source=source).events[:10],
        "mapping": source.mapping() if source.kind == IdentitySource.Kind.LDAP else None,
    }
    return render_live(request, "directory/source_detail.html", context)


@require_POST
@login_required
def source_sync(request: HttpRequest, source_id: int) -> HttpResponse:
    require_permissions(request, VIEW_SOURCE, SYNC_SOURCE)
    source = get_source_or_404(source_id)
    form = SyncNowForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(str(e) for errors in form.errors.values() for e in errors)
        messages.error(request, f"Not started: {errors}")
        return redirect("directory:source-detail", source_id=source.pk)
    force = bool(form.cleaned_data["force"])
    try:
        job = services.request_sync(source, actor=request.user, force=force)
    except services.SyncAlreadyQueued as exc:
        messages.warning(request, str(exc))
    else:
        note = " with the safety brake overridden" if force else ""
        messages.success(request, f"Sync of {source.name} queued{note} (job #{job.pk}).")
    return redirect("directory:source-detail", source_id=source.pk)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def rule_edit(request: HttpRequest, source_id: int) -> HttpResponse:
    require_permissions(request, VIEW_SOURCE, CHANGE_RULE)
    source = get_source_or_404(source_id)
    rule = JmlRule.objects.filter(source=source).first()
    if request.method == "POST":
        form = RuleForm(request.POST, instance=rule)
    else:
        form = RuleForm(instance=rule, initial=None if rule else {"run_as": request.user.pk})
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in RuleForm.Meta.fields}
        services.save_rule(source, actor=request.user, **fields)
        messages.success(request, f"Rule of {source.name} saved.")
        return redirect("directory:source-detail", source_id=source.pk)
    return render(request, "directory/rule_form.html", {"form": form, "source": source})


def events_url(source_id: int | None, kind: str, before: int | None = None) -> str:
    query = {
        key: str(value)
        for key, value in (("source", source_id), ("kind", kind), ("before", before))
        if value
    }
    url = reverse("directory:event-list")
    return f"{url}?{urlencode(query)}" if query else url


@require_safe
@login_required
def event_list(request: HttpRequest) -> HttpResponse:
    require_permissions(request, VIEW_EVENT)
    try:
        filters = queries.parse_event_filters(request.GET)
    except InvalidInputError as exc:
        return bad_request(request, exc)
    source, kind, before = filters.source, filters.kind, filters.before
    page = queries.list_events(source=source, kind=kind, before=before)
    source_id = source.pk if source else None
    context = {
        "page": page,
        "source": source,
        "sources": queries.list_sources(),
        "kind": kind,
        "kinds": EventKind.choices,
        "next_url": events_url(source_id, kind, page.next_before) if page.next_before else None,
        "newest_url": events_url(source_id, kind) if before else None,
    }
    return render(request, "directory/event_list.html", context)


@require_safe
@login_required
def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    require_permissions(request, VIEW_EVENT)
    event = queries.get_event(event_id)
    if event is None:
        raise Http404("No such event")
    context = {"event": event, "live": event.job is not None and event.job.is_active}
    return render_live(request, "directory/event_detail.html", context)


@require_safe
@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    require_permissions(request, VIEW_SOURCE)
    run = queries.get_run(run_id)
    if run is None:
        raise Http404("No such sync run")
    return render_live(request, "directory/run_detail.html", {"run": run, "live": run.is_running})
