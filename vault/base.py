"""The CredentialVault interface every backend implements, and the SecretRef the app stores."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol, runtime_checkable

MAX_PATH_LENGTH = 400
# Paths end up in URLs, log lines and associated data; a small alphabet keeps them unambiguous
# ("#" separates the version in a ref, "/" separates segments, nothing needs escaping twice).
_SEGMENT = re.compile(r"[A-Za-z0-9_@.+=-]+")


def validate_path(path: str) -> str:
    """Return ``path`` if it is a usable secret path, else raise ValueError saying why."""
    if not isinstance(path, str) or not path:
        raise ValueError("a secret path must be a non-empty string")
    if len(path) > MAX_PATH_LENGTH:
        raise ValueError(f"a secret path is at most {MAX_PATH_LENGTH} characters")
    for segment in path.split("/"):
        if segment in {"", ".", ".."} or not _SEGMENT.fullmatch(segment):
            raise ValueError(
                f"bad secret path {path!r}: use '/'-separated segments of letters, digits "
                "and _ @ . + = -"
            )
    return path


def validate_version(version: int | None) -> int | None:
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"a secret version is a whole number from 1, got {version!r}")
    return version


def validate_cas(cas: int | None) -> int | None:
    if cas is None:
        return None
    if isinstance(cas, bool) or not isinstance(cas, int) or cas < 0:
        raise ValueError(f"cas is a whole number from 0 (0: only if absent), got {cas!r}")
    return cas


def validate_data(data: Mapping[str, str]) -> dict[str, str]:
    """Copy ``data`` into a plain dict of strings; the error names a key, never a value."""
    if not isinstance(data, Mapping):
        raise TypeError("secret data must be a mapping of str to str")
    clean: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not key:
            raise TypeError("secret data keys must be non-empty strings")
        if not isinstance(value, str):
            raise TypeError(
                f"secret data must map str to str; {key!r} holds a {type(value).__name__}"
            )
        clean[key] = value
    return clean


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Points at one version of a secret; its string form is safe to show, log and store."""

    PREFIX: ClassVar[str] = "vault:"

    path: str
    version: int

    def __post_init__(self) -> None:
        validate_path(self.path)
        if validate_version(self.version) is None:
            raise ValueError("a SecretRef needs a version")

    def __str__(self) -> str:
        return f"{self.PREFIX}{self.path}#{self.version}"

    def __repr__(self) -> str:
        return f"<SecretRef {self}>"

    @classmethod
    def parse(cls, value: str) -> "SecretRef":
        """Read back ``str(ref)``: ``vault:identities/42/password#3``."""
        if not isinstance(value, str) or not value.startswith(cls.PREFIX):
            raise ValueError(f"not a vault reference: {value!r}")
        path, sep, version = value[len(cls.PREFIX) :].rpartition("#")
        if not sep or not version.isdigit():
            raise ValueError(f"a vault reference ends in #<version>: {value!r}")
        return cls(path=path, version=int(version))


@dataclass(frozen=True, slots=True)
class SecretVersion:
    """What the vault knows about one version of a secret, without its data."""

    path: str
    version: int
    created_at: datetime | None
    deleted: bool = False
    destroyed: bool = False

    @property
    def ref(self) -> SecretRef:
        return SecretRef(self.path, self.version)

    @property
    def readable(self) -> bool:
        return not (self.deleted or self.destroyed)


@runtime_checkable
class CredentialVault(Protocol):
    """Versioned secrets by path. ``get_vault()`` returns the configured implementation.

    Versions count up from 1 per path. ``current_version`` is the number a check-and-set write
    must name, even when that version was soft-deleted (as in HashiCorp Vault), so a rotation
    can write a pending version with ``cas=<the version it replaces>`` and lose cleanly to a
    concurrent rotation.
    """

    def write(self, path: str, data: Mapping[str, str], *, cas: int | None = None) -> SecretRef:
        """Store ``data`` as the next version. ``cas=0``: only if the path has no version yet;
        ``cas=N``: only if the current version is N; otherwise VaultConflict."""
        ...

    def write_new(self, items: Mapping[str, Mapping[str, str]]) -> list[SecretRef]:
        """The first version of each of many paths (``write(path, data, cas=0)`` for each),
        in the order given; VaultConflict if a path has a version already. A backend may
        store them together (the embedded one: one INSERT)."""
        ...

    def read(self, path: str, version: int | None = None) -> dict[str, str]:
        """The data of ``version`` (default: the current one); SecretNotFound if it is absent
        or deleted."""
        ...

    def current_version(self, path: str) -> int | None:
        """The latest version number, deleted or not; None if the path was never written."""
        ...

    def delete(self, path: str, *, version: int | None = None) -> None:
        """Soft-delete ``version`` (default: the current one); absent paths are not an error."""
        ...

    def list_versions(self, path: str) -> list[SecretVersion]:
        """Every version still known, oldest first; empty if the path was never written."""
        ...
