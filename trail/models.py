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
        indexes = [
            models.Index(fields=["action", "-id"], name="trail_action_newest"),
            models.Index(fields=["actor_name", "-id"], name="trail_actor_newest"),
            models.Index(fields=["target_type", "target_id", "-id"], name="trail_target_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_name or 'system'} {self.action} {self.target_label}".strip()
