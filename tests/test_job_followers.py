"""Which status changes share a transaction with the apps that follow them (jobs.signals.follow)
on the real PostgreSQL, outside any test transaction: a followed job's claim and completion
are undone with a follower that fails; a job nobody follows is claimed and completed by one
statement each, in autocommit."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from identities.models import IdentityStatus
from jobs import lifecycle, registry, runner, services
from jobs.models import Job, JobStatus, JobType
from jobs.signals import job_status_changed
from tests.conftest import require_services
from tests.factories import make_identity
from tests.integration import handlers  # noqa: F401 - registers the test job types

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def postgres() -> None:
    require_services("postgres")


@pytest.fixture
def failing_follower() -> Iterator[Callable[[Job, str], None]]:
    """A receiver that fails when the given job moves to the given status."""
    plan: dict[int, str] = {}

    def refuse(sender: Any, *, job_id: int, to_status: str, **kwargs: Any) -> None:
        if plan.get(job_id) == to_status:
            raise RuntimeError("the follower failed")

    job_status_changed.connect(refuse, dispatch_uid="test_failing_follower")
    yield lambda job, status: plan.update({job.pk: status})
    job_status_changed.disconnect(dispatch_uid="test_failing_follower")


def claim(job: Job) -> None:
    lifecycle.start_attempt(job.pk, task_id=str(job.celery_task_id), retries=0, worker="w")


def test_a_followed_jobs_claim_is_undone_with_its_failing_follower(failing_follower) -> None:
    by_type = services.enqueue(JobType.REMEDIATION)  # followed by policies
    by_subject = services.enqueue("test_noop", subject=make_identity())  # by identities
    for job in (by_type, by_subject):
        failing_follower(job, JobStatus.RUNNING)
        with pytest.raises(RuntimeError):
            claim(job)
        job.refresh_from_db()
        assert (job.status, job.attempt_count, job.attempts.count()) == (JobStatus.PENDING, 0, 0)


def test_a_followed_jobs_completion_is_undone_with_its_failing_follower(
    failing_follower,
) -> None:
    job = services.enqueue("test_noop", subject=make_identity())
    failing_follower(job, JobStatus.COMPLETED)
    with pytest.raises(RuntimeError):
        runner.execute(
            job.pk, task_id=str(job.celery_task_id), retries=0, max_retries=5, worker="w"
        )
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.attempts.get().outcome == "running"


def test_a_job_nobody_follows_is_claimed_and_completed_in_autocommit(failing_follower) -> None:
    """Its followers hear of a change once it has committed: one that fails cannot undo it."""
    job = services.enqueue("test_noop")
    failing_follower(job, JobStatus.RUNNING)
    with pytest.raises(RuntimeError):
        claim(job)
    job.refresh_from_db()
    assert (job.status, job.attempts.count()) == (JobStatus.RUNNING, 1)


def run_recording_statements(job: Job) -> list[tuple[str, bool]]:
    """Deliver the job once; each SQL statement's first word, and whether it ran inside a
    transaction."""
    statements: list[tuple[str, bool]] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql.split()[0], connection.in_atomic_block))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        runner.execute(
            job.pk, task_id=str(job.celery_task_id), retries=0, max_retries=5, worker="w"
        )
    return statements


def test_a_job_nobody_follows_costs_two_statements_outside_any_transaction() -> None:
    lifecycle.followed()  # what a process loads once: the followed models' content types
    job = services.enqueue("test_noop")

    statements = run_recording_statements(job)

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert statements == [("WITH", False), ("WITH", False)]


def test_an_identitys_status_follows_its_job_in_the_same_transaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(registry._handlers, JobType.CREATE_DOMAIN_USER, lambda job: {})
    identity = make_identity(status=IdentityStatus.PROVISIONING)
    job = services.enqueue(JobType.CREATE_DOMAIN_USER, subject=identity)

    statements = run_recording_statements(job)

    identity.refresh_from_db()
    assert identity.status == IdentityStatus.PROVISIONED
    # The claim first tried as for a job nobody follows: a statement that changed nothing.
    assert statements[0] == ("WITH", False)
    assert len(statements) > 3
    assert all(inside for _, inside in statements[1:])
