"""One evaluator per built-in policy kind: what currently breaks the policy, read from the
snapshots that directory sync, audit ingestion and asset discovery keep."""

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import CharField, Max, OuterRef, Q, Subquery
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from assets.models import Asset, AssetKind
from audit.models import AuditEvent
from directory.models import DirectoryMembership, DirectoryUser
from identities.models import Identity, IdentityType
from jobs.models import Job, JobStatus, JobType
from policies.models import Policy, PolicyKind

# Scopes that reach a whole mailbox, drive or the admin API, unless a policy lists its own.
DEFAULT_BROAD_SCOPES = (
    "https://mail.google.com/",
    "https://www.googleapis.com/auth/gmail",
    "https://www.googleapis.com/auth/drive",
    "https://www.googleapis.com/auth/admin",
    "https://www.googleapis.com/auth/cloud-platform",
)
DEFAULT_STALE_DAYS = 90
DEFAULT_INACTIVE_DAYS = 90


@dataclass(frozen=True)
class Finding:
    """One subject breaking a policy now; ``subject_id`` is the remote's immutable id."""

    subject_kind: str
    subject_id: str
    label: str
    evidence: dict[str, Any] = field(default_factory=dict)


Evaluator = Callable[[Policy, str | None], Iterator[Finding]]


def _users(policy: Policy) -> Any:
    return Asset.objects.filter(
        platform=policy.platform, kind=AssetKind.USER, gone_at__isnull=True
    ).exclude(attributes__contains={"suspended": True})


def leaver_active(policy: Policy, subject_id: str | None = None) -> Iterator[Finding]:
    """A Google user still active whose identity's source user left (deleted or disabled)."""
    leavers = DirectoryUser.objects.filter(
        Q(deleted=True) | Q(disabled=True),
        identity__platform=policy.platform,
    ).exclude(identity__gws_user_id="")
    if subject_id is not None:
        leavers = leavers.filter(identity__gws_user_id=subject_id)
    rows = leavers.select_related("identity", "source")
    left = {row.identity.gws_user_id: row for row in rows if row.identity is not None}
    if not left:
        return
    for asset in _users(policy).filter(external_id__in=list(left)):
        row = left[asset.external_id]
        yield Finding(
            "gws_user",
            asset.external_id,
            str(asset.attributes.get("primaryEmail") or asset.name),
            {
                "source": row.source.name,
                "source_user": row.username,
                "source_state": row.state,
                "suspended": False,
            },
        )


def no_2sv(policy: Policy, subject_id: str | None = None) -> Iterator[Finding]:
    """An active Google user not enrolled in 2-step verification."""
    users = _users(policy).filter(attributes__isEnrolledIn2Sv=False)
    if subject_id is not None:
        users = users.filter(external_id=subject_id)
    for asset in users.only("external_id", "name", "attributes"):
        yield Finding(
            "gws_user",
            asset.external_id,
            str(asset.attributes.get("primaryEmail") or asset.name),
            {
                "isEnrolledIn2Sv": False,
                "isEnforcedIn2Sv": asset.attributes.get("isEnforcedIn2Sv", False),
            },
        )


def stale_credential(policy: Policy, subject_id: str | None = None) -> Iterator[Finding]:
    """A managed shared credential whose last completed rotation (or creation, if it never
    rotated) is more than ``days`` ago."""
    days = int(policy.parameters.get("days") or DEFAULT_STALE_DAYS)
    cutoff = timezone.now() - dt.timedelta(days=days)
    last_rotation = (
        Job.objects.filter(
            job_type=JobType.CREDENTIAL_ROTATION,
            status=JobStatus.COMPLETED,
            subject_type__app_label="identities",
            subject_type__model="identity",
            subject_id=OuterRef("pk_text"),
        )
        .values("subject_id")
        .annotate(last=Max("completed_at"))
        .values("last")
    )
    credentials = Identity.objects.filter(
        platform=policy.platform, identity_type=IdentityType.SHARED_CREDENTIAL_MANAGED
    )
    if subject_id is not None:
        credentials = credentials.filter(pk=int(subject_id) if subject_id.isdigit() else 0)
    credentials = credentials.annotate(pk_text=Cast("pk", CharField())).annotate(
        last_rotated=Subquery(last_rotation)
    )
    for identity in credentials:
        since: dt.datetime = identity.last_rotated or identity.created_at
        if since < cutoff:
            yield Finding(
                "identity",
                str(identity.pk),
                identity.login,
                {
                    "last_rotated": since.isoformat(),
                    "never_rotated": identity.last_rotated is None,
                    "days": days,
                },
            )


def broad_oauth_app(policy: Policy, subject_id: str | None = None) -> Iterator[Finding]:
    """A user's third-party OAuth grant holding a broad scope, its client not allow-listed."""
    broad = tuple(policy.parameters.get("broad_scopes") or DEFAULT_BROAD_SCOPES)
    allowed = set(policy.parameters.get("allowed_clients") or ())
    tokens = Asset.objects.filter(
        platform=policy.platform, kind=AssetKind.OAUTH_TOKEN, gone_at__isnull=True
    )
    if subject_id is not None:
        tokens = tokens.filter(external_id=subject_id)
    for asset in tokens.only("external_id", "name", "attributes"):
        attributes = asset.attributes
        if attributes.get("clientId") in allowed:
            continue
        scopes = [scope for scope in attributes.get("scopes") or () if str(scope).startswith(broad)]
        if scopes:
            yield Finding(
                "oauth_token",
                asset.external_id,
                asset.name,
                {
                    "client_id": attributes.get("clientId"),
                    "user_email": attributes.get("userEmail"),
                    "broad_scopes": scopes,
                },
            )


def inactive_account(policy: Policy, subject_id: str | None = None) -> Iterator[Finding]:
    """An active Google user older than ``days`` whose last successful login (in the audit
    events ingested) is more than ``days`` ago, or who never logged in since ingestion began."""
    days = int(policy.parameters.get("days") or DEFAULT_INACTIVE_DAYS)
    cutoff = timezone.now() - dt.timedelta(days=days)
    users = _users(policy)
    if subject_id is not None:
        users = users.filter(external_id=subject_id)
    logins = (
        AuditEvent.objects.filter(
            platform=policy.platform, application="login", event_name="login_success"
        )
        .values("actor_email")
        .annotate(last=Max("occurred_at"))
        .values_list("actor_email", "last")
    )
    last_logins: dict[str, dt.datetime] = {}
    for actor, at in logins:
        key = actor.lower()
        last_logins[key] = max(at, last_logins.get(key, at))
    for asset in users.only("external_id", "name", "attributes"):
        email = str(asset.attributes.get("primaryEmail") or asset.name).lower()
        created = parse_datetime(str(asset.attributes.get("creationTime") or ""))
        if created is not None and created >= cutoff:
            continue  # too new to have missed N days of logins
        last = last_logins.get(email)
        if last is None or last < cutoff:
            yield Finding(
                "gws_user",
                asset.external_id,
                email,
                {"last_login": last.isoformat() if last else None, "days": days},
            )


def admin_outside_group(policy: Policy, subject_id: str | None = None) -> Iterator[Finding]:
    """An active Google user with ``isAdmin`` who is not a member of the policy's
    ``allowed_group`` (a group's email or name), as directory sync last saw the group's
    members: a member matches by its linked identity's Google user id or by email."""
    allowed = str(policy.parameters.get("allowed_group") or "").strip()
    admins = _users(policy).filter(attributes__isAdmin=True)
    if subject_id is not None:
        admins = admins.filter(external_id=subject_id)
    member_ids: set[str] = set()
    member_emails: set[str] = set()
    if allowed:
        memberships = DirectoryMembership.objects.filter(
            Q(group__email__iexact=allowed) | Q(group__name__iexact=allowed),
            user__deleted=False,
        ).values_list("user__identity__gws_user_id", "user__email")
        for gws_user_id, email in memberships:
            if gws_user_id:
                member_ids.add(gws_user_id)
            if email:
                member_emails.add(email.lower())
    for asset in admins.only("external_id", "name", "attributes"):
        email = str(asset.attributes.get("primaryEmail") or asset.name).lower()
        if asset.external_id in member_ids or email in member_emails:
            continue
        yield Finding(
            "gws_user",
            asset.external_id,
            email,
            {"isAdmin": True, "allowed_group": allowed},
        )


EVALUATORS: dict[str, Evaluator] = {
    PolicyKind.LEAVER_ACTIVE: leaver_active,
    PolicyKind.NO_2SV: no_2sv,
    PolicyKind.STALE_CREDENTIAL: stale_credential,
    PolicyKind.BROAD_OAUTH_APP: broad_oauth_app,
    PolicyKind.INACTIVE_ACCOUNT: inactive_account,
    PolicyKind.ADMIN_OUTSIDE_GROUP: admin_outside_group,
}


def findings(policy: Policy, subject_id: str | None = None) -> Iterator[Finding]:
    return EVALUATORS[policy.kind](policy, subject_id)
