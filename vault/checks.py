"""System checks: a broken vault configuration shows up at startup, not at the first rotation."""

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from vault.backends import VaultSettings
from vault.crypto import KEYS_SETTING_HELP, KeyRing


@checks.register(checks.Tags.security)
def check_vault_settings(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[checks.CheckMessage]:
    config = VaultSettings.from_django()
    if config.addr:
        if bool(config.token) == bool(config.role_id):
            return [
                checks.Error(
                    "HashiCorp Vault needs exactly one way to authenticate",
                    hint="Set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID (AppRole).",
                    id="vault.E002",
                )
            ]
        return []
    if not config.embedded_keys:
        # A warning, not an error: migrate and the other commands must still run on a fresh
        # checkout; the first read or write of a secret raises ImproperlyConfigured.
        return [
            checks.Warning(
                "The embedded vault has no encryption key, so no credential can be stored.",
                hint=KEYS_SETTING_HELP,
                id="vault.W001",
            )
        ]
    try:
        KeyRing.from_lines(config.embedded_keys)
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="vault.E001")]
    return []
