"""The API as a client meets it: the OpenAPI 3.1 document covers every route, the docs page
runs from our static files, every refusal is a problem, hostile input is a 400 (never a
500), bulk retry/cancel act once per job, and Idempotency-Key makes creating POSTs safe to
repeat."""

import json
import re
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from openapi_spec_validator import OpenAPIV31SpecValidator

from accounts.models import ApiToken
from identities.models import Identity, IdentityType, Platform
from jobs.models import Job, JobStatus, JobType
from tests import factories
from trail.models import TrailEntry
from web.api.main import api
from web.models import IdempotencyRecord

PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record job messages instead of publishing them, so no test touches a broker."""
    calls: list[int] = []
    monkeypatch.setattr("jobs.services.send", lambda job_id, **kwargs: calls.append(job_id))
    return calls


def bearer(user: Any) -> dict[str, str]:
    _, raw = ApiToken.issue(user, "tests")
    return {"Authorization": f"Bearer {raw}"}


def document(client: Client) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200

    def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        assert len(keys) == len(set(keys)), f"duplicate keys in the document: {keys}"
        return dict(pairs)

    return dict(json.loads(response.content, object_pairs_hook=no_duplicate_keys))


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == PROBLEM
    body = dict(response.json())
    assert body["status"] == status
    assert {"type", "title", "detail", "errors"} <= set(body)
    return body


# --- the document -----------------------------------------------------------------------------


def api_routes() -> set[str]:
    """Every URL pattern under api/v1/ in the URLconf, as OpenAPI paths."""
    found: set[str] = set()

    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif route.startswith("api/v1/") and pattern.name not in {
                "openapi-json",
                "openapi-view",
                "api-root",
            }:
                found.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))

    walk(get_resolver().url_patterns, "")
    return found


def test_the_document_is_openapi_3_1_and_lists_every_api_route(client: Client, db: None) -> None:
    doc = document(client)
    assert doc["openapi"].startswith("3.1")
    OpenAPIV31SpecValidator(doc).validate()
    assert set(doc["paths"]) == api_routes()
    operations = [op for item in doc["paths"].values() for op in item.values()]
    assert len(operations) == 44
    for operation in operations:
        statuses = set(operation["responses"])
        assert {"401", "403", "429"} <= statuses, operation["operationId"]
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert list(response["content"]) == [PROBLEM], (operation["operationId"], status)
    schemes = doc["components"]["securitySchemes"]
    assert {scheme["type"] for scheme in schemes.values()} == {"http", "apiKey"}


def test_component_names_are_unique_per_class() -> None:
    """Two schema classes of one name would silently share one component."""
    names: dict[str, type] = {}
    for router in [r for _, r in api._routers]:
        for path_view in router.path_operations.values():
            for operation in path_view.operations:
                for model in operation.response_models.values():
                    for cls in getattr(model, "__mro__", ()):
                        if cls.__module__.endswith(".api") and hasattr(cls, "model_fields"):
                            assert names.setdefault(cls.__name__, cls) is cls, cls.__name__


def test_the_docs_page_runs_from_our_static_files_without_inline_script(
    client: Client, db: None
) -> None:
    response = client.get(reverse("api:openapi-view"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn" not in html.lower()
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts
    for attributes in scripts:
        # Either a file of ours, or JSON data (which script-src does not govern).
        assert "/static/ninja/" in attributes or 'type="application/json"' in attributes


def test_the_header_links_the_docs_for_signed_in_users(client: Client, db: None) -> None:
    client.force_login(factories.make_user("vera", perms=("jobs.view_job",)))
    page = client.get(reverse("jobs:list")).content.decode()
    assert f'href="{reverse("api:openapi-view")}"' in page


# --- refusals -----------------------------------------------------------------------------


def test_unknown_path_and_wrong_method_are_problems(client: Client, db: None) -> None:
    assert_problem(client.get("/api/v1/nothing-here/"), 404)
    user = factories.make_user("vera", perms=("jobs.view_job",))
    response = client.delete(reverse("jobs:api-list"), headers=bearer(user))
    assert_problem(response, 405)
    assert "GET" in response["Allow"]


def test_an_unknown_token_is_a_problem(client: Client, db: None) -> None:
    body = assert_problem(
        client.get(reverse("jobs:api-list"), headers={"Authorization": "Bearer nope"}), 401
    )
    assert body["detail"] == "invalid API token"


HOSTILE_QUERIES = [
    ("jobs:api-list", "before", "²"),
    ("jobs:api-list", "before", str(10**30)),
    ("jobs:api-list", "before", "-1"),
    ("jobs:api-list", "created_after", "9999-12-31T23:59:59-23:59"),
    ("jobs:api-list", "error_class", "a\x00b"),
    ("identities:api-list", "platform", "١٢"),
    ("audit:api-list", "actor", "x\x00"),
    ("audit:api-list", "since", "9999-12-31T23:59:59-23:59"),
    ("audit:api-list", "before", "99999999999999999999_1"),
    ("assets:api-list", "q", "\x00"),
    ("trail:api-list", "until", "9999-12-31"),
    ("trail:api-list", "actor", "a\x00"),
    ("policies:api-list", "before", "²"),
    ("directory:api-events", "source", str(10**30)),
]


@pytest.mark.parametrize(("route", "parameter", "value"), HOSTILE_QUERIES)
def test_hostile_query_values_are_400_naming_the_parameter(
    client: Client, db: None, route: str, parameter: str, value: str
) -> None:
    admin = factories.make_user("root", superuser=True)
    response = client.get(reverse(route), {parameter: value}, headers=bearer(admin))
    body = assert_problem(response, 400)
    assert parameter in body["errors"]
    assert value not in response.content.decode()


@pytest.mark.parametrize(
    ("route", "args"),
    [
        ("identities:api-list", ()),
        ("jobs:api-bulk-retry", ()),
        ("directory:api-sync", ("source",)),
        ("pam:api-check-out", ("identity",)),
    ],
)
def test_json_nested_10000_deep_is_a_400(
    client: Client, db: None, route: str, args: tuple[str, ...]
) -> None:
    admin = factories.make_user("root", superuser=True)
    ids = {"source": 1, "identity": 1}
    body = "[" * 10_000 + "]" * 10_000
    response = client.post(
        reverse(route, args=[ids[a] for a in args]),
        body,
        content_type="application/json",
        headers=bearer(admin),
    )
    assert_problem(response, 400)


def test_path_ids_beyond_bigint_are_400(client: Client, db: None) -> None:
    admin = factories.make_user("root", superuser=True)
    response = client.get(f"/api/v1/jobs/{10**30}/", headers=bearer(admin))
    assert "job_id" in assert_problem(response, 400)["errors"]


# --- bulk retry and cancel ----------------------------------------------------------------


def test_bulk_retry_retries_exactly_the_matching_jobs_once(
    client: Client, db: None, sent: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    failed = factories.make_jobs(500, job_type=JobType.ASSET_DISCOVERY, status=JobStatus.FAILED)
    others = [
        *factories.make_jobs(20, job_type=JobType.AUDIT_INGESTION, status=JobStatus.FAILED),
        *factories.make_jobs(20, job_type=JobType.ASSET_DISCOVERY, status=JobStatus.COMPLETED),
    ]
    operator = factories.make_retrier("olga")
    filters = {"type": JobType.ASSET_DISCOVERY, "status": JobStatus.FAILED, "limit": 1000}
    url = reverse("jobs:api-bulk-retry")

    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(url, filters, content_type="application/json", headers=bearer(operator))
    assert first.status_code == 200, first.content
    assert first.json()["count"] == 500
    assert sorted(first.json()["jobs"]) == sorted(job.pk for job in failed)
    assert sorted(sent) == sorted(job.pk for job in failed)
    assert (
        Job.objects.filter(pk__in=[j.pk for j in failed], status=JobStatus.PENDING).count() == 500
    )
    assert not Job.objects.filter(pk__in=[j.pk for j in others], status=JobStatus.PENDING).exists()

    second = client.post(url, filters, content_type="application/json", headers=bearer(operator))
    assert second.json() == {"count": 0, "jobs": []}
    entries = TrailEntry.objects.filter(action="jobs.bulk_retried").order_by("id")
    assert [entry.detail["count"] for entry in entries] == [500, 0]
    assert not TrailEntry.objects.filter(action="job.retried").exists()

    viewer = factories.make_user("vera", perms=("jobs.view_job",))
    refused = client.post(url, filters, content_type="application/json", headers=bearer(viewer))
    assert_problem(refused, 403)


def test_bulk_cancel_honours_the_time_and_error_class_filters(client: Client, db: None) -> None:
    from datetime import timedelta

    from django.utils import timezone

    old = timezone.now() - timedelta(days=2)
    waiting_old = factories.make_jobs(3, status=JobStatus.PENDING, created_at=old)
    waiting_new = factories.make_jobs(2, status=JobStatus.PENDING)
    operator = factories.make_user("olga", perms=("jobs.view_job", "jobs.cancel_job"))
    body = {"created_before": (timezone.now() - timedelta(days=1)).isoformat(), "limit": 2}
    url = reverse("jobs:api-bulk-cancel")
    response = client.post(url, body, content_type="application/json", headers=bearer(operator))
    assert response.json()["count"] == 2
    assert set(response.json()["jobs"]) <= {job.pk for job in waiting_old}
    assert (
        Job.objects.filter(pk__in=[j.pk for j in waiting_new], status=JobStatus.PENDING).count()
        == 2
    )
    bad = client.post(
        url, {"limit": 0, "surprise": 1}, content_type="application/json", headers=bearer(operator)
    )
    assert {"limit", "surprise"} <= set(assert_problem(bad, 400)["errors"])


# --- idempotency --------------------------------------------------------------------------


def create(client: Client, body: dict[str, Any], headers: dict[str, str]) -> Any:
    return client.post(
        reverse("identities:api-list"),
        json.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def identity_body(platform: Platform, login: str = "ci-deploy") -> dict[str, Any]:
    data = factories.identity_form_data(IdentityType.API_KEY, platform, "s3cret-value")
    return {"type": IdentityType.API_KEY, **data, "name": login}


def test_a_repeated_key_replays_the_first_answer(client: Client, db: None) -> None:
    platform = factories.make_platform("Workspace")
    headers = {**bearer(factories.make_identity_admin()), "Idempotency-Key": "k-1"}
    first = create(client, identity_body(platform), headers)
    again = create(client, identity_body(platform), headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert Identity.objects.count() == 1
    other = create(client, identity_body(platform, "other-key"), headers)
    assert "Idempotency-Key" in assert_problem(other, 409)["errors"]
    assert Identity.objects.count() == 1


def test_a_refused_create_does_not_use_up_the_key(client: Client, db: None) -> None:
    platform = factories.make_platform("Workspace")
    headers = {**bearer(factories.make_identity_admin()), "Idempotency-Key": "k-2"}
    assert_problem(create(client, {"type": "nope"}, headers), 400)
    assert create(client, identity_body(platform), headers).status_code == 201
    assert not IdempotencyRecord.objects.filter(status=0).exists()


def test_keys_are_per_user(client: Client, db: None) -> None:
    platform = factories.make_platform("Workspace")
    one = {**bearer(factories.make_identity_admin("ann")), "Idempotency-Key": "same"}
    two = {**bearer(factories.make_identity_admin("bob")), "Idempotency-Key": "same"}
    assert create(client, identity_body(platform, "a"), one).status_code == 201
    assert create(client, identity_body(platform, "b"), two).status_code == 201
    assert Identity.objects.count() == 2


def test_a_database_failure_mid_create_is_a_503_and_nothing_is_half_written(
    client: Client, db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the read that builds the answer fails after the identity was written.
    The create and its key roll back together, so the client's retry with the same key
    creates it once; no 500 and no "already exists"."""
    platform = factories.make_platform("Workspace")
    headers = {**bearer(factories.make_identity_admin()), "Idempotency-Key": "k-3"}

    def connection_lost(identity: Identity) -> list[Job]:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("identities.services.list_identity_jobs", connection_lost)
    failed = create(client, identity_body(platform), headers)
    assert_problem(failed, 503)
    assert failed["Retry-After"]
    assert not Identity.objects.exists()
    monkeypatch.undo()
    monkeypatch.setattr("jobs.services.send", lambda job_id, **kwargs: None)
    retried = create(client, identity_body(platform), headers)
    assert retried.status_code == 201
    assert Identity.objects.count() == 1


def test_an_upload_with_a_key_is_replayed(client: Client, db: None, settings: Any) -> None:
    """Found by schemathesis: a multipart body is streamed, so its fingerprint is taken from
    the parsed fields and file."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    platform = factories.make_platform("Workspace")
    admin = factories.make_user("root", superuser=True)
    headers = {**bearer(admin), "Idempotency-Key": "upload-1"}
    csv = f"type,platform,name,api_key\napi_key,{platform.name},ci,k3y\n".encode()

    def upload() -> Any:
        return client.post(
            reverse("imports:api-list"),
            {"file": SimpleUploadedFile("x.csv", csv, "text/csv"), "dry_run": "true"},
            headers=headers,
        )

    first, again = upload(), upload()
    assert first.status_code == again.status_code == 202, first.content
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize(
    ("route", "perms", "job_type"),
    [
        ("assets:api-discover", ("assets.view_asset", "assets.discover_assets"), "asset_discovery"),
        (
            "audit:api-ingest",
            ("audit.view_auditevent", "audit.ingest_auditevents"),
            "audit_ingestion",
        ),
    ],
)
def test_discover_and_ingest_now_queue_one_job(
    client: Client, db: None, route: str, perms: tuple[str, ...], job_type: str
) -> None:
    platform = factories.make_platform("Workspace")
    headers = bearer(factories.make_user("olga", perms=perms))
    first = client.post(reverse(route, args=[platform.pk]), headers=headers)
    second = client.post(reverse(route, args=[platform.pk]), headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["created"] is True
    assert second.json()["created"] is False
    assert second.json()["job"] == first.json()["job"]
    assert Job.objects.filter(job_type=job_type).count() == 1
    assert_problem(client.post(reverse(route, args=[999999]), headers=headers), 404)


# --- parity with the pages ----------------------------------------------------------------


def send(client: Client, method: str, url: str, body: dict[str, Any], user: Any) -> Any:
    call = client.put if method == "PUT" else client.post
    return call(url, json.dumps(body), content_type="application/json", headers=bearer(user))


def test_platform_create_and_edit_keep_the_key_in_the_vault(client: Client, db: None) -> None:
    from vault.backends import get_vault
    from vault.base import SecretRef

    admin = factories.make_user("root", superuser=True)
    body = {
        "name": "Corp",
        "kind": "google_workspace",
        "primary_domain": "corp.example.com",
        "admin_email": "admin@corp.example.com",
        "service_account_key": factories.service_account_key(),
    }
    created = send(client, "POST", reverse("identities:api-platforms"), body, admin)
    assert created.status_code == 201, created.content
    assert created.json()["service_account_key_stored"] is True
    assert "PRIVATE KEY" not in created.content.decode()
    platform = Platform.objects.get(name="Corp")
    ref = SecretRef.parse(platform.service_account_key_ref)
    assert get_vault().read(ref.path, ref.version)

    edit = {**body, "customer_id": "C0123"}
    del edit["service_account_key"]
    url = reverse("identities:api-platform", args=[platform.pk])
    saved = send(client, "PUT", url, edit, admin)
    assert saved.status_code == 200, saved.content
    assert saved.json()["customer_id"] == "C0123"
    refused = send(client, "PUT", url, {**edit, "admin_email": "x@elsewhere.org"}, admin)
    assert "admin_email" in assert_problem(refused, 400)["errors"]
    assert TrailEntry.objects.filter(action="platform.changed").count() == 1


def test_provider_policy_source_and_rule_over_the_api(client: Client, db: None) -> None:
    admin = factories.make_user("root", superuser=True)
    provider = send(
        client,
        "POST",
        reverse("identities:api-providers"),
        {"name": "Okta", "scim_base_url": "https://scim.example.com/v2", "scim_token": "t0k"},
        admin,
    )
    assert provider.status_code == 201, provider.content
    assert provider.json()["scim_token_stored"] is True
    assert "t0k" not in provider.content.decode()

    platform = factories.make_platform("Workspace")
    policy = send(
        client,
        "POST",
        reverse("policies:api-policies"),
        {
            "name": "No 2SV",
            "kind": "no_2sv",
            "platform": platform.pk,
            "action": "notify",
            "mode": "needs_approval",
            "enabled": True,
        },
        admin,
    )
    assert policy.status_code == 201, policy.content

    source = send(
        client,
        "POST",
        reverse("directory:api-sources"),
        {
            "kind": "ldap",
            "name": "Corp AD",
            "enabled": True,
            "ldap_url": "ldap://127.0.0.1:1",
            "ldap_bind_dn": "cn=reader",
            "ldap_base_dn": "dc=example,dc=com",
            "bind_password": "pw",
            "sync_interval_minutes": 60,
        },
        admin,
    )
    assert source.status_code in (201, 400), source.content
    if source.status_code == 400:  # the form's own required fields, named one by one
        assert source.json()["errors"]
        return
    assert source.json()["bind_password_stored"] is True
    rule = send(
        client,
        "PUT",
        reverse("directory:api-rule", args=[source.json()["id"]]),
        {"platform": platform.pk, "dry_run": True, "on_joiner": True, "run_as": admin.pk},
        admin,
    )
    assert rule.status_code == 200, rule.content
    assert rule.json()["dry_run"] is True


def test_a_multipart_body_without_boundary_is_a_400(client: Client, db: None) -> None:
    """Found by schemathesis (ST102)."""
    admin = factories.make_user("root", superuser=True)
    response = client.post(
        reverse("imports:api-list"), b"x", content_type="multipart/form-data", headers=bearer(admin)
    )
    assert_problem(response, 400)


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("directory:api-sources", {"kind": {}}, "kind"),
        ("identities:api-platforms", {"name": {}, "kind": "aws"}, "name"),
        (
            "identities:api-platforms",
            {"name": "x", "kind": "aws", "service_account_key": 0},
            "service_account_key",
        ),
        ("policies:api-policies", {"enabled": "yes"}, "enabled"),
    ],
)
def test_form_bodies_refuse_the_wrong_json_type(
    client: Client, db: None, route: str, body: dict[str, Any], field: str
) -> None:
    """Found by schemathesis: a value of a type the document does not give the field."""
    admin = factories.make_user("root", superuser=True)
    response = send(client, "POST", reverse(route), body, admin)
    assert field in assert_problem(response, 400)["errors"]
