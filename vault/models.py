"""The embedded vault's storage: one row per secret version, holding only ciphertext."""

from django.db import models
from django.utils import timezone

from vault.base import MAX_PATH_LENGTH


class EncryptedSecret(models.Model):
    """One version of a secret, sealed with AES-256-GCM bound to its path and version.

    Rows are never updated except to re-encrypt them (key rotation) or set ``deleted``, so the
    history of a credential stays readable until it is purged on purpose.
    """

    path = models.CharField(max_length=MAX_PATH_LENGTH)
    version = models.PositiveIntegerField()
    # nonce (12 bytes) + ciphertext + GCM tag (16 bytes)
    ciphertext = models.BinaryField()
    key_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    deleted = models.BooleanField(default=False)

    # Explicit: django-stubs only adds the default manager to apps in INSTALLED_APPS.
    objects: models.Manager["EncryptedSecret"] = models.Manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["path", "version"], name="vault_secret_path_version"),
        ]
        # The unique constraint's index serves lookups by path and "latest version of path";
        # this one lets key rotation find the rows still sealed with an old key.
        indexes = [models.Index(fields=["key_id"], name="vault_secret_key_id")]
        verbose_name = "encrypted secret"

    def __str__(self) -> str:
        return f"vault:{self.path}#{self.version}"
