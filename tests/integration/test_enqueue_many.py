"""enqueue_many: a batch of jobs is one INSERT and one publish, all or nothing with its
transaction, and every job of it runs on a real worker."""

import pytest
import redis
from django.db import transaction
from django.db.models import Count

from jobs import routing, services
from jobs.models import AttemptOutcome, Job, JobAttempt, JobStatus, JobStatusCount
from jobs.services import JobRequest
from tests.integration import handlers  # noqa: F401 - registers the test job types
from tests.integration.worker import CeleryProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

JOBS = 1000


def queued(broker: "redis.Redis[bytes]") -> int:
    return int(broker.llen(routing.queue_for("test_noop")))


def counters(job_type: str) -> dict[str, int]:
    rows = JobStatusCount.objects.filter(job_type=job_type).values_list("status", "count")
    return {status: count for status, count in rows if count}


def test_a_rolled_back_batch_leaves_no_job_and_sends_no_message(
    broker: "redis.Redis[bytes]",
) -> None:
    before = counters("test_noop")
    written: list[int] = []

    def enqueue_then_fail() -> None:
        with transaction.atomic():
            jobs = services.enqueue_many(JobRequest("test_noop") for _ in range(JOBS))
            written.append(Job.objects.filter(pk__in=[job.pk for job in jobs]).count())
            raise RuntimeError("the caller's own failure, after the batch")

    with pytest.raises(RuntimeError, match="the caller's own failure"):
        enqueue_then_fail()
    assert written == [JOBS]  # they were there, inside the transaction

    assert not Job.objects.exists()
    assert counters("test_noop") == before
    assert queued(broker) == 0


def test_one_refused_request_refuses_the_whole_batch(broker: "redis.Redis[bytes]") -> None:
    requests = [JobRequest("test_noop") for _ in range(JOBS - 1)]
    requests.append(JobRequest("test_noop", params={"api_key": "k-123"}))
    with pytest.raises(services.InvalidJobError, match=r"params.api_key"):
        services.enqueue_many(requests)
    with pytest.raises(services.InvalidJobError, match="unknown job type"):
        services.enqueue_many([JobRequest("test_noop"), JobRequest("no_such_type")])

    assert not Job.objects.exists()
    assert queued(broker) == 0


def test_every_job_of_a_committed_batch_completes_once_on_a_real_worker(
    broker: "redis.Redis[bytes]",
) -> None:
    before = counters("test_noop").get(JobStatus.COMPLETED, 0)
    with transaction.atomic():
        jobs = services.enqueue_many(
            [JobRequest("test_noop", params={"n": n}) for n in range(JOBS)],
            trigger_label="batch test",
        )
        assert queued(broker) == 0  # nothing is sent before the commit
    assert queued(broker) == JOBS
    assert counters("test_noop")[JobStatus.PENDING] == JOBS

    worker = CeleryProcess("worker").start()
    try:
        wait_for(
            lambda: Job.objects.filter(status=JobStatus.COMPLETED).count() == JOBS,
            240,
            f"{JOBS} jobs completed",
            worker,
        )
    finally:
        worker.stop()

    ids = {job.pk for job in jobs}
    assert set(Job.objects.values_list("pk", flat=True)) == ids
    assert sorted(Job.objects.values_list("params__n", flat=True)) == list(range(JOBS))
    assert set(Job.objects.values_list("trigger_label", flat=True)) == {"batch test"}
    # Exactly one attempt each, and it succeeded.
    per_job = JobAttempt.objects.values("job_id").annotate(n=Count("id")).order_by()
    assert {row["job_id"] for row in per_job} == ids
    assert {row["n"] for row in per_job} == {1}
    assert set(JobAttempt.objects.values_list("outcome", flat=True)) == {AttemptOutcome.SUCCEEDED}
    assert counters("test_noop").get(JobStatus.PENDING, 0) == 0
    assert counters("test_noop").get(JobStatus.RUNNING, 0) == 0
    assert counters("test_noop")[JobStatus.COMPLETED] == before + JOBS
    assert queued(broker) == 0
