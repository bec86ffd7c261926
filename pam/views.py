"""PAM pages: check out, check in, reveal, "My sessions", and recording a rotation by hand.

Parse, authorise, call one service, render. The password appears only in the answer to a
reveal, which is a POST and is never cached.
"""

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from pam import queries, services
from pam.forms import CheckOutForm, ManualRotationForm
from pam.models import AccessSession
from vault.errors import VaultError
from web.pages import QueryForm, choice_parameter, require_permissions


class ReturnToForm(QueryForm):
    return_to = choice_parameter("return_to", ["identity", "sessions"], "page to return to")


CHECK_OUT = queries.CHECK_OUT_PERMISSION
RECORD_ROTATION = queries.RECORD_ROTATION_PERMISSION
VIEW_IDENTITY = queries.VIEW_IDENTITY_PERMISSION


def identity_url(identity_id: int) -> str:
    return reverse("identities:detail", args=[identity_id])


def back_to(request: HttpRequest, session: AccessSession) -> HttpResponse:
    """Where a session's buttons lead back to: the page they were on, as far as it may be
    shown (a named choice, never a URL from the request)."""
    # Read after the action is done: a value not offered means the default, not a refusal.
    form = ReturnToForm(request.POST)
    return_to = form.cleaned_data["return_to"] if form.is_valid() else "sessions"
    if return_to == "identity" and request.user.has_perm(VIEW_IDENTITY):
        return redirect(identity_url(session.identity_id))
    return redirect("pam:my-sessions")


def refuse_if_forbidden(exc: services.PamError) -> None:
    """Someone else's session is a 403, as in the API; other refusals are shown as a message."""
    if exc.status == 403:
        raise PermissionDenied(exc.message)


def session_or_404(session_id: int) -> AccessSession:
    session = queries.get_session(session_id)
    if session is None:
        raise Http404("No such session")
    return session


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def check_out(request: HttpRequest, identity_id: int) -> HttpResponse:
    require_permissions(request, VIEW_IDENTITY, CHECK_OUT)
    identity = queries.get_identity(identity_id)
    if identity is None:
        raise Http404("No such identity")
    form = CheckOutForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            session = services.check_out(
                identity,
                actor=request.user,
                reason=form.cleaned_data["reason"],
                minutes=form.cleaned_data["minutes"],
            )
        except services.PamError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(
                request,
                f"Checked out {identity.login} until {session.expires_at:%Y-%m-%d %H:%M} UTC "
                f"(session #{session.pk}). Reveal its password here while the session lasts.",
            )
            return redirect(identity_url(identity.pk))
    context = {"nav": "identities", "identity": identity, "form": form}
    status = 400 if request.method == "POST" else 200
    return render(request, "pam/check_out.html", context, status=status)


@require_POST
@login_required
def check_in(request: HttpRequest, session_id: int) -> HttpResponse:
    # The holder may always check in; anyone else needs the admin permission (the service
    # decides, so the page and the API cannot disagree).
    require_permissions(request, CHECK_OUT)
    session = session_or_404(session_id)
    try:
        ended = services.check_in(session, actor=request.user)
    except services.PamError as exc:
        refuse_if_forbidden(exc)
        messages.error(request, exc.message)
    else:
        if ended.rotation_job_id:
            done = f"its password is being rotated (job #{ended.rotation_job_id})."
        else:
            done = "its password must now be rotated by hand on the external system."
        messages.success(request, f"Checked in {session.identity.login}; {done}")
    return back_to(request, session)


@never_cache
@sensitive_variables("password")
@require_POST
@login_required
def reveal(request: HttpRequest, session_id: int) -> HttpResponse:
    require_permissions(request, CHECK_OUT)
    session = session_or_404(session_id)
    try:
        password = services.reveal_password(session, actor=request.user)
    except services.PamError as exc:
        refuse_if_forbidden(exc)
        messages.error(request, exc.message)
        return back_to(request, session)
    except VaultError as exc:
        messages.error(request, f"The vault could not be read, so nothing was revealed: {exc}")
        return back_to(request, session)
    context = {"nav": "sessions", "session": session, "password": password}
    return render(request, "pam/reveal.html", context)


@require_safe
@login_required
def my_sessions(request: HttpRequest) -> HttpResponse:
    require_permissions(request, CHECK_OUT)
    context: dict[str, Any] = {"nav": "sessions"}
    try:
        before = queries.parse_before(request.GET)
    except queries.InvalidPageError as exc:
        context.update(page=queries.SessionPage([], None), page_error=str(exc))
        return render(request, "pam/my_sessions.html", context, status=400)
    page = queries.list_my_sessions(request.user, before=before)
    url = reverse("pam:my-sessions")
    context.update(
        page=page,
        newest_url=url if before is not None else None,
        next_url=f"{url}?{urlencode({'before': page.next_before})}" if page.next_before else None,
        can_check_out=request.user.has_perm(CHECK_OUT),
        can_view_identities=request.user.has_perm(VIEW_IDENTITY),
    )
    return render(request, "pam/my_sessions.html", context)


@sensitive_post_parameters("password")
@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def record_manual_rotation(request: HttpRequest, identity_id: int) -> HttpResponse:
    require_permissions(request, VIEW_IDENTITY, RECORD_ROTATION)
    identity = queries.get_identity(identity_id)
    if identity is None:
        raise Http404("No such identity")
    form = ManualRotationForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            ref = services.record_manual_rotation(
                identity, actor=request.user, password=form.cleaned_data["password"]
            )
        except services.PamError as exc:
            form.add_error(None, exc.message)
        except VaultError as exc:
            form.add_error(None, f"The vault did not store the password: {exc}")
        else:
            messages.success(
                request, f"Recorded the new password of {identity.login} in the vault ({ref})."
            )
            return redirect(identity_url(identity.pk))
    context = {"nav": "identities", "identity": identity, "form": form}
    status = 400 if request.method == "POST" else 200
    return render(request, "pam/manual_rotation.html", context, status=status)
