"""Identity, platform and identity-provider pages: creation of every type, list filters and
paging, detail with jobs, permissions, and secrets that never leave the vault."""

import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from accounts.models import ApiToken
from identities import services
from identities.handlers.common import platform_pacer
from identities.models import (
    CREDENTIALS_ONLY_TYPES,
    Identity,
    IdentityProvider,
    IdentityStatus,
    IdentityType,
    Platform,
)
from jobs import ratelimit
from jobs.models import Job, JobStatus, JobType
from tests import factories
from vault.backends import get_vault
from vault.base import SecretRef
from vault.models import EncryptedSecret

pytestmark = pytest.mark.django_db

LIST_URL = reverse("identities:list")
CHOOSE_URL = reverse("identities:choose-type")
PLATFORMS_URL = reverse("identities:platform-list")
PROVIDERS_URL = reverse("identities:provider-list")
SECRET = "pl4nted-s3cret-0b7d"


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record job messages instead of publishing them, so no test touches a broker."""
    calls: list[int] = []
    monkeypatch.setattr("jobs.services.send", lambda job_id, **kwargs: calls.append(job_id))
    return calls


@pytest.fixture
def admin(client: Client):
    user = factories.make_identity_admin()
    client.force_login(user)
    return user


@pytest.fixture
def gws() -> Platform:
    return factories.make_platform("Workspace")


@pytest.fixture
def github() -> Platform:
    return factories.make_platform("GitHub", kind=Platform.Kind.GITHUB)


def create_url(identity_type: str) -> str:
    return reverse("identities:create", args=[identity_type])


def detail_url(identity: Identity) -> str:
    return reverse("identities:detail", args=[identity.pk])


def row_ids(response) -> list[int]:
    return [identity.pk for identity in response.context["page"].identities]


def field_block(html: str, name: str) -> str:
    """The markup of one form field: its label, input, help and errors."""
    start = rf'<(?:div|fieldset) class="field[^"]*" id="field-{name}">'
    match = re.search(start + r"(.*?)</div>\s*</(?:div|fieldset)>", html, re.S)
    assert match, f"no field {name} on the page"
    return match.group(1)


def vault_data(ref: str) -> dict[str, str]:
    secret_ref = SecretRef.parse(ref)
    return get_vault().read(secret_ref.path, secret_ref.version)


def identity_jobs(identity: Identity) -> list[Job]:
    return list(
        Job.objects.filter(
            subject_type=ContentType.objects.get_for_model(Identity), subject_id=str(identity.pk)
        ).order_by("id")
    )


# --- access ---------------------------------------------------------------------------------


def all_page_urls(identity: Identity, platform: Platform) -> list[str]:
    assert platform.identity_provider is not None
    return [
        LIST_URL,
        CHOOSE_URL,
        create_url(IdentityType.API_KEY),
        detail_url(identity),
        PLATFORMS_URL,
        reverse("identities:platform-create"),
        reverse("identities:platform-edit", args=[platform.pk]),
        PROVIDERS_URL,
        reverse("identities:provider-create"),
        reverse("identities:provider-edit", args=[platform.identity_provider.pk]),
    ]


def test_anonymous_is_sent_to_login(client: Client, gws) -> None:
    identity = factories.make_identity(platform=gws)
    for url in all_page_urls(identity, gws):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next=")
    response = client.post(create_url(IdentityType.API_KEY), {"name": "x", "api_key": SECRET})
    assert response.status_code == 302
    assert not Identity.objects.exclude(pk=identity.pk).exists()


def test_user_without_permissions_gets_403_and_no_data(client: Client, gws) -> None:
    identity = factories.make_identity(platform=gws, login="hidden-person@example.com")
    client.force_login(factories.make_user("nobody"))
    for url in [*all_page_urls(identity, gws), LIST_URL + "?status=bogus"]:
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"hidden-person" not in response.content
    data = factories.identity_form_data(IdentityType.API_KEY, gws, SECRET)
    assert client.post(create_url(IdentityType.API_KEY), data).status_code == 403
    assert client.post(reverse("identities:platform-create"), {"name": "P"}).status_code == 403
    assert Identity.objects.count() == 1
    assert not EncryptedSecret.objects.exists()


def test_viewer_sees_but_cannot_create_or_edit(client: Client, gws) -> None:
    identity = factories.make_identity(platform=gws)
    client.force_login(factories.make_identity_viewer())
    assert client.get(LIST_URL).status_code == 200
    assert client.get(detail_url(identity)).status_code == 200
    assert client.get(PLATFORMS_URL).status_code == 200
    assert client.get(PROVIDERS_URL).status_code == 200
    for url in (
        CHOOSE_URL,
        create_url(IdentityType.API_KEY),
        reverse("identities:platform-create"),
        reverse("identities:platform-edit", args=[gws.pk]),
        reverse("identities:provider-create"),
    ):
        assert client.get(url).status_code == 403, url
    # No links to what the viewer may not do.
    assert CHOOSE_URL.encode() not in client.get(LIST_URL).content
    platforms = client.get(PLATFORMS_URL).content.decode()
    assert reverse("identities:platform-edit", args=[gws.pk]) not in platforms
    assert reverse("identities:platform-create") not in platforms


def test_nav_links_mark_the_current_section(client: Client, admin) -> None:
    for url, label in (
        (LIST_URL, "Identities"),
        (PLATFORMS_URL, "Platforms"),
        (PROVIDERS_URL, "Identity providers"),
    ):
        html = client.get(url).content.decode()
        assert f'href="{url}" aria-current="page">{label}</a>' in html
        assert html.count('aria-current="page"') == 1


def test_unknown_identity_type_is_404(client: Client, admin) -> None:
    assert client.get(create_url("root_of_all_evil")).status_code == 404
    assert client.post(create_url("root_of_all_evil"), {"x": "y"}).status_code == 404


def test_unknown_identity_is_404(client: Client, admin) -> None:
    assert client.get(reverse("identities:detail", args=[999999])).status_code == 404


# --- choosing a type ------------------------------------------------------------------------


def test_choose_type_lists_the_six_types_with_what_happens(client: Client, admin) -> None:
    response = client.get(CHOOSE_URL)
    assert response.status_code == 200
    html = response.content.decode()
    for key, label in IdentityType.choices:
        assert f'href="{create_url(key)}"' in html
        assert label in html
    assert "Google Workspace user + SSO user" in html
    assert html.count("instant: stored in the vault") == len(CREDENTIALS_ONLY_TYPES)


def test_create_form_per_type_has_only_its_fields(client: Client, admin, gws) -> None:
    html = client.get(create_url(IdentityType.SERVICE_ACCOUNT)).content.decode()
    assert 'enctype="multipart/form-data"' in html
    assert 'type="file" name="json_key_file"' in html
    assert 'type="password" name="json_key"' in html
    html = client.get(create_url(IdentityType.HUMAN_INTERACTIVE)).content.decode()
    for name in ("platform", "given_name", "family_name", "email", "org_unit_path"):
        assert f'name="{name}"' in html
    assert 'type="password"' not in html
    # The only platform is chosen already (web.forms.FormRenderer).
    assert f'<option value="{gws.pk}" selected>Workspace</option>' in html


# --- creating -------------------------------------------------------------------------------


@pytest.mark.parametrize("identity_type", sorted(CREDENTIALS_ONLY_TYPES))
def test_credentials_only_type_is_stored_in_the_vault_at_once(
    client: Client, admin, gws, sent, identity_type, django_capture_on_commit_callbacks
) -> None:
    data = factories.identity_form_data(identity_type, gws, SECRET)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(create_url(identity_type), data, follow=True)
    identity = Identity.objects.get()
    assert response.redirect_chain == [(detail_url(identity), 302)]
    assert "its credential is stored in the vault" in response.content.decode()
    assert identity.identity_type == identity_type
    assert identity.status == IdentityStatus.PROVISIONED
    assert identity.created_by == admin
    assert identity.secret_ref == f"vault:identities/{identity.pk}/credential#1"
    assert SECRET in "".join(vault_data(identity.secret_ref).values())
    assert not Job.objects.exists()
    assert sent == []


def test_uploaded_service_account_key_is_stored(client: Client, admin, gws) -> None:
    key = factories.service_account_key(SECRET)
    upload = SimpleUploadedFile("key.json", json.dumps(key).encode())
    response = client.post(
        create_url(IdentityType.SERVICE_ACCOUNT), {"platform": gws.pk, "json_key_file": upload}
    )
    identity = Identity.objects.get()
    assert response.status_code == 302
    assert identity.login == key["client_email"]
    assert json.loads(vault_data(identity.secret_ref)["json_key"]) == key


@pytest.mark.parametrize(
    ("identity_type", "kind", "expected_jobs"),
    [
        (
            IdentityType.HUMAN_INTERACTIVE,
            Platform.Kind.GOOGLE_WORKSPACE,
            [JobType.CREATE_DOMAIN_USER, JobType.PROVISION_SSO_USER],
        ),
        (IdentityType.HUMAN_INTERACTIVE, Platform.Kind.GITHUB, [JobType.PROVISION_SSO_USER]),
        (
            IdentityType.SHARED_CREDENTIAL_MANAGED,
            Platform.Kind.GOOGLE_WORKSPACE,
            [JobType.CREATE_DOMAIN_USER],
        ),
    ],
)
def test_provisioned_type_gets_exactly_its_jobs(
    client: Client,
    admin,
    sent,
    identity_type,
    kind,
    expected_jobs,
    django_capture_on_commit_callbacks,
) -> None:
    platform = factories.make_platform("Target", kind=kind)
    data = factories.identity_form_data(identity_type, platform, SECRET)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(create_url(identity_type), data, follow=True)
    identity = Identity.objects.get()
    assert response.redirect_chain == [(detail_url(identity), 302)]
    assert "provisioning has started" in response.content.decode()
    assert identity.status == IdentityStatus.PROVISIONING
    assert identity.secret_ref == ""
    jobs = identity_jobs(identity)
    assert [job.job_type for job in jobs] == expected_jobs
    assert Job.objects.count() == len(expected_jobs)
    first, *after = jobs
    assert first.status == JobStatus.PENDING
    # The SSO user waits for the Google user: only the first job's message is sent now.
    assert [(job.status, job.waiting_reason) for job in after] == [
        (JobStatus.WAITING, f"waiting for #{first.pk}") for _ in after
    ]
    for job in jobs:
        assert job.triggered_by == admin
        assert job.subject_label == str(identity)
    assert sent == [first.pk]  # published once the transaction committed
    assert not EncryptedSecret.objects.exists()  # the password is the job's to make


def test_human_fields_are_kept(client: Client, admin, gws) -> None:
    data = factories.identity_form_data(IdentityType.HUMAN_INTERACTIVE, gws, SECRET)
    client.post(create_url(IdentityType.HUMAN_INTERACTIVE), data)
    identity = Identity.objects.get()
    assert (identity.given_name, identity.family_name) == ("Ada", "Lovelace")
    assert identity.display_name == "Ada Lovelace"
    assert identity.login == "ada@example.com"
    assert identity.org_unit_path == "/Engineering"
    assert identity.platform == gws


@pytest.mark.parametrize(
    ("identity_type", "field", "change"),
    [
        (IdentityType.SHARED_CREDENTIAL_EXTERNAL, "username", {"username": ""}),
        (IdentityType.API_KEY, "name", {"name": ""}),
        (IdentityType.OAUTH_CLIENT, "platform", {"platform": "999999"}),
        (
            IdentityType.SERVICE_ACCOUNT,
            "json_key",
            {"json_key": json.dumps(factories.service_account_key(SECRET, type="user"))},
        ),
        (IdentityType.HUMAN_INTERACTIVE, "email", {"email": "ada@not-the-domain.org"}),
        (IdentityType.HUMAN_INTERACTIVE, "org_unit_path", {"org_unit_path": "Engineering"}),
    ],
)
def test_invalid_form_saves_nothing_and_never_echoes_the_secret(
    client: Client,
    admin,
    gws,
    sent,
    identity_type,
    field,
    change,
    django_capture_on_commit_callbacks,
) -> None:
    data = {**factories.identity_form_data(identity_type, gws, SECRET), **change}
    # Jobs are published on commit: run those callbacks, so `sent == []` below can fail.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(create_url(identity_type), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["form"].errors[field]
    for message in response.context["form"].errors[field]:
        assert escape(message) in field_block(html, field)  # the error sits next to its field
    assert SECRET not in html
    assert not Identity.objects.exists()
    assert not Job.objects.exists()
    assert not EncryptedSecret.objects.exists()
    assert sent == []


def test_non_secret_fields_are_kept_when_the_form_is_shown_again(
    client: Client, admin, gws
) -> None:
    data = factories.identity_form_data(IdentityType.SHARED_CREDENTIAL_EXTERNAL, gws, SECRET)
    data["username"] = ""
    html = client.post(create_url(IdentityType.SHARED_CREDENTIAL_EXTERNAL), data).content
    assert b'value="Ops bot"' in html
    assert SECRET.encode() not in html


def test_duplicate_is_an_error_on_the_login_field(client: Client, admin, gws) -> None:
    factories.make_identity(platform=gws, identity_type=IdentityType.API_KEY, login="ci-deploy")
    data = factories.identity_form_data(IdentityType.API_KEY, gws, SECRET)
    response = client.post(create_url(IdentityType.API_KEY), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "ci-deploy already exists on Workspace." in field_block(html, "name")
    assert Identity.objects.count() == 1
    assert not EncryptedSecret.objects.exists()


def test_duplicate_created_in_a_race_is_an_error_on_the_login_field(
    client: Client, admin, gws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another request creates the same login between the form's check and the insert."""
    create_identity = services.create_identity

    def racing(data, *, actor):
        factories.make_identity(platform=data.platform, login=data.login)
        return create_identity(data, actor=actor)

    monkeypatch.setattr(services, "create_identity", racing)
    data = factories.identity_form_data(IdentityType.API_KEY, gws, SECRET)
    response = client.post(create_url(IdentityType.API_KEY), data)
    assert response.status_code == 200
    assert "ci-deploy already exists on Workspace" in field_block(response.content.decode(), "name")
    assert Identity.objects.count() == 1
    assert not EncryptedSecret.objects.exists()
    assert SECRET not in response.content.decode()


def test_create_needs_csrf(gws) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(factories.make_identity_admin())
    url = create_url(IdentityType.API_KEY)
    data = factories.identity_form_data(IdentityType.API_KEY, gws, SECRET)
    assert browser.post(url, data).status_code == 403
    assert not Identity.objects.exists()
    browser.get(url)
    data["csrfmiddlewaretoken"] = browser.cookies["csrftoken"].value
    assert browser.post(url, data).status_code == 302
    assert Identity.objects.count() == 1


# --- list -----------------------------------------------------------------------------------


def test_list_rows_newest_first_with_their_columns(client: Client, admin, gws) -> None:
    alice = factories.make_user("alice")
    older = factories.make_identity(platform=gws, login="older@example.com", created_by=alice)
    newer = factories.make_identity(
        platform=gws,
        identity_type=IdentityType.API_KEY,
        status=IdentityStatus.FAILED,
        login="deploy-key",
    )
    response = client.get(LIST_URL)
    assert response.status_code == 200
    assert row_ids(response) == [newer.pk, older.pk]
    html = response.content.decode()
    for text in ("older@example.com", "deploy-key", "alice", "API Key", "Workspace"):
        assert text in html
    assert 'class="badge badge-failed">Failed<' in html
    assert f'href="{detail_url(newer)}"' in html


@pytest.fixture
def mixed(gws, github) -> dict[tuple[str, str, str], Identity]:
    rows: dict[tuple[str, str, str], Identity] = {}
    for platform in (gws, github):
        for identity_type in (IdentityType.HUMAN_INTERACTIVE, IdentityType.API_KEY):
            for status in (IdentityStatus.PROVISIONED, IdentityStatus.FAILED):
                rows[(platform.name, identity_type, status)] = factories.make_identity(
                    platform=platform, identity_type=identity_type, status=status
                )
    return rows


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ({"status": "failed"}, lambda p, t, s: s == "failed"),
        ({"type": "api_key"}, lambda p, t, s: t == "api_key"),
        ({"platform": "GitHub"}, lambda p, t, s: p == "GitHub"),
        (
            {"status": "provisioned", "type": "human_interactive", "platform": "Workspace"},
            lambda p, t, s: (p, t, s) == ("Workspace", "human_interactive", "provisioned"),
        ),
        ({"status": "", "type": "", "platform": ""}, lambda p, t, s: True),
    ],
)
def test_filters_combine(client: Client, admin, mixed, query, wanted) -> None:
    names = {identity.platform.name: identity.platform.pk for identity in mixed.values()}
    if query.get("platform"):
        query = {**query, "platform": str(names[query["platform"]])}
    response = client.get(LIST_URL, query)
    assert response.status_code == 200
    expected = sorted((i.pk for key, i in mixed.items() if wanted(*key)), reverse=True)
    assert row_ids(response) == expected
    html = response.content.decode()
    for value in query.values():
        if value:  # the filter form keeps the chosen values
            assert f'<option value="{value}" selected>' in html


@pytest.mark.parametrize(
    ("query", "parameter", "message"),
    [
        ("status=exploded", "status", "expected one of: pending, provisioning"),
        ("type=root", "type", "expected one of: human_interactive"),
        ("platform=abc", "platform", "platform must be a platform id"),
        ("platform=999999", "platform", "There is no platform with id 999999"),
        ("status=failed&before=-1", "before", "before must be a positive identity id"),
    ],
)
def test_bad_filter_is_a_400_with_a_clear_message(
    client: Client, admin, query, parameter, message
) -> None:
    response = client.get(f"{LIST_URL}?{query}")
    assert response.status_code == 400
    html = response.content.decode()
    assert f"Bad filter “{parameter}”" in html
    assert message in html


def test_bad_filter_value_is_escaped(client: Client, admin) -> None:
    response = client.get(LIST_URL, {"type": "<script>alert(1)</script>"})
    assert response.status_code == 400
    assert b"<script>alert(1)</script>" not in response.content
    assert b"Unknown identity type" in response.content


def test_keyset_paging_without_overlap_keeps_filters(
    client: Client, admin, gws, github, settings
) -> None:
    settings.IDENTITY_PAGE_SIZE = 2
    wanted = [factories.make_identity(platform=gws, status=IdentityStatus.FAILED) for _ in range(5)]
    factories.make_identity(platform=gws, status=IdentityStatus.PROVISIONED)
    factories.make_identity(platform=github, status=IdentityStatus.FAILED)
    seen: list[int] = []
    url = f"{LIST_URL}?status=failed&platform={gws.pk}"
    pages = 0
    while url:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert not any("OFFSET" in q["sql"].upper() for q in queries.captured_queries)
        assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
        seen += row_ids(response)
        pages += 1
        url = response.context["next_url"]
        if url:
            query = parse_qs(urlsplit(url).query)
            assert query == {
                "status": ["failed"],
                "platform": [str(gws.pk)],
                "before": [str(seen[-1])],
            }
            assert url.replace("&", "&amp;") in response.content.decode()
    assert pages == 3
    assert seen == sorted((i.pk for i in wanted), reverse=True)
    last = client.get(f"{LIST_URL}?status=failed&platform={gws.pk}&before={seen[1]}")
    assert last.context["newest_url"] == f"{LIST_URL}?status=failed&platform={gws.pk}"


def test_list_query_count_does_not_grow_with_rows(client: Client, admin, gws) -> None:
    factories.make_identity(platform=gws, created_by=admin)
    with CaptureQueriesContext(connection) as few:
        client.get(LIST_URL)
    for _ in range(20):
        factories.make_identity(platform=factories.make_platform(), created_by=admin)
    with CaptureQueriesContext(connection) as many:
        client.get(LIST_URL)
    assert len(many) == len(few)


def test_list_polls_only_while_identities_are_provisioning(client: Client, admin, gws) -> None:
    factories.make_identity(platform=gws, status=IdentityStatus.PROVISIONED)
    assert b'hx-trigger="every 3s"' not in client.get(LIST_URL).content
    factories.make_identity(platform=gws, status=IdentityStatus.PROVISIONING)
    html = client.get(LIST_URL, {"status": "provisioning"}).content.decode()
    assert 'hx-trigger="every 3s"' in html
    assert 'hx-get="/identities/?status=provisioning"' in html
    fragment = client.get(LIST_URL, headers={"HX-Request": "true"})
    assert fragment.content.decode().lstrip().startswith('<div id="identities-live"')
    assert "HX-Request" in fragment["Vary"]


# --- detail ---------------------------------------------------------------------------------


def test_detail_shows_fields_vault_reference_and_linked_jobs(
    client: Client, admin, gws, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = factories.identity_form_data(IdentityType.HUMAN_INTERACTIVE, gws, SECRET)
    client.post(create_url(IdentityType.HUMAN_INTERACTIVE), data)
    identity = Identity.objects.get()
    Identity.objects.filter(pk=identity.pk).update(
        gws_user_id="104857600123", idp_user_id="idp-7f3a", secret_ref="vault:identities/9/x#2"
    )
    create_job, sso_job = identity_jobs(identity)
    Job.objects.filter(pk=sso_job.pk).update(status=JobStatus.FAILED)

    def no_vault_reads(*args, **kwargs):
        raise AssertionError("the identity page must not read the vault")

    monkeypatch.setattr("vault.backends.embedded.EmbeddedVault.read", no_vault_reads)
    response = client.get(detail_url(identity))
    assert response.status_code == 200
    html = response.content.decode()
    for text in (
        "Ada Lovelace",
        "ada@example.com",
        "Human Interactive",
        "Workspace",
        "/Engineering",
        "104857600123",
        "idp-7f3a",
        "vault:identities/9/x#2",
        "stored in the vault",
        admin.username,
    ):
        assert text in html
    for job, label, badge in (
        (create_job, "Create domain user", "badge-pending"),
        (sso_job, "Provision identity provider user", "badge-failed"),
    ):
        job_url = f"/settings/jobs/{job.pk}/"
        assert job_url == reverse("jobs:detail", args=[job.pk])
        assert f'<a href="{job_url}">{label}</a>' in html
        assert f'class="badge {badge}"' in html


def test_detail_of_a_credential_has_no_jobs(client: Client, admin, gws) -> None:
    data = factories.identity_form_data(IdentityType.API_KEY, gws, SECRET)
    client.post(create_url(IdentityType.API_KEY), data)
    identity = Identity.objects.get()
    html = client.get(detail_url(identity)).content.decode()
    assert f"vault:identities/{identity.pk}/credential#1" in html
    assert "the credential went straight to the vault" in html
    assert 'hx-trigger="every 3s"' not in html
    assert SECRET not in html


@pytest.mark.parametrize(
    ("status", "polls"),
    [
        (IdentityStatus.PENDING, True),
        (IdentityStatus.PROVISIONING, True),
        (IdentityStatus.PROVISIONED, False),
        (IdentityStatus.FAILED, False),
    ],
)
def test_detail_polls_while_provisioning(client: Client, admin, gws, status, polls) -> None:
    identity = factories.make_identity(platform=gws, status=status)
    html = client.get(detail_url(identity)).content.decode()
    assert ('hx-trigger="every 3s"' in html) is polls
    if polls:
        assert f'hx-get="{detail_url(identity)}"' in html
    fragment = client.get(detail_url(identity), headers={"HX-Request": "true"})
    assert fragment.content.decode().lstrip().startswith('<div id="identity-live"')
    assert b"<html" not in fragment.content


# --- platforms ------------------------------------------------------------------------------


def platform_data(**fields: Any) -> dict[str, Any]:
    data = {
        "name": "Acme Workspace",
        "kind": Platform.Kind.GOOGLE_WORKSPACE,
        "primary_domain": "acme.example",
        "customer_id": "C01abc",
        "admin_email": "admin@acme.example",
        "api_endpoint": "",
        "identity_provider": "",
        "service_account_key": json.dumps(factories.service_account_key(SECRET)),
    }
    data.update(fields)
    return data


def test_platform_key_goes_to_the_vault_and_is_shown_only_as_stored(client: Client, admin) -> None:
    response = client.post(reverse("identities:platform-create"), platform_data(), follow=True)
    assert response.redirect_chain == [(PLATFORMS_URL, 302)]
    platform = Platform.objects.get()
    assert platform.primary_domain == "acme.example"
    ref = SecretRef.parse(platform.service_account_key_ref)
    assert ref.path == f"platforms/{platform.pk}/service-account-key"
    assert json.loads(vault_data(platform.service_account_key_ref)["json"]) == (
        factories.service_account_key(SECRET)
    )
    edit_url = reverse("identities:platform-edit", args=[platform.pk])
    pages = [response, client.get(PLATFORMS_URL), client.get(edit_url)]
    for page in pages:
        assert page.status_code == 200
        assert SECRET not in page.content.decode()
        assert "stored" in page.content.decode()
    assert "Service-account key: <strong>stored</strong>" in pages[2].content.decode()


def test_platform_edit_keeps_the_key_unless_a_new_one_is_given(client: Client, admin) -> None:
    client.post(reverse("identities:platform-create"), platform_data())
    platform = Platform.objects.get()
    first_ref = platform.service_account_key_ref
    edit_url = reverse("identities:platform-edit", args=[platform.pk])

    response = client.post(edit_url, platform_data(name="Renamed", service_account_key=""))
    assert response.status_code == 302
    platform.refresh_from_db()
    assert platform.name == "Renamed"
    assert platform.service_account_key_ref == first_ref

    new_key = factories.service_account_key("n3w-" + SECRET)
    client.post(edit_url, platform_data(name="Renamed", service_account_key=json.dumps(new_key)))
    platform.refresh_from_db()
    assert SecretRef.parse(platform.service_account_key_ref).version == 2
    assert json.loads(vault_data(platform.service_account_key_ref)["json"]) == new_key


def test_platform_with_a_bad_key_saves_nothing(client: Client, admin) -> None:
    key = json.dumps(factories.service_account_key(SECRET, type="user"))
    response = client.post(
        reverse("identities:platform-create"), platform_data(service_account_key=key)
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "not a Google service-account key" in field_block(html, "service_account_key")
    assert SECRET not in html
    assert not Platform.objects.exists()
    assert not EncryptedSecret.objects.exists()


def test_key_for_a_platform_of_another_kind_is_refused(client: Client, admin) -> None:
    data = platform_data(kind=Platform.Kind.GITHUB, primary_domain="", admin_email="")
    data["service_account_key"] = "anything-" + SECRET
    response = client.post(reverse("identities:platform-create"), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Only a Google Workspace platform" in field_block(html, "service_account_key")
    assert SECRET not in html
    assert not Platform.objects.exists()
    del data["service_account_key"]
    assert client.post(reverse("identities:platform-create"), data).status_code == 302
    assert Platform.objects.get().service_account_key_ref == ""
    assert "—" in client.get(PLATFORMS_URL).content.decode()


def test_platform_edit_needs_change_permission(client: Client, gws) -> None:
    client.force_login(
        factories.make_user("adder", perms=("identities.add_platform", "identities.view_platform"))
    )
    url = reverse("identities:platform-edit", args=[gws.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, platform_data()).status_code == 403
    assert client.get(reverse("identities:platform-create")).status_code == 200
    assert client.get(reverse("identities:platform-edit", args=[999999])).status_code == 403


def test_unknown_platform_is_404(client: Client, admin) -> None:
    assert client.get(reverse("identities:platform-edit", args=[999999])).status_code == 404


# --- identity providers ---------------------------------------------------------------------


def test_scim_token_goes_to_the_vault_and_is_shown_only_as_stored(client: Client, admin) -> None:
    data = {"name": "Okta", "scim_base_url": "https://okta.example/scim/v2", "scim_token": SECRET}
    response = client.post(reverse("identities:provider-create"), data, follow=True)
    assert response.redirect_chain == [(PROVIDERS_URL, 302)]
    provider = IdentityProvider.objects.get()
    assert vault_data(provider.token_ref) == {"token": SECRET}
    edit_url = reverse("identities:provider-edit", args=[provider.pk])
    edit = client.get(edit_url)
    for page in (response, client.get(PROVIDERS_URL), edit):
        assert page.status_code == 200
        assert SECRET not in page.content.decode()
        assert "stored" in page.content.decode()
    assert "SCIM token: <strong>stored</strong>" in edit.content.decode()

    response = client.post(edit_url, {**data, "name": "Okta EU", "scim_token": ""})
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.name == "Okta EU"
    assert SecretRef.parse(provider.token_ref).version == 1
    client.post(edit_url, {**data, "scim_token": "n3w-" + SECRET})
    provider.refresh_from_db()
    assert vault_data(provider.token_ref) == {"token": "n3w-" + SECRET}


def test_provider_needs_a_token(client: Client, admin) -> None:
    data = {"name": "Okta", "scim_base_url": "https://okta.example/scim/v2", "scim_token": ""}
    response = client.post(reverse("identities:provider-create"), data)
    assert response.status_code == 200
    assert "Required." in field_block(response.content.decode(), "scim_token")
    assert not IdentityProvider.objects.exists()


def test_bad_provider_saves_nothing_and_never_echoes_the_token(client: Client, admin) -> None:
    data = {"name": "Okta", "scim_base_url": "not a url", "scim_token": SECRET}
    response = client.post(reverse("identities:provider-create"), data)
    assert response.status_code == 200
    assert "Enter a valid URL." in field_block(response.content.decode(), "scim_base_url")
    assert SECRET not in response.content.decode()
    assert not IdentityProvider.objects.exists()
    assert not EncryptedSecret.objects.exists()


# --- admin ----------------------------------------------------------------------------------


def test_admin_is_read_only_and_offers_no_secret_field(client: Client, gws) -> None:
    identity = factories.make_identity(platform=gws, secret_ref="vault:identities/1/credential#1")
    assert gws.identity_provider is not None
    client.force_login(factories.make_user("root", superuser=True))
    pages = {
        "identity": reverse("admin:identities_identity_change", args=[identity.pk]),
        "platform": reverse("admin:identities_platform_change", args=[gws.pk]),
        "provider": reverse(
            "admin:identities_identityprovider_change", args=[gws.identity_provider.pk]
        ),
    }
    for url in pages.values():
        response = client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        assert b'name="_save"' not in response.content
        assert 'type="password"' not in html
        assert "<textarea" not in html
    assert "vault:identities/1/credential#1" in client.get(pages["identity"]).content.decode()
    for model in ("identity", "platform", "identityprovider"):
        assert client.get(reverse(f"admin:identities_{model}_changelist")).status_code == 200
        assert client.get(reverse(f"admin:identities_{model}_add")).status_code == 403
    response = client.post(pages["identity"], {"status": "provisioned"})
    assert response.status_code == 403
    delete = reverse("admin:identities_identity_delete", args=[identity.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert Identity.objects.filter(pk=identity.pk).exists()


# --- secrets --------------------------------------------------------------------------------


def test_planted_secrets_never_leave_the_vault(
    client: Client, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks
) -> None:
    """Create one identity of every type (and a platform and provider) with the same
    distinctive secret, then look for it on every page, in every API answer, in every
    table but the vault's, and in the log."""
    caplog.set_level(logging.DEBUG)
    root = factories.make_user("root", superuser=True)
    client.force_login(root)
    responses = []
    with django_capture_on_commit_callbacks(execute=True):
        responses.append(
            client.post(
                reverse("identities:provider-create"),
                {"name": "Okta", "scim_base_url": "https://okta.example/", "scim_token": SECRET},
                follow=True,
            )
        )
        provider = IdentityProvider.objects.get()
        responses.append(
            client.post(
                reverse("identities:platform-create"),
                platform_data(identity_provider=provider.pk),
                follow=True,
            )
        )
        platform = Platform.objects.get()
        for identity_type in IdentityType.values:
            data = factories.identity_form_data(identity_type, platform, SECRET)
            responses.append(client.post(create_url(identity_type), data, follow=True))
    identities = list(Identity.objects.all())
    jobs = list(Job.objects.all())
    assert len(identities) == 6
    assert len(jobs) == 3
    assert EncryptedSecret.objects.count() == 6  # 4 credentials, 1 key, 1 token

    headers = {"Authorization": f"Bearer {ApiToken.issue(root, 'tests')[1]}"}
    urls = [
        LIST_URL,
        CHOOSE_URL,
        PLATFORMS_URL,
        PROVIDERS_URL,
        reverse("identities:platform-create"),
        reverse("identities:platform-edit", args=[platform.pk]),
        reverse("identities:provider-create"),
        reverse("identities:provider-edit", args=[provider.pk]),
        reverse("jobs:list"),
        reverse("identities:api-list"),
        reverse("jobs:api-list"),
        *[create_url(key) for key in IdentityType.values],
        *[detail_url(identity) for identity in identities],
        *[reverse("identities:api-detail", args=[i.pk]) for i in identities],
        *[reverse("jobs:detail", args=[job.pk]) for job in jobs],
        *[reverse("jobs:api-detail", args=[job.pk]) for job in jobs],
        *[reverse(f"admin:identities_{m}_changelist") for m in ("identity", "platform")],
        reverse("admin:identities_identityprovider_changelist"),
        reverse("admin:identities_platform_change", args=[platform.pk]),
        reverse("admin:identities_identityprovider_change", args=[provider.pk]),
        *[reverse("admin:identities_identity_change", args=[i.pk]) for i in identities],
    ]
    for url in urls:
        responses.append(client.get(url))
        responses.append(client.get(url, headers=headers))
        responses.append(client.get(url, headers={"HX-Request": "true"}))
    for response in responses:
        assert response.status_code == 200, response.request["PATH_INFO"]
        assert SECRET not in response.content.decode()

    for model in apps.get_models():
        if model is EncryptedSecret:
            continue
        for row in model._default_manager.all():
            for field in model._meta.concrete_fields:
                value = str(field.value_from_object(row))
                assert SECRET not in value, f"{model._meta.label}.{field.name}"

    assert caplog.records  # the capture works (the vault logs every write)
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in str(record.__dict__)
    assert SECRET not in caplog.text
    assert settings.SECRET_KEY not in caplog.text


def test_rate_limit_is_set_on_the_platforms_page_and_used_by_its_clients(
    client: Client, admin, settings
) -> None:
    settings.RATE_LIMITS = {"google_workspace": (10.0, 5)}
    form = client.get(reverse("identities:platform-create")).content.decode()
    assert "Google Workspace 10/s, burst 5" in form  # the kind's default, named
    client.post(reverse("identities:platform-create"), platform_data())
    platform = Platform.objects.get()
    assert ratelimit.limit_for(platform.kind, platform.pk) == ratelimit.Limit(10.0, 5)
    assert "<td>10/s, burst 5 (default)</td>" in client.get(PLATFORMS_URL).content.decode()
    edit_url = reverse("identities:platform-edit", args=[platform.pk])

    data = platform_data(service_account_key="", rate_limit_per_second="2.5", rate_limit_burst="3")
    assert client.post(edit_url, data).status_code == 302
    platform.refresh_from_db()
    assert (platform.rate_limit_per_second, platform.rate_limit_burst) == (2.5, 3)
    assert platform_pacer(platform) is not None
    assert "<td>2.5/s, burst 3</td>" in client.get(PLATFORMS_URL).content.decode()
    no_limit = platform_data(service_account_key="", rate_limit_per_second="0")
    assert client.post(edit_url, no_limit).status_code == 302
    platform.refresh_from_db()
    assert platform_pacer(platform) is None  # 0 on the page: no limit, whatever the settings
    assert client.post(edit_url, data).status_code == 302

    for bad, field in [
        ({"rate_limit_per_second": "-1"}, "rate_limit_per_second"),
        ({"rate_limit_per_second": "", "rate_limit_burst": "3"}, "rate_limit_burst"),
        ({"rate_limit_per_second": "1", "rate_limit_burst": "0"}, "rate_limit_burst"),
    ]:
        response = client.post(edit_url, {**data, **bad})
        assert response.status_code == 200
        assert 'class="field-error"' in field_block(response.content.decode(), field)
    platform.refresh_from_db()
    assert (platform.rate_limit_per_second, platform.rate_limit_burst) == (2.5, 3)
