"""The identities JSON API: auth (session and bearer), list filters and paging, creation of
every type through the same forms as the pages, bad input, and secrets."""

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse

from accounts.models import ApiToken
from identities.models import (
    CREDENTIALS_ONLY_TYPES,
    Identity,
    IdentityStatus,
    IdentityType,
    Platform,
)
from jobs.models import Job, JobStatus, JobType
from tests import factories
from vault.backends import get_vault
from vault.base import SecretRef
from vault.models import EncryptedSecret

pytestmark = pytest.mark.django_db

LIST_URL = reverse("identities:api-list")
SECRET = "s3cr3t-planted-api-1d0c"


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record job messages instead of publishing them, so no test touches a broker."""
    calls: list[int] = []
    monkeypatch.setattr("jobs.services.send", lambda job_id, **kwargs: calls.append(job_id))
    return calls


@pytest.fixture
def gws() -> Platform:
    return factories.make_platform("Workspace")


@pytest.fixture
def token() -> dict[str, str]:
    return bearer(factories.make_identity_admin())


def bearer(user) -> dict[str, str]:
    _, raw = ApiToken.issue(user, "tests")
    return {"Authorization": f"Bearer {raw}"}


def detail_url(identity: Identity) -> str:
    return reverse("identities:api-detail", args=[identity.pk])


def post(client: Client, body, headers: dict[str, str]):
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(LIST_URL, raw, content_type="application/json", headers=headers)


def body_for(identity_type: str, platform: Platform, secret: str = SECRET) -> dict[str, Any]:
    return {"type": identity_type, **factories.identity_form_data(identity_type, platform, secret)}


def nothing_written() -> bool:
    return not (
        Identity.objects.exists() or Job.objects.exists() or EncryptedSecret.objects.exists()
    )


# --- authentication and permissions ---------------------------------------------------------


def test_anonymous_gets_401_json(client: Client, gws) -> None:
    identity = factories.make_identity(platform=gws)
    for response in (
        client.get(LIST_URL),
        client.get(detail_url(identity)),
        post(client, body_for(IdentityType.API_KEY, gws), {}),
    ):
        assert response.status_code == 401
        assert response["Content-Type"] == "application/problem+json"
        assert "authentication required" in response.json()["detail"]
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert Identity.objects.count() == 1


def test_unknown_bearer_token_is_401(client: Client) -> None:
    response = client.get(LIST_URL, headers={"Authorization": "Bearer ah_not-a-token"})
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid API token"


def test_user_without_permission_gets_403_json(client: Client, gws) -> None:
    identity = factories.make_identity(platform=gws, login="hidden-person@example.com")
    nobody = factories.make_user("nobody")
    token = bearer(nobody)
    for response in (
        client.get(LIST_URL, headers=token),
        client.get(detail_url(identity), headers=token),
        post(client, body_for(IdentityType.API_KEY, gws), token),
    ):
        assert response.status_code == 403
        assert response.json()["detail"] == "permission denied"
    assert Identity.objects.count() == 1


def test_viewer_can_read_but_not_create(client: Client, gws) -> None:
    factories.make_identity(platform=gws)
    token = bearer(factories.make_identity_viewer())
    assert client.get(LIST_URL, headers=token).status_code == 200
    response = post(client, body_for(IdentityType.API_KEY, gws), token)
    assert response.status_code == 403
    assert Identity.objects.count() == 1
    assert not EncryptedSecret.objects.exists()


def test_session_post_needs_csrf(gws) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(factories.make_identity_admin())
    response = post(browser, body_for(IdentityType.API_KEY, gws), {})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert nothing_written()

    browser.get(reverse("identities:list"))  # a page sets the CSRF cookie
    csrf = {"X-CSRFToken": browser.cookies["csrftoken"].value}
    response = post(browser, body_for(IdentityType.API_KEY, gws), csrf)
    assert response.status_code == 201


def test_bearer_token_needs_no_csrf(gws, token) -> None:
    api = Client(enforce_csrf_checks=True)
    response = post(api, body_for(IdentityType.API_KEY, gws), token)
    assert response.status_code == 201
    assert Identity.objects.get().created_by == User.objects.get(username="idadmin")


def test_wrong_method_is_405_json(client: Client, gws, token) -> None:
    identity = factories.make_identity(platform=gws)
    response = client.put(LIST_URL, "{}", content_type="application/json", headers=token)
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"
    response = client.post(detail_url(identity), headers=token)
    assert response.status_code == 405
    assert response["Allow"] == "GET"


# --- list -----------------------------------------------------------------------------------


def test_list_rows_newest_first(client: Client, gws) -> None:
    alice = factories.make_user("alice")
    older = factories.make_identity(platform=gws, login="older@example.com", created_by=alice)
    newer = factories.make_identity(
        platform=gws,
        identity_type=IdentityType.API_KEY,
        status=IdentityStatus.FAILED,
        login="deploy-key",
        secret_ref="vault:identities/1/credential#1",
    )
    client.force_login(factories.make_identity_viewer())
    body = client.get(LIST_URL).json()
    assert [row["id"] for row in body["results"]] == [newer.pk, older.pk]
    row = body["results"][0]
    assert row == {
        "id": newer.pk,
        "type": "api_key",
        "type_label": "API Key",
        "status": "failed",
        "status_label": "Failed",
        "platform": {"id": gws.pk, "name": "Workspace"},
        "display_name": newer.display_name,
        "login": "deploy-key",
        "created_at": row["created_at"],
        "created_by": None,
        "url": f"http://testserver{detail_url(newer)}",
    }
    assert body["results"][1]["created_by"] == "alice"
    assert body["next"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            {"status": "failed"},
            {("Workspace", "api_key", "failed"), ("Other", "api_key", "failed")},
        ),
        ({"type": "human_interactive"}, {("Workspace", "human_interactive", "provisioned")}),
        (
            {"platform": "Other"},
            {("Other", "api_key", "failed"), ("Other", "api_key", "provisioned")},
        ),
        ({"status": "provisioned", "platform": "Other"}, {("Other", "api_key", "provisioned")}),
    ],
)
def test_list_filters(client: Client, gws, token, query, expected) -> None:
    other = factories.make_platform("Other")
    factories.make_identity(platform=gws, status=IdentityStatus.PROVISIONED)
    factories.make_identity(
        platform=gws, identity_type=IdentityType.API_KEY, status=IdentityStatus.FAILED
    )
    for status in (IdentityStatus.FAILED, IdentityStatus.PROVISIONED):
        factories.make_identity(platform=other, identity_type=IdentityType.API_KEY, status=status)
    if "platform" in query:
        query = {**query, "platform": str(Platform.objects.get(name=query["platform"]).pk)}
    response = client.get(LIST_URL, query, headers=token)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert {(r["platform"]["name"], r["type"], r["status"]) for r in rows} == expected


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("status=x", "status"),
        ("type=x", "type"),
        ("platform=x", "platform"),
        ("platform=999999", "platform"),
        ("before=0", "before"),
    ],
)
def test_bad_filter_is_400_json_naming_the_parameter(
    client: Client, token, query, parameter
) -> None:
    response = client.get(f"{LIST_URL}?{query}", headers=token)
    assert response.status_code == 400
    body = response.json()
    assert parameter in body["errors"]
    assert parameter in body["detail"]


def test_keyset_paging_follows_next_without_overlap(client: Client, gws, token, settings) -> None:
    settings.IDENTITY_PAGE_SIZE = 2
    failed = [factories.make_identity(platform=gws, status=IdentityStatus.FAILED) for _ in range(5)]
    factories.make_identity(platform=gws, status=IdentityStatus.PROVISIONED)
    seen: list[int] = []
    url: str | None = f"{LIST_URL}?status=failed"
    while url:
        body = client.get(url, headers=token).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
        if url:
            assert url.startswith("http://testserver/api/v1/identities/?")
            assert parse_qs(urlsplit(url).query) == {
                "status": ["failed"],
                "before": [str(seen[-1])],
            }
    assert seen == sorted((identity.pk for identity in failed), reverse=True)


# --- create ---------------------------------------------------------------------------------


@pytest.mark.parametrize("identity_type", sorted(CREDENTIALS_ONLY_TYPES))
def test_create_credentials_only_type(
    client: Client, gws, token, sent, identity_type, django_capture_on_commit_callbacks
) -> None:
    # Jobs are published on commit: run those callbacks, so `sent == []` below can fail.
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body_for(identity_type, gws), token)
    assert response.status_code == 201
    identity = Identity.objects.get()
    body = response.json()
    assert response["Location"] == body["url"] == f"http://testserver{detail_url(identity)}"
    assert body["id"] == identity.pk
    assert body["type"] == identity_type
    assert body["status"] == "provisioned"
    assert body["created_by"] == "idadmin"
    assert body["secret_ref"] == f"vault:identities/{identity.pk}/credential#1"
    assert body["jobs"] == []
    ref = SecretRef.parse(identity.secret_ref)
    assert SECRET in "".join(get_vault().read(ref.path, ref.version).values())
    assert SECRET not in response.content.decode()
    assert not Job.objects.exists()
    assert sent == []


@pytest.mark.parametrize(
    ("identity_type", "expected"),
    [
        (IdentityType.HUMAN_INTERACTIVE, ["create_domain_user", "provision_sso_user"]),
        (IdentityType.SHARED_CREDENTIAL_MANAGED, ["create_domain_user"]),
    ],
)
def test_create_provisioned_type_starts_its_jobs(
    client: Client, gws, token, sent, identity_type, expected, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, body_for(identity_type, gws), token)
    assert response.status_code == 201
    body = response.json()
    identity = Identity.objects.get()
    assert body["status"] == "provisioning"
    assert body["secret_ref"] is None
    jobs = list(Job.objects.order_by("id"))
    assert [job.job_type for job in jobs] == expected
    assert sorted(job["type"] for job in body["jobs"]) == sorted(expected)
    for job in jobs:
        assert job.subject_type == ContentType.objects.get_for_model(Identity)
        assert job.subject_id == str(identity.pk)
        assert job.triggered_by is not None
        assert job.triggered_by.username == "idadmin"
    # The SSO user waits for the Google user (jobs.dependencies): only the first is sent.
    statuses = {row["type"]: row["status"] for row in body["jobs"]}
    assert statuses == {kind: "waiting" if i else "pending" for i, kind in enumerate(expected)}
    for row in body["jobs"]:
        assert row["url"] == f"http://testserver{reverse('jobs:api-detail', args=[row['id']])}"
    assert sent == [jobs[0].pk]


def test_human_on_another_kind_of_platform_gets_only_the_sso_job(client: Client, token) -> None:
    github = factories.make_platform("GitHub", kind=Platform.Kind.GITHUB)
    response = post(client, body_for(IdentityType.HUMAN_INTERACTIVE, github), token)
    assert response.status_code == 201
    assert [job["type"] for job in response.json()["jobs"]] == [JobType.PROVISION_SSO_USER]


def test_service_account_key_as_a_json_object(client: Client, gws, token) -> None:
    key = factories.service_account_key(SECRET)
    response = post(client, {"type": "service_account", "platform": gws.pk, "json_key": key}, token)
    assert response.status_code == 201
    identity = Identity.objects.get()
    assert identity.login == key["client_email"]
    ref = SecretRef.parse(identity.secret_ref)
    assert json.loads(get_vault().read(ref.path)["json_key"]) == key


def test_platform_id_may_be_a_string(client: Client, gws, token) -> None:
    body = {**body_for(IdentityType.API_KEY, gws), "platform": str(gws.pk)}
    assert post(client, body, token).status_code == 201


def test_api_and_form_give_the_same_identity(client: Client, gws, token) -> None:
    post(client, body_for(IdentityType.HUMAN_INTERACTIVE, gws), token)
    via_api = Identity.objects.get()
    client.force_login(factories.make_identity_admin("pageadmin"))
    other = factories.make_platform("Second")
    data = factories.identity_form_data(IdentityType.HUMAN_INTERACTIVE, other, SECRET)
    client.post(reverse("identities:create", args=["human_interactive"]), data)
    via_page = Identity.objects.exclude(pk=via_api.pk).get()
    fields = ("identity_type", "login", "display_name", "given_name", "org_unit_path", "status")
    assert [getattr(via_api, f) for f in fields] == [getattr(via_page, f) for f in fields]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{not json", "body"),
        ('["a", "list"]', "body"),
        (b"\xff\xfe", "body"),
        ({"platform": 1, "name": "x", "api_key": SECRET}, "type"),
        ({"type": "root", "platform": 1}, "type"),
        ({"type": ["api_key"], "platform": 1}, "type"),
        ({"type": "api_key", "platform": 999999, "name": "x", "api_key": SECRET}, "platform"),
        ({"type": "api_key", "platform": "abc", "name": "x", "api_key": SECRET}, "platform"),
        ({"type": "api_key", "platform": 1.0, "name": "x", "api_key": SECRET}, "platform"),
        ({"type": "api_key", "platform": "PLATFORM", "api_key": SECRET}, "name"),
        ({"type": "api_key", "platform": "PLATFORM", "name": "x"}, "api_key"),
        (
            {"type": "api_key", "platform": "PLATFORM", "name": "x", "api_key": [SECRET]},
            "api_key",
        ),
        (
            {"type": "api_key", "platform": "PLATFORM", "name": "x", "api_key": True},
            "api_key",
        ),
        (
            {"type": "api_key", "platform": "PLATFORM", "name": "x", "password": SECRET},
            "password",
        ),
        (
            {"type": "service_account", "platform": "PLATFORM", "json_key_file": SECRET},
            "json_key_file",
        ),
        ({"type": "service_account", "platform": "PLATFORM", "json_key": 42}, "json_key"),
        ({"type": "service_account", "platform": "PLATFORM", "json_key": [SECRET]}, "json_key"),
        (
            {"type": "service_account", "platform": "PLATFORM", "json_key": {"type": SECRET}},
            "json_key",
        ),
        (
            {
                "type": "human_interactive",
                "platform": "PLATFORM",
                "given_name": "Ada",
                "family_name": "Lovelace",
                "email": "ada@elsewhere.org",
            },
            "email",
        ),
        (
            {
                "type": "human_interactive",
                "platform": "PLATFORM",
                "given_name": "Ada",
                "family_name": "Lovelace",
                "email": "ada@example.com",
                "org_unit_path": "Engineering",
            },
            "org_unit_path",
        ),
    ],
)
def test_bad_input_is_400_naming_the_field_and_writes_nothing(
    client: Client, gws, token, body, field
) -> None:
    if isinstance(body, dict) and body.get("platform") == "PLATFORM":
        body = {**body, "platform": gws.pk}
    response = post(client, body, token)
    assert response.status_code == 400
    answer = response.json()
    assert field in answer["errors"]
    assert all(isinstance(message, str) for message in answer["errors"][field])
    assert SECRET not in response.content.decode()
    assert nothing_written()


def test_body_over_256_kb_is_refused_unread(client: Client, gws, token) -> None:
    body = body_for(IdentityType.API_KEY, gws)
    body["display_name"] = "x" * (256 * 1024)
    response = post(client, body, token)
    assert response.status_code == 400
    assert response.json()["errors"] == {"body": ["The body is larger than 256 KB."]}
    assert nothing_written()


def test_every_field_error_is_named(client: Client, gws, token) -> None:
    response = post(client, {"type": "oauth_client"}, token)
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"platform", "client_id", "client_secret"}


def test_duplicate_is_400_on_the_login_field(client: Client, gws, token) -> None:
    assert post(client, body_for(IdentityType.API_KEY, gws), token).status_code == 201
    response = post(client, body_for(IdentityType.API_KEY, gws, "another-" + SECRET), token)
    assert response.status_code == 400
    assert response.json()["errors"] == {"name": ["ci-deploy already exists on Workspace."]}
    assert Identity.objects.count() == 1
    assert EncryptedSecret.objects.count() == 1


# --- detail ---------------------------------------------------------------------------------


def test_detail_has_fields_vault_reference_and_jobs(client: Client, gws, token) -> None:
    post(client, body_for(IdentityType.HUMAN_INTERACTIVE, gws), token)
    identity = Identity.objects.get()
    Identity.objects.filter(pk=identity.pk).update(gws_user_id="1048576", idp_user_id="idp-7f")
    first = Job.objects.order_by("id").first()
    assert first is not None
    Job.objects.filter(pk=first.pk).update(status=JobStatus.FAILED)
    body = client.get(detail_url(identity), headers=token).json()
    assert body["login"] == "ada@example.com"
    assert (body["given_name"], body["family_name"]) == ("Ada", "Lovelace")
    assert body["org_unit_path"] == "/Engineering"
    assert (body["gws_user_id"], body["idp_user_id"]) == ("1048576", "idp-7f")
    assert {(job["id"], job["type"], job["status"]) for job in body["jobs"]} == {
        (job.pk, job.job_type, job.status) for job in Job.objects.all()
    }
    assert {job["type_label"] for job in body["jobs"]} == {
        "Create domain user",
        "Provision identity provider user",
    }


def test_detail_of_unknown_identity_is_404_json(client: Client, token) -> None:
    response = client.get(reverse("identities:api-detail", args=[999999]), headers=token)
    assert response.status_code == 404
    assert "999999" in response.json()["detail"]


# --- secrets --------------------------------------------------------------------------------


def test_planted_secrets_never_reach_the_api(client: Client, gws) -> None:
    admin = factories.make_identity_admin()
    _, raw = ApiToken.issue(admin, "tests")
    headers = {"Authorization": f"Bearer {raw}"}
    created = [post(client, body_for(key, gws), headers) for key in IdentityType.values]
    assert [response.status_code for response in created] == [201] * 6
    forbidden = [SECRET, raw, admin.password, settings.SECRET_KEY]
    responses = [
        *created,
        client.get(LIST_URL, headers=headers),
        *[client.get(detail_url(i), headers=headers) for i in Identity.objects.all()],
    ]
    for response in responses:
        text = response.content.decode()
        for secret in forbidden:
            assert secret not in text
