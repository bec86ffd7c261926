"""System checks: a broken vault configuration shows up at startup, not at the first rotation."""

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from vault.backends import VaultSettings, get_vault
from vault.crypto import KEYS_SETTING_HELP, KeyRing
from vault.errors import VaultError, VaultUnavailable


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
        return _check_mount()
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


def _check_mount() -> list[checks.CheckMessage]:
    """Ask the vault whether VAULT_MOUNT is a KV version 2 engine we may use: a KV v1 or
    missing mount would otherwise fail, or quietly lose check-and-set, at the first secret."""
    from vault.backends.hashicorp import HvacVault

    vault = get_vault()
    if not isinstance(vault, HvacVault):
        return []
    try:
        vault.check_mount()
    except VaultUnavailable as exc:
        # The vault may start after the web app; the first use says so again.
        return [checks.Warning(str(exc), id="vault.W002")]
    except VaultError as exc:
        return [checks.Error(str(exc), id="vault.E003")]
    return []
