"""Evaluates a platform's policies once a directory sync, audit ingestion or asset discovery
of it has completed and committed."""

import logging
from functools import partial
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.dispatch import receiver

from directory.models import IdentitySource
from identities.models import Platform
from jobs.models import JobStatus, JobType, Trigger
from jobs.signals import follow, job_status_changed
from policies import services
from policies.models import Policy, PolicyKind

log = logging.getLogger(__name__)

EVALUATED_AFTER = frozenset(
    {JobType.DIRECTORY_SYNC, JobType.AUDIT_INGESTION, JobType.ASSET_DISCOVERY}
)


def platforms_of(subject_type_id: int | None, subject_id: str) -> list[int]:
    """The platforms whose policies a finished job's snapshot feeds: the job's platform, or
    its source's; a source linked to no platform (an LDAP directory, say) feeds the leaver
    policies of every platform."""
    if not subject_type_id or not subject_id.isdigit():
        return []
    model = ContentType.objects.get_for_id(subject_type_id).model_class()
    if model is Platform:
        return [int(subject_id)]
    if model is IdentitySource:
        source = IdentitySource.objects.filter(pk=int(subject_id)).first()
        if source is None:
            return []
        if source.platform_id is not None:
            return [source.platform_id]
        leaver_policies = Policy.objects.filter(kind=PolicyKind.LEAVER_ACTIVE, enabled=True)
        return sorted(set(leaver_policies.values_list("platform_id", flat=True)))
    return []


def evaluate_after(platform_id: int, job_id: int) -> None:
    platform = Platform.objects.filter(pk=platform_id).first()
    if platform is None:
        return
    try:
        services.evaluate_policies(platform, trigger=Trigger.JOB)
    except Exception:
        # The job that triggered us has completed; a failed evaluation must not undo it, and
        # the next run evaluates again.
        log.exception(
            "policies.evaluation.failed", extra={"platform_id": platform_id, "job_id": job_id}
        )


@receiver(job_status_changed)
def evaluate_after_snapshot(
    sender: Any,
    *,
    job_id: int,
    job_type: str,
    subject_type_id: int | None,
    subject_id: str,
    to_status: str,
    **kwargs: Any,
) -> None:
    """Not a follower (jobs.signals.follow): it only schedules work for after the commit."""
    if to_status != JobStatus.COMPLETED or job_type not in EVALUATED_AFTER:
        return
    for platform_id in platforms_of(subject_type_id, subject_id):
        transaction.on_commit(partial(evaluate_after, platform_id, job_id))


follow(job_types=[JobType.REMEDIATION])


@receiver(job_status_changed)
def follow_remediation(
    sender: Any, *, job_id: int, job_type: str, from_status: str, to_status: str, **kwargs: Any
) -> None:
    if job_type == JobType.REMEDIATION:
        services.follow_remediation_job(job_id, from_status=from_status, to_status=to_status)
