"""Evaluating policies into violations, and deciding (approve, dismiss) the ones that wait."""

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from identities.models import Platform
from jobs.models import Job, JobStatus, JobType, Trigger
from jobs.services import enqueue, retry_job
from policies import kinds
from policies.models import (
    Action,
    Decision,
    Mode,
    Policy,
    Violation,
    ViolationStatus,
)
from trail.services import changed_fields, record

log = logging.getLogger(__name__)


class DecisionRefused(ValueError):
    """The violation cannot be approved or dismissed as asked (shown to the admin)."""


@transaction.atomic
def save_policy(policy: Policy | None, *, actor: Any, **fields: Any) -> Policy:
    """Create a policy (``policy`` None) or change one; the form has checked the fields."""
    if policy is None:
        created = Policy.objects.create(**fields)
        record(
            "policy.created",
            actor=actor,
            target=created,
            kind=created.kind,
            remediation=created.action,
            mode=created.mode,
            enabled=created.enabled,
        )
        return created
    changed = changed_fields(Policy.objects.select_for_update().get(pk=policy.pk), fields)
    for name, value in fields.items():
        setattr(policy, name, value)
    policy.save()
    if changed:
        record(
            "policy.changed",
            actor=actor,
            target=policy,
            changed=changed,
            remediation=policy.action,
            mode=policy.mode,
            enabled=policy.enabled,
        )
    return policy


def list_policies_for(platform: Platform) -> list[Policy]:
    return list(Policy.objects.filter(platform=platform, enabled=True).select_related("platform"))


def evaluate_policies(platform: Platform, *, trigger: str) -> dict[str, int]:
    """Evaluate every enabled policy of the platform; returns opened, closed, remediations."""
    totals = {"opened": 0, "closed": 0, "remediations": 0}
    for policy in list_policies_for(platform):
        for key, value in evaluate_policy(policy, trigger=trigger).items():
            totals[key] += value
    log.info("policies.evaluated", extra={"platform_id": platform.pk, "trigger": trigger, **totals})
    return totals


def evaluate_policy(policy: Policy, *, trigger: str) -> dict[str, int]:
    """Open a violation for each new finding, close the live ones no longer found, and start
    the remediation of open ones when the policy is automatic. Safe to run concurrently."""
    found = {(f.subject_kind, f.subject_id): f for f in kinds.findings(policy)}
    now = timezone.now()
    with transaction.atomic():
        rows = Violation.objects.filter(policy=policy, closed_at__isnull=True).values_list(
            "subject_kind", "subject_id", "pk"
        )
        live = {(kind, subject): pk for kind, subject, pk in rows}
        closed = close_violations([pk for key, pk in live.items() if key not in found], now)
        new = [finding for key, finding in found.items() if key not in live]
        # ignore_conflicts: the partial unique index decides, so a racing evaluation's row
        # stands and ours is dropped.
        Violation.objects.bulk_create(
            [
                Violation(
                    policy=policy,
                    subject_kind=f.subject_kind,
                    subject_id=f.subject_id,
                    subject_label=f.label[:500],
                    evidence=f.evidence,
                    opened_at=now,
                )
                for f in new
            ],
            ignore_conflicts=True,
        )
    remediations = 0
    if policy.mode == Mode.AUTOMATIC and policy.action != Action.NOTIFY:
        open_ids = Violation.objects.filter(
            policy=policy, closed_at__isnull=True, status=ViolationStatus.OPEN
        ).values_list("pk", flat=True)
        for violation_id in list(open_ids):
            if start_remediation(violation_id, actor=None, trigger=trigger) is not None:
                remediations += 1
    return {"opened": len(new), "closed": closed, "remediations": remediations}


def close_violations(violation_ids: list[int], now: Any) -> int:
    """Close live violations that no longer hold; an open or remediating one becomes closed,
    a remediated or dismissed one keeps the status that says why."""
    if not violation_ids:
        return 0
    live = Violation.objects.filter(pk__in=violation_ids, closed_at__isnull=True)
    active = (ViolationStatus.OPEN, ViolationStatus.REMEDIATING, ViolationStatus.REMEDIATION_FAILED)
    count = live.filter(status__in=active).update(
        closed_at=now, status=ViolationStatus.CLOSED, outcome="no longer holds"
    )
    return count + live.update(closed_at=now)


def start_remediation(violation_id: int, *, actor: Any, trigger: str) -> Job | None:
    """Move an open violation to remediating and enqueue its one remediation job; None if
    another caller got there first (the conditional update lets only one through)."""
    with transaction.atomic():
        moved = Violation.objects.filter(
            pk=violation_id,
            closed_at__isnull=True,
            status=ViolationStatus.OPEN,
            remediation_job__isnull=True,
        ).update(status=ViolationStatus.REMEDIATING)
        if not moved:
            return None
        violation = Violation.objects.select_related("policy").get(pk=violation_id)
        job = enqueue(
            JobType.REMEDIATION,
            subject=violation,
            params={"violation_id": violation.pk, "action": violation.policy.action},
            triggered_by=actor,
            trigger=trigger,
            trigger_label="" if actor is not None else f"policy {violation.policy.name}",
        )
        Violation.objects.filter(pk=violation_id).update(remediation_job=job)
    return job


def approve_violation(violation: Violation, *, actor: Any) -> Job:
    """Record the approval and start the violation's remediation."""
    with transaction.atomic():
        violation = (
            Violation.objects.select_for_update().select_related("policy").get(pk=violation.pk)
        )
        if violation.closed_at is not None or violation.status != ViolationStatus.OPEN:
            raise DecisionRefused(f"violation #{violation.pk} is {violation.status}, not open")
        if violation.policy.action == Action.NOTIFY:
            raise DecisionRefused(
                f"policy {violation.policy.name} only notifies; there is nothing to approve"
            )
        Violation.objects.filter(pk=violation.pk).update(
            decision=Decision.APPROVED, decided_by=actor, decided_at=timezone.now()
        )
        job = start_remediation(violation.pk, actor=actor, trigger=Trigger.USER)
        if job is None:  # pragma: no cover - the row lock above rules this out
            raise DecisionRefused(f"violation #{violation.pk} is already being remediated")
        record(
            "violation.approved",
            actor=actor,
            target=violation,
            policy=violation.policy.name,
            remediation=violation.policy.action,
            job=job.pk,
        )
    return job


def dismiss_violation(violation: Violation, *, actor: Any) -> None:
    """Record the dismissal of an open violation, or of one whose remediation failed; the
    violation stays the subject's live row (so it is not opened again) until an evaluation no
    longer finds it."""
    with transaction.atomic():
        moved = Violation.objects.filter(
            pk=violation.pk,
            closed_at__isnull=True,
            status__in=(ViolationStatus.OPEN, ViolationStatus.REMEDIATION_FAILED),
        ).update(
            status=ViolationStatus.DISMISSED,
            decision=Decision.DISMISSED,
            decided_by=actor,
            decided_at=timezone.now(),
        )
        if not moved:
            raise DecisionRefused(
                f"violation #{violation.pk} is neither open nor failed to remediate"
            )
        decided = Violation.objects.select_related("policy").get(pk=violation.pk)
        record("violation.dismissed", actor=actor, target=decided, policy=decided.policy.name)


def finish_remediation(violation_id: int, *, status: str, outcome: str) -> None:
    """Record what the remediation did; only a remediating violation moves."""
    fields: dict[str, Any] = {"status": status, "outcome": outcome}
    if status == ViolationStatus.CLOSED:
        fields["closed_at"] = timezone.now()
    Violation.objects.filter(pk=violation_id, status=ViolationStatus.REMEDIATING).update(**fields)


def follow_remediation_job(job_id: int, *, from_status: str, to_status: str) -> None:
    """Keep a violation in step with its remediation job: failed for good → remediation
    failed (with the job's error); retried → remediating again."""
    if to_status == JobStatus.FAILED:
        error = Job.objects.filter(pk=job_id).values_list("error_message", flat=True).first()
        Violation.objects.filter(
            remediation_job_id=job_id, status=ViolationStatus.REMEDIATING
        ).update(status=ViolationStatus.REMEDIATION_FAILED, outcome=error or "failed")
    elif from_status == JobStatus.FAILED:
        Violation.objects.filter(
            remediation_job_id=job_id, status=ViolationStatus.REMEDIATION_FAILED
        ).update(status=ViolationStatus.REMEDIATING, outcome="")


def retry_remediation(violation: Violation, *, actor: Any) -> Job:
    """Retry the failed remediation job of a violation whose remediation failed."""
    with transaction.atomic():
        locked = Violation.objects.select_for_update().get(pk=violation.pk)
        job = locked.remediation_job
        if locked.status != ViolationStatus.REMEDIATION_FAILED or job is None:
            raise DecisionRefused(f"violation #{violation.pk} is {locked.status}, not failed")
        if not retry_job(job, actor=actor):
            raise DecisionRefused(f"remediation job #{job.pk} is not failed (any more)")
    return job
