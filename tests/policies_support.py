"""What the policy tests share: a sandbox platform, discovery run in-process, policies."""

from typing import Any

from assets import services as asset_services
from identities.models import Platform
from jobs.models import Job, JobStatus
from policies.models import Policy
from tests.inline import deliver


def discover(platform: Platform) -> Job:
    job, created = asset_services.discover_now(platform, actor=None)
    assert created
    job = deliver(job)
    assert job.status == JobStatus.COMPLETED, job.error_message
    return job


def make_policy(platform: Platform, kind: str, **fields: Any) -> Policy:
    fields.setdefault("name", f"{kind} on {platform.name}")
    return Policy.objects.create(platform=platform, kind=kind, **fields)
