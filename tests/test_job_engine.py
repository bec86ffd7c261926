"""The engine's rules that need no worker: enqueue's guards, claims, and settings."""

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from billiard.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from accesshive.celery import app
from jobs import lifecycle, registry, routing, runner, services, sweeper
from jobs.errors import PermanentError, TransientError
from jobs.models import (
    AttemptOutcome,
    Job,
    JobAttempt,
    JobEvent,
    JobStatus,
    JobStatusCount,
    JobType,
)
from jobs.tasks import run_job
from tests import factories
from tests.inline import deliver

pytestmark = pytest.mark.django_db


def test_enqueue_refuses_a_secret_in_the_parameters() -> None:
    with pytest.raises(services.InvalidJobError, match=r"params.auth.password"):
        services.enqueue(JobType.DIRECTORY_SYNC, params={"auth": {"password": "hunter2"}})
    assert not Job.objects.exists()


def test_enqueue_accepts_vault_references() -> None:
    job = services.enqueue(JobType.DIRECTORY_SYNC, params={"credential_ref": "vault:x#1"})
    assert job.params == {"credential_ref": "vault:x#1"}


def test_enqueue_refuses_an_unknown_type() -> None:
    with pytest.raises(services.InvalidJobError, match="unknown job type"):
        services.enqueue("make_coffee")


def test_a_type_without_a_handler_fails_clearly_never_succeeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every built-in type has a handler now; unregister one, as a deployment missing an app.
    monkeypatch.delitem(registry._handlers, JobType.REMEDIATION)
    job = deliver(services.enqueue(JobType.REMEDIATION))
    assert job.status == JobStatus.FAILED
    assert job.error_message == "No handler for this job type yet: remediation"
    assert job.attempt_count == 1


def test_counters_follow_every_status_change() -> None:
    job = services.enqueue(JobType.REMEDIATION)
    deliver(job)

    def count(status: str) -> int:
        return JobStatusCount.objects.get(job_type="remediation", status=status).count

    assert (count("pending"), count("running"), count("failed")) == (0, 0, 1)


def test_a_stale_message_cannot_claim_the_job() -> None:
    job = services.enqueue(JobType.REMEDIATION)
    assert lifecycle.start_attempt(job.pk, task_id="not-its-id", retries=0, worker="w") is None
    assert (
        lifecycle.start_attempt(job.pk, task_id=str(job.celery_task_id), retries=1, worker="w")
        is None
    )
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert job.attempt_count == 0


def test_failed_attempts_schedule_waits_that_double_up_to_the_cap(settings) -> None:
    settings.JOB_BACKOFF_BASE = 3
    settings.JOB_BACKOFF_MAX = 20
    job = services.enqueue(JobType.REMEDIATION)
    for retries in range(5):
        attempt = lifecycle.start_attempt(
            job.pk, task_id=str(job.celery_task_id), retries=retries, worker="w"
        )
        assert attempt is not None
        assert lifecycle.fail_attempt(attempt, TransientError("503"), will_retry=True)
    waits = [attempt.wait_before_next_seconds for attempt in job.attempts.order_by("number")]
    assert waits == pytest.approx([3, 6, 12, 20, 20], abs=0.01)
    job.refresh_from_db()
    assert (job.status, job.retries) == (JobStatus.RETRYING, 5)


def test_the_sweeper_resends_only_jobs_overdue_past_the_grace() -> None:
    overdue = services.enqueue(JobType.REMEDIATION)
    fresh = services.enqueue(JobType.REMEDIATION)
    old_task_id = overdue.celery_task_id
    Job.objects.filter(pk=overdue.pk).update(
        dispatched_at=timezone.now() - timedelta(seconds=settings.JOB_SWEEP_GRACE + 5)
    )

    assert sweeper.sweep() == {"resent": 1, "recovered": 0, "waiting": 0}
    overdue.refresh_from_db()
    fresh.refresh_from_db()
    assert overdue.celery_task_id != old_task_id  # the lost message can no longer claim it
    assert overdue.events.get().kind == JobEvent.Kind.RESENT
    assert not fresh.events.exists()


def test_the_sweeper_recovers_a_job_whose_worker_died() -> None:
    job = services.enqueue(JobType.REMEDIATION)
    attempt = lifecycle.start_attempt(
        job.pk, task_id=str(job.celery_task_id), retries=0, worker="w"
    )
    assert attempt is not None
    long_ago = timezone.now() - timedelta(
        seconds=settings.JOB_HARD_TIMEOUT + settings.JOB_SWEEP_GRACE + 5
    )
    Job.objects.filter(pk=job.pk).update(attempt_started_at=long_ago)

    assert sweeper.sweep() == {"resent": 0, "recovered": 1, "waiting": 0}
    job.refresh_from_db()
    assert job.status == JobStatus.RETRYING
    assert job.retries == 1
    assert job.attempts.get().outcome == "lost"


LOST_MESSAGE = "The worker running this attempt stopped before it finished."


def running(*, retries: int = 0, started_seconds_ago: float) -> Job:
    job = services.enqueue(JobType.REMEDIATION)
    Job.objects.filter(pk=job.pk).update(retries=retries)
    attempt = lifecycle.start_attempt(
        job.pk, task_id=str(job.celery_task_id), retries=retries, worker="w"
    )
    assert attempt is not None
    started = timezone.now() - timedelta(seconds=started_seconds_ago)
    Job.objects.filter(pk=job.pk).update(attempt_started_at=started)
    return job


LONG_PAST = settings.JOB_HARD_TIMEOUT + settings.JOB_SWEEP_GRACE + 5


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr("jobs.services.send", lambda job_id, **kwargs: calls.append(job_id))
    return calls


def test_a_recovered_job_says_why_and_is_sent_again(
    sent: list[int], django_capture_on_commit_callbacks
) -> None:
    job = running(started_seconds_ago=LONG_PAST)
    task_id = job.celery_task_id
    other = running(started_seconds_ago=1)  # still within its limit: left running
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeper.sweep() == {"resent": 0, "recovered": 1, "waiting": 0}

    job.refresh_from_db()
    assert (job.status, job.retries, job.completed_at) == (JobStatus.RETRYING, 1, None)
    assert job.error_message == LOST_MESSAGE
    assert job.error_class.endswith("WorkerLostError")
    assert job.next_attempt_at is not None
    assert job.celery_task_id != task_id  # a late delivery of the old message cannot claim it
    attempt = job.attempts.get()
    assert (attempt.outcome, attempt.error_message) == ("lost", LOST_MESSAGE)
    assert attempt.finished_at is not None
    assert job.events.get().message == "Recovered from a lost worker; retrying."
    assert sent == [job.pk]
    other.refresh_from_db()
    assert other.status == JobStatus.RUNNING
    assert other.attempts.get().outcome == "running"


def test_a_recovered_job_without_retries_left_fails_for_good(
    sent: list[int], django_capture_on_commit_callbacks
) -> None:
    job = running(retries=settings.JOB_MAX_RETRIES, started_seconds_ago=LONG_PAST)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeper.sweep() == {"resent": 0, "recovered": 1, "waiting": 0}
    job.refresh_from_db()
    assert (job.status, job.retries) == (JobStatus.FAILED, settings.JOB_MAX_RETRIES)
    assert job.completed_at is not None
    assert job.next_attempt_at is None
    assert job.error_message == LOST_MESSAGE
    assert job.events.get().message == "Recovered from a lost worker; no retries left."
    assert sent == []


def test_a_job_within_its_hard_limit_and_grace_is_left_running(sent: list[int]) -> None:
    job = running(started_seconds_ago=LONG_PAST - 30)
    assert sweeper.sweep() == {"resent": 0, "recovered": 0, "waiting": 0}
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.attempts.get().outcome == "running"


RESENT_MESSAGE = "Its message was not picked up in time (broker restarted or flushed?); sent again."


def test_a_job_the_sweeper_sent_again_gets_the_whole_grace_again(
    sent: list[int], django_capture_on_commit_callbacks
) -> None:
    """A re-sent or recovered job's new message is as fresh as a new job's: the next sweep
    must not take it for lost again and send a second copy."""
    overdue = services.enqueue(JobType.REMEDIATION)
    Job.objects.filter(pk=overdue.pk).update(
        dispatched_at=timezone.now() - timedelta(seconds=settings.JOB_SWEEP_GRACE + 5)
    )
    lost = running(started_seconds_ago=LONG_PAST)
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeper.sweep() == {"resent": 1, "recovered": 1, "waiting": 0}
    for job in (overdue, lost):
        job.refresh_from_db()
        assert job.dispatched_at >= before
    event = overdue.events.get()
    assert (event.kind, event.message) == (JobEvent.Kind.RESENT, RESENT_MESSAGE)
    assert event.at >= before

    with django_capture_on_commit_callbacks(execute=True):
        assert sweeper.sweep() == {"resent": 0, "recovered": 0, "waiting": 0}
    assert sorted(sent) == sorted([overdue.pk, lost.pk])


def test_without_delivery_markers_every_overdue_job_is_resent_and_none_waits(
    settings, sent: list[int]
) -> None:
    settings.REDIS_URL = ""  # markers are kept only in the broker's own Redis
    overdue = services.enqueue(JobType.REMEDIATION)
    Job.objects.filter(pk=overdue.pk).update(
        dispatched_at=timezone.now() - timedelta(seconds=settings.JOB_SWEEP_GRACE + 5)
    )
    assert sweeper.sweep() == {"resent": 1, "recovered": 0, "waiting": 0}


def test_resend_and_recover_leave_a_job_that_moved_on_alone(sent: list[int]) -> None:
    """Between the sweep's query and the row lock a job may start, finish, be sent again or be
    deleted: then nothing is changed, and it is not counted."""
    now = timezone.now()
    started = running(started_seconds_ago=LONG_PAST)
    task_id = started.celery_task_id
    assert sweeper.resend(started.pk, cutoff=now + timedelta(hours=1)) is False
    started.refresh_from_db()
    assert (started.status, started.celery_task_id) == (JobStatus.RUNNING, task_id)

    pending = services.enqueue(JobType.REMEDIATION)
    assert sweeper.resend(pending.pk, cutoff=pending.dispatched_at) is False  # sent since
    assert Job.objects.get(pk=pending.pk).celery_task_id == pending.celery_task_id

    done = factories.make_job(job_type=JobType.REMEDIATION, status=JobStatus.COMPLETED)
    assert sweeper.recover(done.pk, grace=timedelta(0)) is False
    assert Job.objects.get(pk=done.pk).status == JobStatus.COMPLETED

    # The dead worker's attempt was attempt 2, but the job is still on its first.
    assert sweeper.recover(started.pk, grace=timedelta(0), dead_attempt=2) is False
    started.refresh_from_db()
    assert (started.status, started.retries) == (JobStatus.RUNNING, 0)
    assert started.attempts.get().outcome == AttemptOutcome.RUNNING

    Job.objects.filter(pk__in=[started.pk, pending.pk]).delete()  # retention, meanwhile
    assert sweeper.resend(pending.pk, cutoff=now + timedelta(hours=1)) is False
    assert sweeper.recover(started.pk, grace=timedelta(0)) is False
    assert not JobEvent.objects.exists()
    assert sent == []


def test_a_job_type_with_a_longer_time_limit_is_recovered_only_past_its_own(
    settings, sent: list[int]
) -> None:
    settings.JOB_TIMEOUTS = {**settings.JOB_TIMEOUTS, JobType.REMEDIATION: 3600}
    hard = routing.time_limits_for(JobType.REMEDIATION)[1]
    assert hard > settings.JOB_HARD_TIMEOUT
    within = running(started_seconds_ago=hard + settings.JOB_SWEEP_GRACE - 30)
    past = running(started_seconds_ago=hard + settings.JOB_SWEEP_GRACE + 5)

    assert sweeper.sweep() == {"resent": 0, "recovered": 1, "waiting": 0}
    assert Job.objects.get(pk=within.pk).status == JobStatus.RUNNING
    assert Job.objects.get(pk=past.pk).status == JobStatus.RETRYING


def test_a_job_type_with_a_shorter_time_limit_is_recovered_past_its_own(
    settings, sent: list[int]
) -> None:
    settings.JOB_TIMEOUTS = {**settings.JOB_TIMEOUTS, JobType.REMEDIATION: 20}
    hard = routing.time_limits_for(JobType.REMEDIATION)[1]
    assert hard < settings.JOB_HARD_TIMEOUT
    within = running(started_seconds_ago=hard + settings.JOB_SWEEP_GRACE - 5)
    past = running(started_seconds_ago=hard + settings.JOB_SWEEP_GRACE + 5)

    assert sweeper.sweep() == {"resent": 0, "recovered": 1, "waiting": 0}
    assert Job.objects.get(pk=within.pk).status == JobStatus.RUNNING
    assert Job.objects.get(pk=past.pk).status == JobStatus.RETRYING


def test_jobs_that_are_not_due_do_not_crowd_the_due_ones_out_of_a_sweep(sent: list[int]) -> None:
    """A sweep looks at 1,000 jobs of each kind: finished jobs, and jobs sent or started
    recently, must not fill those places while a lost job waits behind them."""
    long_ago = timezone.now() - timedelta(hours=3)
    # Started within the shortest hard limit and the grace: not yet a candidate.
    within = timezone.now() - timedelta(seconds=settings.JOB_HARD_TIMEOUT)
    overdue = services.enqueue(JobType.REMEDIATION)
    Job.objects.filter(pk=overdue.pk).update(dispatched_at=long_ago)
    lost = running(started_seconds_ago=LONG_PAST)
    # Created after them, so they come first in the jobs' order (newest first).
    Job.objects.bulk_create(
        Job(
            job_type=JobType.REMEDIATION,
            status=status,
            dispatched_at=dispatched,
            attempt_started_at=started,
            celery_task_id=uuid.uuid4(),
        )
        for status, dispatched, started in (
            [(JobStatus.COMPLETED, long_ago, long_ago)] * 1000
            + [(JobStatus.PENDING, timezone.now(), None)] * 1000
            + [(JobStatus.RUNNING, long_ago, within)] * 1000
        )
    )

    assert sweeper.sweep() == {"resent": 1, "recovered": 1, "waiting": 0}
    assert Job.objects.get(pk=overdue.pk).events.get().kind == JobEvent.Kind.RESENT
    assert Job.objects.get(pk=lost.pk).status == JobStatus.RETRYING


def test_a_timed_out_last_attempt_fails_the_job_with_its_message_and_no_next_attempt() -> None:
    job = running(started_seconds_ago=1)
    attempt = job.attempts.get()

    with pytest.raises(PermanentError) as raised:
        raise PermanentError("stuck")  # raised, so that it has a traceback
    assert lifecycle.fail_attempt(
        attempt, raised.value, will_retry=False, timed_out=True, message="Took too long"
    )

    job.refresh_from_db()
    assert (job.status, job.retries, job.next_attempt_at) == (JobStatus.FAILED, 0, None)
    assert job.completed_at is not None
    assert (job.error_class, job.error_message) == ("jobs.errors.PermanentError", "Took too long")
    # Python's own traceback, as a developer would read it in a terminal.
    assert job.error_traceback.startswith("Traceback (most recent call last):\n  File ")
    assert job.error_traceback.endswith("\njobs.errors.PermanentError: stuck\n")
    attempt.refresh_from_db()
    assert (attempt.outcome, attempt.error_message) == (AttemptOutcome.TIMED_OUT, "Took too long")
    assert (attempt.next_attempt_at, attempt.finished_at is not None) == (None, True)


def test_an_error_without_a_message_is_shown_by_its_class() -> None:
    assert lifecycle.error_fields(TimeoutError())["error_message"] == "TimeoutError"


def test_a_retried_attempt_shows_the_same_next_attempt_as_its_job() -> None:
    job = running(started_seconds_ago=1)
    attempt = job.attempts.get()

    assert lifecycle.fail_attempt(attempt, TransientError("503"), will_retry=True)

    job.refresh_from_db()
    attempt.refresh_from_db()
    assert (job.status, job.retries, job.completed_at) == (JobStatus.RETRYING, 1, None)
    assert job.next_attempt_at is not None
    assert attempt.next_attempt_at == job.next_attempt_at
    assert (attempt.outcome, attempt.error_message) == (AttemptOutcome.FAILED, "503")


def test_a_late_failure_of_a_recovered_attempt_changes_nothing(sent: list[int]) -> None:
    job = running(started_seconds_ago=LONG_PAST)
    attempt = job.attempts.get()
    assert sweeper.sweep()["recovered"] == 1
    job.refresh_from_db()
    recovered = (job.status, job.retries, job.next_attempt_at, job.error_message)

    # The worker was not dead after all: its failure arrives after the recovery.
    assert not lifecycle.fail_attempt(attempt, TransientError("503"), will_retry=True)

    job.refresh_from_db()
    assert (job.status, job.retries, job.next_attempt_at, job.error_message) == recovered
    assert job.attempts.get().outcome == AttemptOutcome.LOST

    # Nor once the recovery's message has started the next attempt.
    claimed(job, retries=1)
    assert not lifecycle.fail_attempt(attempt, TransientError("503"), will_retry=True)
    job.refresh_from_db()
    assert (job.status, job.attempt_count) == (JobStatus.RUNNING, 2)


def test_the_worker_is_configured_not_to_lose_jobs() -> None:
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_reject_on_worker_lost is True
    task = run_job
    assert task.retry_on_worker_lost is True  # type: ignore[attr-defined]
    assert task.max_retries == 5
    assert task.soft_time_limit == 120
    assert (task.time_limit or 0) > task.soft_time_limit


def test_redis_visibility_timeout_outlasts_the_longest_backoff_plus_an_attempt() -> None:
    """Otherwise Redis hands a retry that is held for its countdown to a second worker."""
    script = (
        "import json, accesshive.settings as s; print(json.dumps([s.CELERY_BROKER_TRANSPORT_OPTIONS"
        "['visibility_timeout'], s.JOB_BACKOFF_MAX, s.LONGEST_HARD_TIMEOUT]))"
    )
    for backoff_max in ("600", "7200"):
        env = {
            **os.environ,
            "DJANGO_SECRET_KEY": "x",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
            "ACCESSHIVE_JOB_BACKOFF_MAX": backoff_max,
        }
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout
        visibility, longest_backoff, hard_limit = json.loads(out)
        assert visibility > longest_backoff + hard_limit


def test_long_running_types_get_their_own_time_limits() -> None:
    assert routing.time_limits_for("directory_sync") == (900, 910)
    assert routing.time_limits_for("create_domain_user") == (120, 130)


# The same rules hold on the ORM's path, which `make run` takes on SQLite.
@pytest.fixture(params=["sql", "orm"])
def engine_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "orm":
        monkeypatch.setattr(lifecycle, "fast_sql", lambda: False)
    return str(request.param)


def claimed(job: Job, *, retries: int = 0, worker: str = "w") -> JobAttempt:
    job.refresh_from_db()
    attempt = lifecycle.start_attempt(
        job.pk, task_id=str(job.celery_task_id), retries=retries, worker=worker
    )
    assert attempt is not None
    return attempt


def test_a_completed_job_records_when_it_ran_and_what_it_returned(engine_path, changes) -> None:
    job = services.enqueue(JobType.REMEDIATION)
    bystander = services.enqueue(JobType.REMEDIATION)
    claimed(bystander)
    before = timezone.now()

    attempt = claimed(job, worker="celery@w1")
    assert lifecycle.complete_attempt(attempt, {"fixed": 2})

    after = timezone.now()
    job.refresh_from_db()
    assert (job.status, job.result, job.attempt_count, job.retries) == (
        JobStatus.COMPLETED,
        {"fixed": 2},
        1,
        0,
    )
    assert job.started_at is not None
    assert job.completed_at is not None
    assert before <= job.started_at <= job.completed_at <= after
    assert (job.next_attempt_at, job.error_class, job.error_message) == (None, "", "")
    row = job.attempts.get()
    assert (row.number, row.retries, row.worker, row.outcome) == (
        1,
        0,
        "celery@w1",
        AttemptOutcome.SUCCEEDED,
    )
    assert row.finished_at is not None
    assert before <= row.started_at <= row.finished_at <= after
    bystander.refresh_from_db()
    assert (bystander.status, bystander.attempt_count) == (JobStatus.RUNNING, 1)
    assert bystander.attempts.get().outcome == AttemptOutcome.RUNNING
    assert changes[-2:] == [
        (job.pk, JobStatus.PENDING, JobStatus.RUNNING),
        (job.pk, JobStatus.RUNNING, JobStatus.COMPLETED),
    ]
    counts = dict(
        JobStatusCount.objects.filter(job_type=JobType.REMEDIATION).values_list("status", "count")
    )
    assert (counts["pending"], counts["running"], counts["completed"]) == (0, 1, 1)


def test_a_late_result_of_a_taken_over_attempt_is_not_recorded(engine_path, changes) -> None:
    """The worker judged dead was only slow: its result arrives after the next attempt began."""
    job = services.enqueue(JobType.REMEDIATION)
    first = claimed(job)
    assert sweeper.recover(job.pk, grace=timedelta(0), dead_attempt=1)
    claimed(job, retries=1)
    announced = len(changes)

    assert lifecycle.complete_attempt(first, {"late": True}) is False

    job.refresh_from_db()
    assert (job.status, job.attempt_count, job.result) == (JobStatus.RUNNING, 2, None)
    assert [a.outcome for a in job.attempts.order_by("number")] == [
        AttemptOutcome.LOST,
        AttemptOutcome.RUNNING,
    ]
    assert len(changes) == announced  # nobody is told it completed


def test_a_failure_touches_only_its_own_job(engine_path) -> None:
    job = services.enqueue(JobType.REMEDIATION)
    bystander = services.enqueue(JobType.REMEDIATION)
    other_attempt = claimed(bystander)

    assert lifecycle.fail_attempt(claimed(job), TransientError("503"), will_retry=True)

    bystander.refresh_from_db()
    other_attempt.refresh_from_db()
    assert (bystander.status, bystander.attempt_count) == (JobStatus.RUNNING, 1)
    assert other_attempt.outcome == AttemptOutcome.RUNNING


def test_a_retry_after_a_lost_worker_counts_on_from_its_own_number(engine_path, settings) -> None:
    """Celery re-sends the message of a pool process that died with one more retry; the
    attempt it starts fails, and the next wait is the one for that retry count."""
    settings.JOB_BACKOFF_BASE = 3
    job = services.enqueue(JobType.REMEDIATION)
    claimed(job)

    retry = claimed(job, retries=1, worker="w2")  # takes over from the lost attempt
    assert (retry.number, retry.retries) == (2, 1)
    job.refresh_from_db()
    assert (job.status, job.retries) == (JobStatus.RUNNING, 1)  # shown as its first retry
    assert lifecycle.fail_attempt(retry, TransientError("503"), will_retry=True)

    job.refresh_from_db()
    assert (job.status, job.retries, job.attempt_count) == (JobStatus.RETRYING, 2, 2)
    rows = list(job.attempts.order_by("number"))
    assert [(a.outcome, a.retries, a.worker) for a in rows] == [
        (AttemptOutcome.LOST, 0, "w"),
        (AttemptOutcome.FAILED, 1, "w2"),
    ]
    assert rows[1].wait_before_next_seconds == pytest.approx(6, abs=0.01)


def test_a_lost_retry_is_the_only_attempt_shown_lost(engine_path) -> None:
    """A pool process died running a job's retry, and Celery's re-sent message takes over:
    the retry's attempt is lost, the earlier failure keeps its outcome and its error."""
    job = services.enqueue(JobType.REMEDIATION)
    assert lifecycle.fail_attempt(claimed(job), TransientError("503 from Google"), will_retry=True)
    claimed(job, retries=1, worker="w2")

    claimed(job, retries=2, worker="w3")

    rows = list(job.attempts.order_by("number"))
    assert [(a.number, a.outcome, a.worker) for a in rows] == [
        (1, AttemptOutcome.FAILED, "w"),
        (2, AttemptOutcome.LOST, "w2"),
        (3, AttemptOutcome.RUNNING, "w3"),
    ]
    assert rows[0].error_message == "503 from Google"


def test_a_delivery_for_a_job_that_is_gone_is_ignored(engine_path) -> None:
    """Retention deleted the job while a re-sent copy of its message waited in the broker."""
    job = services.enqueue(JobType.REMEDIATION)
    task_id = str(job.celery_task_id)
    Job.objects.filter(pk=job.pk).delete()
    outcome = runner.execute(job.pk, task_id=task_id, retries=0, max_retries=5, worker="w")
    assert outcome == {"job_id": job.pk, "ignored": "stale or duplicate delivery"}


def test_a_failed_job_about_to_retry_is_not_taken_for_lost_by_the_sweeper(engine_path) -> None:
    job = services.enqueue(JobType.REMEDIATION)
    Job.objects.filter(pk=job.pk).update(
        dispatched_at=timezone.now() - timedelta(seconds=settings.JOB_SWEEP_GRACE + 60)
    )
    assert lifecycle.fail_attempt(claimed(job), TransientError("503"), will_retry=True)

    assert sweeper.sweep()["resent"] == 0  # its retry's message was sent just now


def test_the_retry_celery_scheduled_is_the_one_shown(engine_path) -> None:
    def failed_twice() -> Job:
        job = services.enqueue(JobType.REMEDIATION)
        for retries in (0, 1):
            assert lifecycle.fail_attempt(
                claimed(job, retries=retries), TransientError("503"), will_retry=True
            )
        job.refresh_from_db()
        return job

    job, other = failed_twice(), failed_twice()
    others_times = sorted(other.attempts.values_list("number", "next_attempt_at"))
    first_due = job.attempts.get(number=1).next_attempt_at
    scheduled = timezone.now() + timedelta(seconds=33.5)  # the backoff, with Celery's jitter

    lifecycle.record_next_attempt(job.pk, retries=2, at=scheduled)

    job.refresh_from_db()
    assert (job.next_attempt_at, job.dispatched_at) == (scheduled, scheduled)
    assert job.attempts.get(number=2).next_attempt_at == scheduled
    assert job.attempts.get(number=1).next_attempt_at == first_due  # history kept
    assert sorted(other.attempts.values_list("number", "next_attempt_at")) == others_times

    # Once the retry runs, nothing is shown as due any more, and a late report for it (or
    # for a retry count the job has moved past) changes nothing.
    claimed(job, retries=2)
    lifecycle.record_next_attempt(job.pk, retries=2, at=scheduled + timedelta(hours=1))
    job.refresh_from_db()
    assert (job.status, job.next_attempt_at) == (JobStatus.RUNNING, None)
    other.refresh_from_db()
    lifecycle.record_next_attempt(other.pk, retries=1, at=scheduled + timedelta(hours=1))
    assert Job.objects.get(pk=other.pk).next_attempt_at == other.next_attempt_at


def test_a_job_that_succeeds_on_a_retry_no_longer_shows_the_error(engine_path) -> None:
    job = services.enqueue(JobType.REMEDIATION)
    assert lifecycle.fail_attempt(claimed(job), TransientError("503"), will_retry=True)
    job.refresh_from_db()
    assert job.error_message == "503"
    assert job.next_attempt_at is not None

    assert lifecycle.complete_attempt(claimed(job, retries=1), {})

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.next_attempt_at is None
    assert (job.error_class, job.error_message, job.error_traceback) == ("", "", "")
    # The failed attempt keeps its error: the history says what happened.
    first, second = job.attempts.order_by("number")
    assert (first.outcome, first.error_message) == (AttemptOutcome.FAILED, "503")
    assert second.outcome == AttemptOutcome.SUCCEEDED


def test_a_retried_job_starts_afresh_with_its_whole_budget(engine_path, admin_user) -> None:
    job = services.enqueue(JobType.REMEDIATION)
    for retries in range(settings.JOB_MAX_RETRIES + 1):
        will_retry = retries < settings.JOB_MAX_RETRIES
        assert lifecycle.fail_attempt(
            claimed(job, retries=retries), TransientError("503"), will_retry=will_retry
        )
    job.refresh_from_db()
    assert (job.status, job.retries) == (JobStatus.FAILED, settings.JOB_MAX_RETRIES)
    old_task_id = job.celery_task_id
    before = timezone.now()

    assert lifecycle.reset_for_retry(job.pk, actor=admin_user)

    job.refresh_from_db()
    assert (job.status, job.retries, job.completed_at, job.next_attempt_at) == (
        JobStatus.PENDING,
        0,
        None,
        None,
    )
    assert job.dispatched_at >= before  # the sweeper's grace counts from the retry
    assert job.celery_task_id != old_task_id
    event = job.events.get(kind=JobEvent.Kind.RETRIED)
    assert (event.actor, event.message) == (admin_user, f"Retried by {admin_user.username}")
    assert event.at >= before
    assert not lifecycle.reset_for_retry(job.pk, actor=admin_user)  # once
    assert claimed(job).number == settings.JOB_MAX_RETRIES + 2  # and it runs again


@pytest.mark.parametrize("retries", [0, settings.JOB_MAX_RETRIES])
def test_an_attempt_past_its_soft_time_limit_is_recorded_as_timed_out(
    retries: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def stuck(job: Job) -> dict[str, object]:
        raise SoftTimeLimitExceeded()  # what billiard raises in the pool at the soft limit

    monkeypatch.setitem(registry._handlers, JobType.REMEDIATION, stuck)
    job = services.enqueue(JobType.REMEDIATION)
    Job.objects.filter(pk=job.pk).update(retries=retries)

    with pytest.raises(SoftTimeLimitExceeded):  # Celery retries it, or stops at the last
        runner.execute(
            job.pk,
            task_id=str(job.celery_task_id),
            retries=retries,
            max_retries=settings.JOB_MAX_RETRIES,
            worker="w",
        )

    job.refresh_from_db()
    last = retries == settings.JOB_MAX_RETRIES
    assert job.status == (JobStatus.FAILED if last else JobStatus.RETRYING)
    assert job.error_message == f"Attempt timed out after {settings.JOB_TIMEOUT} s"
    attempt = job.attempts.get()
    assert (attempt.outcome, attempt.error_message) == (AttemptOutcome.TIMED_OUT, job.error_message)
    (line,) = [r for r in caplog.records if r.getMessage() == "jobs.attempt.timed_out"]
    assert (line.levelname, line.will_retry) == ("WARNING", not last)  # type: ignore[attr-defined]


def test_a_result_with_dates_and_ids_is_stored_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    when = timezone.now()
    ref = uuid.uuid4()
    monkeypatch.setitem(
        registry._handlers, JobType.REMEDIATION, lambda job: {"at": when, "ref": ref}
    )
    job = deliver(services.enqueue(JobType.REMEDIATION))
    assert job.status == JobStatus.COMPLETED
    # As JavaScript writes dates (ECMA-262: milliseconds, Z), which the API hands on as is.
    at = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert job.result == {"at": at, "ref": str(ref)}
