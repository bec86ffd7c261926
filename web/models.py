"""What the API remembers between requests: the answer to each Idempotency-Key."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class IdempotencyRecord(models.Model):
    """The answer to one creating POST sent with an ``Idempotency-Key``, stored in the same
    transaction as what it created, so a repeat replays it instead of creating again."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="sha256 of method, path and body")
    status = models.PositiveSmallIntegerField()
    body = models.JSONField()
    location = models.CharField(max_length=2048, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.user_id})"
