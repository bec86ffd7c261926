"""Jobs that wait for other jobs: released when they complete, not run when one fails for good,
released again by a Retry that completes; and what Settings > Jobs shows meanwhile."""

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from jobs import registry, services
from jobs.errors import PermanentError
from jobs.models import Job, JobStatus, JobStatusCount, JobType
from tests import factories
from tests.inline import deliver

pytestmark = pytest.mark.django_db

PROBE = JobType.REMEDIATION


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr("jobs.services.send", lambda job_id, **kwargs: calls.append(job_id))
    return calls


@pytest.fixture(autouse=True)
def runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The probe type's handler: fails for good while its job's params say "fail"."""
    calls: list[int] = []

    def probe(job: Job) -> dict[str, Any]:
        calls.append(job.pk)
        if Job.objects.get(pk=job.pk).params.get("fail"):
            raise PermanentError("Probe service said 403 Forbidden")
        return {"ran": True}

    monkeypatch.setitem(registry._handlers, PROBE, probe)
    return calls


def counts() -> dict[str, int]:
    rows = JobStatusCount.objects.filter(job_type=PROBE)
    return {row.status: row.count for row in rows if row.count}


def test_a_job_waits_for_its_prerequisite_and_runs_once_it_completes(
    sent, runs, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = services.enqueue(PROBE)
        second = services.enqueue(PROBE, after=[first])

    assert second.status == JobStatus.WAITING
    assert second.waiting_reason == f"waiting for #{first.pk}"
    assert sent == [first.pk]  # no message for a waiting job
    assert deliver(second).attempt_count == 0  # a stray delivery does not run it

    with django_capture_on_commit_callbacks(execute=True):
        deliver(first)
    second.refresh_from_db()
    assert second.status == JobStatus.PENDING
    assert second.waiting_reason == ""
    assert sent == [first.pk, second.pk]
    assert deliver(second).status == JobStatus.COMPLETED
    assert runs == [first.pk, second.pk]
    assert counts() == {JobStatus.COMPLETED: 2}


def test_a_job_with_two_prerequisites_waits_for_both(sent) -> None:
    a, b = services.enqueue(PROBE), services.enqueue(PROBE)
    job = services.enqueue(PROBE, after=[a, b])
    deliver(a)
    job.refresh_from_db()
    assert (job.status, job.waiting_reason) == (JobStatus.WAITING, f"waiting for #{b.pk}")
    deliver(b)
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


def test_a_prerequisite_that_fails_for_good_means_not_run_down_the_chain(sent, runs) -> None:
    first = services.enqueue(PROBE, params={"fail": True})
    second = services.enqueue(PROBE, after=[first])
    third = services.enqueue(PROBE, after=[second])

    deliver(first)
    second.refresh_from_db()
    third.refresh_from_db()
    assert second.status == third.status == JobStatus.FAILED
    assert second.error_message == f"not run: #{first.pk} failed: Probe service said 403 Forbidden"
    assert third.error_message.startswith(f"not run: #{second.pk} failed: not run: #{first.pk}")
    assert runs == [first.pk]
    assert counts() == {JobStatus.FAILED: 3}


def test_a_retry_of_the_prerequisite_that_completes_releases_the_chain(
    sent, runs, admin_user
) -> None:
    first = services.enqueue(PROBE, params={"fail": True})
    second = services.enqueue(PROBE, after=[first])
    third = services.enqueue(PROBE, after=[second])
    deliver(first)

    Job.objects.filter(pk=first.pk).update(params={})  # the cause is fixed
    assert services.retry_job(first, actor=admin_user)
    second.refresh_from_db()
    assert second.status == JobStatus.FAILED  # still "not run" until #first completes
    deliver(first)
    assert deliver(second).status == JobStatus.COMPLETED
    assert deliver(third).status == JobStatus.COMPLETED
    assert runs == [first.pk, first.pk, second.pk, third.pk]
    assert [e.kind for e in second.events.all()] == ["released"]
    assert counts() == {JobStatus.COMPLETED: 3}


def test_retrying_a_not_run_job_by_hand_does_not_run_it_before_its_prerequisite(
    sent, runs, admin_user
) -> None:
    first = services.enqueue(PROBE, params={"fail": True})
    second = services.enqueue(PROBE, after=[first])
    deliver(first)

    assert services.retry_job(second, actor=admin_user)
    second = deliver(second)
    assert second.status == JobStatus.FAILED
    assert second.error_message.startswith(f"not run: #{first.pk} failed")
    assert runs == [first.pk]


def test_enqueued_after_a_finished_job(sent) -> None:
    done = deliver(services.enqueue(PROBE))
    failed = deliver(services.enqueue(PROBE, params={"fail": True}))
    assert services.enqueue(PROBE, after=[done]).status == JobStatus.PENDING
    not_run = services.enqueue(PROBE, after=[done, failed])
    assert not_run.status == JobStatus.FAILED
    assert not_run.error_message.startswith(f"not run: #{failed.pk} failed")


def test_a_waiting_job_can_be_cancelled(sent, admin_user) -> None:
    first = services.enqueue(PROBE)
    second = services.enqueue(PROBE, after=[first])
    services.cancel_job(second.pk, actor=admin_user)
    deliver(first)
    second.refresh_from_db()
    assert second.status == JobStatus.FAILED
    assert second.error_class == "Cancelled"  # a cancel is not undone by the prerequisite
    assert second.waiting_reason == ""  # the page no longer says it waits for #first


def test_the_dashboard_says_what_a_job_waits_for(client: Client, sent) -> None:
    client.force_login(factories.make_viewer())
    first = services.enqueue(PROBE)
    second = services.enqueue(PROBE, after=[first])

    listing = client.get(reverse("jobs:list"), {"status": "waiting"}).content.decode()
    assert f"waiting for #{first.pk}" in listing
    detail = client.get(reverse("jobs:detail", args=[second.pk])).content.decode()
    assert f'Waiting: <span class="waiting-reason">waiting for #{first.pk}</span>' in detail
    assert reverse("jobs:detail", args=[first.pk]) in detail


def test_a_long_list_of_prerequisites_is_cut_to_fit(sent) -> None:
    prerequisites = [services.enqueue(PROBE) for _ in range(60)]
    job = services.enqueue(PROBE, after=prerequisites)
    assert job.waiting_reason.startswith(f"waiting for #{prerequisites[0].pk}, ")
    assert job.waiting_reason.endswith(", …")
    assert len(job.waiting_reason) <= 255
    Job.objects.get(pk=job.pk)  # stored as it is


def test_a_job_nothing_waits_for_looks_up_no_dependents_when_it_finishes(sent) -> None:
    job = services.enqueue(PROBE)
    with CaptureQueriesContext(connection) as captured:
        assert deliver(job).status == JobStatus.COMPLETED
    assert not [q for q in captured.captured_queries if "jobs_jobdependency" in q["sql"]]


def test_a_job_enqueued_after_a_running_one_is_released_when_that_completes(
    sent, runs, django_capture_on_commit_callbacks
) -> None:
    """The running job's attempt was claimed before anything waited for it: its completion
    must still see the dependent linked meanwhile."""
    from jobs import lifecycle, runner

    first = services.enqueue(PROBE)
    attempt = lifecycle.start_attempt(
        first.pk, task_id=str(first.celery_task_id), retries=0, worker="inline"
    )
    assert attempt is not None
    assert not attempt.job.has_dependents
    second = services.enqueue(PROBE, after=[first])
    assert second.status == JobStatus.WAITING

    with django_capture_on_commit_callbacks(execute=True):
        runner.run_attempt(attempt, task_id=str(first.celery_task_id), retries=0, max_retries=5)
    second.refresh_from_db()
    assert second.status == JobStatus.PENDING
    assert sent[-1] == second.pk
    assert deliver(second).status == JobStatus.COMPLETED
