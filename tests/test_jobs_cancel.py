"""Cancelling a pending or retrying job: the page, the API, the worker that must not run it,
and the audit trail of cancels and retries."""

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import set_role
from identities.models import IdentityStatus
from jobs import registry, services, sweeper
from jobs.errors import TransientError
from jobs.models import Job, JobAttempt, JobEvent, JobStatus, JobStatusCount, JobType
from tests import factories
from tests.inline import deliver
from trail.models import TrailEntry

pytestmark = pytest.mark.django_db

# A built-in type (its counter rows come with the migrations), run by the probe handler below.
PROBE = JobType.REMEDIATION


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record job messages instead of publishing them, so no test touches a broker."""
    calls: list[int] = []
    monkeypatch.setattr("jobs.services.send", lambda job_id, **kwargs: calls.append(job_id))
    return calls


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A handler in place of the probe type's own that records every run; its first run of a job
    with ``{"fail_first": true}`` fails with a transient error, as a flaky outside system."""
    calls: list[int] = []

    def probe(job: Job) -> dict[str, Any]:
        calls.append(job.pk)
        if job.params.get("fail_first") and calls.count(job.pk) == 1:
            raise TransientError("Probe service said 503 Backend Error")
        return {"ran": True}

    monkeypatch.setitem(registry._handlers, PROBE, probe)
    return calls


def user_with_role(username: str, role: str) -> User:
    user = factories.make_user(username)
    set_role(user, role, actor=None)
    return user


@pytest.fixture
def operator(client: Client) -> User:
    user = user_with_role("olga", "operator")
    client.force_login(user)
    return user


def bearer(user: User) -> dict[str, str]:
    _, raw = ApiToken.issue(user, "tests")
    return {"Authorization": f"Bearer {raw}"}


def cancel_url(job: Job) -> str:
    return reverse("jobs:cancel", args=[job.pk])


def api_cancel_url(job: Job) -> str:
    return reverse("jobs:api-cancel", args=[job.pk])


def detail_url(job: Job) -> str:
    return reverse("jobs:detail", args=[job.pk])


def counters(job_type: str) -> dict[str, int]:
    rows = JobStatusCount.objects.filter(job_type=job_type).values_list("status", "count")
    return {status: count for status, count in rows if count}


def trail(action: str) -> list[TrailEntry]:
    return list(TrailEntry.objects.filter(action=action).order_by("id"))


# --- the page -------------------------------------------------------------------------------


def test_cancel_a_pending_job(client: Client, operator: User) -> None:
    job = factories.make_job(status=JobStatus.PENDING)
    response = client.post(cancel_url(job), follow=True)
    assert response.redirect_chain == [(detail_url(job), 302)]
    assert "Job cancelled; no worker will run it" in response.content.decode()

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error_class == "Cancelled"
    assert job.error_message == "Cancelled by olga before attempt 1"
    assert job.completed_at is not None
    assert "Cancelled by olga before attempt 1" in response.content.decode()
    assert counters(job.job_type) == {"failed": 1}
    event = JobEvent.objects.get(job=job)
    assert (event.kind, event.actor, event.message) == (
        JobEvent.Kind.CANCELLED,
        operator,
        "Cancelled by olga before attempt 1",
    )
    [entry] = trail("job.cancelled")
    assert entry.actor == operator
    assert entry.source == "web"
    assert (entry.target_type, entry.target_id) == ("jobs.job", str(job.pk))
    assert entry.detail == {"previous": "pending", "attempt": 1}


def test_cancel_a_retrying_job_before_its_next_attempt(client: Client, operator: User) -> None:
    job = factories.make_job(status=JobStatus.RETRYING, attempts=2)
    client.post(cancel_url(job))
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error_message == "Cancelled by olga before attempt 3"
    assert job.next_attempt_at is None
    assert job.error_traceback == ""
    assert counters(job.job_type) == {"failed": 1}
    # The attempts that did run keep their own errors.
    assert JobAttempt.objects.filter(job=job, error_message__contains="503").count() == 2


def test_cancelling_a_provisioning_job_fails_its_identity() -> None:
    identity = factories.make_identity(status=IdentityStatus.PROVISIONING)
    job = services.enqueue(JobType.CREATE_DOMAIN_USER, subject=identity)
    services.cancel_job(job.pk, actor=factories.make_user("olga"))
    identity.refresh_from_db()
    assert identity.status == IdentityStatus.FAILED


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (JobStatus.RUNNING, "is running now; it will finish or time out"),
        (JobStatus.COMPLETED, "has already completed; there is nothing to cancel"),
        (JobStatus.FAILED, "has already failed; there is nothing to cancel"),
    ],
)
def test_jobs_not_waiting_are_not_cancelled(
    client: Client, operator: User, status: str, message: str
) -> None:
    job = factories.make_job(status=status)
    before = counters(job.job_type)
    response = client.post(cancel_url(job), follow=True)
    assert f"Job #{job.pk} {message}" in response.content.decode()
    job.refresh_from_db()
    assert job.status == status
    assert job.error_class != "Cancelled"
    assert counters(job.job_type) == before
    assert not JobEvent.objects.exists()
    assert not trail("job.cancelled")


def test_double_click_cancels_once(client: Client, operator: User) -> None:
    job = factories.make_job(status=JobStatus.PENDING)
    first = client.post(cancel_url(job), follow=True)
    second = client.post(cancel_url(job), follow=True)
    assert "Job cancelled" in first.content.decode()
    assert "has already failed; there is nothing to cancel" in second.content.decode()
    assert JobEvent.objects.filter(job=job, kind=JobEvent.Kind.CANCELLED).count() == 1
    assert len(trail("job.cancelled")) == 1
    assert counters(job.job_type) == {"failed": 1}


def test_cancel_button_only_for_waiting_jobs_and_those_who_may_cancel(client: Client) -> None:
    pending = factories.make_job(status=JobStatus.PENDING)
    retrying = factories.make_job(status=JobStatus.RETRYING)
    running = factories.make_job(status=JobStatus.RUNNING)
    failed = factories.make_job(status=JobStatus.FAILED)

    client.force_login(user_with_role("vera", "viewer"))
    for job in (pending, retrying, failed):
        html = client.get(detail_url(job)).content.decode()
        assert cancel_url(job) not in html
        assert reverse("jobs:retry", args=[job.pk]) not in html

    client.force_login(user_with_role("olga", "operator"))
    for job in (pending, retrying):
        assert cancel_url(job) in client.get(detail_url(job)).content.decode()
    for job in (running, failed):
        assert cancel_url(job) not in client.get(detail_url(job)).content.decode()
    assert (
        reverse("jobs:retry", args=[failed.pk]) in client.get(detail_url(failed)).content.decode()
    )


def test_a_viewer_may_not_cancel(client: Client) -> None:
    client.force_login(user_with_role("vera", "viewer"))
    job = factories.make_job(status=JobStatus.PENDING)
    assert client.post(cancel_url(job)).status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert not JobEvent.objects.exists()


def test_anonymous_is_sent_to_login(client: Client) -> None:
    job = factories.make_job(status=JobStatus.PENDING)
    response = client.post(cancel_url(job))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_cancel_needs_csrf() -> None:
    job = factories.make_job(status=JobStatus.PENDING)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user_with_role("olga", "operator"))
    assert browser.post(cancel_url(job)).status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING

    browser.get(detail_url(job))  # sets the CSRF cookie, as a browser would
    token = browser.cookies["csrftoken"].value
    assert browser.post(cancel_url(job), {"csrfmiddlewaretoken": token}).status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED


def test_cancel_by_get_is_405_and_unknown_job_404(client: Client, operator: User) -> None:
    job = factories.make_job(status=JobStatus.PENDING)
    assert client.get(cancel_url(job)).status_code == 405
    assert client.post(reverse("jobs:cancel", args=[999999])).status_code == 404


# --- the API --------------------------------------------------------------------------------


def test_api_cancel_with_token_then_409(client: Client) -> None:
    job = factories.make_job(status=JobStatus.RETRYING, attempts=1)
    api = Client(enforce_csrf_checks=True)
    token = bearer(user_with_role("olga", "operator"))
    first = api.post(api_cancel_url(job), headers=token)
    second = api.post(api_cancel_url(job), headers=token)

    assert first.status_code == 200
    body = first.json()
    assert body["cancelled"] is True
    assert body["job"]["id"] == job.pk
    assert body["job"]["status"] == "failed"
    assert body["job"]["error"]["message"] == "Cancelled by olga before attempt 2"
    assert body["job"]["events"][-1]["kind"] == "cancelled"
    assert body["job"]["events"][-1]["actor"] == "olga"

    assert second.status_code == 409
    assert second.json()["cancelled"] is False
    assert "has already failed" in second.json()["detail"]
    assert second.json()["job"]["status"] == "failed"
    [entry] = trail("job.cancelled")
    assert entry.source == "api"
    assert entry.actor_name == "olga"


def test_api_refuses_a_running_job_with_409(client: Client) -> None:
    job = factories.make_job(status=JobStatus.RUNNING)
    response = client.post(api_cancel_url(job), headers=bearer(user_with_role("olga", "operator")))
    assert response.status_code == 409
    assert response.json()["detail"] == f"Job #{job.pk} is running now; it will finish or time out"
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


def test_api_cancel_needs_the_permission_and_a_user(client: Client) -> None:
    job = factories.make_job(status=JobStatus.PENDING)
    viewer = client.post(api_cancel_url(job), headers=bearer(user_with_role("vera", "viewer")))
    assert viewer.status_code == 403
    assert viewer.json()["detail"] == "permission denied"
    anonymous = Client().post(api_cancel_url(job))
    assert anonymous.status_code == 401
    assert "authentication required" in anonymous.json()["detail"]
    unknown = client.post(
        reverse("jobs:api-cancel", args=[999999]),
        headers=bearer(user_with_role("olga", "operator")),
    )
    assert unknown.status_code == 404
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


def test_api_cancel_with_session_needs_csrf() -> None:
    job = factories.make_job(status=JobStatus.PENDING)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user_with_role("olga", "operator"))
    response = browser.post(api_cancel_url(job))
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING

    browser.get(detail_url(job))
    token = browser.cookies["csrftoken"].value
    assert browser.post(api_cancel_url(job), headers={"X-CSRFToken": token}).status_code == 200


# --- the worker -----------------------------------------------------------------------------


def test_the_message_of_a_cancelled_pending_job_runs_nothing(runs: list[int]) -> None:
    job = services.enqueue(PROBE)
    services.cancel_job(job.pk, actor=factories.make_user("olga"))
    job = deliver(job)  # the message that was already in the broker arrives
    assert runs == []
    assert job.status == JobStatus.FAILED
    assert job.attempt_count == 0
    assert not JobAttempt.objects.filter(job=job).exists()
    assert counters(PROBE) == {"failed": 1}


def test_the_scheduled_retry_of_a_cancelled_job_runs_nothing(runs: list[int]) -> None:
    job = deliver(services.enqueue(PROBE, params={"fail_first": True}))
    assert job.status == JobStatus.RETRYING
    assert runs == [job.pk]
    services.cancel_job(job.pk, actor=factories.make_user("olga"))
    job = deliver(job)  # Celery's retry message arrives when it is due
    assert runs == [job.pk]
    assert job.status == JobStatus.FAILED
    assert job.attempt_count == 1
    assert job.error_message == "Cancelled by olga before attempt 2"


def test_retry_after_cancel_runs_to_completion(runs: list[int]) -> None:
    olga = factories.make_user("olga")
    job = services.enqueue(PROBE)
    old_message = str(job.celery_task_id)
    services.cancel_job(job.pk, actor=olga)
    job.refresh_from_db()
    assert services.retry_job(job, actor=olga)
    assert str(job.celery_task_id) != old_message

    job = deliver(job)
    assert job.status == JobStatus.COMPLETED
    assert job.result == {"ran": True}
    assert job.error_class == ""
    assert runs == [job.pk]
    assert counters(PROBE) == {"completed": 1}
    assert [event.kind for event in JobEvent.objects.filter(job=job)] == ["cancelled", "retried"]
    assert [(e.action, e.actor) for e in TrailEntry.objects.order_by("id")] == [
        ("job.cancelled", olga),
        ("job.retried", olga),
    ]


def test_the_sweeper_leaves_a_cancelled_job_failed(
    sent: list[int], django_capture_on_commit_callbacks
) -> None:
    job = services.enqueue(PROBE)
    services.cancel_job(job.pk, actor=factories.make_user("olga"))
    stuck = services.enqueue(PROBE)  # overdue too, but not cancelled: this one is resent
    Job.objects.filter(pk__in=[job.pk, stuck.pk]).update(
        dispatched_at=timezone.now() - timedelta(seconds=settings.JOB_SWEEP_GRACE + 60)
    )
    # The sweeper publishes on commit: run those callbacks, or nothing could ever be sent.
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeper.sweep() == {"resent": 1, "recovered": 0, "waiting": 0}
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert sent == [stuck.pk]


# --- the trail of retries -------------------------------------------------------------------


def test_retry_from_the_page_is_in_the_trail(client: Client, operator: User) -> None:
    job = factories.make_job(status=JobStatus.FAILED, subject_label="ada@example.com")
    client.post(reverse("jobs:retry", args=[job.pk]))
    client.post(reverse("jobs:retry", args=[job.pk]))  # a double click retries once
    [entry] = trail("job.retried")
    assert entry.actor == operator
    assert entry.source == "web"
    assert entry.target_id == str(job.pk)
    assert entry.target_label == f"Directory sync #{job.pk}: ada@example.com"
