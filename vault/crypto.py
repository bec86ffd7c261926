"""The embedded vault's keys and its AES-256-GCM sealing; the only module that touches key bytes."""

import base64
import binascii
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

from vault.errors import VaultDecryptionError

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the 96-bit nonce GCM is designed for; random per encryption
KEYS_SETTING_HELP = (
    "Set ACCESSHIVE_VAULT_KEYS (settings.VAULT_EMBEDDED_KEYS) to one or more comma-separated "
    "'key_id:base64key' entries, newest first; `python manage.py vault_generate_key` prints one. "
    "Or set VAULT_ADDR to keep secrets in HashiCorp Vault instead."
)


@dataclass(frozen=True, slots=True)
class VaultKey:
    key_id: str
    secret: bytes = field(repr=False)


def generate_key_line(key_id: str | None = None) -> str:
    """A new ``key_id:base64key`` entry for ACCESSHIVE_VAULT_KEYS."""
    key_id = key_id or f"k{secrets.token_hex(4)}"
    _check_key_id(key_id)
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def _check_key_id(key_id: str) -> None:
    if not key_id or len(key_id) > 64 or not all(ch.isalnum() or ch in "-_." for ch in key_id):
        raise ImproperlyConfigured(
            f"vault key id {key_id!r} must be 1 to 64 letters, digits, '-', '_' or '.'"
        )


@sensitive_variables("line", "encoded", "secret")
def parse_key_line(line: str, position: int) -> VaultKey:
    """Parse one ``key_id:base64key`` entry; errors name the entry by position, never its key."""
    key_id, sep, encoded = line.strip().partition(":")
    if not sep:
        raise ImproperlyConfigured(
            f"vault key entry #{position} is not 'key_id:base64key'. {KEYS_SETTING_HELP}"
        )
    _check_key_id(key_id)
    try:
        secret = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured(
            f"vault key {key_id!r} is not valid base64. {KEYS_SETTING_HELP}"
        ) from None
    if len(secret) != KEY_BYTES:
        raise ImproperlyConfigured(
            f"vault key {key_id!r} is {len(secret)} bytes; AES-256 needs {KEY_BYTES}. "
            f"{KEYS_SETTING_HELP}"
        )
    return VaultKey(key_id=key_id, secret=secret)


class KeyRing:
    """The configured keys: the first seals new data, every one of them still opens old data."""

    def __init__(self, keys: Iterable[VaultKey]) -> None:
        self._keys: dict[str, VaultKey] = {}
        for key in keys:
            if key.key_id in self._keys:
                raise ImproperlyConfigured(f"vault key id {key.key_id!r} is configured twice")
            self._keys[key.key_id] = key
        if not self._keys:
            raise ImproperlyConfigured(
                f"the embedded vault has no encryption key. {KEYS_SETTING_HELP}"
            )
        self.primary_id = next(iter(self._keys))

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> "KeyRing":
        if isinstance(lines, str):
            # One string from a hand-written settings file: accept the env var's comma form.
            lines = lines.split(",")
        entries = [line for line in lines if line.strip()]
        return cls(parse_key_line(line, position) for position, line in enumerate(entries, 1))

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def __repr__(self) -> str:
        return f"<KeyRing primary={self.primary_id!r} keys={self.key_ids!r}>"

    @sensitive_variables("plaintext", "key")
    def seal(self, plaintext: bytes, associated_data: bytes) -> tuple[str, bytes]:
        """Encrypt with the primary key: returns (key_id, nonce + ciphertext + tag)."""
        key = self._keys[self.primary_id]
        nonce = os.urandom(NONCE_BYTES)
        return key.key_id, nonce + AESGCM(key.secret).encrypt(nonce, plaintext, associated_data)

    @sensitive_variables("key")
    def open(self, key_id: str, blob: bytes, associated_data: bytes, *, label: str) -> bytes:
        """Decrypt and authenticate; ``label`` names the secret in the error (e.g. its ref)."""
        key = self._keys.get(key_id)
        if key is None:
            raise VaultDecryptionError(
                f"cannot decrypt {label}: it was encrypted with vault key {key_id!r}, which is "
                f"not configured (configured: {', '.join(self._keys)}). Add that key back to "
                "ACCESSHIVE_VAULT_KEYS, after the newest one."
            )
        if len(blob) <= NONCE_BYTES:
            raise VaultDecryptionError(
                f"cannot decrypt {label}: the stored ciphertext is truncated"
            )
        try:
            return AESGCM(key.secret).decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data
            )
        except InvalidTag:
            raise VaultDecryptionError(
                f"cannot decrypt {label} with vault key {key_id!r}: the ciphertext failed "
                "authentication (it was altered, or copied from another path or version)"
            ) from None
