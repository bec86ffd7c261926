"""The jobs JSON API: auth (session and bearer), filters, keyset paging, detail, retry, secrets."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from accounts.models import ApiToken
from jobs.models import Job, JobEvent, JobStatus, JobType
from tests import factories

pytestmark = pytest.mark.django_db

LIST_URL = reverse("jobs:api-list")
SECRET = "s3cr3t-planted-api-94be"


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record job messages instead of publishing them, so no test touches a broker."""
    calls: list[int] = []
    monkeypatch.setattr("jobs.services.send", lambda job_id, **kwargs: calls.append(job_id))
    return calls


def bearer(user) -> dict[str, str]:
    _, raw = ApiToken.issue(user, "tests")
    return {"Authorization": f"Bearer {raw}"}


def detail_url(job: Job) -> str:
    return reverse("jobs:api-detail", args=[job.pk])


def retry_url(job: Job) -> str:
    return reverse("jobs:api-retry", args=[job.pk])


# --- authentication and permissions ---------------------------------------------------------


def test_anonymous_gets_401_json_not_a_redirect(client: Client) -> None:
    job = factories.make_job(status=JobStatus.FAILED)
    for response in (
        client.get(LIST_URL),
        client.get(detail_url(job)),
        client.post(retry_url(job)),
    ):
        assert response.status_code == 401
        assert response["Content-Type"] == "application/problem+json"
        assert "authentication required" in response.json()["detail"]
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_unknown_bearer_token_is_401(client: Client) -> None:
    response = client.get(LIST_URL, headers={"Authorization": "Bearer ah_not-a-token"})
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid API token"


def test_user_without_view_permission_gets_403_json(client: Client) -> None:
    job = factories.make_job(subject_label="hidden-subject@example.com")
    nobody = factories.make_user("nobody")
    client.force_login(nobody)
    token = bearer(nobody)
    for response in (
        client.get(LIST_URL),
        client.get(detail_url(job)),
        client.get(LIST_URL, headers=token),
        client.get(detail_url(job), headers=token),
    ):
        assert response.status_code == 403
        assert response.json()["detail"] == "permission denied"


def test_retry_needs_the_retry_permission(client: Client) -> None:
    job = factories.make_job(status=JobStatus.FAILED)
    response = client.post(retry_url(job), headers=bearer(factories.make_viewer()))
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED


def test_wrong_method_is_405_json(client: Client) -> None:
    job = factories.make_job(status=JobStatus.FAILED)
    token = bearer(factories.make_retrier())
    response = client.get(retry_url(job), headers=token)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert client.post(LIST_URL, headers=token).status_code == 405


# --- list -----------------------------------------------------------------------------------


def test_list_with_session(client: Client) -> None:
    older = factories.make_job(job_type=JobType.BULK_IMPORT, status=JobStatus.COMPLETED)
    newer = factories.make_job(job_type=JobType.REMEDIATION, status=JobStatus.FAILED, attempts=2)
    client.force_login(factories.make_viewer())
    response = client.get(LIST_URL)
    assert response.status_code == 200
    body = response.json()
    assert [row["id"] for row in body["results"]] == [newer.pk, older.pk]
    row = body["results"][0]
    assert row["type"] == "remediation"
    assert row["type_label"] == "Remediation"
    assert row["status"] == "failed"
    assert row["subject"] == {"id": "42", "label": "ada@example.com"}
    assert row["attempt_count"] == 2
    assert row["duration_seconds"] == 7.5
    assert row["url"] == f"http://testserver{detail_url(newer)}"
    assert "params" not in row
    assert body["next"] is None
    assert body["counts"] == {
        "pending": 0,
        "running": 0,
        "completed": 1,
        "failed": 1,
        "retrying": 0,
        "waiting": 0,
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"type": "bulk_import"}, {("bulk_import", "failed"), ("bulk_import", "completed")}),
        ({"status": "failed"}, {("bulk_import", "failed"), ("remediation", "failed")}),
        ({"type": "bulk_import", "status": "failed"}, {("bulk_import", "failed")}),
    ],
)
def test_list_filters(client: Client, query, expected) -> None:
    for job_type in ("bulk_import", "remediation"):
        for status in ("failed", "completed"):
            factories.make_job(job_type=job_type, status=status)
    response = client.get(LIST_URL, query, headers=bearer(factories.make_viewer()))
    assert response.status_code == 200
    assert {(row["type"], row["status"]) for row in response.json()["results"]} == expected


def test_list_counts_follow_the_type_filter(client: Client) -> None:
    factories.make_jobs(2, job_type=JobType.BULK_IMPORT, status=JobStatus.FAILED)
    factories.make_jobs(1, job_type=JobType.REMEDIATION, status=JobStatus.FAILED)
    token = bearer(factories.make_viewer())
    response = client.get(LIST_URL, {"type": "bulk_import"}, headers=token)
    assert response.json()["counts"]["failed"] == 2


@pytest.mark.parametrize(
    ("query", "parameter"), [("type=nope", "type"), ("status=x", "status"), ("before=x", "before")]
)
def test_bad_filter_is_400_json_naming_the_parameter(client: Client, query, parameter) -> None:
    response = client.get(f"{LIST_URL}?{query}", headers=bearer(factories.make_viewer()))
    assert response.status_code == 400
    body = response.json()
    assert parameter in body["errors"]
    assert parameter in body["detail"]


def test_keyset_paging_follows_next_without_overlap(client: Client, settings) -> None:
    settings.JOB_PAGE_SIZE = 2
    failed = factories.make_jobs(5, job_type=JobType.BULK_IMPORT, status=JobStatus.FAILED)
    factories.make_jobs(3, job_type=JobType.BULK_IMPORT, status=JobStatus.COMPLETED)
    token = bearer(factories.make_viewer())
    seen: list[int] = []
    url: str | None = f"{LIST_URL}?type=bulk_import&status=failed"
    while url:
        body = client.get(url, headers=token).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
        if url:
            assert url.startswith("http://testserver/api/v1/jobs/?")
            query = parse_qs(urlsplit(url).query)
            assert query == {
                "type": ["bulk_import"],
                "status": ["failed"],
                "before": [str(seen[-1])],
            }
    assert seen == sorted((job.pk for job in failed), reverse=True)


# --- detail ---------------------------------------------------------------------------------


def test_detail_with_token_has_attempts_events_and_error(client: Client) -> None:
    alice = factories.make_user("alice")
    job = factories.make_job(status=JobStatus.FAILED, attempts=2, triggered_by=alice)
    factories.make_event(job, JobEvent.Kind.RETRIED, actor=alice, message="Retried by alice")
    response = client.get(detail_url(job), headers=bearer(factories.make_viewer()))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == job.pk
    assert body["triggered_by"] == "alice"
    assert body["params"] == {"user": "ada@example.com"}
    assert body["error"]["class"] == "jobs.errors.TransientError"
    assert "503 Backend Error" in body["error"]["message"]
    assert body["error"]["traceback"].startswith("Traceback")
    assert [a["number"] for a in body["attempts"]] == [1, 2]
    assert body["attempts"][0]["wait_before_next_seconds"] == 10.0
    assert body["attempts"][0]["worker"] == "celery@worker-1"
    assert body["events"] == [
        {
            "kind": "retried",
            "kind_label": "Retried by an admin",
            "at": body["events"][0]["at"],
            "actor": "alice",
            "message": "Retried by alice",
        }
    ]


def test_detail_of_unknown_job_is_404_json(client: Client) -> None:
    response = client.get(
        reverse("jobs:api-detail", args=[999999]), headers=bearer(factories.make_viewer())
    )
    assert response.status_code == 404
    assert "999999" in response.json()["detail"]


# --- retry ----------------------------------------------------------------------------------


def test_retry_with_token_needs_no_csrf_and_happens_once(
    sent, django_capture_on_commit_callbacks
) -> None:
    job = factories.make_job(status=JobStatus.FAILED)
    retrier = factories.make_retrier()
    api = Client(enforce_csrf_checks=True)
    token = bearer(retrier)
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(retry_url(job), headers=token)
        second = api.post(retry_url(job), headers=token)
    assert first.status_code == 202
    assert first.json()["retried"] is True
    assert first.json()["job"]["status"] == "pending"
    assert first.json()["job"]["events"][0]["actor"] == "retrier"
    assert second.status_code == 409
    assert second.json()["retried"] is False
    assert "not failed" in second.json()["detail"]
    events = JobEvent.objects.filter(job=job, kind=JobEvent.Kind.RETRIED)
    assert [event.actor for event in events] == [retrier]
    assert sent == [job.pk]


def test_retry_with_session_needs_csrf() -> None:
    job = factories.make_job(status=JobStatus.FAILED)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(factories.make_retrier())
    response = browser.post(retry_url(job))
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED

    browser.get(reverse("jobs:detail", args=[job.pk]))  # a page sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    response = browser.post(retry_url(job), headers={"X-CSRFToken": token})
    assert response.status_code == 202
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


def test_retry_of_a_completed_job_is_409(client: Client) -> None:
    job = factories.make_job(status=JobStatus.COMPLETED)
    response = client.post(retry_url(job), headers=bearer(factories.make_retrier()))
    assert response.status_code == 409
    assert not JobEvent.objects.exists()


# --- secrets --------------------------------------------------------------------------------


def test_planted_secrets_never_reach_the_api(client: Client) -> None:
    owner = factories.make_user("owner")
    job = factories.make_job(
        status=JobStatus.FAILED,
        triggered_by=owner,
        params={
            "user": "ada@example.com",
            "admin_password": SECRET,
            "nested": {"apiKey": SECRET, "list": [{"token": SECRET}, "plain"]},
            "credential_ref": "vault:gws/ada#v3",
        },
        result={"secret": SECRET, "created": [{"client_secret": SECRET}]},
    )
    retrier = factories.make_retrier()
    _, raw = ApiToken.issue(retrier, "tests")
    token = ApiToken.objects.get(user=retrier)
    headers = {"Authorization": f"Bearer {raw}"}
    forbidden = [
        SECRET,
        raw,
        token.token_hash,
        owner.password,
        retrier.password,
        settings.SECRET_KEY,
        str(job.celery_task_id),
    ]
    responses = [
        client.get(LIST_URL, headers=headers),
        client.get(detail_url(job), headers=headers),
        client.post(retry_url(job), headers=headers),
    ]
    for response in responses:
        assert response.status_code in (200, 202)
        text = response.content.decode()
        for secret in forbidden:
            assert secret not in text
    detail = responses[1].json()
    assert detail["params"]["admin_password"] == "[redacted]"
    assert detail["params"]["credential_ref"] == "vault:gws/ada#v3"
    assert detail["result"]["created"] == [{"client_secret": "[redacted]"}]
