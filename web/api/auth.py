"""Who may call an operation: a bearer token (accounts.middleware has already checked it and
set request.user) or a signed-in session with its CSRF token; then the operation's permissions.

The permissions are checked here, before the body is read, so a caller without them gets a
403 whatever they sent.
"""

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf


def _permitted(request: HttpRequest, perms: tuple[str, ...]) -> Any:
    if not request.user.is_authenticated:
        return None
    if not request.user.has_perms(perms):
        raise PermissionDenied
    return request.user


class BearerToken(HttpBearer):
    """``Authorization: Bearer <token>``; tokens are issued in Settings > Users."""

    def __init__(self, *perms: str) -> None:
        super().__init__()
        self.perms = perms

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        return _permitted(request, self.perms)


class Session(APIKeyCookie):
    """The browser's session cookie; unsafe methods also need the X-CSRFToken header."""

    param_name = settings.SESSION_COOKIE_NAME

    def __init__(self, *perms: str) -> None:
        super().__init__(csrf=True)
        self.perms = perms

    def __call__(self, request: HttpRequest) -> Any:
        # Anonymous first, so a caller who is not signed in hears 401, not a CSRF complaint.
        if not request.user.is_authenticated:
            return None
        if check_csrf(request):
            raise HttpError(
                403, "CSRF check failed: send the X-CSRFToken header, or a bearer token"
            )
        return self.authenticate(request, request.COOKIES.get(self.param_name))

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        return _permitted(request, self.perms)


def allowed(*perms: str) -> list[Any]:
    """The ``auth=`` of an operation needing ``perms``: a bearer token or a session."""
    return [BearerToken(*perms), Session(*perms)]
