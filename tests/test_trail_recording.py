"""What goes on the admin audit trail: each action done through the real pages and API, with
who did it, from where (web, api, system) and which address; sign-ins; and no secret in
any entry."""

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken
from directory.models import IdentitySource, JmlRule
from identities.models import Identity, IdentityProvider, IdentityType, Platform
from imports.models import ImportBatch
from jobs.context import attempt_context
from jobs.models import Job, JobType
from pam import services as pam_services
from pam.models import AccessSession
from policies.models import Action, Policy, PolicyKind, Violation
from tests import factories
from tests.inline import deliver
from tests.test_directory_views import LDAP_FORM
from trail.actions import ACTIONS, UnknownActionError
from trail.models import TrailEntry
from trail.services import SecretInDetailError, record

pytestmark = pytest.mark.django_db

IP = "198.51.100.23"
API_IP = "2001:db8::17"
SECRET = "tr41l-s3cret-9b7e"


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Job messages are not published: no test here needs a broker."""
    monkeypatch.setattr("jobs.services.send", lambda job_id, **kwargs: None)


def person(username: str, role: str) -> User:
    from accounts.services import set_role

    user = factories.make_user(username)
    set_role(user, role, actor=None)
    return user


@pytest.fixture
def admin() -> User:
    return person("alice", "admin")


@pytest.fixture
def web(admin: User) -> Client:
    return browser(admin)


@pytest.fixture
def api(admin: User) -> Client:
    _, raw = ApiToken.issue(admin, "trail tests")
    return Client(REMOTE_ADDR=API_IP, headers={"Authorization": f"Bearer {raw}"})


@pytest.fixture
def gws() -> Platform:
    return factories.make_platform("Workspace")


def browser(user: User, ip: str = IP) -> Client:
    client = Client(REMOTE_ADDR=ip)
    client.force_login(user)
    return client


def post_json(client: Client, url: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(url, json.dumps(body or {}), content_type="application/json")


def only(action: str) -> TrailEntry:
    (entry,) = TrailEntry.objects.filter(action=action)
    return entry


def assert_by(entry: TrailEntry, user: User | None, source: str, ip: str | None = IP) -> None:
    name = user.get_username() if user is not None else ""
    assert (entry.actor, entry.actor_name, entry.source, entry.source_ip) == (
        user,
        name,
        source,
        ip,
    )


def trail_text() -> str:
    """Every column of every entry, as the database holds them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT t::text FROM trail_trailentry t")
        return "\n".join(row[0] for row in cursor.fetchall())


# --- identities, platforms, identity providers ----------------------------------------------


def test_identity_created_on_the_page_and_through_the_api(web, api, admin, gws) -> None:
    data = factories.identity_form_data(IdentityType.API_KEY, gws, SECRET)
    url = reverse("identities:create", args=[IdentityType.API_KEY])
    assert web.post(url, data).status_code == 302
    entry = only("identity.created")
    identity = Identity.objects.get()
    assert_by(entry, admin, "web")
    assert (entry.target_type, entry.target_id) == ("identities.identity", str(identity.pk))
    assert entry.target_label == str(identity)
    assert entry.detail == {"type": "api_key", "platform": "Workspace"}

    body = {
        "type": IdentityType.OAUTH_CLIENT,
        **factories.identity_form_data(IdentityType.OAUTH_CLIENT, gws, SECRET),
    }
    assert post_json(api, reverse("identities:api-list"), body).status_code == 201
    entry = TrailEntry.objects.filter(action="identity.created").latest("id")
    assert_by(entry, admin, "api", API_IP)
    assert entry.detail["type"] == "oauth_client"


def test_no_secret_on_the_trail_for_any_secret_bearing_type(web, gws) -> None:
    for identity_type in IdentityType.values:
        data = factories.identity_form_data(identity_type, gws, SECRET)
        response = web.post(reverse("identities:create", args=[identity_type]), data)
        assert response.status_code == 302, identity_type
    assert TrailEntry.objects.filter(action="identity.created").count() == len(IdentityType)
    assert SECRET not in trail_text()


def test_platform_created_and_changed_names_fields_and_the_key_flag_only(web, admin) -> None:
    key = json.dumps(factories.service_account_key(SECRET))
    data = {
        "name": "Acme Workspace",
        "kind": Platform.Kind.GOOGLE_WORKSPACE,
        "primary_domain": "acme.example",
        "customer_id": "C01abc",
        "admin_email": "admin@acme.example",
        "api_endpoint": "",
        "identity_provider": "",
        "service_account_key": key,
    }
    assert web.post(reverse("identities:platform-create"), data).status_code == 302
    platform = Platform.objects.get()
    created = only("platform.created")
    assert_by(created, admin, "web")
    assert created.detail == {"kind": "google_workspace", "key_stored": True}

    edit = reverse("identities:platform-edit", args=[platform.pk])
    renamed = {**data, "name": "Acme", "service_account_key": ""}
    assert web.post(edit, renamed).status_code == 302
    assert only("platform.changed").detail == {"changed": ["name"], "key_replaced": False}

    assert web.post(edit, {**renamed, "service_account_key": key}).status_code == 302
    latest = TrailEntry.objects.filter(action="platform.changed").latest("id")
    assert latest.detail == {"changed": [], "key_replaced": True}

    assert web.post(edit, renamed).status_code == 302  # saved as it was: nothing to record
    assert TrailEntry.objects.filter(action="platform.changed").count() == 2
    assert SECRET not in trail_text()


def test_identity_provider_created_and_changed_with_the_token_flag_only(web, admin) -> None:
    data = {"name": "Okta", "scim_base_url": "https://okta.example/scim/v2", "scim_token": SECRET}
    assert web.post(reverse("identities:provider-create"), data).status_code == 302
    provider = IdentityProvider.objects.get()
    assert_by(only("identity_provider.created"), admin, "web")

    edit = reverse("identities:provider-edit", args=[provider.pk])
    changed = {**data, "scim_base_url": "https://okta.example/scim/v3", "scim_token": SECRET + "2"}
    assert web.post(edit, changed).status_code == 302
    entry = only("identity_provider.changed")
    assert entry.detail == {
        "changed": ["scim_base_url"],
        "moved": {
            "scim_base_url": {
                "from": "https://okta.example/scim/v2",
                "to": "https://okta.example/scim/v3",
            }
        },
        "token_replaced": True,
    }
    assert SECRET not in trail_text()


def test_an_import_is_one_entry_and_its_rows_none(web, admin, gws) -> None:
    rows = [
        factories.import_row(IdentityType.API_KEY, gws, f"{SECRET}-{n}", name=f"key-{n}")
        for n in range(3)
    ]
    upload = SimpleUploadedFile("keys.csv", factories.import_csv(rows), content_type="text/csv")
    assert web.post(reverse("imports:upload"), {"file": upload}).status_code == 302
    batch = ImportBatch.objects.get()
    entry = only("import.started")
    assert_by(entry, admin, "web")
    assert (entry.target_type, entry.target_id) == ("imports.importbatch", str(batch.pk))
    assert entry.detail == {"batch": batch.pk, "file": "keys.csv", "rows": 3, "dry_run": False}

    assert batch.job is not None
    assert deliver(batch.job).status == "completed"
    assert Identity.objects.count() == 3
    assert not TrailEntry.objects.filter(action="identity.created").exists()
    assert SECRET not in trail_text()


# --- directory ------------------------------------------------------------------------------


def test_directory_source_rule_and_manual_sync(web, admin, gws) -> None:
    form = {**LDAP_FORM, "bind_password": SECRET}
    assert web.post(reverse("directory:source-create", args=["ldap"]), form).status_code == 302
    source = IdentitySource.objects.get()
    created = only("source.created")
    assert_by(created, admin, "web")
    assert created.detail == {"kind": "ldap", "bind_password_stored": True}

    edit = reverse("directory:source-edit", args=[source.pk])
    assert web.post(edit, {**form, "bind_password": "", "page_size": "250"}).status_code == 302
    assert only("source.changed").detail == {
        "changed": ["page_size"],
        "bind_password_replaced": False,
    }

    rule = {"platform": gws.pk, "dry_run": "on", "on_joiner": "on", "run_as": admin.pk}
    assert web.post(reverse("directory:rule-edit", args=[source.pk]), rule).status_code == 302
    entry = only("jml_rule.changed")
    assert (entry.target_type, entry.target_id) == ("directory.identitysource", str(source.pk))
    assert entry.detail["created"] is True
    assert entry.detail["dry_run"] is True
    assert JmlRule.objects.filter(source=source).exists()
    rule.pop("dry_run")
    web.post(reverse("directory:rule-edit", args=[source.pk]), rule)
    latest = TrailEntry.objects.filter(action="jml_rule.changed").latest("id")
    assert latest.detail == {"created": False, "changed": ["dry_run"], "dry_run": False}

    assert web.post(reverse("directory:source-sync", args=[source.pk])).status_code == 302
    job = Job.objects.get(job_type=JobType.DIRECTORY_SYNC)
    sync = only("directory.sync_started")
    assert_by(sync, admin, "web")
    assert sync.detail == {"job": job.pk, "force": False}
    assert SECRET not in trail_text()


def test_scheduled_syncs_are_not_on_the_trail(gws) -> None:
    from directory import services as directory_services

    directory_services.create_source(
        name="Corp", kind=IdentitySource.Kind.LDAP, ldap_url="ldap://127.0.0.1:1"
    )
    assert directory_services.enqueue_due_syncs() == 1
    assert not TrailEntry.objects.filter(action="directory.sync_started").exists()


# --- assets and audit -----------------------------------------------------------------------


def test_discovery_ingestion_and_audit_settings(web, admin, gws) -> None:
    assert web.post(reverse("assets:discover", args=[gws.pk])).status_code == 302
    discovery = only("assets.discovery_started")
    assert_by(discovery, admin, "web")
    assert (discovery.target_type, discovery.target_id) == ("identities.platform", str(gws.pk))
    assert discovery.detail["job"] == Job.objects.get(job_type=JobType.ASSET_DISCOVERY).pk
    # A second press finds the run on its way: nothing new started, nothing recorded.
    web.post(reverse("assets:discover", args=[gws.pk]))
    assert TrailEntry.objects.filter(action="assets.discovery_started").count() == 1

    assert web.post(reverse("audit:ingest", args=[gws.pk])).status_code == 302
    assert_by(only("audit.ingestion_started"), admin, "web")

    settings = {"enabled": "on", "applications": ["login", "admin"], "interval_minutes": "30"}
    assert web.post(reverse("audit:platform", args=[gws.pk]), settings).status_code == 302
    entry = only("audit.settings_changed")
    assert_by(entry, admin, "web")
    assert entry.detail == {
        "enabled": True,
        "applications": ["admin", "login"],
        "interval_minutes": 30,
        "overlap_minutes": 10,
    }


# --- privileged access ----------------------------------------------------------------------


def test_check_out_reveal_and_check_in_by_the_holder(gws) -> None:
    identity = factories.make_external_credential(gws, password=SECRET)
    holder = person("olga", "operator")
    client = browser(holder)
    checkout = {"reason": "rotate the backup job", "minutes": "30"}
    assert client.post(reverse("pam:check-out", args=[identity.pk]), checkout).status_code == 302
    session = AccessSession.objects.get()
    out = only("credential.checked_out")
    assert_by(out, holder, "web")
    assert (out.target_type, out.target_id) == ("identities.identity", str(identity.pk))
    assert out.detail["session"] == session.pk
    assert out.detail["reason"] == "rotate the backup job"
    assert out.detail["expires"].startswith(session.expires_at.strftime("%Y-%m-%dT%H:%M"))

    page = client.post(reverse("pam:reveal", args=[session.pk]))
    assert SECRET in page.content.decode()  # the holder sees it; the trail does not
    revealed = only("credential.revealed")
    assert_by(revealed, holder, "web")
    assert revealed.detail == {"session": session.pk}

    assert client.post(reverse("pam:check-in", args=[session.pk])).status_code == 302
    entry = only("credential.checked_in")
    assert_by(entry, holder, "web")
    assert entry.detail == {
        "session": session.pk,
        "holder": "olga",
        "reason": "checked_in",
        "for_someone_else": False,
        "rotation_job": None,
    }
    assert SECRET not in trail_text()


def test_api_reveal_and_an_admin_checking_in_someone_elses_session(api, admin, gws) -> None:
    identity = factories.make_external_credential(gws, password=SECRET)
    holder = person("olga", "operator")
    _, raw = ApiToken.issue(holder, "cli")
    cli = Client(REMOTE_ADDR=API_IP, headers={"Authorization": f"Bearer {raw}"})
    response = post_json(cli, reverse("pam:api-check-out", args=[identity.pk]), {"reason": "x"})
    assert response.status_code == 201
    session = AccessSession.objects.get()
    assert_by(only("credential.checked_out"), holder, "api", API_IP)
    answer = post_json(cli, reverse("pam:api-reveal", args=[session.pk]))
    assert answer.json()["password"] == SECRET
    assert_by(only("credential.revealed"), holder, "api", API_IP)

    assert post_json(api, reverse("pam:api-check-in", args=[session.pk])).status_code == 200
    entry = only("credential.checked_in")
    assert_by(entry, admin, "api", API_IP)
    assert entry.detail["holder"] == "olga"
    assert entry.detail["for_someone_else"] is True
    assert SECRET not in trail_text()


def test_expired_sessions_are_checked_in_by_accesshive(gws) -> None:
    identity = factories.make_external_credential(gws)
    holder = person("olga", "operator")
    session = pam_services.check_out(identity, actor=holder, reason="night shift", minutes=5)
    later = timezone.now() + timedelta(minutes=6)
    assert pam_services.expire_sessions(later) == 1
    entry = only("credential.checked_in")
    assert_by(entry, None, "system", None)
    assert entry.detail["reason"] == "expired"
    assert entry.detail["holder"] == "olga"
    assert entry.detail["session"] == session.pk


def test_rotation_by_hand_records_the_version_never_the_password(web, admin, gws) -> None:
    identity = factories.make_external_credential(gws)
    url = reverse("pam:record-rotation", args=[identity.pk])
    assert web.post(url, {"password": SECRET}).status_code == 302
    entry = only("credential.rotated_by_hand")
    assert_by(entry, admin, "web")
    assert entry.detail == {"vault_version": 2}
    assert SECRET not in trail_text()


# --- policies -------------------------------------------------------------------------------


def test_policy_created_and_changed(web, admin, gws) -> None:
    data = {
        "name": "Stale shared passwords",
        "kind": PolicyKind.STALE_CREDENTIAL,
        "platform": gws.pk,
        "action": Action.NOTIFY,
        "mode": "needs_approval",
        "enabled": "on",
        "days": "30",
    }
    assert web.post(reverse("policies:create"), data).status_code == 302
    policy = Policy.objects.get()
    assert policy.parameters == {"days": 30}
    created = only("policy.created")
    assert_by(created, admin, "web")
    assert created.detail == {
        "kind": "stale_credential",
        "remediation": "notify",
        "mode": "needs_approval",
        "enabled": True,
    }

    edit = reverse("policies:edit", args=[policy.pk])
    assert web.post(edit, {**data, "days": "60"}).status_code == 302
    policy.refresh_from_db()
    assert policy.parameters == {"days": 60}
    assert only("policy.changed").detail["changed"] == ["parameters"]


def test_violations_approved_and_dismissed(web, api, admin, gws) -> None:
    policy = Policy.objects.create(
        name="No 2SV", kind=PolicyKind.NO_2SV, platform=gws, action=Action.SUSPEND_USER
    )
    first, second = (
        Violation.objects.create(
            policy=policy, subject_kind="user", subject_id=str(n), subject_label=f"u{n}@x.org"
        )
        for n in (1, 2)
    )
    assert web.post(reverse("policies:approve", args=[first.pk])).status_code == 302
    approved = only("violation.approved")
    assert_by(approved, admin, "web")
    first.refresh_from_db()
    assert approved.detail == {
        "policy": "No 2SV",
        "remediation": "suspend_user",
        "job": first.remediation_job_id,
    }
    assert (approved.target_type, approved.target_id) == ("policies.violation", str(first.pk))

    assert post_json(api, reverse("policies:api-dismiss", args=[second.pk])).status_code == 200
    dismissed = only("violation.dismissed")
    assert_by(dismissed, admin, "api", API_IP)
    assert dismissed.detail == {"policy": "No 2SV"}


# --- signing in and out ---------------------------------------------------------------------


def test_sign_in_and_out_are_recorded_with_the_method() -> None:
    user = factories.make_user("bob")
    client = Client(REMOTE_ADDR=IP)
    login = {"username": "bob", "password": factories.PASSWORD}
    assert client.post(reverse("login"), login).status_code == 302
    entry = only("user.signed_in")
    assert_by(entry, user, "web")
    assert entry.detail == {"method": "password"}

    assert client.post(reverse("logout")).status_code == 302
    assert_by(only("user.signed_out"), user, "web")


def test_a_failed_sign_in_keeps_the_username_and_never_the_password() -> None:
    factories.make_user("bob")
    wrong = "wr0ng-Pa55w0rd-e1f9"
    client = Client(REMOTE_ADDR=IP)
    response = client.post(reverse("login"), {"username": "bob", "password": wrong})
    assert response.status_code == 200
    entry = only("user.sign_in_failed")
    assert_by(entry, None, "web")
    assert entry.detail == {"username": "bob"}
    assert entry.target_label == "bob"
    assert wrong not in trail_text()
    assert not TrailEntry.objects.filter(action="user.signed_in").exists()


def test_the_saml_method_is_read_from_the_session() -> None:
    from django.contrib.auth import login
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    from trail.origin import Origin, acting_from

    user = factories.make_user("carol")
    request = RequestFactory().post("/sso/acs/")
    request.session = SessionStore()
    request.session["accesshive_auth_method"] = "saml"
    with acting_from(Origin(source="sso", ip="192.0.2.44")):
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    entry = only("user.signed_in")
    assert_by(entry, user, "sso", "192.0.2.44")
    assert entry.detail == {"method": "saml"}


# --- where the address comes from -----------------------------------------------------------


@override_settings(TRUSTED_PROXIES=1)
def test_behind_one_proxy_a_forged_extra_hop_is_ignored(gws) -> None:
    user = person("dave", "admin")
    client = Client(
        REMOTE_ADDR="10.0.0.5",  # the proxy
        HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9",  # the client forged the first hop
    )
    client.force_login(user)
    data = factories.identity_form_data(IdentityType.API_KEY, gws, SECRET)
    client.post(reverse("identities:create", args=[IdentityType.API_KEY]), data)
    entry = only("identity.created")
    assert entry.source_ip == "203.0.113.9"


def test_an_address_that_is_not_one_is_left_empty(gws) -> None:
    client = Client(REMOTE_ADDR="unix-socket")
    client.force_login(person("dave", "admin"))
    data = factories.identity_form_data(IdentityType.API_KEY, gws, SECRET)
    response = client.post(reverse("identities:create", args=[IdentityType.API_KEY]), data)
    assert response.status_code == 302
    entry = only("identity.created")
    assert (entry.source, entry.source_ip) == ("web", None)


# --- the recorder itself --------------------------------------------------------------------


def test_inside_a_job_the_entry_is_accesshives_and_names_the_job(gws) -> None:
    holder = person("olga", "operator")
    with attempt_context(job_id=4242, job_type="directory_sync", attempt=1):
        entry = record("credential.checked_in", actor=holder, target=gws, reason="expired")
    assert (entry.actor, entry.source, entry.source_ip) == (holder, "system", None)
    assert entry.detail == {"reason": "expired", "job": 4242}


def test_without_a_request_a_person_acts_from_the_command_line(gws) -> None:
    entry = record("platform.changed", actor=person("root", "admin"), target=gws, changed=[])
    assert entry.source == "command"


def test_unknown_actions_and_secret_detail_keys_are_refused(gws) -> None:
    with pytest.raises(UnknownActionError):
        record("identity.deleted", actor=None, target=gws)
    with pytest.raises(SecretInDetailError):
        record("identity_provider.changed", actor=None, target=gws, token="x")
    assert not TrailEntry.objects.filter(action__in=["identity.deleted"]).exists()
    assert "identity.created" in ACTIONS


def test_every_action_the_code_records_is_known() -> None:
    """A record() call with a key trail.actions lacks would fail at run time; find it here."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    skip = {".venv", "tests", "var", "bench", "node_modules"}
    used: dict[str, str] = {}
    for path in root.rglob("*.py"):
        if skip.intersection(path.relative_to(root).parts):
            continue
        for key in re.findall(r'\brecord\(\s*"([a-z_]+\.[a-z_]+)"', path.read_text()):
            used[key] = str(path.relative_to(root))
    assert used, "no record() calls found: the scan is broken"
    unknown = {key: where for key, where in used.items() if key not in ACTIONS}
    assert not unknown, f"record() keys missing from trail.actions.ACTIONS: {unknown}"
