"""Marks an import failed, and deletes its upload, when its job fails for good."""

from typing import Any

from django.dispatch import receiver

from imports.services import fail_import
from jobs.models import JobStatus, JobType
from jobs.signals import follow, job_status_changed

follow(job_types=[JobType.BULK_IMPORT])


@receiver(job_status_changed)
def follow_import_jobs(
    sender: Any, *, job_id: int, job_type: str, to_status: str, **kwargs: Any
) -> None:
    if job_type == JobType.BULK_IMPORT and to_status == JobStatus.FAILED:
        fail_import(job_id)
