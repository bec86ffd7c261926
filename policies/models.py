"""Policy and Violation: what an admin wants to hold, and each subject found breaking it."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from identities.models import Platform
from jobs.models import Job


class PolicyKind(models.TextChoices):
    LEAVER_ACTIVE = "leaver_active", "Account still active after its source user left"
    NO_2SV = "no_2sv", "User without 2-step verification"
    STALE_CREDENTIAL = "stale_credential", "Managed shared credential not rotated in N days"
    BROAD_OAUTH_APP = "broad_oauth_app", "Third-party OAuth app with broad scopes"
    INACTIVE_ACCOUNT = "inactive_account", "Account with no login in N days"
    ADMIN_OUTSIDE_GROUP = "admin_outside_group", "Admin-privileged account outside an allowed group"


class Action(models.TextChoices):
    NOTIFY = "notify", "Notify only"
    SUSPEND_USER = "suspend_user", "Suspend the user"
    REMOVE_FROM_GROUP = "remove_from_group", "Remove from a group"
    DEACTIVATE_SSO_USER = "deactivate_sso_user", "Deactivate the SSO user"
    ROTATE_CREDENTIAL = "rotate_credential", "Rotate the credential"
    REVOKE_TOKEN = "revoke_token", "Revoke the OAuth token"


class Mode(models.TextChoices):
    AUTOMATIC = "automatic", "Automatic"
    NEEDS_APPROVAL = "needs_approval", "Needs approval"


# The actions that fit each kind's subject (a Google user, a credential, an OAuth grant).
# Deactivating the SSO user fits every Google-user kind whose user may also sign in through
# the platform's identity provider. Removing from a group fits the admin kind only: it takes
# the user out of the policy's ``privileged_group`` (the group that grants the privilege),
# not out of the allowed group, which the user is by definition not in.
_USER_ACTIONS = (Action.NOTIFY, Action.SUSPEND_USER, Action.DEACTIVATE_SSO_USER)
ACTIONS_FOR_KIND: dict[str, tuple[str, ...]] = {
    PolicyKind.LEAVER_ACTIVE: _USER_ACTIONS,
    PolicyKind.NO_2SV: _USER_ACTIONS,
    PolicyKind.STALE_CREDENTIAL: (Action.NOTIFY, Action.ROTATE_CREDENTIAL),
    PolicyKind.BROAD_OAUTH_APP: (Action.NOTIFY, Action.REVOKE_TOKEN),
    PolicyKind.INACTIVE_ACCOUNT: _USER_ACTIONS,
    PolicyKind.ADMIN_OUTSIDE_GROUP: (
        Action.NOTIFY,
        Action.SUSPEND_USER,
        Action.REMOVE_FROM_GROUP,
        Action.DEACTIVATE_SSO_USER,
    ),
}


class Policy(models.Model):
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=PolicyKind.choices)
    platform = models.ForeignKey(Platform, on_delete=models.PROTECT, related_name="+")
    # Per kind: {"days": N} for stale_credential and inactive_account; {"broad_scopes":
    # [...], "allowed_clients": [...]} for broad_oauth_app; {"allowed_group": email,
    # "privileged_group": email} for admin_outside_group (the second for remove_from_group).
    parameters = models.JSONField(default=dict, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices, default=Action.NOTIFY)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.NEEDS_APPROVAL)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"
        permissions = [("decide_violation", "Can approve or dismiss policy violations")]

    def __str__(self) -> str:
        return self.name


class ViolationStatus(models.TextChoices):
    OPEN = "open", "Open"
    REMEDIATING = "remediating", "Remediating"
    # Its remediation job failed for good; the outcome holds the job's error, and a Retry
    # of the job puts the violation back to remediating.
    REMEDIATION_FAILED = "remediation_failed", "Remediation failed"
    REMEDIATED = "remediated", "Remediated"
    DISMISSED = "dismissed", "Dismissed"
    CLOSED = "closed", "Closed"


class Decision(models.TextChoices):
    APPROVED = "approved", "Approved"
    DISMISSED = "dismissed", "Dismissed"


class Violation(models.Model):
    """One subject breaking one policy, from the evaluation that found it until the one that
    no longer does (``closed_at``). While ``closed_at`` is empty the row is the subject's one
    live violation of the policy, whatever its status: a dismissed or remediated one is not
    opened again while the snapshot still shows the old state."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="violations")
    subject_kind = models.CharField(max_length=32)
    subject_id = models.CharField(max_length=255)
    subject_label = models.CharField(max_length=500)
    evidence = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=24, choices=ViolationStatus.choices, default=ViolationStatus.OPEN
    )
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    remediation_job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    outcome = models.TextField(blank=True)
    # The approval record: who approved or dismissed it, and when.
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # The database guarantees one live violation per (policy, subject): two racing
            # evaluations cannot both open one, so neither can both remediate it.
            models.UniqueConstraint(
                fields=["policy", "subject_kind", "subject_id"],
                condition=Q(closed_at__isnull=True),
                name="policies_one_live_violation",
            )
        ]
        indexes = [
            models.Index(fields=["status", "-id"], name="policies_violation_status"),
            models.Index(fields=["policy", "-id"], name="policies_violation_policy"),
        ]

    def __str__(self) -> str:
        return f"{self.policy} — {self.subject_label}"
