"""Settings > Jobs pages: access, filters, keyset paging, counts, detail, retry, secrets."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from jobs.models import Job, JobEvent, JobStatus, JobStatusCount, JobType, Trigger
from tests import factories

pytestmark = pytest.mark.django_db

LIST_URL = reverse("jobs:list")
SECRET = "s3cr3t-planted-7c1e"


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record job messages instead of publishing them, so no test touches a broker."""
    calls: list[int] = []
    monkeypatch.setattr("jobs.services.send", lambda job_id, **kwargs: calls.append(job_id))
    return calls


@pytest.fixture
def viewer(client: Client):
    user = factories.make_viewer()
    client.force_login(user)
    return user


@pytest.fixture
def retrier(client: Client):
    user = factories.make_retrier()
    client.force_login(user)
    return user


def row_ids(response) -> list[int]:
    return [row["id"] for row in response.context["rows"]]


def detail_url(job: Job) -> str:
    return reverse("jobs:detail", args=[job.pk])


def retry_url(job: Job) -> str:
    return reverse("jobs:retry", args=[job.pk])


# --- access ---------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login(client: Client) -> None:
    job = factories.make_job()
    for url in (LIST_URL, detail_url(job)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login") + "?next=")
    response = client.post(retry_url(job))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_user_without_view_permission_gets_403_and_no_data(client: Client) -> None:
    job = factories.make_job(subject_label="hidden-subject@example.com")
    client.force_login(factories.make_user("nobody"))
    for url in (LIST_URL, detail_url(job), LIST_URL + "?status=bogus"):
        response = client.get(url)
        assert response.status_code == 403
        assert b"hidden-subject" not in response.content


def test_superuser_sees_the_list(client: Client) -> None:
    factories.make_job()
    client.force_login(factories.make_user("root", superuser=True))
    assert client.get(LIST_URL).status_code == 200


def test_login_page_renders(client: Client) -> None:
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="password"' in response.content


# --- list -----------------------------------------------------------------------------------


def test_list_rows_newest_first_with_their_columns(client: Client, viewer) -> None:
    admin = factories.make_user("alice")
    older = factories.make_job(job_type=JobType.CREATE_DOMAIN_USER, triggered_by=admin)
    newer = factories.make_job(
        job_type=JobType.CREDENTIAL_ROTATION,
        status=JobStatus.FAILED,
        subject_label="bob@example.com",
        trigger=Trigger.SCHEDULE,
        attempts=3,
    )
    response = client.get(LIST_URL)
    assert response.status_code == 200
    assert row_ids(response) == [newer.pk, older.pk]
    html = response.content.decode()
    for text in ("Create domain user", "Credential rotation", "bob@example.com", "alice"):
        assert text in html
    assert "Schedule" in html
    assert 'class="badge badge-failed"' in html
    assert "7.5 s" in html  # started 2 s after creation, completed 9.5 s after
    assert response.context["rows"][0]["attempt_count"] == 3


def test_list_shows_the_job_settings_read_only(client: Client, viewer) -> None:
    html = client.get(LIST_URL).content.decode()
    assert f"{settings.JOB_MAX_RETRIES + 1} (first + {settings.JOB_MAX_RETRIES} retries)" in html
    assert (
        f"exponential, base {settings.JOB_BACKOFF_BASE} s doubling, "
        f"capped at {settings.JOB_BACKOFF_MAX} s"
    ) in html
    assert f"{settings.JOB_TIMEOUT} s" in html


@pytest.fixture
def mixed_jobs() -> dict[tuple[str, str], Job]:
    jobs: dict[tuple[str, str], Job] = {}
    for job_type in (JobType.DIRECTORY_SYNC, JobType.BULK_IMPORT):
        for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.RUNNING):
            jobs[(job_type, status)] = factories.make_job(job_type=job_type, status=status)
    return jobs


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"type": "bulk_import"}, lambda t, s: t == "bulk_import"),
        ({"status": "failed"}, lambda t, s: s == "failed"),
        (
            {"type": "directory_sync", "status": "running"},
            lambda t, s: t == "directory_sync" and s == "running",
        ),
        ({"type": "", "status": ""}, lambda t, s: True),
    ],
)
def test_filters_by_type_status_and_both(client, viewer, mixed_jobs, query, expected) -> None:
    response = client.get(LIST_URL, query)
    assert response.status_code == 200
    wanted = sorted((job.pk for key, job in mixed_jobs.items() if expected(*key)), reverse=True)
    assert row_ids(response) == wanted
    html = response.content.decode()
    for value in query.values():
        if value:  # the filter form keeps the chosen values
            assert f'<option value="{value}" selected>' in html


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("type=nope", "type"),
        ("status=exploded", "status"),
        ("type=bulk_import&status=Failed", "status"),
        ("before=abc", "before"),
        ("before=-3", "before"),
    ],
)
def test_bad_filter_is_a_400_with_a_clear_message(client: Client, viewer, query, parameter) -> None:
    response = client.get(f"{LIST_URL}?{query}")
    assert response.status_code == 400
    html = response.content.decode()
    assert f"Bad filter “{parameter}”" in html
    assert "expected one of" in html or "positive job id" in html


def test_bad_filter_value_is_escaped(client: Client, viewer) -> None:
    response = client.get(LIST_URL, {"status": "<script>alert(1)</script>"})
    assert response.status_code == 400
    assert b"<script>alert(1)</script>" not in response.content
    assert b"Unknown job status" in response.content


def test_keyset_paging_without_overlap_keeps_filters(client: Client, viewer, settings) -> None:
    settings.JOB_PAGE_SIZE = 3
    failed = factories.make_jobs(7, job_type=JobType.BULK_IMPORT, status=JobStatus.FAILED)
    factories.make_jobs(4, job_type=JobType.BULK_IMPORT, status=JobStatus.COMPLETED)
    factories.make_jobs(4, job_type=JobType.REMEDIATION, status=JobStatus.FAILED)
    expected = sorted((job.pk for job in failed), reverse=True)

    seen: list[int] = []
    url = f"{LIST_URL}?type=bulk_import&status=failed"
    pages = 0
    while url:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert not any("OFFSET" in query["sql"].upper() for query in queries.captured_queries)
        assert response.status_code == 200
        seen += row_ids(response)
        pages += 1
        url = response.context["next_url"]
        if url:
            query = parse_qs(urlsplit(url).query)
            assert query["type"] == ["bulk_import"]
            assert query["status"] == ["failed"]
            assert query["before"] == [str(seen[-1])]
            assert url.replace("&", "&amp;") in response.content.decode()
    assert pages == 3
    assert seen == expected  # every job once, newest first, nothing repeated


def test_second_page_links_back_to_the_newest(client: Client, viewer, settings) -> None:
    settings.JOB_PAGE_SIZE = 2
    jobs = factories.make_jobs(3)
    response = client.get(LIST_URL, {"before": jobs[1].pk})
    assert row_ids(response) == [jobs[0].pk]
    assert response.context["next_url"] is None
    assert response.context["newest_url"] == LIST_URL


def test_counts_come_from_the_counters(client: Client, viewer) -> None:
    factories.make_jobs(2, job_type=JobType.BULK_IMPORT, status=JobStatus.FAILED)
    factories.make_jobs(3, job_type=JobType.BULK_IMPORT, status=JobStatus.COMPLETED)
    factories.make_jobs(1, job_type=JobType.REMEDIATION, status=JobStatus.FAILED)

    counts = {status: count for status, _, count, _ in client.get(LIST_URL).context["counts"]}
    assert counts == {
        "pending": 0,
        "running": 0,
        "completed": 3,
        "failed": 3,
        "retrying": 0,
        "waiting": 0,
    }

    response = client.get(LIST_URL, {"type": "bulk_import", "status": "failed"})
    counts = {status: count for status, _, count, _ in response.context["counts"]}
    assert counts == {
        "pending": 0,
        "running": 0,
        "completed": 3,
        "failed": 2,
        "retrying": 0,
        "waiting": 0,
    }
    assert response.context["total"] == 5

    # The page shows the maintained counters, not a count of the table.
    JobStatusCount.objects.filter(job_type="remediation", status="pending").update(count=1234)
    response = client.get(LIST_URL)
    assert "<b>1234</b>" in response.content.decode()


def test_list_query_count_is_small_and_constant(
    client: Client, viewer, django_assert_max_num_queries
) -> None:
    factories.make_jobs(2, status=JobStatus.FAILED, attempts=2)
    with CaptureQueriesContext(connection) as few:
        client.get(LIST_URL)
    factories.make_jobs(30, status=JobStatus.RUNNING, attempts=2, triggered_by=viewer)
    with django_assert_max_num_queries(8), CaptureQueriesContext(connection) as many:
        response = client.get(LIST_URL, {"status": "running"})
    assert len(response.context["rows"]) == 30
    assert len(many) == len(few)
    assert not any("COUNT(" in query["sql"].upper() for query in many.captured_queries)
    job_query = next(q["sql"] for q in many.captured_queries if 'FROM "jobs_job"' in q["sql"])
    assert "error_traceback" not in job_query
    assert '"params"' not in job_query


def test_list_polls_only_while_jobs_are_active(client: Client, viewer) -> None:
    factories.make_job(status=JobStatus.COMPLETED)
    assert b'hx-trigger="every 3s"' not in client.get(LIST_URL).content
    factories.make_job(status=JobStatus.RETRYING)
    html = client.get(LIST_URL, {"type": "directory_sync"}).content.decode()
    assert 'hx-trigger="every 3s"' in html
    assert 'hx-get="/settings/jobs/?type=directory_sync"' in html


def test_htmx_refresh_gets_only_the_fragment(client: Client, viewer) -> None:
    job = factories.make_job(status=JobStatus.RUNNING)
    response = client.get(LIST_URL, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="jobs-live"')
    assert "<html" not in html
    assert f'href="{detail_url(job)}"' in html
    assert "HX-Request" in response["Vary"]
    restore = client.get(
        LIST_URL, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert b"<html" in restore.content


# --- detail ---------------------------------------------------------------------------------


def test_detail_shows_attempts_error_traceback_and_history(client: Client, viewer) -> None:
    admin = factories.make_user("alice")
    job = factories.make_job(
        status=JobStatus.FAILED,
        attempts=3,
        params={"user": "ada@example.com", "credential_ref": "vault:gws/ada#v3"},
    )
    factories.make_event(job, JobEvent.Kind.RETRIED, actor=admin, message="Retried by alice")
    factories.make_event(job, JobEvent.Kind.RESENT, message="sent again by the sweeper")

    response = client.get(detail_url(job))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Directory sync" in html
    assert "jobs.errors.TransientError" in html
    assert "Google Workspace rejected user ada@example.com: 503 Backend Error" in html
    assert '<details id="job-traceback">' in html
    assert "Traceback (most recent call last):" in html
    assert "vault:gws/ada#v3" in html  # a vault reference is not a secret
    attempts = response.context["job"]["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert [a["outcome"] for a in attempts] == ["failed", "failed", "failed"]
    assert [a["wait_before_next_seconds"] for a in attempts] == [10.0, 20.0, None]
    for number in (1, 2, 3):
        assert f"attempt {number}: 503 Backend Error" in html
        assert f"celery@worker-{number}" in html
    assert "Retried by an admin" in html
    assert "alice" in html
    assert "Message re-sent by the sweeper" in html
    assert 'hx-trigger="every 3s"' not in html  # failed is final: no polling


def test_detail_of_retrying_job_counts_down_and_polls(client: Client, viewer) -> None:
    job = factories.make_job(status=JobStatus.RETRYING, attempts=2)
    next_at = job.next_attempt_at
    assert next_at is not None
    html = client.get(detail_url(job)).content.decode()
    assert f'data-countdown-to="{next_at.isoformat()}"' in html
    assert next_at.strftime("%Y-%m-%d %H:%M:%S") in html
    assert 'hx-trigger="every 3s"' in html
    fragment = client.get(detail_url(job), headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="job-live"')


def test_unknown_job_is_404(client: Client, viewer) -> None:
    assert client.get(reverse("jobs:detail", args=[999999])).status_code == 404


def test_error_text_is_escaped(client: Client, viewer) -> None:
    job = factories.make_job(status=JobStatus.FAILED, error_message="<script>alert(1)</script>")
    response = client.get(detail_url(job))
    assert b"<script>alert(1)</script>" not in response.content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in response.content


def test_retry_button_only_for_failed_jobs_and_retriers(client: Client) -> None:
    failed = factories.make_job(status=JobStatus.FAILED)
    completed = factories.make_job(status=JobStatus.COMPLETED)
    client.force_login(factories.make_viewer())
    assert retry_url(failed).encode() not in client.get(detail_url(failed)).content
    client.force_login(factories.make_retrier())
    assert retry_url(failed).encode() in client.get(detail_url(failed)).content
    assert retry_url(completed).encode() not in client.get(detail_url(completed)).content


# --- retry ----------------------------------------------------------------------------------


def test_retry_queues_the_failed_job(
    client: Client, retrier, sent, django_capture_on_commit_callbacks
) -> None:
    job = factories.make_job(status=JobStatus.FAILED, attempts=6)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(retry_url(job), follow=True)
    assert response.redirect_chain == [(detail_url(job), 302)]
    assert "Retry queued" in response.content.decode()
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert job.retries == 0
    event = JobEvent.objects.get(job=job)
    assert event.kind == JobEvent.Kind.RETRIED
    assert event.actor == retrier
    assert sent == [job.pk]
    counters = dict(
        JobStatusCount.objects.filter(job_type=job.job_type).values_list("status", "count")
    )
    assert counters["failed"] == 0
    assert counters["pending"] == 1


def test_double_retry_makes_exactly_one(
    client: Client, retrier, sent, django_capture_on_commit_callbacks
) -> None:
    job = factories.make_job(status=JobStatus.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(retry_url(job), follow=True)
        second = client.post(retry_url(job), follow=True)
    assert "Retry queued" in first.content.decode()
    assert "This job is not failed (any more); nothing to retry" in second.content.decode()
    assert JobEvent.objects.filter(job=job, kind=JobEvent.Kind.RETRIED).count() == 1
    assert sent == [job.pk]


def test_retry_needs_the_retry_permission(client: Client, viewer) -> None:
    job = factories.make_job(status=JobStatus.FAILED)
    assert client.post(retry_url(job)).status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert not JobEvent.objects.exists()


def test_retry_needs_csrf() -> None:
    job = factories.make_job(status=JobStatus.FAILED)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(factories.make_retrier())
    assert browser.post(retry_url(job)).status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED

    browser.get(detail_url(job))  # sets the CSRF cookie, as a browser would
    token = browser.cookies["csrftoken"].value
    response = browser.post(retry_url(job), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


def test_retry_by_get_is_405(client: Client, retrier) -> None:
    job = factories.make_job(status=JobStatus.FAILED)
    assert client.get(retry_url(job)).status_code == 405


def test_retry_of_unknown_job_is_404(client: Client, retrier) -> None:
    assert client.post(reverse("jobs:retry", args=[999999])).status_code == 404


# --- secrets --------------------------------------------------------------------------------


def test_planted_secrets_never_reach_a_page(client: Client) -> None:
    owner = factories.make_user("owner")
    job = factories.make_job(
        status=JobStatus.FAILED,
        triggered_by=owner,
        params={
            "user": "ada@example.com",
            "password": SECRET,
            "nested": {"api_key": SECRET, "items": [{"client_secret": SECRET}]},
        },
        result={"access_token": SECRET, "private_key": SECRET},
    )
    retrier = factories.make_retrier()
    client.force_login(retrier)
    forbidden = [SECRET, owner.password, retrier.password, settings.SECRET_KEY]
    pages = [
        client.get(LIST_URL),
        client.get(LIST_URL, headers={"HX-Request": "true"}),
        client.get(detail_url(job)),
        client.get(detail_url(job), headers={"HX-Request": "true"}),
        client.post(retry_url(job), follow=True),
    ]
    for response in pages:
        assert response.status_code == 200
        html = response.content.decode()
        for secret in forbidden:
            assert secret not in html
    assert "[redacted]" in pages[2].content.decode()


# --- admin ----------------------------------------------------------------------------------


def test_admin_is_read_only_and_redacts(client: Client) -> None:
    job = factories.make_job(
        status=JobStatus.FAILED, attempts=2, params={"password": SECRET}, result={"token": SECRET}
    )
    factories.make_event(job, JobEvent.Kind.RESENT, message="sent again")
    client.force_login(factories.make_user("root", superuser=True))
    changelist = client.get(reverse("admin:jobs_job_changelist"), {"job_type": "directory_sync"})
    change = client.get(reverse("admin:jobs_job_change", args=[job.pk]))
    events = client.get(reverse("admin:jobs_jobevent_changelist"))
    for response in (changelist, change, events):
        assert response.status_code == 200
        assert SECRET not in response.content.decode()
    assert "[redacted]" in change.content.decode()
    assert "attempt 2: 503 Backend Error" in change.content.decode()
    assert b'name="_save"' not in change.content
    assert client.get(reverse("admin:jobs_job_add")).status_code == 403
    assert client.post(reverse("admin:jobs_job_delete", args=[job.pk])).status_code == 403


def test_admin_retry_action_uses_the_service(client: Client) -> None:
    failed = factories.make_job(status=JobStatus.FAILED)
    completed = factories.make_job(status=JobStatus.COMPLETED)
    root = factories.make_user("root", superuser=True)
    client.force_login(root)
    response = client.post(
        reverse("admin:jobs_job_changelist"),
        {"action": "retry_selected", "_selected_action": [failed.pk, completed.pk]},
        follow=True,
    )
    assert "1 job(s) queued for retry." in response.content.decode()
    failed.refresh_from_db()
    completed.refresh_from_db()
    assert failed.status == JobStatus.PENDING
    assert completed.status == JobStatus.COMPLETED
    assert JobEvent.objects.get(job=failed).actor == root
