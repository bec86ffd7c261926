"""The sweeper and the dead-worker check on the real PostgreSQL and Redis: a job whose message
waits in the broker is not re-sent, one whose message is gone (or held by a dead worker) is;
a running job whose worker stopped beating is recovered at once, one whose worker beats is not;
a worker restarted under its name does not vouch for what its dead instance held; and nobody
is judged dead just after Redis lost its keys."""

import json
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from jobs import (
    delivery,
    lifecycle,
    metrics,
    registry,
    routing,
    runner,
    services,
    sweeper,
    workers,
)
from jobs.errors import TransientError
from jobs.models import AttemptOutcome, Job, JobEvent, JobStatus, JobType
from tests.conftest import require_services
from tests.settings import TEST_REDIS_URL

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator["redis.Redis[bytes]"]:
    require_services("postgres", "redis")
    settings.WORKER_LOST_AFTER = 15
    # The workers this process announces started an hour ago, before any attempt of the tests.
    monkeypatch.setattr(workers, "STARTED", time.time() - 3600)
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


LOST = "The worker running this attempt stopped before it finished."


def overdue(broker: "redis.Redis[bytes]", marker: str | None) -> Job:
    job = services.enqueue(JobType.REMEDIATION)
    Job.objects.filter(pk=job.pk).update(dispatched_at=timezone.now() - timedelta(seconds=3600))
    if marker is not None:
        delivery.mark(str(job.celery_task_id), marker)
    return job


def settled_epoch(broker: "redis.Redis[bytes]") -> None:
    """Worker keys have been written for longer than WORKER_LOST_AFTER."""
    broker.set(workers.EPOCH_KEY, repr(time.time() - 60))


def test_only_jobs_whose_message_is_gone_are_resent(broker) -> None:
    settled_epoch(broker)
    workers.announce_alive("alive@host")
    queued = overdue(broker, delivery.QUEUED)
    held_alive = overdue(broker, workers.holder("alive@host"))
    held_dead = overdue(broker, workers.holder("dead@host"))
    flushed = overdue(broker, None)

    assert sweeper.sweep() == {"resent": 2, "recovered": 0, "waiting": 2}
    resent = set(Job.objects.filter(events__isnull=False).values_list("pk", flat=True))
    assert resent == {held_dead.pk, flushed.pk}
    assert queued.pk not in resent
    assert held_alive.pk not in resent


def claim(worker: str, seconds_ago: float) -> Job:
    job = services.enqueue(JobType.REMEDIATION)
    attempt = lifecycle.start_attempt(
        job.pk, task_id=str(job.celery_task_id), retries=0, worker=worker
    )
    assert attempt is not None
    started = timezone.now() - timedelta(seconds=seconds_ago)
    type(attempt).objects.filter(pk=attempt.pk).update(started_at=started)
    Job.objects.filter(pk=job.pk).update(attempt_started_at=started)
    return job


def test_a_dead_workers_running_jobs_are_recovered_at_once(broker) -> None:
    settled_epoch(broker)
    workers.announce_alive("alive@host")
    on_dead = claim("dead@host", seconds_ago=20)
    on_alive = claim("alive@host", seconds_ago=20)
    just_claimed = claim("dead@host", seconds_ago=1)  # younger than WORKER_LOST_AFTER

    assert sweeper.recover_lost() == 1
    on_dead.refresh_from_db()
    assert on_dead.status == JobStatus.RETRYING
    assert [a.outcome for a in on_dead.attempts.all()] == [AttemptOutcome.LOST]
    assert Job.objects.get(pk=on_alive.pk).status == JobStatus.RUNNING
    assert Job.objects.get(pk=just_claimed.pk).status == JobStatus.RUNNING


def test_a_worker_restarted_under_its_name_does_not_vouch_for_its_dead_instance(
    broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9, then the supervisor starts the same container again: same name, new instance."""
    settled_epoch(broker)
    workers.announce_alive("worker@host")
    ran_before = claim("worker@host", seconds_ago=120)
    held_before = overdue(broker, workers.holder("worker@host"))

    monkeypatch.setattr(workers, "STARTED", time.time() - 60)  # the restart, a minute ago
    workers.announce_alive("worker@host")
    ran_since = claim("worker@host", seconds_ago=20)
    held_since = overdue(broker, workers.holder("worker@host"))

    assert sweeper.recover_lost() == 1
    assert Job.objects.get(pk=ran_before.pk).status == JobStatus.RETRYING
    assert Job.objects.get(pk=ran_since.pk).status == JobStatus.RUNNING
    assert sweeper.sweep() == {"resent": 1, "recovered": 0, "waiting": 1}
    resent = set(Job.objects.filter(events__kind="resent").values_list("pk", flat=True))
    assert held_before.pk in resent
    assert held_since.pk not in resent


def test_no_worker_is_judged_dead_just_after_redis_lost_its_keys(broker) -> None:
    claim("dead@host", seconds_ago=60)
    assert workers.live_workers({"dead@host"}) is None  # no epoch: just flushed
    workers.announce_alive("other@host")  # the first heartbeat after the flush
    assert workers.live_workers({"dead@host"}) is None  # still younger than 15 s
    assert sweeper.recover_lost() == 0
    settled_epoch(broker)
    assert workers.live_workers({"dead@host", "other@host"}) == {"other@host"}
    assert sweeper.recover_lost() == 1


def test_a_batch_is_marked_queued_once_published(
    broker, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        jobs = services.enqueue_many([services.JobRequest(JobType.REMEDIATION) for _ in range(3)])
    task_ids = [str(job.celery_task_id) for job in jobs]
    assert delivery.where(task_ids) == dict.fromkeys(task_ids, delivery.QUEUED)
    settled_epoch(broker)
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(
        dispatched_at=timezone.now() - timedelta(seconds=3600)
    )
    assert sweeper.sweep()["resent"] == 0  # waiting in the queue, not lost


def published_messages(broker: "redis.Redis[bytes]", queue: str) -> dict[str, bytes]:
    """The messages waiting in a queue, by task id, as kombu stores them."""
    return {json.loads(raw)["headers"]["id"]: raw for raw in broker.lrange(queue, 0, -1)}


def test_a_message_a_killed_worker_took_off_its_queue_is_resent_on_the_next_sweep(
    broker, django_capture_on_commit_callbacks
) -> None:
    """kombu takes a message off its queue, then records it among the taken ones: a worker
    killed between the two steps leaves the message nowhere and its marker "queued". The
    first sweep to miss it waits, since a worker may be between those steps; the next one
    re-sends it. Messages in the queue or in a worker's hands are left alone."""
    settled_epoch(broker)
    workers.announce_alive("alive@host")
    with django_capture_on_commit_callbacks(execute=True):
        jobs = services.enqueue_many([services.JobRequest(JobType.REMEDIATION) for _ in range(4)])
    lost, taken_late, taken, _still_queued = jobs
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(
        dispatched_at=timezone.now() - timedelta(seconds=3600)
    )
    queue = routing.queue_for(JobType.REMEDIATION)
    raw = published_messages(broker, queue)
    assert set(raw) == {str(job.celery_task_id) for job in jobs}
    for job in (lost, taken_late, taken):
        broker.lrem(queue, 1, raw[str(job.celery_task_id)])
    broker.hset(
        "unacked", "tag-1", json.dumps([json.loads(raw[str(taken.celery_task_id)]), queue, queue])
    )

    assert sweeper.sweep() == {"resent": 0, "recovered": 0, "waiting": 4}
    # Between the sweeps a live worker marks the message it was taking when the first looked.
    delivery.mark(str(taken_late.celery_task_id), workers.holder("alive@host"))
    with django_capture_on_commit_callbacks(execute=True):
        assert sweeper.sweep() == {"resent": 1, "recovered": 0, "waiting": 3}

    resent = Job.objects.get(pk=lost.pk)
    assert resent.celery_task_id != lost.celery_task_id
    assert set(
        Job.objects.filter(events__kind=JobEvent.Kind.RESENT).values_list("pk", flat=True)
    ) == {lost.pk}
    assert str(resent.celery_task_id) in published_messages(broker, queue)
    assert sweeper.sweep()["resent"] == 0


def test_queues_too_long_to_search_count_their_messages_as_waiting(
    broker, django_capture_on_commit_callbacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    settled_epoch(broker)
    with django_capture_on_commit_callbacks(execute=True):
        lost, waiting = services.enqueue_many(
            [services.JobRequest(JobType.REMEDIATION) for _ in range(2)]
        )
    Job.objects.filter(pk__in=[lost.pk, waiting.pk]).update(
        dispatched_at=timezone.now() - timedelta(seconds=3600)
    )
    queue = routing.queue_for(JobType.REMEDIATION)
    broker.lrem(queue, 1, published_messages(broker, queue)[str(lost.celery_task_id)])
    monkeypatch.setattr(delivery, "SEARCHED_AT_MOST", 0)
    assert [sweeper.sweep()["resent"] for _ in range(2)] == [0, 0]
    monkeypatch.setattr(delivery, "SEARCHED_AT_MOST", 1)
    assert [sweeper.sweep()["resent"] for _ in range(2)] == [0, 1]


def test_a_worker_that_took_the_message_first_keeps_its_mark(broker) -> None:
    """A worker waiting on the queue may take a message, and mark it held, before the
    publisher marks it queued: the holder's mark stays, so a message held by a worker that
    then dies is re-sent instead of looking queued for good."""
    held, batched = "early-single", "early-batch"
    for task_id in (held, batched):
        delivery.mark(task_id, "worker@host")
    delivery.published(sender=delivery.TASK, headers={"id": held})
    with delivery.marked_together():
        delivery.published(sender=delivery.TASK, headers={"id": batched})
        delivery.published(sender=delivery.TASK, headers={"id": "fresh"})
    assert delivery.where([held, batched, "fresh"]) == {
        held: "worker@host",
        batched: "worker@host",
        "fresh": delivery.QUEUED,
    }


def test_a_marker_stays_while_its_attempt_runs_and_goes_once_it_is_recorded(
    broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While an attempt runs its worker still holds the message, and the marker says so; it
    goes once the attempt is recorded, failed or succeeded, along with the attempt's
    metrics. So the retry Celery sends under the same message id is marked queued afresh,
    not left looking held by a worker that has let go of it."""
    job = services.enqueue(JobType.REMEDIATION)
    task_id = str(job.celery_task_id)
    holder = workers.holder("worker@host")
    seen_by_handler: list[str | None] = []

    def handler(job: Job) -> dict[str, object]:
        seen_by_handler.append(delivery.where([task_id])[task_id])  # type: ignore[index]
        if len(seen_by_handler) == 1:
            raise TransientError("try again")
        return {}

    monkeypatch.setitem(registry._handlers, JobType.REMEDIATION, handler)
    delivery.mark(task_id, holder)  # as the worker's main process does on taking it
    with pytest.raises(TransientError):
        runner.execute(job.pk, task_id=task_id, retries=0, max_retries=5, worker="w")
    assert delivery.where([task_id]) == {task_id: None}
    delivery.published(sender=delivery.TASK, headers={"id": task_id})  # Celery's retry
    assert delivery.where([task_id]) == {task_id: delivery.QUEUED}

    delivery.mark(task_id, holder)
    runner.execute(job.pk, task_id=task_id, retries=1, max_retries=5, worker="w")

    assert seen_by_handler == [holder, holder]
    assert delivery.where([task_id]) == {task_id: None}
    counted = metrics.read()
    assert counted[("attempts", JobType.REMEDIATION, AttemptOutcome.FAILED)] == 1
    assert counted[("attempts", JobType.REMEDIATION, AttemptOutcome.SUCCEEDED)] == 1


def test_a_recovery_marks_only_the_dead_attempt_lost_and_counts_it(
    broker, django_capture_on_commit_callbacks
) -> None:
    """The job's earlier, failed attempt keeps its outcome and error; the metrics count one
    lost attempt of its type; the job's history says it was recovered, and why."""
    settled_epoch(broker)
    assert sweeper.recover_lost() == 0  # nothing running, nothing recovered
    job = services.enqueue(JobType.REMEDIATION)
    task_id = str(job.celery_task_id)
    first = lifecycle.start_attempt(job.pk, task_id=task_id, retries=0, worker="dead@host")
    assert first is not None
    assert lifecycle.fail_attempt(first, TransientError("503 from upstream"), will_retry=True)
    second = lifecycle.start_attempt(job.pk, task_id=task_id, retries=1, worker="dead@host")
    assert second is not None
    started = timezone.now() - timedelta(seconds=20)
    type(second).objects.filter(pk=second.pk).update(started_at=started)
    Job.objects.filter(pk=job.pk).update(attempt_started_at=started)
    before = metrics.read().get(("attempts", JobType.REMEDIATION, "lost"), 0)

    with django_capture_on_commit_callbacks(execute=True):
        assert sweeper.recover_lost() == 1

    job.refresh_from_db()
    assert (job.status, job.retries) == (JobStatus.RETRYING, 2)
    assert job.error_traceback.rstrip().endswith(f"WorkerLostError: {LOST}")
    rows = list(job.attempts.order_by("number"))
    assert [(a.number, a.outcome, a.error_message) for a in rows] == [
        (1, AttemptOutcome.FAILED, "503 from upstream"),
        (2, AttemptOutcome.LOST, LOST),
    ]
    (event,) = job.events.all()
    assert (event.kind, event.message) == (
        JobEvent.Kind.RECOVERED,
        "Recovered from a lost worker; retrying.",
    )
    assert metrics.read()[("attempts", JobType.REMEDIATION, "lost")] == before + 1
