"""get_vault(): the CredentialVault the settings ask for (embedded, or HashiCorp Vault via hvac)."""

import functools
import os
from dataclasses import dataclass, field

from django.conf import settings

from vault.base import CredentialVault


@dataclass(frozen=True)
class VaultSettings:
    """The VAULT_* settings; the fields holding credentials never appear in its repr."""

    addr: str = ""
    token: str = field(default="", repr=False)
    role_id: str = ""
    secret_id: str = field(default="", repr=False)
    approle_mount: str = "approle"
    mount: str = "secret"
    prefix: str = "accesshive"
    timeout: float = 10.0
    embedded_keys: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_django(cls) -> "VaultSettings":
        keys = getattr(settings, "VAULT_EMBEDDED_KEYS", ())
        return cls(
            addr=getattr(settings, "VAULT_ADDR", "") or "",
            token=getattr(settings, "VAULT_TOKEN", "") or "",
            role_id=getattr(settings, "VAULT_ROLE_ID", "") or "",
            secret_id=getattr(settings, "VAULT_SECRET_ID", "") or "",
            approle_mount=getattr(settings, "VAULT_APPROLE_MOUNT", "approle") or "approle",
            mount=getattr(settings, "VAULT_MOUNT", "secret") or "secret",
            prefix=getattr(settings, "VAULT_PATH_PREFIX", "accesshive"),
            timeout=float(getattr(settings, "VAULT_TIMEOUT", 10)),
            # A hand-written settings file may give the env var's comma-separated form.
            embedded_keys=tuple(keys.split(",") if isinstance(keys, str) else keys or ()),
        )


def get_vault() -> CredentialVault:
    """The configured backend: embedded when VAULT_ADDR is empty, else HashiCorp Vault.

    One instance per distinct configuration and process, so an AppRole token is reused across
    calls instead of logging in for every secret.
    """
    return _build(VaultSettings.from_django())


@functools.lru_cache(maxsize=8)
def _build(config: VaultSettings) -> CredentialVault:
    if config.addr:
        from vault.backends.hashicorp import HvacVault

        return HvacVault(
            addr=config.addr,
            token=config.token,
            role_id=config.role_id,
            secret_id=config.secret_id,
            approle_mount=config.approle_mount,
            mount=config.mount,
            prefix=config.prefix,
            timeout=config.timeout,
        )
    # Imported here: the embedded backend needs the app registry (its model), and this module
    # must stay importable from anywhere.
    from vault.backends.embedded import EmbeddedVault
    from vault.crypto import KeyRing

    return EmbeddedVault(KeyRing.from_lines(config.embedded_keys))


# A Celery prefork child must not share the parent's HTTP connections or AppRole token state.
os.register_at_fork(after_in_child=_build.cache_clear)
