"""Brute-force lockout and unlock, API token lifecycle, session limits, trail flood control,
the Content-Security-Policy header and `check --deploy` with the production example."""

import datetime as dt
import os
import re
import secrets
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from accounts.middleware import LAST_SEEN_AT, SIGNED_IN_AT
from accounts.models import ApiToken
from accounts.services import set_role, unlock
from tests.factories import PASSWORD, make_user
from tests.openbao import running_openbao
from trail.models import TrailEntry

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small_limits(settings) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    settings.TRAIL_ANONYMOUS_REFUSALS = 4
    cache.clear()


def with_role(username: str, role: str) -> User:
    user = make_user(username)
    set_role(user, role, actor=None)
    return user


def sign_in(client: Client, path: str, username: str, password: str) -> int:
    response = client.post(path, {"username": username, "password": password})
    return int(response.status_code)


# --- Brute force ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_wrong_passwords_lock_the_user_out_from_that_address(path: str) -> None:
    make_user("breakglass", superuser=True)
    client = Client()
    for _ in range(2):
        assert sign_in(client, path, "breakglass", "wrong") == 200  # the form again
    assert sign_in(client, path, "breakglass", "wrong") == 429  # the third: locked
    assert sign_in(client, path, "breakglass", PASSWORD) == 429
    assert "_auth_user_id" not in client.session
    # Another address is not locked: the lock is per user and address.
    other = Client(REMOTE_ADDR="10.9.9.9")
    assert sign_in(other, path, "breakglass", PASSWORD) == 302
    locked = TrailEntry.objects.filter(action="user.locked_out")
    assert locked.exists()
    assert {entry.target_label for entry in locked} == {"breakglass"}


def test_an_admin_sees_the_lockout_and_unlocks_it() -> None:
    with_role("ops", "operator")
    admin = with_role("chief", "admin")
    attacker = Client()
    for _ in range(3):
        sign_in(attacker, "/login/", "ops", "wrong")
    assert sign_in(attacker, "/login/", "ops", PASSWORD) == 429

    manager = Client()
    manager.force_login(admin)
    page = manager.get("/settings/users/").content.decode()
    assert "Locked out" in page
    unlock_url = re.search(r'action="(/settings/users/lockouts/\d+/unlock/)"', page)
    assert unlock_url is not None
    assert manager.post(unlock_url.group(1)).status_code == 302
    assert "Nobody is locked out" in manager.get("/settings/users/").content.decode()
    entry = TrailEntry.objects.get(action="user.unlocked")
    assert entry.actor_name == "chief"
    assert entry.target_label == "ops"

    assert sign_in(attacker, "/login/", "ops", PASSWORD) == 302


def test_unlocking_lifts_that_lockout_only_and_records_it() -> None:
    """The lock is per user and address: unlocking one leaves the same user from another
    address, and another user from the same address, locked out."""
    with_role("ops", "operator")
    with_role("dev", "operator")
    admin = with_role("chief", "admin")
    here, there = Client(), Client(REMOTE_ADDR="10.9.9.9")
    for client, username in ((here, "ops"), (there, "ops"), (here, "dev")):
        for _ in range(3):
            sign_in(client, "/login/", username, "wrong")
        assert sign_in(client, "/login/", username, PASSWORD) == 429

    unlock(AccessAttempt.objects.get(username="ops", ip_address="127.0.0.1"), actor=admin)

    assert sign_in(there, "/login/", "ops", PASSWORD) == 429
    assert sign_in(here, "/login/", "dev", PASSWORD) == 429
    assert sign_in(here, "/login/", "ops", PASSWORD) == 302
    entry = TrailEntry.objects.get(action="user.unlocked")
    assert entry.actor == admin
    assert entry.target_label == "ops"
    assert entry.detail == {"username": "ops", "address": "127.0.0.1"}


@pytest.mark.parametrize("typed", ["x" * 100_000, "nul\x00in the middle"])
def test_any_typed_user_name_is_a_refusal_not_an_error(typed: str) -> None:
    """The lockout table keeps 255 characters: a longer guess was a 500 (hostile-input suite)."""
    client = Client()
    for _ in range(3):
        assert sign_in(client, "/login/", typed, "wrong") in (200, 429)


def test_only_admins_unlock() -> None:
    operator = with_role("ops", "operator")
    for _ in range(3):
        sign_in(Client(), "/login/", "ops", "wrong")
    client = Client()
    client.force_login(operator)
    assert client.post("/settings/users/lockouts/1/unlock/").status_code == 403


def test_api_token_guesses_lock_out_the_address() -> None:
    user = with_role("robot", "viewer")
    _, raw = ApiToken.issue(user, "ci")
    client = Client()
    for _ in range(3):
        response = client.get("/api/v1/jobs/", HTTP_AUTHORIZATION="Bearer ah_guess")
        assert response.status_code in (401, 429)
    response = client.get("/api/v1/jobs/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["detail"] == (
        "too many invalid API tokens from this address; try again later"
    )
    # Guesses of a name nobody has leave no username on the trail.
    assert not TrailEntry.objects.filter(target_label="(api token)").exists()


def test_api_token_guesses_do_not_lock_out_password_sign_ins_from_the_address() -> None:
    """The guesses are counted under "(api token)", a name no user has, and the lockout is
    listed under it for the admin who unlocks it; a person signing in from the same address
    (one office, one NAT) is not locked out by a broken script."""
    make_user("ada")
    client = Client()
    for _ in range(3):
        client.get("/api/v1/jobs/", HTTP_AUTHORIZATION="Bearer ah_guess")
    assert client.get("/api/v1/jobs/", HTTP_AUTHORIZATION="Bearer ah_guess").status_code == 429
    assert sign_in(Client(), "/login/", "ada", PASSWORD) == 302
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["(api token)"]


# --- API tokens -----------------------------------------------------------------------------


def api_status(raw: str) -> int:
    return int(Client().get("/api/v1/jobs/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code)


def test_expired_revoked_and_deactivated_tokens_are_refused() -> None:
    user = with_role("robot", "viewer")
    _, fresh = ApiToken.issue(user, "fresh", expires_at=timezone.now() + dt.timedelta(days=1))
    _, stale = ApiToken.issue(user, "stale", expires_at=timezone.now() - dt.timedelta(seconds=1))
    revoked, gone = ApiToken.issue(user, "revoked")
    revoked.revoked_at = timezone.now()
    revoked.save()
    assert api_status(fresh) == 200
    assert ApiToken.objects.get(name="fresh").last_used_at is not None
    assert api_status(stale) == 401
    assert api_status(gone) == 401
    user.is_active = False
    user.save()
    assert api_status(fresh) == 401


def test_holders_list_and_revoke_their_own_tokens_and_admins_everyones() -> None:
    operator = with_role("ops", "operator")
    other = with_role("someone", "viewer")
    admin = with_role("chief", "admin")
    mine, raw = ApiToken.issue(operator, "deploy")
    theirs, their_raw = ApiToken.issue(other, "report")
    client = Client()
    client.force_login(operator)
    page = client.get("/settings/api-tokens/").content.decode()
    assert "deploy" in page
    assert "report" not in page
    assert raw not in page
    assert client.post(f"/settings/api-tokens/{theirs.pk}/revoke/").status_code == 404
    assert client.post(f"/settings/api-tokens/{mine.pk}/revoke/").status_code == 302
    assert api_status(raw) == 401
    assert TrailEntry.objects.filter(action="api_token.revoked", actor_name="ops").exists()

    client.force_login(admin)
    assert "report" in client.get("/settings/api-tokens/").content.decode()
    assert client.post(f"/settings/api-tokens/{theirs.pk}/revoke/").status_code == 302
    assert api_status(their_raw) == 401


def test_tokens_from_the_command_line() -> None:
    user = with_role("robot", "viewer")
    out = StringIO()
    call_command("create_api_token", "robot", "nightly", "--expires-days", "7", stdout=out)
    raw = out.getvalue().strip()
    token = ApiToken.objects.get(user=user, name="nightly")
    assert token.expires_at is not None
    assert dt.timedelta(days=6) < token.expires_at - timezone.now() <= dt.timedelta(days=7)
    listing = StringIO()
    call_command("list_api_tokens", stdout=listing)
    assert "nightly" in listing.getvalue()
    assert "active" in listing.getvalue()
    assert raw not in listing.getvalue()
    call_command("revoke_api_token", str(token.pk), stdout=StringIO())
    assert api_status(raw) == 401
    listing = StringIO()
    call_command("list_api_tokens", "robot", stdout=listing)
    assert "revoked" in listing.getvalue()


# --- Sessions -------------------------------------------------------------------------------


def signed_in_client(settings) -> Client:
    settings.SESSION_IDLE_TIMEOUT = 30 * 60
    settings.SESSION_COOKIE_AGE = 12 * 3600
    client = Client()
    client.force_login(with_role("vera", "viewer"))
    assert client.get("/settings/jobs/").status_code == 200
    return client


def age_session(client: Client, key: str, seconds: float) -> None:
    session = client.session
    session[key] = time.time() - seconds
    session.save()


def test_an_idle_session_is_signed_out(settings) -> None:
    client = signed_in_client(settings)
    age_session(client, LAST_SEEN_AT, 29 * 60)
    assert client.get("/settings/jobs/").status_code == 200
    age_session(client, LAST_SEEN_AT, 31 * 60)
    response = client.get("/settings/jobs/?status=failed")
    assert response.status_code == 302
    # Back to the page they were on once signed in again.
    assert response["Location"] == "/login/?next=/settings/jobs/%3Fstatus%3Dfailed"
    assert client.get("/settings/jobs/").status_code == 302


def test_a_page_refreshing_itself_does_not_keep_the_session_alive(settings) -> None:
    client = signed_in_client(settings)
    age_session(client, LAST_SEEN_AT, 29 * 60)
    poll = {"HX-Request": "true", "HX-Trigger": "jobs-live"}
    assert client.get("/settings/jobs/", headers=poll).status_code == 200
    assert time.time() - client.session[LAST_SEEN_AT] > 28 * 60
    age_session(client, LAST_SEEN_AT, 31 * 60)
    assert client.get("/settings/jobs/", headers=poll).status_code == 302


def test_a_persons_htmx_request_keeps_the_session_alive(settings) -> None:
    """Filtering a list or pressing a button through htmx is the person at work, as a page
    load is; only a live region's own refresh ("…-live") is not."""
    client = signed_in_client(settings)
    for headers in (
        {"HX-Request": "true", "HX-Trigger": "job-filters"},
        {"HX-Request": "true"},
        {"HX-Trigger": "jobs-live"},  # not sent by htmx: a page load
    ):
        age_session(client, LAST_SEEN_AT, 29 * 60)
        assert client.get("/settings/jobs/", headers=headers).status_code == 200
        assert time.time() - client.session[LAST_SEEN_AT] < 60


def test_a_session_from_before_the_session_clock_gets_one(settings) -> None:
    """Sessions signed in by a version without these keys (an upgrade) are served, and their
    clock starts now."""
    client = signed_in_client(settings)
    session = client.session
    del session[SIGNED_IN_AT], session[LAST_SEEN_AT]
    session.save()
    before = time.time()
    assert client.get("/settings/jobs/").status_code == 200
    assert client.session[SIGNED_IN_AT] >= before
    assert client.session[LAST_SEEN_AT] >= before


def test_a_session_ends_after_the_absolute_limit(settings) -> None:
    client = signed_in_client(settings)
    age_session(client, SIGNED_IN_AT, 12 * 3600 + 1)
    assert client.get("/settings/jobs/").status_code == 302


# --- Trail flood control --------------------------------------------------------------------


def test_a_failed_sign_in_keeps_only_a_username_that_exists() -> None:
    make_user("ada")
    sign_in(Client(), "/login/", "ada", "wrong")
    sign_in(Client(), "/login/", "hunter2-typed-in-the-wrong-box", "wrong")
    labels = list(
        TrailEntry.objects.filter(action="user.sign_in_failed").values_list(
            "target_label", flat=True
        )
    )
    assert sorted(labels) == ["", "ada"]
    assert not TrailEntry.objects.filter(detail__username="hunter2-typed-in-the-wrong-box")


def test_anonymous_refusals_from_one_address_are_counted_not_recorded_each() -> None:
    client = Client()
    for attempt in range(30):
        sign_in(client, "/login/", f"nobody-{attempt}", "wrong")
    rows = TrailEntry.objects.filter(action="user.sign_in_failed")
    assert rows.count() == 5  # four refusals, then one row saying the rest are only counted
    assert "counted, not recorded" in rows.order_by("-id")[0].detail["suppressed"]
    sign_in(Client(REMOTE_ADDR="10.1.1.1"), "/login/", "nobody", "wrong")
    assert rows.count() == 6


# --- Browser hardening ----------------------------------------------------------------------


def test_pages_carry_the_content_security_policy(client: Client) -> None:
    response = client.get("/login/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response["X-Frame-Options"] == "DENY"


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+=|javascript:", re.I)
STYLE = re.compile(r"\sstyle=|<style", re.I)


def test_no_template_has_inline_script_or_style_attributes() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in (ROOT / "templates").rglob("*.html")
        for match in [
            INLINE_SCRIPT.search(path.read_text()),
            re.search(r"\sstyle=", path.read_text()),
        ]
        if match
    ]
    assert not found, found


def test_check_deploy_is_clean_with_the_production_example() -> None:
    # The example's vault is a real one here (OpenBao with our AppRole), since the vault checks
    # log in and read the mount: an unreachable example host would be a warning of its own.
    openbao = running_openbao()
    server = next(openbao)
    try:
        result = run_check_deploy(
            VAULT_ADDR=server.url,
            VAULT_ROLE_ID=server.role_id,
            VAULT_SECRET_ID=server.new_secret_id(),
        )
    finally:
        next(openbao, None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def run_check_deploy(**overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "ACCESSHIVE_", "DATABASE_", "CELERY_", "VAULT_"))
    }
    for line in (ROOT / "docs" / "production.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = re.sub(r"<[^>]*>", "placeholder", value)
    env["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
    env.update(overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
