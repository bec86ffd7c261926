"""Jobs through a real prefork Celery worker on Redis and PostgreSQL."""

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobs import services
from jobs.models import AttemptOutcome, Job, JobEvent, JobStatus
from tests.integration import handlers  # noqa: F401 - registers the test job types
from tests.integration.worker import FAST_JOB_ENV, CeleryProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BACKOFF_BASE = int(FAST_JOB_ENV["ACCESSHIVE_JOB_BACKOFF_BASE"])
BACKOFF_MAX = int(FAST_JOB_ENV["ACCESSHIVE_JOB_BACKOFF_MAX"])


@pytest.fixture
def worker(broker: "redis.Redis[bytes]") -> Iterator[CeleryProcess]:
    process = CeleryProcess("worker").start()
    yield process
    process.stop()


def wait_for_status(job: Job, statuses: set[str], timeout: float, process: CeleryProcess) -> Job:
    wait_for(
        lambda: Job.objects.filter(pk=job.pk, status__in=statuses).exists(),
        timeout,
        f"job {job.pk} to reach {statuses}",
        process,
    )
    job.refresh_from_db()
    return job


def test_job_runs_to_completed_with_one_attempt(worker: CeleryProcess) -> None:
    job = services.enqueue("test_noop", trigger_label="test")
    job = wait_for_status(job, {JobStatus.COMPLETED}, 20, worker)

    assert job.result == {"ok": True}
    assert job.started_at is not None
    assert job.completed_at is not None
    assert job.created_at <= job.started_at <= job.completed_at
    (attempt,) = job.attempts.all()
    assert attempt.outcome == AttemptOutcome.SUCCEEDED
    assert attempt.finished_at is not None
    assert attempt.worker.startswith("test-")


def test_transient_failures_retry_with_doubling_waits(worker: CeleryProcess) -> None:
    job = services.enqueue("test_flaky", params={"fail_times": 2})
    job = wait_for_status(job, {JobStatus.COMPLETED}, 30, worker)

    attempts = list(job.attempts.all())
    assert [a.outcome for a in attempts] == ["failed", "failed", "succeeded"]
    assert job.result == {"succeeded_on_attempt": 3}
    assert "503 on attempt 1" in attempts[0].error_message
    # The scheduled waits double (1 s, then 2 s), and each retry really waited that long.
    assert [a.wait_before_next_seconds for a in attempts[:2]] == pytest.approx(
        [BACKOFF_BASE, 2 * BACKOFF_BASE], abs=0.2
    )
    gaps = [
        (attempts[i + 1].started_at - attempts[i].finished_at).total_seconds()  # type: ignore[operator]
        for i in range(2)
    ]
    assert gaps[0] >= BACKOFF_BASE - 0.1
    assert gaps[1] >= 2 * BACKOFF_BASE - 0.1


def test_always_transient_fails_after_exactly_six_attempts(worker: CeleryProcess) -> None:
    job = services.enqueue("test_always_transient")
    job = wait_for_status(job, {JobStatus.FAILED}, 60, worker)

    attempts = list(job.attempts.all())
    assert len(attempts) == 6
    assert all(a.outcome == AttemptOutcome.FAILED for a in attempts)
    # Celery's scheduled waits double from the base and stop at the cap: 1, 2, 2, 2, 2 s.
    assert [a.wait_before_next_seconds for a in attempts[:5]] == pytest.approx(
        [min(BACKOFF_MAX, BACKOFF_BASE * 2**n) for n in range(5)], abs=0.2
    )
    assert job.error_class == "jobs.errors.TransientError"
    assert job.error_message == "Sandbox upstream answered 503 Service Unavailable"
    assert job.next_attempt_at is None
    assert job.completed_at is not None


def test_permanent_error_fails_after_one_attempt(worker: CeleryProcess) -> None:
    job = services.enqueue("test_permanent")
    job = wait_for_status(job, {JobStatus.FAILED}, 20, worker)

    assert job.attempts.count() == 1
    assert job.error_class == "jobs.errors.PermanentError"
    assert "400 Invalid Input: primaryEmail" in job.error_message
    assert "Traceback" in job.error_traceback


def test_overrunning_attempt_is_timed_out_and_retried(worker: CeleryProcess) -> None:
    timeout = int(FAST_JOB_ENV["ACCESSHIVE_JOB_TIMEOUT"])
    job = services.enqueue("test_slow_first", params={"seconds": timeout + 30})
    job = wait_for_status(job, {JobStatus.COMPLETED}, 30, worker)

    first, second = job.attempts.all()
    assert first.outcome == AttemptOutcome.TIMED_OUT
    assert first.error_message == f"Attempt timed out after {timeout} s"
    assert first.duration_seconds == pytest.approx(timeout, abs=1)
    assert second.outcome == AttemptOutcome.SUCCEEDED


def test_killed_pool_process_is_retried_and_the_effect_happens_once(
    worker: CeleryProcess, broker: "redis.Redis[bytes]"
) -> None:
    # Usually Celery notices the dead pool process at once and re-sends the message
    # (retry_on_worker_lost); when it only notices at the hard time limit, the sweeper run by
    # beat recovers the job. Either way: one lost attempt, then one that succeeds.
    beat = CeleryProcess("beat").start()
    job = services.enqueue("test_effect", params={"seconds": 30})
    wait_for(lambda: broker.get(f"pid:{job.pk}"), 20, "the handler to start", worker)
    pool_process = int(broker.get(f"pid:{job.pk}") or 0)
    assert b"celery" in Path(f"/proc/{pool_process}/cmdline").read_bytes()
    os.kill(pool_process, signal.SIGKILL)

    try:
        job = wait_for_status(job, {JobStatus.COMPLETED}, 40, worker)
    finally:
        beat.stop()
    first, second = job.attempts.all()
    assert first.outcome == AttemptOutcome.LOST
    assert second.outcome == AttemptOutcome.SUCCEEDED
    assert broker.get(f"effect:{job.pk}") == b"1"


def test_killed_worker_is_recovered_by_a_new_worker_and_beat(broker: "redis.Redis[bytes]") -> None:
    first_worker = CeleryProcess("worker").start()
    job = services.enqueue("test_effect", params={"seconds": 30})
    wait_for(lambda: broker.get(f"pid:{job.pk}"), 20, "the handler to start", first_worker)
    first_worker.kill()
    first_worker.stop()

    new_worker = CeleryProcess("worker").start()
    beat = CeleryProcess("beat").start()
    try:
        job = wait_for_status(job, {JobStatus.COMPLETED}, 40, new_worker)
    finally:
        beat.stop()
        new_worker.stop()
    outcomes = [a.outcome for a in job.attempts.all()]
    assert outcomes == [AttemptOutcome.LOST, AttemptOutcome.SUCCEEDED]
    assert job.events.filter(kind=JobEvent.Kind.RECOVERED).count() == 1
    assert broker.get(f"effect:{job.pk}") == b"1"


def test_flushed_broker_messages_are_resent_by_the_sweeper(broker: "redis.Redis[bytes]") -> None:
    jobs = [services.enqueue("test_noop") for _ in range(3)]
    assert broker.llen("celery") == 3
    broker.flushdb()

    worker = CeleryProcess("worker").start()
    beat = CeleryProcess("beat").start()
    try:
        for job in jobs:
            wait_for_status(job, {JobStatus.COMPLETED}, 30, worker)
    finally:
        beat.stop()
        worker.stop()
    for job in jobs:
        assert job.events.filter(kind=JobEvent.Kind.RESENT).count() == 1
        assert job.attempts.count() == 1


def test_duplicate_delivery_of_a_completed_job_changes_nothing(
    worker: CeleryProcess, broker: "redis.Redis[bytes]"
) -> None:
    job = services.enqueue("test_effect", params={"seconds": 0})
    job = wait_for_status(job, {JobStatus.COMPLETED}, 20, worker)
    before = (job.status, job.completed_at, job.attempt_count, job.result)

    services.send(job.pk, task_id=str(job.celery_task_id), retries=job.retries)
    wait_for(lambda: "jobs.delivery.ignored" in worker.output(), 20, "the duplicate", worker)

    job.refresh_from_db()
    assert (job.status, job.completed_at, job.attempt_count, job.result) == before
    assert broker.get(f"effect:{job.pk}") == b"1"
