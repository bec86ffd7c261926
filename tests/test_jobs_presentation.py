"""Settings > Jobs says what happened, no more and no less: when a retrying job tries next, that
a failed job gave up after its attempts, that an error is from before a Retry, a long error
once, the input as the subject and its parameters, cancelled jobs found by a filter, and a
Cancel that asks first."""

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs import services
from jobs.models import Job, JobStatus, JobType
from tests import factories

pytestmark = pytest.mark.django_db

LIST_URL = reverse("jobs:list")
MESSAGE = "Google Workspace rejected user ada@example.com: 503 Backend Error"


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record job messages instead of publishing them, so no test touches a broker."""
    calls: list[int] = []
    monkeypatch.setattr("jobs.services.send", lambda job_id, **kwargs: calls.append(job_id))
    return calls


@pytest.fixture
def admin(client: Client):
    user = factories.make_user("root", superuser=True)
    client.force_login(user)
    return user


def detail(client: Client, job: Job) -> str:
    response = client.get(reverse("jobs:detail", args=[job.pk]))
    assert response.status_code == 200
    return str(response.content.decode())


def text(html: str) -> str:
    """The page's words, without markup and with whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_a_retrying_row_says_when_it_tries_next(client: Client, admin) -> None:
    job = factories.make_job(status=JobStatus.RETRYING, attempts=2)
    job.next_attempt_at = timezone.now() + timedelta(seconds=38.4)
    job.save(update_fields=["next_attempt_at"])
    factories.make_job(status=JobStatus.COMPLETED)
    page = text(client.get(LIST_URL).content.decode())
    assert re.search(r"Retrying next in 3\d s", page)  # 38 s, less the time this took
    assert page.count("next in") == 1  # only on the retrying row


def test_an_exhausted_job_says_it_gave_up_after_its_attempts(client: Client, admin) -> None:
    attempts = settings.JOB_MAX_RETRIES + 1
    job = factories.make_job(status=JobStatus.FAILED, attempts=attempts)
    once = factories.make_job(status=JobStatus.FAILED, attempts=1)  # a permanent error
    listing = text(client.get(LIST_URL).content.decode())
    assert f"Failed gave up after {attempts} attempts" in listing
    assert listing.count("gave up after") == 1
    page = text(detail(client, job))
    assert f"Gave up after {attempts} attempts" in page
    assert "gave up" not in text(detail(client, once)).lower()


def test_after_a_retry_the_old_error_is_marked_previous(client: Client, admin) -> None:
    job = factories.make_job(status=JobStatus.FAILED, attempts=1)
    assert "<h2>Error</h2>" in detail(client, job)
    assert services.retry_job(job, actor=admin)
    page = detail(client, job)
    assert "Previous error" in page
    assert "(before the retry)" in page
    assert "<h2>Error</h2>" not in page
    assert 'class="previous-error"' in page
    assert MESSAGE in page  # kept for the record


def test_a_long_error_is_shown_once(client: Client, admin) -> None:
    long_message = "LDAP server said: " + "no such object; " * 80
    job = factories.make_job(status=JobStatus.FAILED, attempts=2, error_message=long_message)
    job.attempts.filter(number=2).update(error_message=long_message)
    page = detail(client, job)
    assert page.count("LDAP server said:") == 1
    assert '<a href="#job-error">as above</a>' in page
    assert "attempt 1: 503 Backend Error" in page  # an earlier, different error stays


def test_the_input_is_the_identity_and_its_parameters(client: Client, admin) -> None:
    identity = factories.make_identity(login="grace@example.com", display_name="Grace Hopper")
    job = factories.make_job(
        job_type=JobType.CREATE_DOMAIN_USER, subject_label="grace@example.com", params={}
    )
    Job.objects.filter(pk=job.pk).update(
        subject_id=str(identity.pk), subject_type=ContentType.objects.get_for_model(identity)
    )
    page = detail(client, job)
    assert f'<a href="/identities/{identity.pk}/">grace@example.com</a>' in page
    assert "No parameters" in text(page)
    assert '<pre class="json">{}</pre>' not in page

    with_params = factories.make_job(params={"user": "ada@example.com", "page_size": 500})
    page = text(detail(client, with_params))
    assert "page_size 500" in page
    assert "user ada@example.com" in page
    assert "No parameters" not in page


def test_cancelled_jobs_have_their_own_filter(client: Client, admin) -> None:
    pending = factories.make_job(status=JobStatus.PENDING)
    services.cancel_job(pending.pk, actor=admin)
    failed = factories.make_job(status=JobStatus.FAILED)
    factories.make_job(status=JobStatus.COMPLETED)

    response = client.get(LIST_URL, {"status": "cancelled"})
    assert response.status_code == 200
    assert [row["id"] for row in response.context["rows"]] == [pending.pk]
    assert "Cancelled" in text(response.content.decode())
    failed_rows = client.get(LIST_URL, {"status": "failed"}).context["rows"]
    assert {row["id"] for row in failed_rows} == {pending.pk, failed.pk}  # still failed
    html = client.get(LIST_URL).content.decode()
    assert '<option value="cancelled">Cancelled (failed by a cancel)</option>' in html
    # The five statuses keep their counts; cancelled is a filter, not a sixth status.
    assert [status for status, *_ in client.get(LIST_URL).context["counts"]] == list(
        JobStatus.values
    )


def test_cancel_asks_to_confirm_without_a_script(client: Client, admin) -> None:
    job = factories.make_job(status=JobStatus.PENDING)
    page = detail(client, job)
    confirm = re.search(r'<details class="confirm" id="cancel-confirm">(.*?)</details>', page, re.S)
    assert confirm, "Cancel opens a confirmation first"
    assert "<summary" in confirm.group(1)
    assert f'action="{reverse("jobs:cancel", args=[job.pk])}"' in confirm.group(1)
    assert "Yes, cancel job" in confirm.group(1)
    assert "<script>" not in page  # nothing inline: the CSP allows only static scripts
