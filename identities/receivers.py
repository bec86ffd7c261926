"""Keeps an identity's status in step with its provisioning jobs."""

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.dispatch import receiver

from identities.models import Identity
from identities.services import refresh_identity_status
from jobs.signals import follow, job_status_changed

follow(subjects=[Identity])


@receiver(job_status_changed)
def follow_identity_jobs(
    sender: Any, *, subject_type_id: int | None, subject_id: str, **kwargs: Any
) -> None:
    if subject_type_id and subject_type_id == ContentType.objects.get_for_model(Identity).pk:
        refresh_identity_status(int(subject_id))
