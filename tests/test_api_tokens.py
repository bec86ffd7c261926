"""API tokens: `manage.py create_api_token` issues one a script can use at once, only its
hash is kept, and a token stops working when its user is deactivated or it is deleted."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken, hash_token
from accounts.services import deactivate_user, revoke_api_token, set_role
from jobs.models import JobStatus
from tests import factories
from trail.models import TrailEntry

pytestmark = pytest.mark.django_db

LIST_URL = reverse("jobs:api-list")


def create_api_token(*args: str) -> str:
    out = StringIO()
    call_command("create_api_token", *args, stdout=out)
    return out.getvalue().strip()


def admin(username: str = "ada") -> User:
    user = factories.make_user(username)
    set_role(user, "admin", actor=None)
    return user


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def test_the_printed_token_works_and_only_its_hash_is_stored(client: Client) -> None:
    user = admin()
    raw = create_api_token("ada", "deploy-bot")

    response = client.get(LIST_URL, headers=bearer(raw))
    assert response.status_code == 200
    assert response.json()["results"] == []
    (token,) = ApiToken.objects.filter(user=user)
    assert token.name == "deploy-bot"
    assert token.token_hash == hash_token(raw)
    assert raw not in {token.token_hash, token.prefix, token.name}
    assert token.prefix == raw[:8]  # shown to tell tokens apart
    # "ah_" lets secret scanners recognise a leaked token; 32 random bytes follow it.
    assert raw.startswith("ah_")
    assert len(raw.removeprefix("ah_")) >= 43
    assert token.last_used_at is not None


def test_each_run_prints_a_new_token_named_automation_by_default() -> None:
    admin()
    first, second = create_api_token("ada"), create_api_token("ada")
    assert first != second
    assert list(ApiToken.objects.values_list("name", flat=True)) == ["automation", "automation"]


def test_an_unknown_user_is_refused_and_nothing_is_issued() -> None:
    with pytest.raises(CommandError, match="no user named 'ghost'"):
        create_api_token("ghost")
    assert not ApiToken.objects.exists()


def test_a_deactivated_users_token_is_refused(client: Client) -> None:
    user = admin()
    raw = create_api_token("ada")
    failed = factories.make_job(status=JobStatus.FAILED)
    User.objects.filter(pk=user.pk).update(is_active=False)

    for response in (
        client.get(LIST_URL, headers=bearer(raw)),
        client.post(reverse("jobs:api-retry", args=[failed.pk]), headers=bearer(raw)),
    ):
        assert response.status_code == 401
        assert response.json()["detail"] == "invalid API token"
    failed.refresh_from_db()
    assert failed.status == JobStatus.FAILED
    assert ApiToken.objects.get(user=user).last_used_at is None


def test_a_deactivated_superusers_token_is_refused(client: Client) -> None:
    root = factories.make_user("root", superuser=True)
    raw = create_api_token("root")
    assert client.get(LIST_URL, headers=bearer(raw)).status_code == 200
    User.objects.filter(pk=root.pk).update(is_active=False)
    response = client.get(LIST_URL, headers=bearer(raw))
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid API token"


def test_a_deleted_token_is_refused(client: Client) -> None:
    admin()
    raw = create_api_token("ada")
    ApiToken.objects.all().delete()
    response = client.get(LIST_URL, headers=bearer(raw))
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid API token"


def test_a_token_is_not_a_session_outside_the_api(client: Client) -> None:
    admin()
    raw = create_api_token("ada")
    response = client.get(reverse("jobs:list"), headers=bearer(raw))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_deactivating_a_user_revokes_their_tokens_in_use_and_nobody_elses(client: Client) -> None:
    ada, bob = admin("ada"), admin("bob")
    in_use = [create_api_token("ada", name) for name in ("deploy", "report")]
    earlier, _ = ApiToken.issue(ada, "old")
    revoked_at = timezone.now() - timedelta(days=3)
    ApiToken.objects.filter(pk=earlier.pk).update(revoked_at=revoked_at)
    bobs = create_api_token("bob")

    outcome = deactivate_user(ada, actor=bob, reason="left the company")

    assert outcome == {"deactivated": True, "tokens_revoked": 2, "role_removed": True}
    for raw in in_use:
        assert client.get(LIST_URL, headers=bearer(raw)).status_code == 401
    assert ApiToken.objects.get(pk=earlier.pk).revoked_at == revoked_at  # not re-stamped
    assert ApiToken.objects.filter(user=ada, revoked_at__isnull=True).count() == 0
    # Revoked, not deleted: the list still shows them, as revoked.
    assert [t.state for t in ApiToken.objects.filter(user=ada)] == ["revoked"] * 3
    assert client.get(LIST_URL, headers=bearer(bobs)).status_code == 200
    assert ApiToken.objects.get(user=bob).revoked_at is None
    # Again: nothing left to revoke.
    assert deactivate_user(ada, actor=bob)["tokens_revoked"] == 0


def test_a_deactivated_user_can_no_longer_sign_in_or_act_and_it_is_recorded() -> None:
    ada, bob = admin("ada"), admin("bob")
    browser = Client()
    browser.force_login(ada)
    assert browser.get(reverse("jobs:list")).status_code == 200
    assert ada.has_perm("jobs.view_job")  # the role is read, and kept on the object

    outcome = deactivate_user(ada, actor=bob)  # no token in use, no reason given

    assert outcome == {"deactivated": True, "tokens_revoked": 0, "role_removed": True}
    stored = User.objects.get(pk=ada.pk)
    assert not stored.is_active
    assert not stored.has_usable_password()
    assert browser.get(reverse("jobs:list")).status_code == 302  # the open session ended
    sign_in = Client().post(reverse("login"), {"username": "ada", "password": factories.PASSWORD})
    assert sign_in.status_code == 200  # the form again
    assert not ada.has_perm("jobs.view_job")  # the caller's object forgets the role too
    [entry] = TrailEntry.objects.filter(action="user.deactivated")
    assert entry.actor == bob
    assert (entry.target_type, entry.target_id, entry.target_label) == (
        "auth.user",
        str(ada.pk),
        "ada",
    )
    assert entry.detail == {
        "reason": "",
        "deactivated": True,
        "tokens_revoked": 0,
        "role_removed": True,
    }
    [removed] = TrailEntry.objects.filter(action="user.role_changed", actor=bob)
    assert removed.detail == {"role": "", "previous": "admin"}


def test_revoking_a_token_refuses_it_and_no_other_once(client: Client) -> None:
    ada, bob = admin("ada"), admin("bob")
    token, raw = ApiToken.issue(ada, "deploy")
    _, other = ApiToken.issue(ada, "report")
    _, bobs = ApiToken.issue(bob, "cli")

    assert revoke_api_token(token, actor=bob) is True

    assert client.get(LIST_URL, headers=bearer(raw)).status_code == 401
    for still_in_use in (other, bobs):
        assert client.get(LIST_URL, headers=bearer(still_in_use)).status_code == 200
    revoked_at = ApiToken.objects.get(pk=token.pk).revoked_at
    assert revoke_api_token(token, actor=bob) is False  # revoked already: left as it was
    assert ApiToken.objects.get(pk=token.pk).revoked_at == revoked_at
    [entry] = TrailEntry.objects.filter(action="api_token.revoked")
    assert entry.actor == bob
    assert (entry.target_type, entry.target_id, entry.target_label) == (
        "accounts.apitoken",
        str(token.pk),
        f"deploy ({token.prefix}…) of ada",
    )


def test_a_script_posts_with_its_token_and_no_csrf_token() -> None:
    """A browser never sends the bearer token on its own, so a forged cross-site request
    cannot carry it: a script's POST needs no CSRF token, as a browser form's would."""
    admin()
    raw = create_api_token("ada")
    failed = factories.make_job(status=JobStatus.FAILED)
    script = Client(enforce_csrf_checks=True)
    response = script.post(reverse("jobs:api-retry", args=[failed.pk]), headers=bearer(raw))
    assert response.status_code in (200, 202)
    failed.refresh_from_db()
    assert failed.status != JobStatus.FAILED
