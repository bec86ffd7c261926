"""Asset: one thing a platform holds (a user, a group, a device, an OAuth grant, ...), with when
it was first and last seen, and when it disappeared."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from identities.models import Platform
from jobs.models import Job


class AssetKind(models.TextChoices):
    USER = "user", "User"
    GROUP = "group", "Group"
    ORG_UNIT = "org_unit", "Org unit"
    DOMAIN = "domain", "Domain"
    MOBILE_DEVICE = "mobile_device", "Mobile device"
    CHROMEOS_DEVICE = "chromeos_device", "ChromeOS device"
    OAUTH_TOKEN = "oauth_token", "Third-party OAuth token"


class Asset(models.Model):
    # The platform is the first column of the unique constraint's index; no separate one.
    platform = models.ForeignKey(
        Platform, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    kind = models.CharField(max_length=32, choices=AssetKind.choices)
    # The platform's immutable id for it (a token: "<user id>:<client id>").
    external_id = models.CharField(max_length=255)
    name = models.CharField(max_length=500)
    attributes = models.JSONField(default=dict, blank=True)
    # A hash of name and attributes: a run tells "changed" without loading the attributes.
    fingerprint = models.CharField(max_length=64)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    changed_at = models.DateTimeField(default=timezone.now)
    # Set when a complete listing no longer had it; cleared if it comes back. Never deleted:
    # what a platform used to hold is part of its history.
    gone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("discover_assets", "Can run asset discovery")]
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "kind", "external_id"], name="asset_external_id"
            )
        ]
        indexes = [
            models.Index(fields=["platform", "kind", "-id"], name="asset_platform_kind_newest"),
            models.Index(fields=["kind", "-id"], name="asset_kind_newest"),
            models.Index(
                fields=["platform", "-id"],
                name="asset_gone_newest",
                condition=Q(gone_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.name}"

    @property
    def is_gone(self) -> bool:
        return self.gone_at is not None


class TokenListingProgress(models.Model):
    """How far one discovery job's OAuth-token listing (one call per user) got: the users up
    to ``done_through`` (by user id) are recorded, with what they counted. An attempt cut
    short by the time limit leaves it; the retry goes on from there with the same
    ``seen_at``, so gone-marking still sees every token recorded before."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="+")
    seen_at = models.DateTimeField()
    done_through = models.CharField(max_length=255, blank=True)
    users_done = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"tokens of job #{self.job_id} through user {self.done_through or '-'}"
