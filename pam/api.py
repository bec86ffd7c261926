"""The PAM JSON API: check out (/api/v1/identities/<id>/checkout/), check in and reveal
(/api/v1/sessions/<id>/checkin/ and /reveal/), over session or bearer-token auth."""

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables

from identities.api import BadBody, read_json_object
from jobs.api import endpoint, error
from pam import queries, services
from pam.models import AccessSession
from vault.errors import VaultError

CHECK_OUT = queries.CHECK_OUT_PERMISSION
VIEW_IDENTITY = queries.VIEW_IDENTITY_PERMISSION
CHECK_OUT_FIELDS = ("reason", "minutes")


def session_data(request: HttpRequest, session: AccessSession) -> dict[str, Any]:
    """A session as the API shows it; never a password."""
    identity = session.identity
    job_id = session.rotation_job_id
    return {
        "id": session.pk,
        "identity": {
            "id": identity.pk,
            "login": identity.login,
            "type": identity.identity_type,
            "url": request.build_absolute_uri(reverse("identities:api-detail", args=[identity.pk])),
        },
        "holder": session.holder.get_username(),
        "reason": session.reason,
        "started_at": session.started_at,
        "expires_at": session.expires_at,
        "active": session.is_active,
        "ended_at": session.ended_at,
        "ended_by": session.ended_by.get_username() if session.ended_by else None,
        "end_reason": session.end_reason or None,
        "rotation_job": {
            "id": job_id,
            "url": request.build_absolute_uri(reverse("jobs:api-detail", args=[job_id])),
        }
        if job_id
        else None,
    }


def parse_check_out(body: dict[str, Any]) -> tuple[str, int | None]:
    errors: dict[str, list[str]] = {}
    for name in body:
        if name not in CHECK_OUT_FIELDS:
            errors[name] = [f"Unknown field. Expected: {', '.join(CHECK_OUT_FIELDS)}."]
    reason, minutes = body.get("reason"), body.get("minutes")
    if not isinstance(reason, str) or not reason.strip():
        errors["reason"] = ["This field is required: why you need this credential."]
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int)):
        errors["minutes"] = ["Must be a whole number of minutes, or left out for the maximum."]
    if errors:
        raise BadBody(errors)
    assert isinstance(reason, str)
    return reason, minutes


@endpoint("POST", VIEW_IDENTITY, CHECK_OUT)
def check_out(request: HttpRequest, identity_id: int) -> HttpResponse:
    try:
        reason, minutes = parse_check_out(read_json_object(request))
    except BadBody as exc:
        return error(400, "invalid check-out: see errors", errors=exc.errors)
    identity = queries.get_identity(identity_id)
    if identity is None:
        return error(404, f"no identity with id {identity_id}")
    try:
        session = services.check_out(identity, actor=request.user, reason=reason, minutes=minutes)
    except services.PamError as exc:
        return error(exc.status, exc.message)
    return JsonResponse(session_data(request, session), status=201)


# The holder may always check in, others need the admin permission; the service decides
# which applies.
@endpoint("POST", CHECK_OUT)
def check_in(request: HttpRequest, session_id: int) -> HttpResponse:
    session = queries.get_session(session_id)
    if session is None:
        return error(404, f"no session with id {session_id}")
    try:
        ended = services.check_in(session, actor=request.user)
    except services.PamError as exc:
        return error(exc.status, exc.message)
    return JsonResponse(session_data(request, ended))


@never_cache
@sensitive_variables("password")
@endpoint("POST", CHECK_OUT)
def reveal(request: HttpRequest, session_id: int) -> HttpResponse:
    session = queries.get_session(session_id)
    if session is None:
        return error(404, f"no session with id {session_id}")
    try:
        password = services.reveal_password(session, actor=request.user)
    except services.PamError as exc:
        return error(exc.status, exc.message)
    except VaultError as exc:
        return error(503, f"the vault could not be read, so nothing was revealed: {exc}")
    return JsonResponse(
        {"password": password, "recorded": True, "session": session_data(request, session)}
    )
