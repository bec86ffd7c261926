"""Runs a job's delivery in this process through the engine's own runner (no Celery), so
handler tests see the same attempts, errors and status changes a worker would record."""

import contextlib

from django.conf import settings

from jobs import runner
from jobs.errors import JobError
from jobs.models import Job


def deliver(job: Job) -> Job:
    """One delivery of the job's current message; returns the job as it is afterwards."""
    job.refresh_from_db()
    # A JobError is recorded on the job; Celery would now schedule the retry, or stop.
    with contextlib.suppress(JobError):
        runner.execute(
            job.pk,
            task_id=str(job.celery_task_id),
            retries=job.retries,
            max_retries=settings.JOB_MAX_RETRIES,
            worker="inline",
        )
    job.refresh_from_db()
    return job
