"""Directory pages and API: sources with their secret entered once, Sync now (POST + CSRF,
the brake override), progress, the rule, events with their dry-run outcome, the schedule."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from directory import services
from directory.models import DirectoryEvent, DirectoryUser, IdentitySource, JmlRule, SyncRun
from identities.models import Platform
from jobs.models import Job, JobType, Trigger
from tests.factories import PASSWORD, make_user
from tests.samba_ad import CertificateAuthority
from vault.backends import get_vault
from vault.base import SecretRef

pytestmark = pytest.mark.django_db

LDAP_FORM = {
    "name": "Corp AD",
    "enabled": "on",
    "ldap_url": "ldaps://dc1.example.com:636",
    "ldap_bind_dn": "CN=svc-accesshive,OU=Service,DC=example,DC=com",
    "bind_password": "s3cret-bind-password",
    "ldap_base_dn": "DC=example,DC=com",
    "page_size": "500",
    "sync_interval_minutes": "60",
    "map_user_filter": "(&(objectCategory=person)(objectClass=user))",
    "map_group_filter": "(objectClass=group)",
    "map_id": "objectGUID",
    "map_username": "sAMAccountName",
    "map_email": "mail",
    "map_given_name": "givenName",
    "map_family_name": "sn",
    "map_display_name": "displayName",
    "map_department": "department",
    "map_title": "title",
    "map_manager": "manager",
    "map_group_id": "objectGUID",
    "map_group_name": "cn",
    "map_group_email": "mail",
    "map_membership_on": "user",
    "map_member_of": "memberOf",
    "map_group_member": "member",
    "map_disabled_attribute": "userAccountControl",
    "map_disabled_match": "bitmask",
    "map_disabled_value": "2",
}


@pytest.fixture
def admin(client):
    user = make_user("root", superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def source() -> IdentitySource:
    return services.create_source(
        name="Corp AD",
        kind=IdentitySource.Kind.LDAP,
        ldap_url="ldap://127.0.0.1:1",
        ldap_bind_dn="cn=reader",
        bind_password="first-password",
        ldap_base_dn="dc=example,dc=com",
    )


def test_ldap_source_is_created_with_ad_defaults_and_the_password_only_in_the_vault(
    client, admin
) -> None:
    page = client.get(reverse("directory:source-create", args=["ldap"]))
    assert page.status_code == 200
    assert "sAMAccountName" in page.content.decode()  # AD's names are the defaults

    response = client.post(reverse("directory:source-create", args=["ldap"]), LDAP_FORM)

    assert response.status_code == 302
    source = IdentitySource.objects.get()
    assert source.kind == IdentitySource.Kind.LDAP
    assert source.mapping()["disabled_value"] == "2"
    ref = SecretRef.parse(source.ldap_password_ref)
    assert get_vault().read(ref.path, ref.version) == {"password": "s3cret-bind-password"}
    assert "s3cret" not in str(IdentitySource.objects.filter(pk=source.pk).values().get())
    detail = client.get(response["Location"]).content.decode()
    assert "stored" in detail
    assert "s3cret" not in detail
    edit = client.get(reverse("directory:source-edit", args=[source.pk])).content.decode()
    assert "s3cret" not in edit
    assert "Bind password: <strong>stored</strong>" in edit


def test_editing_without_a_password_keeps_it_and_a_new_one_replaces_it(
    client, admin, source
) -> None:
    url = reverse("directory:source-edit", args=[source.pk])
    # The same server: a new URL would need the password again (test_secret_destinations).
    data = {
        **LDAP_FORM,
        "ldap_url": source.ldap_url,
        "bind_password": "",
        "name": "Corp AD (renamed)",
    }
    assert client.post(url, data).status_code == 302
    source.refresh_from_db()
    assert source.name == "Corp AD (renamed)"
    assert source.ldap_password_ref.endswith("#1")

    assert client.post(url, {**data, "bind_password": "second-password"}).status_code == 302
    source.refresh_from_db()
    ref = SecretRef.parse(source.ldap_password_ref)
    assert ref.version == 2
    assert get_vault().read(ref.path, ref.version)["password"] == "second-password"


def test_ldaps_and_starttls_together_are_refused(client, admin) -> None:
    data = {**LDAP_FORM, "ldap_start_tls": "on"}
    response = client.post(reverse("directory:source-create", args=["ldap"]), data)
    assert response.status_code == 200
    assert "Choose LDAPS or StartTLS, not both." in response.content.decode()
    assert not IdentitySource.objects.exists()


def test_google_workspace_source_uses_a_platform(client, admin) -> None:
    platform = Platform.objects.create(name="Workspace", kind=Platform.Kind.GOOGLE_WORKSPACE)
    response = client.post(
        reverse("directory:source-create", args=["google_workspace"]),
        {
            "name": "Workspace directory",
            "enabled": "on",
            "platform": platform.pk,
            "gws_domain": "",
            "page_size": "500",
            "sync_interval_minutes": "30",
        },
    )
    assert response.status_code == 302
    source = IdentitySource.objects.get()
    assert (source.platform, source.sync_interval_minutes) == (platform, 30)


def test_sync_now_is_a_post_that_queues_one_job(client, admin, source) -> None:
    url = reverse("directory:source-sync", args=[source.pk])
    assert client.get(url).status_code == 405

    response = client.post(url, follow=True)

    (job,) = Job.objects.filter(job_type=JobType.DIRECTORY_SYNC)
    assert job.subject_id == str(source.pk)
    assert job.params == {"source_id": source.pk}
    assert (job.trigger, job.triggered_by) == (Trigger.USER, admin)
    assert f"job #{job.pk}" in response.content.decode()
    again = client.post(url, follow=True).content.decode()
    assert "already pending" in again
    assert Job.objects.filter(job_type=JobType.DIRECTORY_SYNC).count() == 1


def test_sync_now_needs_the_csrf_token(admin, source) -> None:
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin)
    response = strict.post(reverse("directory:source-sync", args=[source.pk]))
    assert response.status_code == 403
    assert not Job.objects.exists()


def test_overriding_the_brake_needs_the_confirmation(client, admin, source) -> None:
    url = reverse("directory:source-sync", args=[source.pk])
    refused = client.post(url, {"force": "on"}, follow=True).content.decode()
    assert "Tick this to confirm the override." in refused
    assert not Job.objects.exists()

    client.post(url, {"force": "on", "confirm": "on"})
    assert Job.objects.get().params == {"source_id": source.pk, "force": True}


def test_syncing_needs_the_permission(client, source) -> None:
    viewer = make_user("viewer", perms=("directory.view_identitysource",))
    client.force_login(viewer)
    page = client.get(reverse("directory:source-detail", args=[source.pk])).content.decode()
    assert "Sync now" not in page
    response = client.post(reverse("directory:source-sync", args=[source.pk]))
    assert response.status_code == 403
    assert not Job.objects.exists()
    assert client.get(reverse("directory:source-create", args=["ldap"])).status_code == 403


def test_source_page_shows_progress_and_refreshes_while_running(client, admin, source) -> None:
    SyncRun.objects.create(
        source=source, phase="users", pages_read=7, users_read=3500, memberships_read=900
    )
    url = reverse("directory:source-detail", args=[source.pk])

    page = client.get(url).content.decode()
    assert 'hx-trigger="every 2s"' in page
    assert "3500" in page
    assert ">7<" in page

    fragment = client.get(url, HTTP_HX_REQUEST="true")
    assert fragment.content.decode().lstrip().startswith('<section id="source-live"')


def test_a_braked_run_shows_why_on_the_source_page(client, admin, source) -> None:
    SyncRun.objects.create(
        source=source,
        status=SyncRun.Status.BRAKED,
        message="Safety brake: this sync of directory source Corp AD would make 3 of 20 …",
        finished_at=timezone.now(),
    )
    page = client.get(reverse("directory:source-detail", args=[source.pk])).content.decode()
    assert "Stopped by the safety brake" in page
    assert "would make 3 of 20" in page
    assert 'hx-trigger="every 2s"' not in page


def test_rule_page_saves_the_rule(client, admin, source) -> None:
    platform = Platform.objects.create(name="Workspace", kind=Platform.Kind.GOOGLE_WORKSPACE)
    url = reverse("directory:rule-edit", args=[source.pk])
    assert client.get(url).status_code == 200
    response = client.post(
        url,
        {
            "platform": platform.pk,
            "dry_run": "on",
            "on_joiner": "on",
            "on_leaver": "on",
            "login_domain": "corp.example.com",
            "run_as": admin.pk,
        },
    )
    assert response.status_code == 302
    rule = JmlRule.objects.get(source=source)
    assert (rule.platform, rule.dry_run, rule.on_mover, rule.run_as) == (
        platform,
        True,
        False,
        admin,
    )


def test_event_page_shows_changes_plan_and_dry_run_outcome(client, admin, source) -> None:
    user = DirectoryUser.objects.create(
        source=source, external_id="e-1", ref="uid=ada", username="ada", email="ada@example.com"
    )
    event = DirectoryEvent.objects.create(
        source=source,
        user=user,
        kind="mover",
        label="ada@example.com",
        changes={"department": ["Research", "Sales"]},
        planned_actions=["Dry run: would update the Google Workspace user ada@example.com"],
        dry_run_outcome=[
            {"action": "update Google Workspace user", "result": "would do (dry run)"}
        ],
        status=DirectoryEvent.Status.DRY_RUN,
    )
    page = client.get(reverse("directory:event-detail", args=[event.pk])).content.decode()
    assert "Dry run: what the job would do" in page
    assert "would do (dry run)" in page
    assert "Research" in page
    assert "Sales" in page
    listing = client.get(reverse("directory:event-list") + f"?source={source.pk}&kind=mover")
    assert "ada@example.com" in listing.content.decode()


def test_the_schedule_queues_due_sources_once(source) -> None:
    manual = services.create_source(
        name="Manual", kind=IdentitySource.Kind.LDAP, sync_interval_minutes=0
    )
    services.create_source(name="Off", kind=IdentitySource.Kind.LDAP, enabled=False)
    now = timezone.now()

    assert services.enqueue_due_syncs(now) == 1
    (job,) = Job.objects.filter(job_type=JobType.DIRECTORY_SYNC)
    assert (job.subject_id, job.trigger) == (str(source.pk), Trigger.SCHEDULE)
    source.refresh_from_db()
    assert source.next_sync_at == now + timedelta(minutes=60)
    # Not due again until the interval has passed; the running sync blocks a second anyway.
    assert services.enqueue_due_syncs(now + timedelta(minutes=1)) == 0
    Job.objects.all().update(status="completed")
    assert services.enqueue_due_syncs(now + timedelta(minutes=61)) == 1
    assert not Job.objects.filter(subject_id=str(manual.pk)).exists()


def test_changing_the_interval_makes_the_source_due(source) -> None:
    services.enqueue_due_syncs()
    source.refresh_from_db()
    assert source.next_sync_at is not None
    services.update_source(source, sync_interval_minutes=15)
    source.refresh_from_db()
    assert source.next_sync_at is None


def test_api_lists_sources_and_starts_a_sync(client, admin, source) -> None:
    listing = client.get(reverse("directory:api-sources")).json()
    (data,) = listing["results"]
    assert (data["name"], data["bind_password_stored"]) == ("Corp AD", True)
    assert "first-password" not in str(listing)

    url = reverse("directory:api-sync", args=[source.pk])
    started = client.post(url, {"force": True}, content_type="application/json")
    assert started.status_code == 202
    assert Job.objects.get(pk=started.json()["job"]).params["force"] is True
    again = client.post(url, {}, content_type="application/json")
    assert again.status_code == 409


def test_pages_need_login(client, source) -> None:
    response = client.get(reverse("directory:source-list"))
    assert response.status_code == 302
    # django-axes counts sign-ins per request: Client.login passes none of its own.
    assert client.login(request=HttpRequest(), username="nobody", password=PASSWORD) is False


def test_source_list_shows_each_source_with_its_last_run(client, admin, source) -> None:
    run = SyncRun.objects.create(
        source=source, status=SyncRun.Status.COMMITTED, users_read=1234, joiners=5
    )
    IdentitySource.objects.filter(pk=source.pk).update(last_run=run)
    page = client.get(reverse("directory:source-list")).content.decode()
    assert "Corp AD" in page
    assert "1234" in page
    assert "Committed" in page
    assert 'href="/directory/"' in page  # the nav link


def test_the_ca_certificate_is_pasted_or_uploaded_and_checked(client, admin) -> None:
    ca = CertificateAuthority("Corp Root CA").pem
    url = reverse("directory:source-create", args=["ldap"])

    refused = client.post(url, {**LDAP_FORM, "ldap_ca_certificate": "not a certificate"})
    assert refused.status_code == 200
    assert "This is not a PEM certificate" in refused.content.decode()
    key = client.post(
        url, {**LDAP_FORM, "ldap_ca_certificate": "-----BEGIN PRIVATE KEY-----\nAAAA\n"}
    )
    assert "This is a private key" in key.content.decode()
    assert not IdentitySource.objects.exists()

    upload = SimpleUploadedFile("corp-root-ca.pem", ca.encode(), "application/x-pem-file")
    response = client.post(url, {**LDAP_FORM, "ca_certificate_file": upload})

    assert response.status_code == 302
    source = IdentitySource.objects.get()
    assert source.ldap_ca_certificate == ca
    detail = client.get(response["Location"]).content.decode()
    assert "certificate checked against the source's own CA" in detail
    # There is no way to switch certificate checking off.
    form = client.get(reverse("directory:source-edit", args=[source.pk])).content.decode()
    assert "verify" not in form.lower()
