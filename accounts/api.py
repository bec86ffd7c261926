"""The accounts API: API tokens (/api/v1/tokens/, list and revoke) and sign-in lockouts
(/api/v1/lockouts/, unlock), with the same permissions as their pages."""

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Router, Status

from accounts import queries, services
from accounts.models import ApiToken
from accounts.views import HOLD_TOKENS_PERMISSION, MANAGE_PERMISSION
from web.api.auth import allowed
from web.api.problems import Problem, not_found
from web.api.schemas import Out
from web.api.types import Id

router = Router(tags=["accounts"])
ERRORS: dict[int, Any] = {401: Problem, 403: Problem}


class TokenOut(Out):
    id: int
    name: str
    prefix: str
    user: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenList(Out):
    results: list[TokenOut]


def token_data(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.pk,
        "name": token.name,
        "prefix": token.prefix,
        "user": token.user.get_username(),
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
    }


@router.get("tokens/", response={200: TokenList, **ERRORS}, auth=allowed(HOLD_TOKENS_PERMISSION))
def list_tokens(request: HttpRequest) -> dict[str, Any]:
    """Your API tokens (an admin's: everyone's), newest first; never the secret itself."""
    everyone = request.user.has_perm(MANAGE_PERMISSION)
    tokens = queries.list_api_tokens(request.user, everyone=everyone)
    return {"results": [token_data(token) for token in tokens]}


@router.post(
    "tokens/{int:token_id}/revoke/",
    response={200: TokenOut, 404: Problem, **ERRORS},
    auth=allowed(HOLD_TOKENS_PERMISSION),
)
def revoke_token(request: HttpRequest, token_id: Id) -> dict[str, Any]:
    """Revoke one of your tokens (an admin: anyone's); revoking it again changes nothing."""
    token = queries.get_api_token(token_id)
    mine = token is not None and token.user_id == request.user.pk
    if token is None or not (mine or request.user.has_perm(MANAGE_PERMISSION)):
        raise not_found("API token", token_id)
    services.revoke_api_token(token, actor=request.user)
    token.refresh_from_db()
    return token_data(token)


class LockoutOut(Out):
    id: int
    username: str
    ip_address: str | None
    failures: int
    last_attempt_at: datetime


class LockoutList(Out):
    results: list[LockoutOut]


@router.get("lockouts/", response={200: LockoutList, **ERRORS}, auth=allowed(MANAGE_PERMISSION))
def list_lockouts(request: HttpRequest) -> dict[str, Any]:
    """User names refused from an address after too many wrong passwords or tokens."""
    return {
        "results": [
            {
                "id": attempt.pk,
                "username": attempt.username or "",
                "ip_address": attempt.ip_address,
                "failures": attempt.failures_since_start,
                "last_attempt_at": attempt.attempt_time,
            }
            for attempt in queries.list_lockouts()
        ]
    }


@router.post(
    "lockouts/{int:attempt_id}/unlock/",
    response={204: None, 404: Problem, **ERRORS},
    auth=allowed(MANAGE_PERMISSION),
)
def unlock(request: HttpRequest, attempt_id: Id) -> Status[None]:
    """Let that user name sign in again from that address now."""
    attempt = queries.get_lockout(attempt_id)
    if attempt is None:
        raise not_found("lockout", attempt_id)
    services.unlock(attempt, actor=request.user)
    return Status(204, None)
