"""Queues per workload through real prefork workers on Redis: a worker consuming one queue runs
only that queue's jobs, and Celery's retries go back to the queue the job came from."""

import pytest

from jobs import services
from jobs.models import AttemptOutcome, Job, JobStatus, JobType
from tests.integration import handlers  # noqa: F401 - registers the test job types
from tests.integration.test_ops_support import OpsWorker
from tests.integration.worker import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_sync_worker_runs_only_sync_jobs_while_a_provisioning_job_waits(broker) -> None:
    provisioning = services.enqueue(JobType.CREATE_DOMAIN_USER)
    sync = services.enqueue(JobType.DIRECTORY_SYNC)
    assert broker.llen("provisioning") == 1
    assert broker.llen("sync") == 1

    worker = OpsWorker(queues=["sync"]).start()
    try:
        # Finished, and its message acknowledged: a worker stopped between the job's last
        # write and the ack (acks_late) hands the message back to the queue, as it should.
        wait_for(
            lambda: (
                Job.objects.filter(
                    pk=sync.pk, status__in=[JobStatus.COMPLETED, JobStatus.FAILED]
                ).exists()
                and broker.hlen("unacked") == 0
            ),
            30,
            "the sync job to finish and its message to be acknowledged",
            worker,
        )
    finally:
        worker.stop()
    sync.refresh_from_db()
    provisioning.refresh_from_db()
    # Whatever its handler made of a job without parameters, the sync worker ran it...
    assert sync.attempt_count == 1
    assert sync.attempts.get().worker.startswith("ops-")
    # ...and never touched the provisioning job, whose message still waits in its queue.
    assert provisioning.status == JobStatus.PENDING
    assert provisioning.attempt_count == 0
    assert broker.llen("provisioning") == 1
    assert broker.llen("sync") == 0


def test_retries_go_back_to_the_queue_the_job_came_from(broker, settings) -> None:
    # test_flaky is routed to "sync" here and in the worker: if a retry went to the default
    # queue instead, a worker consuming only "sync" would never see it.
    route = {"ACCESSHIVE_JOB_QUEUES": "test_flaky=sync"}
    settings.JOB_QUEUES = {**settings.JOB_QUEUES, "test_flaky": "sync"}
    worker = OpsWorker(queues=["sync"], env=route).start()
    try:
        job = services.enqueue("test_flaky", params={"fail_times": 2})
        wait_for(
            lambda: Job.objects.filter(pk=job.pk, status=JobStatus.COMPLETED).exists(),
            30,
            "the flaky job to complete after two retries",
            worker,
        )
    finally:
        worker.stop()
    job.refresh_from_db()
    assert [a.outcome for a in job.attempts.all()] == [
        AttemptOutcome.FAILED,
        AttemptOutcome.FAILED,
        AttemptOutcome.SUCCEEDED,
    ]
    assert job.retries == 2
    assert broker.llen("celery") == 0
