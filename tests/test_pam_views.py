"""PAM pages and API: the sessions panel on an identity's page, check-out, check-in, reveal,
"My sessions", rotation by hand; permissions, CSRF, and the password shown on the reveal
answer only."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from accounts.models import ApiToken
from identities.models import Identity, IdentityType
from jobs.models import Job, JobType
from pam import services
from pam.models import AccessSession, CredentialState, RevealEvent
from tests import factories
from vault.backends import get_vault

pytestmark = pytest.mark.django_db

# Characters that HTML escaping changes, so a test cannot miss an escaped copy.
PASSWORD = "Man&ged-<Pa55>-9f2c"
MY_SESSIONS_URL = reverse("pam:my-sessions")


@pytest.fixture
def platform():
    return factories.make_platform("Workspace")


@pytest.fixture
def managed(platform) -> Identity:
    identity = factories.make_identity(
        platform=platform,
        identity_type=IdentityType.SHARED_CREDENTIAL_MANAGED,
        login="shared-ops@example.com",
        gws_user_id="100000000000000000001",
    )
    get_vault().write(identity.password_path, {"password": PASSWORD}, cas=0)
    return identity


@pytest.fixture
def external(platform) -> Identity:
    return factories.make_external_credential(platform, password=PASSWORD)


@pytest.fixture
def holder(client: Client):
    user = factories.make_pam_user("holder")
    client.force_login(user)
    return user


def detail_url(identity: Identity) -> str:
    return reverse("identities:detail", args=[identity.pk])


def check_out_url(identity: Identity) -> str:
    return reverse("pam:check-out", args=[identity.pk])


def check_in_url(session: AccessSession) -> str:
    return reverse("pam:check-in", args=[session.pk])


def reveal_url(session: AccessSession) -> str:
    return reverse("pam:reveal", args=[session.pk])


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def assert_no_password(html: str) -> None:
    assert PASSWORD not in html
    assert escape(PASSWORD) not in html


def login_as(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


# --- the panel on the identity page ---------------------------------------------------------


def test_panel_offers_check_out_to_those_allowed(client: Client, managed, holder) -> None:
    html = client.get(detail_url(managed)).content.decode()
    assert "Access sessions" in html
    assert f'action="{check_out_url(managed)}"' in html
    assert "At check-in its password is rotated." in html
    assert "Never checked out." in html

    viewer = login_as(factories.make_identity_viewer())
    html = viewer.get(detail_url(managed)).content.decode()
    assert "Access sessions" in html
    assert check_out_url(managed) not in html
    assert "Not checked out." in html


def test_no_panel_for_types_without_sessions(client: Client, platform, holder) -> None:
    identity = factories.make_identity(platform=platform, identity_type=IdentityType.API_KEY)
    html = client.get(detail_url(identity)).content.decode()
    assert "Access sessions" not in html
    assert "pam-check-out" not in html


def test_panel_shows_the_open_session_and_the_right_buttons(
    client: Client, managed, holder
) -> None:
    session = services.check_out(managed, actor=holder, reason="quarterly audit")
    html = client.get(detail_url(managed)).content.decode()
    assert "quarterly audit" in html
    assert f'action="{reveal_url(session)}"' in html
    assert f'action="{check_in_url(session)}"' in html
    assert check_out_url(managed) not in html

    other = login_as(factories.make_pam_user("other"))
    html = other.get(detail_url(managed)).content.decode()
    assert "quarterly audit" in html
    assert reveal_url(session) not in html
    assert check_in_url(session) not in html

    admin = login_as(factories.make_pam_admin())
    html = admin.get(detail_url(managed)).content.decode()
    assert reveal_url(session) not in html
    assert "Check in for holder" in html


def test_history_lists_sessions_with_their_reveals(client: Client, managed, holder) -> None:
    session = services.check_out(managed, actor=holder, reason="first")
    services.reveal_password(session, actor=holder)
    services.reveal_password(session, actor=holder)
    ended = services.check_in(session, actor=holder)

    html = client.get(detail_url(managed)).content.decode()
    assert 'id="pam-history"' in html
    assert "first" in html
    assert '<td class="num">2</td>' in html
    assert f"job #{ended.rotation_job_id}</a>" in html
    assert_no_password(html)


def test_a_failed_rotation_is_shown_with_its_error(client: Client, managed, holder) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    ended = services.check_in(session, actor=holder)
    assert ended.rotation_job is not None
    Job.objects.filter(pk=ended.rotation_job.pk).update(
        status="failed", error_message="Could not rotate the password of shared-ops@example.com"
    )
    html = client.get(detail_url(managed)).content.decode()
    assert "The last password rotation failed" in html
    assert "Could not rotate the password of shared-ops@example.com" in html


# --- check-out ------------------------------------------------------------------------------


def test_check_out_from_the_page(client: Client, managed, holder) -> None:
    response = client.post(check_out_url(managed), {"reason": "audit", "minutes": "15"})
    assert response.status_code == 302
    assert response["Location"] == detail_url(managed)
    session = AccessSession.objects.get()
    assert session.holder == holder
    assert session.expires_at - session.started_at == timedelta(minutes=15)
    assert any("Checked out shared-ops@example.com" in m for m in messages_of(response))


def test_check_out_form_errors_change_nothing(client: Client, managed, holder) -> None:
    response = client.post(check_out_url(managed), {"reason": "", "minutes": "61"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "This field is required." in html
    assert "Ensure this value is less than or equal to 60." in html
    assert not AccessSession.objects.exists()


def test_check_out_of_a_checked_out_credential_is_refused_on_the_page(
    client: Client, managed, holder
) -> None:
    services.check_out(managed, actor=factories.make_pam_user("first"), reason="audit")
    response = client.post(check_out_url(managed), {"reason": "me too"})
    assert response.status_code == 400
    assert "already checked out by first" in response.content.decode()
    assert AccessSession.objects.count() == 1


def test_check_out_of_a_type_without_sessions_is_refused(client: Client, platform, holder) -> None:
    identity = factories.make_identity(platform=platform, identity_type=IdentityType.API_KEY)
    response = client.post(check_out_url(identity), {"reason": "audit"})
    assert response.status_code == 400
    assert "which has no check-out" in response.content.decode()
    assert not AccessSession.objects.exists()


def test_check_out_needs_the_permission(client: Client, managed) -> None:
    client.force_login(factories.make_identity_viewer())
    assert client.post(check_out_url(managed), {"reason": "audit"}).status_code == 403
    assert client.get(check_out_url(managed)).status_code == 403
    anonymous = Client()
    response = anonymous.post(check_out_url(managed), {"reason": "audit"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not AccessSession.objects.exists()


def test_check_out_needs_csrf(managed) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(factories.make_pam_user())
    assert browser.post(check_out_url(managed), {"reason": "audit"}).status_code == 403
    assert not AccessSession.objects.exists()
    browser.get(detail_url(managed))
    token = browser.cookies["csrftoken"].value
    data = {"reason": "audit", "csrfmiddlewaretoken": token}
    assert browser.post(check_out_url(managed), data).status_code == 302
    assert AccessSession.objects.count() == 1


# --- reveal ---------------------------------------------------------------------------------


def test_reveal_shows_the_password_once_uncached_and_records_it(
    client: Client, managed, holder
) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    response = client.post(reveal_url(session), {"return_to": "identity"})

    assert response.status_code == 200
    html = response.content.decode()
    assert f'<code id="revealed-password">{escape(PASSWORD)}</code>' in html
    assert "This reveal was recorded" in html
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]
    (event,) = RevealEvent.objects.all()
    assert event.session == session
    assert event.user == holder

    assert client.get(reveal_url(session)).status_code == 405
    assert RevealEvent.objects.count() == 1


def test_reveal_by_another_user_is_refused(client: Client, managed, holder) -> None:
    session = services.check_out(managed, actor=factories.make_pam_user("first"), reason="x")
    response = client.post(reveal_url(session), {"return_to": "identity"})
    assert response.status_code == 403
    assert "only the holder can reveal" in response.content.decode()
    assert not RevealEvent.objects.exists()
    assert_no_password(client.get(detail_url(managed)).content.decode())


def test_reveal_after_check_in_is_refused(client: Client, managed, holder) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    services.check_in(session, actor=holder)
    response = client.post(reveal_url(session))
    assert response.status_code == 302
    assert response["Location"] == MY_SESSIONS_URL
    assert any("was checked in at" in m for m in messages_of(response))
    assert not RevealEvent.objects.exists()


def test_reveal_needs_the_permission_and_csrf(managed) -> None:
    user = factories.make_user("no-perm", perms=("identities.view_identity",))
    session = services.check_out(managed, actor=user, reason="audit")
    assert login_as(user).post(reveal_url(session)).status_code == 403

    holder = factories.make_pam_user("holder2")
    AccessSession.objects.filter(pk=session.pk).update(holder=holder)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(holder)
    assert browser.post(reveal_url(session)).status_code == 403
    assert not RevealEvent.objects.exists()


def test_the_password_appears_on_no_other_page(client: Client, managed, external, holder) -> None:
    admin = login_as(factories.make_user("root", superuser=True))
    session = services.check_out(managed, actor=holder, reason="audit")
    assert escape(PASSWORD) in client.post(reveal_url(session)).content.decode()
    open_external = services.check_out(external, actor=holder, reason="audit")
    services.reveal_password(open_external, actor=holder)
    ended = services.check_in(session, actor=holder)

    pages = [
        detail_url(managed),
        detail_url(external),
        MY_SESSIONS_URL,
        check_out_url(managed),
        reverse("identities:list"),
        reverse("jobs:detail", args=[ended.rotation_job_id]),
        reverse("jobs:list"),
        reverse("pam:record-rotation", args=[external.pk]),
    ]
    for url in pages:
        for browser in (client, admin):
            response = browser.get(url)
            assert response.status_code in (200, 403), url
            assert_no_password(response.content.decode())
    for url in (
        reverse("admin:pam_accesssession_changelist"),
        reverse("admin:pam_accesssession_change", args=[session.pk]),
    ):
        response = admin.get(url)
        assert response.status_code == 200, url
        assert_no_password(response.content.decode())


# --- check-in -------------------------------------------------------------------------------


def test_check_in_from_the_page_starts_the_rotation(client: Client, managed, holder) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    response = client.post(check_in_url(session), {"return_to": "identity"})
    assert response.status_code == 302
    assert response["Location"] == detail_url(managed)
    session.refresh_from_db()
    assert session.ended_at is not None
    job = Job.objects.get(job_type=JobType.CREDENTIAL_ROTATION)
    assert session.rotation_job == job
    assert any(f"being rotated (job #{job.pk})" in m for m in messages_of(response))
    assert client.get(check_in_url(session)).status_code == 405


def test_check_in_of_someone_elses_session_is_refused_to_a_non_admin(
    client: Client, managed, holder
) -> None:
    session = services.check_out(managed, actor=factories.make_pam_user("first"), reason="x")
    response = client.post(check_in_url(session), {"return_to": "identity"})
    assert response.status_code == 403
    assert "only they or an admin can check it in" in response.content.decode()
    session.refresh_from_db()
    assert session.ended_at is None
    assert not Job.objects.exists()


def test_an_admin_checks_in_someone_elses_session(managed, holder) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    admin = factories.make_pam_admin()
    response = login_as(admin).post(check_in_url(session), {"return_to": "identity"})
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.ended_by == admin


def test_check_in_needs_csrf(managed) -> None:
    holder = factories.make_pam_user()
    session = services.check_out(managed, actor=holder, reason="audit")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(holder)
    assert browser.post(check_in_url(session)).status_code == 403
    session.refresh_from_db()
    assert session.ended_at is None


def test_return_to_is_a_choice_not_a_url(client: Client, managed, holder) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    response = client.post(check_in_url(session), {"return_to": "https://evil.example/"})
    assert response["Location"] == MY_SESSIONS_URL


# --- external credentials: rotation due -----------------------------------------------------


def test_external_check_in_shows_rotation_due_and_records_the_new_password(
    client: Client, external, holder
) -> None:
    session = services.check_out(external, actor=holder, reason="audit")
    response = client.post(check_in_url(session), {"return_to": "identity"})
    assert any("rotated by hand" in m for m in messages_of(response))
    assert not Job.objects.exists()

    html = client.get(detail_url(external)).content.decode()
    assert "Rotation due — rotate by hand." in html
    # Only those allowed get the form's link.
    record_url = reverse("pam:record-rotation", args=[external.pk])
    assert record_url not in html
    assert client.post(record_url, {"password": "x"}).status_code == 403

    admin = login_as(factories.make_pam_admin())
    assert record_url in admin.get(detail_url(external)).content.decode()
    response = admin.post(record_url, {"password": ""})
    assert response.status_code == 400
    response = admin.post(record_url, {"password": "Hand-Set-Pa55-42"})
    assert response.status_code == 302
    assert get_vault().read(external.vault_path)["password"] == "Hand-Set-Pa55-42"
    html = admin.get(detail_url(external)).content.decode()
    assert "Rotation due" not in html
    assert "Last rotated by hand by pamadmin" in html
    assert "Hand-Set-Pa55-42" not in html
    assert not CredentialState.objects.get(identity=external).rotation_due


def test_a_refused_hand_rotation_never_echoes_the_password(external, holder) -> None:
    services.check_out(external, actor=holder, reason="audit")
    admin = login_as(factories.make_pam_admin())
    url = reverse("pam:record-rotation", args=[external.pk])
    response = admin.post(url, {"password": "Typed-Pa55-77"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "check it in before recording a new password" in html
    assert "Typed-Pa55-77" not in html
    assert get_vault().current_version(external.vault_path) == 1


# --- My sessions ----------------------------------------------------------------------------


def test_my_sessions_lists_only_ones_own(client: Client, managed, external, holder) -> None:
    mine = services.check_out(managed, actor=holder, reason="mine")
    services.check_out(external, actor=factories.make_pam_user("someone"), reason="theirs")
    response = client.get(MY_SESSIONS_URL)
    assert response.status_code == 200
    assert [s.pk for s in response.context["page"].sessions] == [mine.pk]
    html = response.content.decode()
    assert "mine" in html
    assert "theirs" not in html
    assert f'action="{reveal_url(mine)}"' in html
    assert f'action="{check_in_url(mine)}"' in html
    assert 'aria-current="page">My sessions</a>' in html


def test_my_sessions_pages_by_keyset(client: Client, platform, holder, settings) -> None:
    settings.PAM_SESSION_PAGE_SIZE = 2
    sessions = []
    for n in range(5):
        identity = factories.make_identity(
            platform=platform, identity_type=IdentityType.SHARED_CREDENTIAL_EXTERNAL
        )
        session = services.check_out(identity, actor=holder, reason=f"r{n}")
        sessions.append(services.check_in(session, actor=holder))
    newest_first = [s.pk for s in reversed(sessions)]

    seen: list[int] = []
    url: str | None = MY_SESSIONS_URL
    while url:
        response = client.get(url)
        seen += [s.pk for s in response.context["page"].sessions]
        url = response.context["next_url"]
    assert seen == newest_first

    assert client.get(MY_SESSIONS_URL + "?before=x").status_code == 400


def test_my_sessions_needs_the_check_out_permission(managed) -> None:
    assert Client().get(MY_SESSIONS_URL).status_code == 302
    nobody = login_as(factories.make_user("nobody"))
    assert nobody.get(MY_SESSIONS_URL).status_code == 403


def test_expired_session_shows_as_being_checked_in(client: Client, managed, holder) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    past = timezone.now() - timedelta(minutes=1)
    AccessSession.objects.filter(pk=session.pk).update(
        started_at=past - timedelta(minutes=30), expires_at=past
    )
    html = client.get(MY_SESSIONS_URL).content.decode()
    assert "expired; being checked in" in html
    assert reveal_url(session) not in html


# --- API ------------------------------------------------------------------------------------


def api_check_out_url(identity: Identity) -> str:
    return reverse("pam:api-check-out", args=[identity.pk])


def bearer(user) -> dict[str, str]:
    _, raw = ApiToken.issue(user, "tests")
    return {"Authorization": f"Bearer {raw}"}


def post_json(browser: Client, url: str, body: object = None, headers=None):
    return browser.post(url, body or {}, content_type="application/json", headers=headers or {})


def test_api_check_out_check_in(managed) -> None:
    holder = factories.make_pam_user()
    api = Client(enforce_csrf_checks=True)
    headers = bearer(holder)

    response = post_json(
        api, api_check_out_url(managed), {"reason": "audit", "minutes": 5}, headers
    )
    assert response.status_code == 201
    body = response.json()
    session = AccessSession.objects.get()
    assert body["id"] == session.pk
    assert body["holder"] == holder.username
    assert body["identity"]["login"] == "shared-ops@example.com"
    assert body["active"] is True
    assert body["rotation_job"] is None

    response = post_json(api, api_check_out_url(managed), {"reason": "again"}, headers)
    assert response.status_code == 409
    assert "already checked out by operator" in response.json()["detail"]

    url = reverse("pam:api-check-in", args=[session.pk])
    response = post_json(api, url, None, headers)
    assert response.status_code == 200
    body = response.json()
    assert body["end_reason"] == "checked_in"
    assert body["rotation_job"]["id"] == Job.objects.get().pk
    assert post_json(api, url, None, headers).status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": "  "}, "reason"),
        ({"reason": "audit", "minutes": "5"}, "minutes"),
        ({"reason": "audit", "minutes": True}, "minutes"),
        ({"reason": "audit", "password": "x"}, "password"),
    ],
)
def test_api_check_out_bad_body_is_400_naming_the_field(managed, body, field) -> None:
    api = Client()
    response = post_json(api, api_check_out_url(managed), body, bearer(factories.make_pam_user()))
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not AccessSession.objects.exists()


def test_api_check_out_refusals(platform, managed) -> None:
    headers = bearer(factories.make_pam_user())
    api = Client()
    response = post_json(api, api_check_out_url(managed), {"reason": "a", "minutes": 61}, headers)
    assert response.status_code == 400
    assert "from 1 to 60 minutes" in response.json()["detail"]
    human = factories.make_identity(platform=platform)
    response = post_json(api, api_check_out_url(human), {"reason": "a"}, headers)
    assert response.status_code == 400
    assert "which has no check-out" in response.json()["detail"]
    missing = reverse("pam:api-check-out", args=[999999])
    assert post_json(api, missing, {"reason": "a"}, headers).status_code == 404
    assert not AccessSession.objects.exists()


def test_api_auth_permissions_and_csrf(managed) -> None:
    url = api_check_out_url(managed)
    assert post_json(Client(), url, {"reason": "a"}).status_code == 401
    viewer = factories.make_identity_viewer()
    assert post_json(Client(), url, {"reason": "a"}, bearer(viewer)).status_code == 403

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(factories.make_pam_user())
    response = post_json(browser, url, {"reason": "a"})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    browser.get(detail_url(managed))
    csrf = {"X-CSRFToken": browser.cookies["csrftoken"].value}
    assert post_json(browser, url, {"reason": "a"}, csrf).status_code == 201
    assert Client().get(url, headers=bearer(viewer)).status_code == 405


def test_api_reveal(managed) -> None:
    holder = factories.make_pam_user()
    session = services.check_out(managed, actor=holder, reason="audit")
    url = reverse("pam:api-reveal", args=[session.pk])
    api = Client(enforce_csrf_checks=True)

    response = post_json(api, url, None, bearer(holder))
    assert response.status_code == 200
    assert response.json()["password"] == PASSWORD
    assert response.json()["recorded"] is True
    assert "no-store" in response["Cache-Control"]
    assert RevealEvent.objects.filter(session=session, user=holder).count() == 1

    other = factories.make_pam_user("other")
    response = post_json(api, url, None, bearer(other))
    assert response.status_code == 403
    assert "only the holder can reveal" in response.json()["detail"]
    assert PASSWORD not in response.content.decode()

    services.check_in(session, actor=holder)
    response = post_json(api, url, None, bearer(holder))
    assert response.status_code == 409
    assert PASSWORD not in response.content.decode()
    assert RevealEvent.objects.count() == 1
    assert api.get(url, headers=bearer(holder)).status_code == 405


def test_api_check_in_of_someone_elses_session(managed) -> None:
    holder = factories.make_pam_user()
    session = services.check_out(managed, actor=holder, reason="audit")
    url = reverse("pam:api-check-in", args=[session.pk])
    other = factories.make_pam_user("other")
    response = post_json(Client(), url, None, bearer(other))
    assert response.status_code == 403
    assert "only they or an admin" in response.json()["detail"]
    admin = factories.make_pam_admin()
    response = post_json(Client(), url, None, bearer(admin))
    assert response.status_code == 200
    assert response.json()["ended_by"] == "pamadmin"
    assert (
        post_json(
            Client(), reverse("pam:api-check-in", args=[999999]), None, bearer(admin)
        ).status_code
        == 404
    )
