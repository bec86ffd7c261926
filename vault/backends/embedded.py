"""The embedded backend: versioned secrets encrypted into the application's own database."""

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accesshive.bulk import copy_rows
from vault.base import (
    SecretRef,
    SecretVersion,
    validate_cas,
    validate_data,
    validate_path,
    validate_version,
)
from vault.crypto import KeyRing
from vault.errors import SecretNotFound, VaultConflict, VaultDecryptionError
from vault.models import EncryptedSecret

logger = logging.getLogger(__name__)

# Only the first write to a new path can race (there is no row to lock yet); the loser sees a
# unique-constraint violation and, without cas, takes the next number. One retry settles it;
# the rest is margin.
MAX_WRITE_ATTEMPTS = 3


def associated_data(path: str, version: int) -> bytes:
    """Bound into every ciphertext so it only decrypts at the path and version it was made for."""
    return f"accesshive-vault/v1\x00{path}\x00{version}".encode()


@dataclass
class RotationReport:
    reencrypted: int = 0
    failed: list[str] = field(default_factory=list)  # refs (safe to print), never data


class EmbeddedVault:
    """CredentialVault over EncryptedSecret rows; only ciphertext ever reaches the database."""

    def __init__(self, keyring: KeyRing) -> None:
        self._keyring = keyring

    def __repr__(self) -> str:
        ring = self._keyring
        return f"<EmbeddedVault primary_key={ring.primary_id!r} keys={ring.key_ids!r}>"

    # Django's error reports (DEBUG pages, mail_admins) show frame locals unless told not to.
    @sensitive_variables("data", "plaintext")
    def write(self, path: str, data: Mapping[str, str], *, cas: int | None = None) -> SecretRef:
        validate_path(path)
        validate_cas(cas)
        plaintext = json.dumps(validate_data(data), sort_keys=True, separators=(",", ":")).encode()
        for _attempt in range(MAX_WRITE_ATTEMPTS):
            try:
                with transaction.atomic():
                    current = _lock_latest_version(path)
                    if cas is not None and cas != current:
                        raise VaultConflict(_conflict_message(path, cas, current))
                    version = current + 1
                    key_id, blob = self._keyring.seal(plaintext, associated_data(path, version))
                    EncryptedSecret.objects.create(
                        path=path, version=version, ciphertext=blob, key_id=key_id
                    )
            except IntegrityError:
                # Another writer inserted this version first (there was no row to lock yet).
                if cas is not None:
                    raise VaultConflict(
                        f"check-and-set failed writing vault:{path} (cas={cas}): another "
                        "writer stored a version at the same moment"
                    ) from None
                continue
            ref = SecretRef(path, version)
            logger.info(
                "vault.secret.written", extra={"secret_ref": str(ref), "backend": "embedded"}
            )
            return ref
        raise VaultConflict(
            f"gave up writing vault:{path} after {MAX_WRITE_ATTEMPTS} attempts: other writers "
            "kept storing versions at the same moment"
        )

    @sensitive_variables("items", "plaintext")
    def write_new(self, items: Mapping[str, Mapping[str, str]]) -> list[SecretRef]:
        rows = []
        now = timezone.now()
        for path, data in items.items():
            validate_path(path)
            plaintext = json.dumps(validate_data(data), sort_keys=True, separators=(",", ":"))
            key_id, blob = self._keyring.seal(plaintext.encode(), associated_data(path, 1))
            rows.append((path, 1, blob, key_id, now, False))
        try:
            with transaction.atomic():
                _insert_secrets(rows)
        except IntegrityError:
            raise VaultConflict(
                f"check-and-set failed writing {len(rows)} new secrets (cas=0): one of the "
                "paths has a version already"
            ) from None
        refs = [SecretRef(path, 1) for path in items]
        if refs:
            logger.info(
                "vault.secrets.written",
                extra={
                    "count": len(refs),
                    "first_ref": str(refs[0]),
                    "last_ref": str(refs[-1]),
                    "backend": "embedded",
                },
            )
        return refs

    @sensitive_variables("plaintext", "loaded")
    def read(self, path: str, version: int | None = None) -> dict[str, str]:
        validate_path(path)
        validate_version(version)
        rows = EncryptedSecret.objects.filter(path=path)
        row = (
            rows.filter(version=version).first()
            if version is not None
            else rows.order_by("-version").first()
        )
        if row is None:
            what = f"vault:{path}#{version}" if version is not None else f"vault:{path}"
            raise SecretNotFound(f"{what} does not exist")
        ref = SecretRef(path, row.version)
        if row.deleted:
            raise SecretNotFound(f"{ref} was deleted")
        plaintext = self._keyring.open(
            row.key_id, bytes(row.ciphertext), associated_data(path, row.version), label=str(ref)
        )
        try:
            loaded = json.loads(plaintext)
            return validate_data(loaded)
        except (ValueError, TypeError):
            # Authenticated but not ours: only a writer holding the key could cause this.
            raise VaultDecryptionError(
                f"{ref} decrypted to something that is not secret data"
            ) from None

    def current_version(self, path: str) -> int | None:
        validate_path(path)
        latest: int | None = (
            EncryptedSecret.objects.filter(path=path)
            .order_by("-version")
            .values_list("version", flat=True)
            .first()
        )
        return latest

    def delete(self, path: str, *, version: int | None = None) -> None:
        validate_path(path)
        validate_version(version)
        target = version if version is not None else self.current_version(path)
        if target is None:
            return
        updated = EncryptedSecret.objects.filter(path=path, version=target, deleted=False).update(
            deleted=True
        )
        if updated:
            logger.info(
                "vault.secret.deleted",
                extra={"secret_ref": str(SecretRef(path, target)), "backend": "embedded"},
            )

    def list_versions(self, path: str) -> list[SecretVersion]:
        validate_path(path)
        rows = (
            EncryptedSecret.objects.filter(path=path)
            .order_by("version")
            .values_list("version", "created_at", "deleted")
        )
        return [
            SecretVersion(path=path, version=version, created_at=created_at, deleted=deleted)
            for version, created_at, deleted in rows
        ]

    @sensitive_variables("plaintext")
    def reencrypt_all(self, *, batch_size: int = 200) -> RotationReport:
        """Re-seal every row not yet under the primary key; safe to run again after a failure."""
        report = RotationReport()
        primary = self._keyring.primary_id
        last_pk = 0
        while True:
            with transaction.atomic():
                batch = list(
                    EncryptedSecret.objects.select_for_update()
                    .filter(pk__gt=last_pk)
                    .exclude(key_id=primary)
                    .order_by("pk")[:batch_size]
                )
                if not batch:
                    break
                for row in batch:
                    ref = SecretRef(row.path, row.version)
                    aad = associated_data(row.path, row.version)
                    try:
                        plaintext = self._keyring.open(
                            row.key_id, bytes(row.ciphertext), aad, label=str(ref)
                        )
                    except VaultDecryptionError:
                        report.failed.append(str(ref))
                        continue
                    row.key_id, row.ciphertext = self._keyring.seal(plaintext, aad)
                    report.reencrypted += 1
                EncryptedSecret.objects.bulk_update(
                    [row for row in batch if row.key_id == primary], ["key_id", "ciphertext"]
                )
                last_pk = batch[-1].pk
        logger.info(
            "vault.keys.rotated",
            extra={
                "key_id": primary,
                "reencrypted": report.reencrypted,
                "failed": len(report.failed),
            },
        )
        return report


_COLUMNS = ("path", "version", "ciphertext", "key_id", "created_at", "deleted")


def _insert_secrets(rows: list[tuple[str, int, bytes, str, Any, bool]]) -> None:
    """New rows: one COPY on PostgreSQL (bulk_create spends more time preparing each value
    than the database spends storing it), bulk_create elsewhere."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        EncryptedSecret.objects.bulk_create(
            EncryptedSecret(**dict(zip(_COLUMNS, row, strict=True))) for row in rows
        )
        return
    copy_rows(EncryptedSecret._meta.db_table, _COLUMNS, rows)


def _lock_latest_version(path: str) -> int:
    """Lock the newest row of ``path`` and return its version (0: none yet).

    Writers take turns on the newest row. A writer that waited for that lock may find a newer
    row committed meanwhile (each statement sees fresh commits under READ COMMITTED), so it
    moves on to that one until the row it holds is still the newest.
    """
    rows = EncryptedSecret.objects.filter(path=path)
    locked = 0
    while True:
        latest = rows.order_by("-version").values_list("version", flat=True).first() or 0
        if latest == locked:
            return latest
        rows.select_for_update().filter(version=latest).values_list("pk", flat=True).first()
        locked = latest


def _conflict_message(path: str, cas: int, current: int) -> str:
    if cas == 0:
        return (
            f"check-and-set failed writing vault:{path} (cas=0, only if absent): "
            f"it already has version {current}"
        )
    found = f"version {current}" if current else "no version yet"
    return (
        f"check-and-set failed writing vault:{path}: expected current version {cas}, found {found}"
    )
