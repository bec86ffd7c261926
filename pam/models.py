"""AccessSession, RevealEvent and CredentialState: who held which shared credential, when,
why, and whether its password still needs rotating. Passwords stay in the vault."""

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from identities.models import Identity, IdentityType
from jobs.models import Job

# The identity types a person can check out; the other types have no session concept.
CHECKOUT_TYPES = (
    IdentityType.SHARED_CREDENTIAL_MANAGED,
    IdentityType.SHARED_CREDENTIAL_EXTERNAL,
)
MAX_REASON_LENGTH = 500


class EndReason(models.TextChoices):
    CHECKED_IN = "checked_in", "Checked in"
    EXPIRED = "expired", "Expired"


class AccessSession(models.Model):
    """One check-out of a shared credential, from check-out to check-in (or expiry)."""

    identity = models.ForeignKey(Identity, on_delete=models.PROTECT, related_name="access_sessions")
    # PROTECT: the record of who held a credential outlives the accounts involved.
    holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="access_sessions"
    )
    reason = models.CharField(max_length=MAX_REASON_LENGTH)
    started_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    end_reason = models.CharField(max_length=16, choices=EndReason.choices, blank=True)
    # The credential_rotation job started at check-in (managed credentials only).
    rotation_job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("check_out_credential", "Can check out shared credentials and reveal their password"),
            ("check_in_any_session", "Can check in anyone's access session"),
            ("record_manual_rotation", "Can record a rotation by hand of an external credential"),
        ]
        constraints = [
            # The database, not only the service, guarantees one holder per credential.
            models.UniqueConstraint(
                fields=["identity"],
                condition=Q(ended_at__isnull=True),
                name="pam_one_active_session_per_identity",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("started_at")),
                name="pam_session_expires_after_start",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True, end_reason="")
                | (Q(ended_at__isnull=False) & ~Q(end_reason="")),
                name="pam_session_ended_with_reason",
            ),
        ]
        indexes = [
            models.Index(fields=["holder", "-id"], name="pam_session_holder_newest"),
            models.Index(fields=["identity", "-id"], name="pam_session_identity_newest"),
            models.Index(
                fields=["expires_at"],
                name="pam_session_open_expiry",
                condition=Q(ended_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"session #{self.pk} of {self.identity_id} by {self.holder_id}"

    @property
    def is_open(self) -> bool:
        """Not checked in yet (it may have expired and wait for the automatic check-in)."""
        return self.ended_at is None

    def active_at(self, now: datetime) -> bool:
        """Open and not past its expiry: the only time its password may be revealed."""
        return self.ended_at is None and self.expires_at > now

    @property
    def is_active(self) -> bool:
        return self.active_at(timezone.now())

    @property
    def awaits_expiry_check_in(self) -> bool:
        """Past its expiry, but the beat has not checked it in yet."""
        return self.ended_at is None and self.expires_at <= timezone.now()


class RevealEvent(models.Model):
    """One reveal of a session's password: who and when (never what)."""

    session = models.ForeignKey(AccessSession, on_delete=models.PROTECT, related_name="reveals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["session", "at"], name="pam_reveal_session_at")]

    def __str__(self) -> str:
        return f"reveal of session #{self.session_id} by {self.user_id} at {self.at:%Y-%m-%d %H:%M}"


class CredentialState(models.Model):
    """What PAM knows about one credential beyond its sessions: for an external credential,
    that someone saw its password and a person must change it where it lives."""

    identity = models.OneToOneField(
        Identity, on_delete=models.CASCADE, primary_key=True, related_name="pam_state"
    )
    rotation_due_since = models.DateTimeField(null=True, blank=True)
    rotation_due_session = models.ForeignKey(
        AccessSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rotated_by_hand_at = models.DateTimeField(null=True, blank=True)
    rotated_by_hand_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "credential state"

    def __str__(self) -> str:
        due = "rotation due" if self.rotation_due_since else "up to date"
        return f"credential {self.identity_id}: {due}"

    @property
    def rotation_due(self) -> bool:
        return self.rotation_due_since is not None
