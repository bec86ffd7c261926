"""The rate limiter on the real Redis (and its per-process fallback), and what the engine does
with a job that must wait for it: back to its queue, no retry spent, no attempt recorded."""

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from jobs import lifecycle, metrics, ratelimit, registry, routing, runner, services, sweeper
from jobs.errors import RateLimited
from jobs.models import AttemptOutcome, Job, JobStatus, JobStatusCount
from tests.conftest import require_services
from tests.inline import deliver
from tests.integration import test_ops_support  # noqa: F401 - registers test_ops_paced_once
from tests.settings import TEST_REDIS_URL

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker() -> Iterator["redis.Redis[bytes]"]:
    require_services("postgres", "redis")
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    lifecycle._types_with_counters.clear()  # rows of test types went with earlier tests
    yield client
    client.flushdb()


def test_limits_come_from_settings(settings) -> None:
    settings.RATE_LIMITS = {"google_workspace": (10.0, 5), "google_workspace:7": (2.0, 1)}
    assert ratelimit.limit_for("google_workspace", 3) == ratelimit.Limit(10.0, 5)
    assert ratelimit.limit_for("google_workspace", 7) == ratelimit.Limit(2.0, 1)
    assert ratelimit.limit_for("github", 3) is None
    settings.RATE_LIMITS = {"google_workspace": (0.0, 1)}
    assert ratelimit.limit_for("google_workspace", 3) is None
    assert ratelimit.pacer("google_workspace", 3) is None


def test_the_default_for_google_workspace_is_10_a_second(settings) -> None:
    assert settings.RATE_LIMITS["google_workspace"] == (10.0, 5)


# The bucket reads its clock somewhere between a call's start and its return; the bounds below
# are those windows (plus CLOCK_SLACK for Redis's clock against ours), so a loaded machine
# widens them by exactly the time it stalled, and a wrong spacing still fails.
CLOCK_SLACK = 0.005


@dataclass(frozen=True)
class Take:
    wait: float
    start: float
    end: float


def takes(key: str, limit: ratelimit.Limit, calls: int) -> list[Take]:
    made = []
    for _ in range(calls):
        start = time.monotonic()
        granted, wait = ratelimit.take(key, limit, max_wait=10)
        made.append(Take(wait, start, time.monotonic()))
        assert granted
    return made


def assert_spaced(made: list[Take], limit: ratelimit.Limit) -> None:
    """After the burst, call k's token is due (k - burst + 1) / rate after the first call:
    reserved in turn, evenly spaced, whenever they were asked for."""
    first = made[0]
    assert [take.wait for take in made[: limit.burst]] == [0] * limit.burst
    for k, take in enumerate(made[limit.burst :], start=limit.burst):
        due = (k - limit.burst + 1) / limit.rate
        if take.wait == 0:  # this machine stalled past the token's time: it was free
            assert take.end - first.start >= due - CLOCK_SLACK
            continue
        earliest = take.start + take.wait - first.end - CLOCK_SLACK
        latest = take.end + take.wait - first.start + CLOCK_SLACK
        assert earliest <= due <= latest, (k, take, first)


def test_the_bucket_gives_its_burst_then_spaces_calls(broker) -> None:
    limit = ratelimit.Limit(rate=10, burst=3)
    assert_spaced(takes("test:spacing", limit, 6), limit)


def test_a_wait_past_the_limit_takes_nothing(broker) -> None:
    limit = ratelimit.Limit(rate=2, burst=1)
    started = time.monotonic()
    ratelimit.acquire("test:long", limit, max_wait=0)  # the burst token
    with pytest.raises(RateLimited) as raised:
        ratelimit.acquire("test:long", limit, max_wait=0.1)
    elapsed = time.monotonic() - started
    assert 0.5 - elapsed - CLOCK_SLACK <= raised.value.retry_after <= 0.5 + CLOCK_SLACK
    # Refused calls reserved nothing: the next caller still waits only until 0.5 s after the
    # first call, and really sleeps that long.
    asked = time.monotonic()
    slept = ratelimit.acquire("test:long", limit, max_wait=1)
    assert 0.5 - (asked - started) - CLOCK_SLACK <= slept <= 0.5 + CLOCK_SLACK
    assert time.monotonic() - asked >= slept


def test_refused_callers_are_given_places_in_line_at_the_buckets_pace(broker) -> None:
    limit = ratelimit.Limit(rate=4, burst=1)
    ratelimit.acquire("test:line", limit, max_wait=0)  # the burst token
    told = []
    for _ in range(4):
        with pytest.raises(RateLimited) as raised:
            ratelimit.acquire("test:line", limit, max_wait=0.1)
        told.append(raised.value.retry_after)
    # One after another, a quarter second apart: deferred jobs come back one by one.
    assert told == pytest.approx([0.25, 0.5, 0.75, 1.0], abs=0.03)


def test_buckets_are_separate_per_key(broker) -> None:
    limit = ratelimit.Limit(rate=1, burst=1)
    assert ratelimit.take("google_workspace:1", limit, 0)[0]
    assert not ratelimit.take("google_workspace:1", limit, 0)[0]
    assert ratelimit.take("google_workspace:2", limit, 0)[0]


def test_without_redis_each_process_keeps_its_own_bucket(settings) -> None:
    settings.REDIS_URL = ""
    limit = ratelimit.Limit(rate=10, burst=2)
    made = takes("test:local", limit, 4)
    assert_spaced(made, limit)
    # The next token is due 0.3 s after the first call: not within 0.05 s, unless this
    # machine stalled a quarter of a second since.
    if time.monotonic() - made[0].end < 0.25 - CLOCK_SLACK:
        assert not ratelimit.take("test:local", limit, max_wait=0.05)[0]


def test_a_paced_job_goes_back_to_its_queue_without_spending_anything(broker) -> None:
    job = services.enqueue("test_ops_paced_once")
    first_task_id = job.celery_task_id

    before = timezone.now()
    job = deliver(job)
    after = timezone.now()

    assert job.status == JobStatus.PENDING
    assert (job.attempt_count, job.retries) == (0, 0)
    assert job.started_at is None
    assert not job.attempts.exists()  # no attempt recorded, failed or otherwise
    assert job.celery_task_id != first_task_id  # the running message can never claim it again
    (raw,) = broker.lrange("celery", 0, -1)
    message = json.loads(raw)
    assert message["headers"]["id"] == str(job.celery_task_id)
    args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert args == [job.pk]  # the message runs this job
    assert message["headers"]["retries"] == 0
    assert message["headers"]["eta"]  # sent with its countdown
    assert job.next_attempt_at is not None
    assert job.dispatched_at == job.next_attempt_at  # the sweeper waits from then
    # Due no sooner than the limit frees up (0.1 s), spread by at most max(1, max wait) so
    # deferred jobs do not all come back at once; the message is due then too.
    spread = max(1.0, settings.RATE_LIMIT_MAX_WAIT)
    assert before + timedelta(seconds=0.1) <= job.next_attempt_at
    assert job.next_attempt_at <= after + timedelta(seconds=0.1 + spread)
    # Celery counts the same delay from the moment it sends, a little later.
    eta = datetime.fromisoformat(message["headers"]["eta"])
    assert job.next_attempt_at <= eta <= after + timedelta(seconds=0.1 + spread)
    counts = dict(
        JobStatusCount.objects.filter(job_type="test_ops_paced_once").values_list("status", "count")
    )
    assert (counts["pending"], counts["running"]) == (1, 0)

    # The stale message is ignored; the new one runs the job to completion as attempt 1.
    assert (
        lifecycle.start_attempt(job.pk, task_id=str(first_task_id), retries=0, worker="x") is None
    )
    job = deliver(job)
    assert job.status == JobStatus.COMPLETED
    assert (job.attempt_count, job.retries) == (1, 0)
    assert [a.outcome for a in job.attempts.all()] == [AttemptOutcome.SUCCEEDED]


def test_a_paced_retry_stays_retrying_with_its_retry_count(broker) -> None:
    job = services.enqueue("test_ops_paced_once")
    first = lifecycle.start_attempt(job.pk, task_id=str(job.celery_task_id), retries=0, worker="w")
    assert first is not None
    lifecycle.fail_attempt(first, RuntimeError("503"), will_retry=True)
    first_started = Job.objects.get(pk=job.pk).attempt_started_at
    second = lifecycle.start_attempt(job.pk, task_id=str(job.celery_task_id), retries=1, worker="w")
    assert second is not None

    again = lifecycle.defer_attempt(second, delay=2)

    assert again is not None
    assert again.status == JobStatus.RETRYING
    assert (again.attempt_count, again.retries) == (1, 1)
    assert again.started_at == Job.objects.get(pk=job.pk).started_at is not None
    assert again.attempt_started_at == first_started  # the dashboard shows attempt 1's start
    assert [a.number for a in again.attempts.all()] == [1]
    assert lifecycle.defer_attempt(second, delay=2) is None  # only once


def test_a_platforms_own_limit_comes_first(settings) -> None:
    settings.RATE_LIMITS = {"google_workspace": (10.0, 5), "google_workspace:7": (2.0, 1)}
    assert ratelimit.limit_for("google_workspace", 7, rate=4.0, burst=2) == ratelimit.Limit(4, 2)
    assert ratelimit.limit_for("google_workspace", 7, rate=2.5) == ratelimit.Limit(2.5, 2)
    assert ratelimit.limit_for("github", 3, rate=1.0, burst=1) == ratelimit.Limit(1.0, 1)
    assert ratelimit.limit_for("google_workspace", 7, rate=0.0, burst=3) is None  # no limit
    assert ratelimit.limit_for("google_workspace", 7, rate=None) == ratelimit.Limit(2.0, 1)


def test_a_deferral_tells_when_and_under_which_message_the_job_comes_back(
    broker, settings, caplog: pytest.LogCaptureFixture, changes: list[tuple[int, str, str]]
) -> None:
    settings.RATE_LIMIT_MAX_WAIT = 0.05  # spread by at most max(0.1 s, this)
    job = services.enqueue("test_ops_paced_once")
    bystander = services.enqueue("test_ops_paced_once")
    assert lifecycle.start_attempt(
        bystander.pk, task_id=str(bystander.celery_task_id), retries=0, worker="w"
    )

    changes.clear()  # the bystander's claim
    with caplog.at_level("INFO", logger="jobs.runner"):
        outcome = runner.execute(
            job.pk, task_id=str(job.celery_task_id), retries=0, max_retries=5, worker="w"
        )

    job.refresh_from_db()
    # Apps that follow their jobs (an identity's status) see it go back to pending.
    assert changes == [
        (job.pk, JobStatus.PENDING, JobStatus.RUNNING),
        (job.pk, JobStatus.RUNNING, JobStatus.PENDING),
    ]
    # What Flower shows for the DEFERRED delivery, and how to follow the job on.
    assert set(outcome) == {"job_id", "deferred_seconds", "next_task_id"}
    assert (outcome["job_id"], outcome["next_task_id"]) == (job.pk, str(job.celery_task_id))
    delay = outcome["deferred_seconds"]
    assert 0.1 <= delay <= 0.2  # the limit's 0.1 s, then up to max(0.1, 0.05) more
    assert delay == round(delay, 3)
    # The next message names the job's type and goes to its type's queue.
    (raw,) = broker.lrange(routing.queue_for("test_ops_paced_once"), 0, -1)
    assert json.loads(raw)["headers"]["task"] == "jobs.run_job"
    assert json.loads(raw)["headers"]["shadow"] == "jobs.run_job:test_ops_paced_once"
    paced = metrics.read()
    assert paced[("paced", "test_ops_paced_once", "deferred")] == 1
    assert paced[("paced_seconds", "test_ops_paced_once", "deferred")] == pytest.approx(
        delay, abs=0.001
    )
    bystander.refresh_from_db()
    assert (bystander.status, bystander.attempt_count) == (JobStatus.RUNNING, 1)
    (line,) = [r for r in caplog.records if r.getMessage() == "jobs.attempt.deferred"]
    assert line.delay_seconds == delay  # type: ignore[attr-defined]
    assert line.reason == "Rate limit of test:1 is taken for the next 0.1 s"  # type: ignore[attr-defined]


@pytest.mark.parametrize("next_attempt_started", [False, True])
def test_a_deferral_after_the_attempt_was_taken_over_is_ignored(
    broker, monkeypatch, next_attempt_started: bool
) -> None:
    """A worker judged dead (its attempt recovered) turns out alive and hits its rate limit:
    it must not put back a job that the recovery, or another attempt, now owns."""
    job = services.enqueue("test_ops_paced_once")

    def taken_over_then_limited(current: Job) -> dict[str, object]:
        assert sweeper.recover(current.pk, grace=timedelta(0), dead_attempt=1)
        current.refresh_from_db()
        if next_attempt_started:  # the recovery's message already runs the next attempt
            assert lifecycle.start_attempt(
                current.pk, task_id=str(current.celery_task_id), retries=1, worker="w2"
            )
        raise RateLimited("Rate limit of test:1 is taken", retry_after=0.1)

    monkeypatch.setitem(registry._handlers, "test_ops_paced_once", taken_over_then_limited)
    outcome = runner.execute(
        job.pk, task_id=str(job.celery_task_id), retries=0, max_retries=5, worker="w"
    )

    assert outcome == {"job_id": job.pk, "ignored": "attempt superseded"}
    job.refresh_from_db()
    outcomes = [a.outcome for a in job.attempts.order_by("number")]
    if next_attempt_started:
        assert (job.status, job.retries, job.attempt_count) == (JobStatus.RUNNING, 1, 2)
        assert outcomes == [AttemptOutcome.LOST, AttemptOutcome.RUNNING]
    else:
        assert (job.status, job.retries, job.attempt_count) == (JobStatus.RETRYING, 1, 1)
        assert outcomes == [AttemptOutcome.LOST]
    assert not broker.lrange(routing.queue_for("test_ops_paced_once"), 0, -1)
