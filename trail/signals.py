"""Signing in and out on the trail, from Django's auth signals (password and SAML alike)."""

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.http import HttpRequest

from trail.services import known_username, record, record_anonymous_refusal

# Set in the session before login() by a sign-in that is not the password form (SAML).
AUTH_METHOD_SESSION_KEY = "accesshive_auth_method"


def signed_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    method = session.get(AUTH_METHOD_SESSION_KEY, "password") if session is not None else "password"
    record("user.signed_in", actor=user, method=method)


def signed_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None and user.is_authenticated:
        record("user.signed_out", actor=user)


def sign_in_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # The credentials hold the password too: only the username is ever read from them.
    username = known_username(credentials)
    if username:
        record("user.sign_in_failed", actor=None, target_label=username, username=username)
    else:
        record_anonymous_refusal("user.sign_in_failed")


def locked_out(
    sender: Any, request: HttpRequest | None, username: str | None = None, **kwargs: Any
) -> None:
    # Sent again for every attempt while locked: counted per address like other refusals.
    known = known_username({"username": username or ""})
    record_anonymous_refusal("user.locked_out", target_label=known, username=known)


def connect() -> None:
    user_logged_in.connect(signed_in, dispatch_uid="trail.signed_in")
    user_logged_out.connect(signed_out, dispatch_uid="trail.signed_out")
    user_login_failed.connect(sign_in_failed, dispatch_uid="trail.sign_in_failed")
    user_locked_out.connect(locked_out, dispatch_uid="trail.locked_out")
