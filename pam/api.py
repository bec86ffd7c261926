"""The PAM API: check out (/api/v1/identities/<id>/checkout/), check in and reveal
(/api/v1/sessions/<id>/checkin/ and /reveal/)."""

from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_variables
from ninja import Router, Status

from identities.api import BadBody, read_json_object
from pam import queries, services
from pam.models import AccessSession
from vault.errors import VaultError
from web.api.auth import allowed
from web.api.problems import ApiError, Problem, not_found
from web.api.schemas import Out
from web.api.types import Id

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


router = Router(tags=["privileged access"])
ERRORS: dict[int, Any] = {400: Problem, 401: Problem, 403: Problem, 404: Problem, 409: Problem}


class CredentialRef(Out):
    id: int
    login: str
    type: str
    url: str


class RotationJobLink(Out):
    id: int
    url: str


class SessionOut(Out):
    id: int
    identity: CredentialRef
    holder: str
    reason: str
    started_at: datetime
    expires_at: datetime
    active: bool
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str | None
    rotation_job: RotationJobLink | None


class Revealed(Out):
    password: str
    recorded: bool
    session: SessionOut


CHECK_OUT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "reason": {"type": "string", "minLength": 1, "maxLength": 500},
                        "minutes": {
                            "type": ["integer", "null"],
                            "description": "How long; left out for the maximum",
                        },
                    },
                    "required": ["reason"],
                    "additionalProperties": False,
                }
            }
        },
    }
}


def pam_refusal(exc: services.PamError) -> ApiError:
    return ApiError(exc.status, exc.message)


@router.post(
    "identities/{int:identity_id}/checkout/",
    response={201: SessionOut, **ERRORS},
    auth=allowed(VIEW_IDENTITY, CHECK_OUT),
    openapi_extra=CHECK_OUT_BODY,
)
def check_out(request: HttpRequest, identity_id: Id) -> Status[dict[str, Any]]:
    """Check out a shared credential for a while, with a reason."""
    try:
        reason, minutes = parse_check_out(read_json_object(request))
    except BadBody as exc:
        raise ApiError(400, "invalid check-out: see errors", exc.errors) from None
    identity = queries.get_identity(identity_id)
    if identity is None:
        raise not_found("identity", identity_id)
    try:
        session = services.check_out(identity, actor=request.user, reason=reason, minutes=minutes)
    except services.PamError as exc:
        raise pam_refusal(exc) from None
    return Status(201, session_data(request, session))


# The holder may always check in, others need the admin permission; the service decides
# which applies.
@router.post(
    "sessions/{int:session_id}/checkin/",
    response={200: SessionOut, **ERRORS},
    auth=allowed(CHECK_OUT),
)
def check_in(request: HttpRequest, session_id: Id) -> dict[str, Any]:
    """End a session; its credential is rotated by a job."""
    session = queries.get_session(session_id)
    if session is None:
        raise not_found("session", session_id)
    try:
        ended = services.check_in(session, actor=request.user)
    except services.PamError as exc:
        raise pam_refusal(exc) from None
    return session_data(request, ended)


@router.post(
    "sessions/{int:session_id}/reveal/",
    response={200: Revealed, 503: Problem, **ERRORS},
    auth=allowed(CHECK_OUT),
)
@sensitive_variables("password")
def reveal(request: HttpRequest, session_id: Id, response: HttpResponse) -> dict[str, Any]:
    """The password of the caller's active session; every reveal is on the trail."""
    session = queries.get_session(session_id)
    if session is None:
        raise not_found("session", session_id)
    try:
        password = services.reveal_password(session, actor=request.user)
    except services.PamError as exc:
        raise pam_refusal(exc) from None
    except VaultError as exc:
        raise ApiError(
            503, f"the vault could not be read, so nothing was revealed: {exc}"
        ) from None
    add_never_cache_headers(response)
    return {"password": password, "recorded": True, "session": session_data(request, session)}
