"""Users of AccessHive itself: their role, and per-user API tokens (stored as a hash)."""

import hashlib
import secrets
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.roles import Role


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="First characters, to tell tokens apart")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires")
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…) for {self.user}"

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    @classmethod
    def issue(
        cls, user: models.Model, name: str, *, expires_at: datetime | None = None
    ) -> tuple["ApiToken", str]:
        """Create a token; the raw value is returned once and never stored."""
        raw = "ah_" + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user,
            name=name,
            token_hash=hash_token(raw),
            prefix=raw[:8],
            expires_at=expires_at,
        )
        return token, raw

    @classmethod
    def find_usable(cls, raw: str) -> "ApiToken | None":
        """The token ``raw`` names if it may be used now: not revoked, not expired, and its
        user active."""
        now = timezone.now()
        return (
            cls.objects.select_related("user")
            .filter(token_hash=hash_token(raw), revoked_at__isnull=True, user__is_active=True)
            .exclude(expires_at__lte=now)
            .first()
        )


class UserRole(models.Model):
    """The one role of a user of AccessHive itself; a user without a row can do nothing."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="accesshive_role"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user} is {self.get_role_display()}"
