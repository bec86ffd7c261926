"""A pool process never starts a task on a connection PostgreSQL has ended, and finds one that
was cut off silently once it has been idle."""

import select
import time

import psycopg
import pytest
from django.db import OperationalError, connection

from jobs import connections, lifecycle, metrics, registry, runner, services, shared_redis
from jobs.errors import TransientError
from jobs.models import AttemptOutcome, Job, JobStatus, JobType
from tests.conftest import require_services

pytestmark = pytest.mark.django_db(transaction=True)


def end_this_session_from_outside() -> None:
    """What a PostgreSQL restart or pg_terminate_backend does to the session."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    settings = connection.get_connection_params()
    with psycopg.connect(**settings, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    # The server's goodbye reaches the socket soon after; wait for it, not for a set time.
    select.select([connection.connection.fileno()], [], [], 10)


@pytest.fixture(autouse=True)
def kept_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a worker (DATABASE_CONN_MAX_AGE): connections outlive a task."""
    require_services("postgres")
    connection.ensure_connection()
    monkeypatch.setattr(connection, "close_at", None)


def test_a_connection_the_server_ended_is_dropped_before_the_next_task() -> None:
    connections.check_after_task()  # just used: no round trip before the next task
    end_this_session_from_outside()

    connections.check_before_task()

    assert connection.connection is None
    with connection.cursor() as cursor:  # the task's first query opens a fresh one
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_a_connection_in_use_is_kept_without_a_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = connection.connection
    probes = count_probes(monkeypatch)
    connections.check_after_task()
    connections.check_before_task()
    with connection.cursor() as cursor:  # nor a health check on the task's first query
        cursor.execute("SELECT 1")
    assert connection.connection is raw
    assert probes == []


def test_an_idle_connection_gets_one_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connections, "_last_used", time.monotonic() - 5)
    probes = count_probes(monkeypatch)
    connections.check_before_task()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert probes == [True]
    assert connection.connection is not None


def count_probes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    probes: list[bool] = []
    is_usable = connection.is_usable

    def counted() -> bool:
        probes.append(True)
        return is_usable()

    monkeypatch.setattr(connection, "is_usable", counted)
    return probes


def test_the_statements_every_job_runs_are_planned_once_per_connection() -> None:
    from jobs import services
    from jobs.models import JobStatus, JobType
    from tests.inline import deliver

    def prepared() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            return [row[0] for row in cursor.fetchall()]

    for _ in range(2):
        assert deliver(services.enqueue(JobType.REMEDIATION)).status != JobStatus.PENDING
    first = prepared()
    for _ in range(3):
        deliver(services.enqueue(JobType.REMEDIATION))
    assert prepared() == first
    assert any("INSERT INTO jobs_job" in statement for statement in first)  # enqueue
    assert any("jobs_jobattempt" in statement for statement in first)  # claim, completion


@pytest.fixture
def remediation_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the remediation handler does this time: "cut" ends the database session under
    it and then writes, as during a PostgreSQL restart; "cut after" ends it and returns."""
    plan: list[str] = []

    def handler(job: Job) -> dict[str, object]:
        end_this_session_from_outside()
        if plan.pop(0) == "cut":
            Job.objects.filter(pk=job.pk).update(subject_label="written by the handler")
        return {}

    monkeypatch.setitem(registry._handlers, JobType.REMEDIATION, handler)
    client = shared_redis.client()
    assert client is not None
    client.delete(metrics.KEY)
    return plan


def run(job: Job, *, retries: int = 0) -> dict[str, object]:
    return runner.execute(
        job.pk, task_id=str(job.celery_task_id), retries=retries, max_retries=5, worker="w"
    )


@pytest.mark.parametrize("when", ["cut", "cut after"])
def test_a_database_lost_under_an_attempt_is_a_retry_not_a_failure(
    remediation_runs: list[str], when: str, caplog: pytest.LogCaptureFixture
) -> None:
    job = services.enqueue(JobType.REMEDIATION)
    remediation_runs.append(when)

    with pytest.raises(TransientError) as raised:
        run(job)

    assert str(raised.value) == "The database was unreachable: OperationalError"
    job.refresh_from_db()  # on a new connection: the dead one was dropped
    assert (job.status, job.retries, job.attempt_count) == (JobStatus.RETRYING, 1, 1)
    assert job.error_class == "django.db.utils.OperationalError"
    attempt = job.attempts.get()
    assert attempt.outcome == AttemptOutcome.FAILED
    assert metrics.read()[("attempts", JobType.REMEDIATION, AttemptOutcome.FAILED)] == 1
    (line,) = [r for r in caplog.records if r.getMessage() == "jobs.attempt.failed"]
    assert (line.levelname, line.will_retry, line.cause) == ("WARNING", True, "database")  # type: ignore[attr-defined]


def test_a_database_still_down_leaves_the_attempt_for_the_retry_to_take_over(
    remediation_runs: list[str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    job = services.enqueue(JobType.REMEDIATION)
    remediation_runs.append("cut")

    def still_down(*args: object, **kwargs: object) -> bool:
        raise OperationalError("connection refused")

    monkeypatch.setattr(lifecycle, "fail_attempt", still_down)
    with pytest.raises(TransientError):
        run(job)

    (unrecorded,) = [r for r in caplog.records if r.getMessage() == "jobs.attempt.unrecorded"]
    assert unrecorded.error == "OperationalError"  # type: ignore[attr-defined]
    monkeypatch.undo()
    job.refresh_from_db()
    assert (job.status, job.attempt_count) == (JobStatus.RUNNING, 1)
    # Celery's retry of this message (one retry on) takes the attempt over and runs it.
    monkeypatch.setitem(registry._handlers, JobType.REMEDIATION, lambda job: {"ran": True})
    assert run(job, retries=1) == {"job_id": job.pk, "status": "completed"}
    job.refresh_from_db()
    assert (job.status, job.attempt_count, job.result) == (JobStatus.COMPLETED, 2, {"ran": True})
