"""Settings > Users: who may see it, changing a role and its rules, and what each role grants."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import queries
from accounts.models import UserRole
from accounts.roles import ROLE_PERMISSIONS, Role
from accounts.services import RoleChangeRefusedError, change_role, role_of, set_role
from jobs.models import JobStatus
from tests import factories
from trail.models import TrailEntry

pytestmark = pytest.mark.django_db

USERS_URL = reverse("accounts:users")


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record job messages instead of publishing them, so no test touches a broker."""
    calls: list[int] = []
    monkeypatch.setattr("jobs.services.send", lambda job_id, **kwargs: calls.append(job_id))
    return calls


def user_with_role(username: str, role: str) -> User:
    user = factories.make_user(username)
    if role:
        set_role(user, role, actor=None)
    return user


def role_url(user: User) -> str:
    return reverse("accounts:set-role", args=[user.pk])


@pytest.fixture
def admin(client: Client) -> User:
    user = user_with_role("ada", "admin")
    client.force_login(user)
    return user


def role_changes() -> list[TrailEntry]:
    return list(TrailEntry.objects.filter(action="user.role_changed", actor__isnull=False))


# --- the list -------------------------------------------------------------------------------


def test_admin_sees_every_user_with_role_and_sign_in(client: Client, admin: User) -> None:
    User.objects.filter(pk=admin.pk).update(last_login=timezone.now() - timedelta(hours=1))
    operator = user_with_role("otto", "operator")
    operator.first_name, operator.last_name = "Otto", "Normal"
    operator.save()
    saml = User.objects.create_user("sam", "sam@example.com")  # no password: SAML made it
    factories.make_user("root", superuser=True)
    inactive = user_with_role("ivy", "viewer")
    inactive.is_active = False
    inactive.save()

    response = client.get(USERS_URL)
    assert response.status_code == 200
    rows = {row.username: row for row in response.context["page"].users}
    assert list(rows) == ["ada", "ivy", "otto", "root", "sam"]
    assert rows["ada"].role_label == "Admin"
    assert rows["ada"].last_login is not None
    assert rows["otto"].role_label == "Operator"
    assert rows["otto"].name == "Otto Normal"
    assert rows["root"].role_label == "Admin (superuser)"
    assert rows["sam"].role_label == "No role — can't see anything"
    assert rows["sam"].email == "sam@example.com"
    assert (rows["sam"].sign_in, rows["otto"].sign_in) == ("SAML", "password")
    html = response.content.decode()
    assert "Admin (superuser)" in html
    assert "No role — can&#x27;t see anything" in html
    assert "(inactive)" in html
    assert role_url(operator) in html
    assert role_url(saml) in html
    assert role_url(User.objects.get(username="root")) not in html  # no form for a superuser
    assert not response.context["page"].truncated


def test_the_list_is_capped(
    client: Client, admin: User, monkeypatch: pytest.MonkeyPatch, django_assert_max_num_queries
) -> None:
    for name in ("bea", "cal", "dan"):
        factories.make_user(name)
    monkeypatch.setattr(queries, "USER_LIMIT", 2)
    # 8 for the users, and one for the lockouts shown below them.
    with django_assert_max_num_queries(9):
        response = client.get(USERS_URL)
    assert [row.username for row in response.context["page"].users] == ["ada", "bea"]
    assert "Showing the first 2 users by username." in response.content.decode()


@pytest.mark.parametrize("role", ["viewer", "operator", ""])
def test_only_admins_see_or_change_users(client: Client, role: str) -> None:
    target = user_with_role("tom", "viewer")
    client.force_login(user_with_role("pat", role))
    assert client.get(USERS_URL).status_code == 403
    assert client.post(role_url(target), {"role": "admin"}).status_code == 403
    assert role_of(target) == "viewer"
    assert not role_changes()


def test_superuser_manages_users(client: Client) -> None:
    target = user_with_role("tom", "viewer")
    client.force_login(factories.make_user("root", superuser=True))
    assert client.get(USERS_URL).status_code == 200
    assert client.post(role_url(target), {"role": "operator"}).status_code == 302
    assert role_of(target) == "operator"


def test_anonymous_is_sent_to_login(client: Client) -> None:
    target = user_with_role("tom", "viewer")
    for response in (client.get(USERS_URL), client.post(role_url(target), {"role": "admin"})):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert role_of(target) == "viewer"


# --- changing a role ------------------------------------------------------------------------


def test_admin_changes_a_role_and_it_holds_on_the_next_request(admin: User) -> None:
    job = factories.make_job(status=JobStatus.FAILED)
    retry_url = reverse("jobs:retry", args=[job.pk])
    tom = user_with_role("tom", "viewer")
    toms_browser = Client()
    toms_browser.force_login(tom)
    assert toms_browser.post(retry_url).status_code == 403

    admins_browser = Client()
    admins_browser.force_login(admin)
    response = admins_browser.post(role_url(tom), {"role": "operator"}, follow=True)
    assert response.redirect_chain == [(USERS_URL, 302)]
    assert "tom now has the role: Operator" in response.content.decode()
    assert role_of(tom) == "operator"
    assert toms_browser.post(retry_url).status_code == 302  # his very next request

    [entry] = role_changes()
    assert entry.actor == admin
    assert entry.source == "web"
    assert (entry.target_type, entry.target_id, entry.target_label) == (
        "auth.user",
        str(tom.pk),
        "tom",
    )
    assert entry.detail == {"role": "operator", "previous": "viewer"}

    admins_browser.post(role_url(tom), {"role": "viewer"})
    other = factories.make_job(status=JobStatus.FAILED)
    assert toms_browser.post(reverse("jobs:retry", args=[other.pk])).status_code == 403


def test_setting_the_same_role_changes_nothing(client: Client, admin: User) -> None:
    tom = user_with_role("tom", "operator")
    response = client.post(role_url(tom), {"role": "operator"}, follow=True)
    assert "tom already has the role: Operator" in response.content.decode()
    assert not role_changes()


def test_admin_takes_a_role_away(client: Client, admin: User) -> None:
    tom = user_with_role("tom", "operator")
    response = client.post(role_url(tom), {"role": ""}, follow=True)
    assert "tom now has the role: No role — can&#x27;t see anything" in response.content.decode()
    assert role_of(tom) == ""
    assert not UserRole.objects.filter(user=tom).exists()
    [entry] = role_changes()
    assert entry.detail == {"role": "", "previous": "operator"}
    tom.refresh_from_db()
    assert tom.get_all_permissions() == set()


def test_an_unknown_role_is_a_400(client: Client, admin: User) -> None:
    tom = user_with_role("tom", "viewer")
    response = client.post(role_url(tom), {"role": "root"})
    assert response.status_code == 400
    assert role_of(tom) == "viewer"


def test_changing_a_role_needs_csrf(admin: User) -> None:
    tom = user_with_role("tom", "viewer")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin)
    assert browser.post(role_url(tom), {"role": "admin"}).status_code == 403
    assert role_of(tom) == "viewer"

    browser.get(USERS_URL)  # sets the CSRF cookie, as a browser would
    token = browser.cookies["csrftoken"].value
    response = browser.post(role_url(tom), {"role": "admin", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert role_of(tom) == "admin"


def test_changing_a_role_by_get_is_405_and_unknown_user_404(client: Client, admin: User) -> None:
    assert client.get(role_url(admin)).status_code == 405
    assert (
        client.post(reverse("accounts:set-role", args=[999999]), {"role": "viewer"}).status_code
        == 404
    )


def test_a_superusers_role_is_not_changed(client: Client, admin: User) -> None:
    root = factories.make_user("root", superuser=True)
    response = client.post(role_url(root), {"role": "viewer"}, follow=True)
    assert "root is a superuser" in response.content.decode()
    assert not UserRole.objects.filter(user=root).exists()
    assert role_of(root) == "admin"
    assert not role_changes()


def test_the_last_admin_cannot_demote_themselves(client: Client, admin: User) -> None:
    for role in ("operator", ""):
        response = client.post(role_url(admin), {"role": role}, follow=True)
        assert (
            "ada is the last admin; nobody could manage roles any more" in response.content.decode()
        )
        assert role_of(admin) == "admin"
    assert not role_changes()


def test_an_admin_may_step_down_while_another_remains(client: Client, admin: User) -> None:
    user_with_role("bob", "admin")
    response = client.post(role_url(admin), {"role": "operator"}, follow=True)
    assert response.redirect_chain[0] == ("/", 302)
    assert role_of(admin) == "operator"
    assert client.get(USERS_URL).status_code == 403  # no longer an admin


def test_an_inactive_admin_does_not_count_as_another_admin(admin: User) -> None:
    gone = user_with_role("gone", "admin")
    gone.is_active = False
    gone.save()
    with pytest.raises(ValueError, match="last admin"):
        change_role(admin, "viewer", actor=admin)


def test_other_roles_do_not_count_as_another_admin(admin: User) -> None:
    user_with_role("vera", "viewer")
    user_with_role("otto", "operator")
    with pytest.raises(ValueError, match="last admin"):
        change_role(admin, "operator", actor=admin)
    assert role_of(admin) == "admin"


def test_an_inactive_superuser_does_not_count_as_another_admin(admin: User) -> None:
    root = factories.make_user("root", superuser=True)
    User.objects.filter(pk=root.pk).update(is_active=False)
    with pytest.raises(ValueError, match="last admin"):
        change_role(admin, "viewer", actor=admin)
    assert role_of(admin) == "admin"


def test_a_role_change_holds_at_once_for_the_same_user_object(admin: User) -> None:
    """A request that changes its own user's role sees the new role for the rest of it."""
    otto = user_with_role("otto", "operator")
    assert otto.has_perm("jobs.retry_job")  # the role is read, and kept on the object
    set_role(otto, "viewer", actor=admin)
    assert not otto.has_perm("jobs.retry_job")
    assert otto.has_perm("jobs.view_job")
    change_role(otto, "", actor=admin)
    assert not otto.has_perm("jobs.view_job")


def test_a_superuser_counts_as_another_admin(admin: User) -> None:
    factories.make_user("root", superuser=True)
    assert change_role(admin, "viewer", actor=admin)
    assert role_of(admin) == "viewer"


def test_each_role_change_is_recorded_on_the_user_it_changed(admin: User) -> None:
    """The trail names the user changed, the role before (none is "") and after, and who
    changed it; taking away a role nobody has changes and records nothing."""
    tom = factories.make_user("tom")
    assert set_role(tom, "viewer", actor=admin)
    assert change_role(tom, "", actor=admin)
    assert not change_role(tom, "", actor=admin)
    assert [
        (entry.actor, entry.target_type, entry.target_id, entry.target_label, entry.detail)
        for entry in TrailEntry.objects.filter(action="user.role_changed").order_by("pk")
        if entry.target_id == str(tom.pk)
    ] == [
        (admin, "auth.user", str(tom.pk), "tom", {"role": "viewer", "previous": ""}),
        (admin, "auth.user", str(tom.pk), "tom", {"role": "", "previous": "viewer"}),
    ]


def test_a_refused_role_change_says_what_to_do(admin: User) -> None:
    with pytest.raises(RoleChangeRefusedError) as last:
        change_role(admin, "viewer", actor=admin)
    assert str(last.value) == (
        "ada is the last admin; nobody could manage roles any more. Make someone else an admin "
        "first"
    )
    root = factories.make_user("root", superuser=True)
    with pytest.raises(RoleChangeRefusedError) as superuser:
        change_role(root, "viewer", actor=admin)
    assert str(superuser.value) == (
        "root is a superuser, an admin by Django's superuser flag; their role cannot be "
        "changed here"
    )


# --- what each role grants ------------------------------------------------------------------


def permissions_of(user: User) -> set[str]:
    """As a request would see them: the user loaded afresh."""
    return User.objects.get(pk=user.pk).get_all_permissions()


def test_a_viewer_reads_and_changes_nothing() -> None:
    viewer = user_with_role("vera", "viewer")
    assert permissions_of(viewer) == ROLE_PERMISSIONS[Role.VIEWER]
    fresh = User.objects.get(pk=viewer.pk)
    assert fresh.has_perm("jobs.view_job")
    assert fresh.has_perm("trail.view_trailentry")
    assert not fresh.has_perm("jobs.retry_job")
    assert not fresh.has_perm("jobs.cancel_job")
    assert not fresh.has_perm("identities.add_identity")


def test_an_operator_acts_on_jobs_but_changes_no_settings() -> None:
    operator = user_with_role("olga", "operator")
    assert permissions_of(operator) == ROLE_PERMISSIONS[Role.OPERATOR]
    fresh = User.objects.get(pk=operator.pk)
    assert fresh.has_perms(["jobs.view_job", "jobs.retry_job", "jobs.cancel_job"])
    assert fresh.has_perm("directory.sync_identitysource")
    assert not fresh.has_perm("identities.add_identity")
    assert not fresh.has_perm("accounts.change_userrole")


def test_an_admin_has_everything_a_role_grants() -> None:
    admin = user_with_role("ada", "admin")
    assert permissions_of(admin) == ROLE_PERMISSIONS[Role.ADMIN]
    fresh = User.objects.get(pk=admin.pk)
    assert fresh.has_perms(["identities.add_identity", "accounts.change_userrole"])
    assert fresh.has_perms(ROLE_PERMISSIONS[Role.OPERATOR])
    # The role grants its list, not Django's every permission as a superuser has.
    assert not fresh.has_perm("auth.delete_user")


def test_a_user_without_a_role_has_nothing() -> None:
    nobody = factories.make_user("nobody")
    assert permissions_of(nobody) == set()
    assert not User.objects.get(pk=nobody.pk).has_perm("jobs.view_job")


def test_an_inactive_user_has_nothing_whatever_their_role() -> None:
    admin = user_with_role("ada", "admin")
    User.objects.filter(pk=admin.pk).update(is_active=False)
    assert permissions_of(admin) == set()
    assert not User.objects.get(pk=admin.pk).has_perm("jobs.view_job")
