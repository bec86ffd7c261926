"""API tokens and sign-in lockouts over the API, as their pages offer them: each holder lists
and revokes their own tokens (an admin: anyone's), and an admin unlocks a locked-out sign-in."""

from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import ApiToken
from accounts.services import set_role
from tests.factories import PASSWORD, make_user
from trail.models import TrailEntry

pytestmark = pytest.mark.django_db


def holder(username: str, role: str) -> tuple[Any, dict[str, Any]]:
    user = make_user(username)
    set_role(user, role, actor=None)
    _, raw = ApiToken.issue(user, "script")
    return user, {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_a_holder_lists_only_their_own_tokens_and_an_admin_lists_everyones() -> None:
    viewer, as_viewer = holder("vera", "viewer")
    _, as_admin = holder("ada", "admin")
    ApiToken.issue(viewer, "second")

    mine = Client().get("/api/v1/tokens/", **as_viewer).json()["results"]
    assert sorted(token["name"] for token in mine) == ["script", "second"]
    assert {token["user"] for token in mine} == {"vera"}
    everyone = Client().get("/api/v1/tokens/", **as_admin).json()["results"]
    assert {token["user"] for token in everyone} == {"vera", "ada"}
    # The raw token and its hash never leave the server.
    for token in everyone:
        assert set(token) == {
            "id",
            "name",
            "prefix",
            "user",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        }


def test_a_revoked_token_is_refused_and_the_revoke_is_on_the_trail() -> None:
    viewer, as_viewer = holder("vera", "viewer")
    other, _ = holder("otto", "operator")
    script, raw = ApiToken.issue(viewer, "cron")
    others = ApiToken.objects.get(user=other)

    # Another holder's token is not found for a viewer, and stays usable.
    response = Client().post(f"/api/v1/tokens/{others.pk}/revoke/", **as_viewer)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    others.refresh_from_db()
    assert others.revoked_at is None

    response = Client().post(f"/api/v1/tokens/{script.pk}/revoke/", **as_viewer)
    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    refused = Client().get("/api/v1/jobs/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert refused.status_code == 401
    assert TrailEntry.objects.filter(action="api_token.revoked", actor=viewer).count() == 1
    # Revoking again changes nothing and records nothing.
    again = Client().post(f"/api/v1/tokens/{script.pk}/revoke/", **as_viewer)
    assert again.status_code == 200
    assert TrailEntry.objects.filter(action="api_token.revoked").count() == 1


def test_an_admin_unlocks_a_locked_out_sign_in_over_the_api() -> None:
    make_user("lee")
    browser = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        browser.post("/login/", {"username": "lee", "password": "wrong"})
    assert not browser.login(username="lee", password=PASSWORD, request=_request())

    _, as_admin = holder("ada", "admin")
    _, as_viewer = holder("vera", "viewer")
    assert Client().get("/api/v1/lockouts/", **as_viewer).status_code == 403
    (lockout,) = Client().get("/api/v1/lockouts/", **as_admin).json()["results"]
    assert lockout["username"] == "lee"
    assert lockout["failures"] >= settings.AXES_FAILURE_LIMIT

    response = Client().post(f"/api/v1/lockouts/{lockout['id']}/unlock/", **as_admin)
    assert response.status_code == 204
    assert browser.login(username="lee", password=PASSWORD, request=_request())
    assert TrailEntry.objects.filter(action="user.unlocked").count() == 1
    assert Client().get("/api/v1/lockouts/", **as_admin).json()["results"] == []
    missing = Client().post(f"/api/v1/lockouts/{lockout['id']}/unlock/", **as_admin)
    assert missing.status_code == 404


def _request() -> Any:
    from django.http import HttpRequest

    request = HttpRequest()
    request.META["REMOTE_ADDR"] = "127.0.0.1"
    return request
