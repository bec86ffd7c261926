"""remediation: re-check that a violation still holds, then take its policy's action once;
running it again changes nothing new."""

from typing import Any

from assets.asset_discovery import assets_client
from connectors.google_workspace import DIRECTORY_SCOPES
from identities.handlers.common import google_workspace_client, scim_client
from identities.models import Identity
from jobs.errors import PermanentError
from jobs.models import Job, JobType, Trigger
from jobs.registry import register
from jobs.services import enqueue
from policies import kinds, services
from policies.models import Action, Violation, ViolationStatus


def load_violation(job: Job) -> Violation:
    violation_id = job.params.get("violation_id") if isinstance(job.params, dict) else None
    violation = (
        Violation.objects.select_related("policy__platform").filter(pk=violation_id or 0).first()
    )
    if violation is None:
        raise PermanentError(f"Job {job.pk} names violation {violation_id!r}, which is gone")
    return violation


def suspend_user(violation: Violation, job: Job) -> str:
    client = google_workspace_client(violation.policy.platform)
    user = client.get_user(violation.subject_id)
    if user is None:
        return f"user {violation.subject_label} is gone from Google Workspace; nothing to suspend"
    if user.suspended:
        return f"user {violation.subject_label} was already suspended"
    client.update_user(violation.subject_id, suspended=True)
    return f"suspended user {violation.subject_label} in Google Workspace"


def remove_from_group(violation: Violation, job: Job) -> str:
    """Take the user out of the policy's ``privileged_group``: the group through which the
    admin privilege (or access) is held. Not the allowed group, which an admin outside it is
    not in. Already not a member is success, so a repeated run changes nothing."""
    group = str(violation.policy.parameters.get("privileged_group") or "").strip()
    if not group:
        raise PermanentError(f"Policy {violation.policy.name} names no privileged_group")
    # members.delete needs the group scope as well as the user one.
    client = google_workspace_client(violation.policy.platform, scopes=DIRECTORY_SCOPES)
    if not client.delete_member(group, violation.subject_id):
        return f"user {violation.subject_label} was not a member of {group}"
    return f"removed user {violation.subject_label} from group {group}"


def deactivate_sso_user(violation: Violation, job: Job) -> str:
    """SCIM active=false for the identity provider's user of the identity linked to the Google
    user (its ``idp_user_id``); already inactive or gone is success."""
    platform = violation.policy.platform
    identity = (
        Identity.objects.filter(platform=platform, gws_user_id=violation.subject_id)
        .exclude(idp_user_id="")
        .first()
    )
    if identity is None:
        raise PermanentError(
            f"Violation #{violation.pk}: no identity with an SSO user for {violation.subject_label}"
        )
    with scim_client(platform.identity_provider, platform) as client:
        user = client.get_user(identity.idp_user_id, user_name=identity.login)
        if user is None:
            return f"SSO user {identity.login} is gone from the identity provider; nothing to do"
        if not user.active:
            return f"SSO user {identity.login} was already inactive"
        client.set_active(identity.idp_user_id, False, user_name=identity.login)
    return f"deactivated SSO user {identity.login}"


def revoke_token(violation: Violation, job: Job) -> str:
    user_id, _, client_id = violation.subject_id.partition(":")
    if not client_id:
        raise PermanentError(f"Violation #{violation.pk}: {violation.subject_id!r} is no token id")
    revoked = assets_client(violation.policy.platform).revoke_token(user_id, client_id)
    if not revoked:
        return f"the grant {violation.subject_label} was already revoked"
    return f"revoked the grant {violation.subject_label}"


def rotate_credential(violation: Violation, job: Job) -> str:
    identity = Identity.objects.filter(pk=int(violation.subject_id)).first()
    if identity is None:
        raise PermanentError(f"Violation #{violation.pk} names credential that is gone")
    # The rotation path PAM's check-in uses: one credential_rotation job, started once per
    # remediation job (a repeated delivery finds the job it started).
    existing = (
        Job.objects.filter(
            job_type=JobType.CREDENTIAL_ROTATION,
            subject_id=str(identity.pk),
            params__remediation_job_id=job.pk,
        )
        .order_by("pk")
        .first()
    )
    rotation = existing or enqueue(
        JobType.CREDENTIAL_ROTATION,
        subject=identity,
        params={"remediation_job_id": job.pk},
        trigger=Trigger.JOB,
        trigger_label=f"remediation job {job.pk}",
    )
    return f"started credential_rotation job {rotation.pk} for {identity.login}"


ACTIONS = {
    Action.SUSPEND_USER: suspend_user,
    Action.REVOKE_TOKEN: revoke_token,
    Action.ROTATE_CREDENTIAL: rotate_credential,
    Action.REMOVE_FROM_GROUP: remove_from_group,
    Action.DEACTIVATE_SSO_USER: deactivate_sso_user,
}


@register("remediation")
def run(job: Job) -> dict[str, Any]:
    violation = load_violation(job)
    policy = violation.policy
    if violation.status == ViolationStatus.REMEDIATED:
        return {"violation_id": violation.pk, "outcome": violation.outcome, "resumed": True}
    if violation.status != ViolationStatus.REMEDIATING or violation.remediation_job_id not in (
        None,
        job.pk,
    ):
        return {"violation_id": violation.pk, "outcome": f"violation is {violation.status}"}
    still = any(True for _ in kinds.findings(policy, violation.subject_id))
    if not still:
        services.finish_remediation(
            violation.pk, status=ViolationStatus.CLOSED, outcome="no longer holds"
        )
        return {"violation_id": violation.pk, "outcome": "no longer holds"}
    action = ACTIONS.get(policy.action)  # type: ignore[call-overload]
    if action is None:
        raise PermanentError(f"Policy {policy.name} has action {policy.action}, which has no job")
    outcome = action(violation, job)
    services.finish_remediation(violation.pk, status=ViolationStatus.REMEDIATED, outcome=outcome)
    return {"violation_id": violation.pk, "action": policy.action, "outcome": outcome}
