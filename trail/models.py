"""The admin audit trail: one row per thing a person did in AccessHive, never updated."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Source(models.TextChoices):
    WEB = "web", "Web page"
    API = "api", "API"
    SSO = "sso", "SAML sign-in"
    COMMAND = "command", "Command line"
    SYSTEM = "system", "AccessHive itself"


class TrailEntry(models.Model):
    occurred_at = models.DateTimeField(default=timezone.now)
    # The name is kept as it was, so the trail still says who after the user is deleted.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.SYSTEM)
    source_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        # One per filter of the trail page, each ending in -id for its newest-first keyset
        # pages: a filter alone (a rare address, one target type) never scans the table.
        indexes = [
            models.Index(fields=["action", "-id"], name="trail_action_newest"),
            models.Index(fields=["actor_name", "-id"], name="trail_actor_newest"),
            models.Index(fields=["target_type", "target_id", "-id"], name="trail_target_newest"),
            models.Index(fields=["target_type", "-id"], name="trail_target_type_newest"),
            models.Index(fields=["source", "-id"], name="trail_source_newest"),
            models.Index(fields=["source_ip", "-id"], name="trail_ip_newest"),
            models.Index(fields=["occurred_at"], name="trail_occurred_at"),
        ]
        verbose_name = "audit trail entry"
        verbose_name_plural = "audit trail entries"

    def __str__(self) -> str:
        return f"{self.actor_name or 'system'} {self.action} {self.target_label}".strip()
