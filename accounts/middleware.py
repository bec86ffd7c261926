"""Authenticates API requests that carry ``Authorization: Bearer <token>``; ends idle and
over-age sessions."""

import time
from collections.abc import Callable
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.signals import user_login_failed
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from accounts.models import ApiToken

# The "username" of API token guesses in django-axes: not a valid username, so no user has it.
API_TOKEN_GUESSES = "(api token)"  # noqa: S105 - a label, not a secret


class ApiTokenMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and request.path.startswith("/api/"):
            # Guesses count against the address like wrong passwords (django-axes), under
            # one name no user can have.
            guess = {"username": API_TOKEN_GUESSES}
            if not AxesProxyHandler.is_allowed(request, guess):
                return JsonResponse(
                    {"error": "too many invalid API tokens from this address; try again later"},
                    status=429,
                )
            token = ApiToken.find_usable(header.removeprefix("Bearer ").strip())
            if token is None:
                user_login_failed.send(sender=__name__, credentials=guess, request=request)
                return JsonResponse({"error": "invalid API token"}, status=401)
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
            request.user = token.user
            # A bearer token is not sent by browsers on their own, so CSRF cannot forge it.
            request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        return self.get_response(request)


SIGNED_IN_AT = "accesshive_signed_in_at"
LAST_SEEN_AT = "accesshive_last_seen_at"
LAST_SEEN_GRANULARITY = 60


def is_poll(request: HttpRequest) -> bool:
    """An htmx refresh of a live region ("jobs-live", …): the page asked, not the person."""
    return request.headers.get("HX-Request") == "true" and request.headers.get(
        "HX-Trigger", ""
    ).endswith("-live")


def start_session_clock(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """On sign-in (user_logged_in), so the first page does not have to save the session."""
    session = getattr(request, "session", None)
    if session is not None:
        session[SIGNED_IN_AT] = session[LAST_SEEN_AT] = time.time()


class SessionLimitsMiddleware:
    """Signs a session out after SESSION_IDLE_TIMEOUT seconds without a request the person
    made, or SESSION_COOKIE_AGE seconds after sign-in, whichever comes first."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Sessions only: a bearer token authenticates each API request on its own.
        if SESSION_KEY in request.session:
            now = time.time()
            started = request.session.setdefault(SIGNED_IN_AT, now)
            last_seen = request.session.get(LAST_SEEN_AT, now)
            if (
                now - last_seen > settings.SESSION_IDLE_TIMEOUT
                or now - started > settings.SESSION_COOKIE_AGE
            ):
                logout(request)
                return redirect_to_login(request.get_full_path())
            # Written at most once a minute: not a session save on every request.
            if not is_poll(request) and now - last_seen > LAST_SEEN_GRANULARITY:
                request.session[LAST_SEEN_AT] = now
            request.session.setdefault(LAST_SEEN_AT, now)
        return self.get_response(request)
