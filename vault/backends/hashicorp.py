"""The HashiCorp Vault (or OpenBao) backend: KV version 2 through hvac, token or AppRole auth."""

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import hvac
import hvac.exceptions as hvac_errors
import requests
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

from vault.base import (
    SecretRef,
    SecretVersion,
    validate_cas,
    validate_data,
    validate_path,
    validate_version,
)
from vault.errors import (
    SecretNotFound,
    VaultConflict,
    VaultError,
    VaultPermissionDenied,
    VaultRequestRejected,
    VaultUnavailable,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

CAS_MISMATCH = "check-and-set parameter did not match the current version"
CAS_REQUIRED = "check-and-set parameter required"
# A write without a caller's cas reads the current version and names it; losing that race to
# another writer is retried this many times before it is reported as a conflict (each round
# one of the racing writers wins, so this many writers at once all get through).
AUTO_CAS_ATTEMPTS = 5
# Log in again this long before an AppRole token's lease runs out, so a request never
# starts with a token that dies in flight.
RENEW_MARGIN_SECONDS = 30.0
_UNAVAILABLE_STATUS = (
    hvac_errors.InternalServerError,  # 500
    hvac_errors.VaultNotInitialized,  # 501
    hvac_errors.BadGateway,  # 502
    hvac_errors.VaultDown,  # 503: sealed, or a standby without an active node
    hvac_errors.RateLimitExceeded,  # 429
    # Statuses hvac has no class for: 504 from a proxy, 412 "retry on another node".
    hvac_errors.UnexpectedError,
)


class HvacVault:
    """CredentialVault over a KV v2 mount; every secret lives under ``{mount}/{prefix}/``."""

    def __init__(
        self,
        *,
        addr: str,
        token: str = "",
        role_id: str = "",
        secret_id: str = "",
        approle_mount: str = "approle",
        mount: str = "secret",
        prefix: str = "accesshive",
        timeout: float = 10.0,
    ) -> None:
        if not addr:
            raise ImproperlyConfigured(
                "VAULT_ADDR is empty: the HashiCorp Vault backend needs a URL"
            )
        if bool(token) == bool(role_id):
            raise ImproperlyConfigured(
                f"HashiCorp Vault at {addr} needs exactly one way to authenticate: set either "
                "VAULT_TOKEN, or VAULT_ROLE_ID and "
                "VAULT_SECRET_ID (AppRole)"
            )
        if timeout <= 0:
            raise ImproperlyConfigured("VAULT_TIMEOUT must be a positive number of seconds")
        self._addr = addr.rstrip("/")
        self._mount = mount.strip("/")
        self._prefix = prefix.strip("/")
        if self._prefix:
            validate_path(self._prefix)
        self._role_id = role_id
        self._secret_id = secret_id
        self._approle_mount = approle_mount
        # token="" rather than None: hvac would otherwise pick up VAULT_TOKEN or ~/.vault-token
        # from the environment, and an AppRole deployment must not quietly use someone's token.
        self._client = hvac.Client(url=self._addr, token=token, timeout=timeout)
        self._login_lock = threading.Lock()
        self._token_good_until: float | None = None if role_id else float("inf")
        self._generation = 0
        self._token_proven = False
        self._mount_checked = False

    def __repr__(self) -> str:
        auth = "approle" if self._role_id else "token"
        return (
            f"<HvacVault addr={self._addr!r} mount={self._mount!r} prefix={self._prefix!r} "
            f"auth={auth}>"
        )

    # --- CredentialVault ------------------------------------------------------------------

    # Django's error reports (DEBUG pages, mail_admins) show frame locals unless told not to.
    @sensitive_variables("data", "clean")
    def write(self, path: str, data: Mapping[str, str], *, cas: int | None = None) -> SecretRef:
        validate_path(path)
        validate_cas(cas)
        clean = validate_data(data)
        # Every write names a version (cas), so a mount or secret with cas_required=true
        # accepts it; a caller's cas=None means "whatever is current", read just before.
        for attempt in range(1, AUTO_CAS_ATTEMPTS + 1):
            try:
                response = self._write_once(path, clean, cas)
            except VaultConflict:
                if cas is not None or attempt == AUTO_CAS_ATTEMPTS:
                    raise
                continue
            break
        ref = SecretRef(path, int(_data(response)["version"]))
        logger.info("vault.secret.written", extra={"secret_ref": str(ref), "backend": "hvac"})
        return ref

    @sensitive_variables("items")
    def write_new(self, items: Mapping[str, Mapping[str, str]]) -> list[SecretRef]:
        # KV v2 has no batch write: one check-and-set request per path.
        return [self.write(path, data, cas=0) for path, data in items.items()]

    @sensitive_variables("response", "body")
    def read(self, path: str, version: int | None = None) -> dict[str, str]:
        validate_path(path)
        validate_version(version)
        label = f"vault:{path}#{version}" if version is not None else f"vault:{path}"
        response = self._call(
            "reading",
            label,
            lambda: self._kv.read_secret_version(
                path=self._full(path),
                version=version,
                mount_point=self._mount,
                raise_on_deleted_version=True,
            ),
        )
        body = _data(response)
        if body.get("data") is None:
            raise SecretNotFound(
                f"{label} was deleted or destroyed in HashiCorp Vault at {self._addr}"
            )
        try:
            return validate_data(body["data"])
        except TypeError:
            raise VaultRequestRejected(
                f"{label} in HashiCorp Vault at {self._addr} holds values that are not strings; "
                "AccessHive reads only string values"
            ) from None

    def current_version(self, path: str) -> int | None:
        metadata = self._metadata(path)
        if metadata is None:
            return None
        return int(metadata.get("current_version") or 0) or None

    def delete(self, path: str, *, version: int | None = None) -> None:
        validate_path(path)
        validate_version(version)
        if version is None:
            self._call(
                "deleting",
                f"vault:{path}",
                lambda: self._kv.delete_latest_version_of_secret(
                    path=self._full(path), mount_point=self._mount
                ),
            )
        else:
            self._call(
                "deleting",
                f"vault:{path}#{version}",
                lambda: self._kv.delete_secret_versions(
                    path=self._full(path), versions=[version], mount_point=self._mount
                ),
            )
        logger.info(
            "vault.secret.deleted",
            extra={"secret_ref": f"vault:{path}#{version or 'latest'}", "backend": "hvac"},
        )

    def list_versions(self, path: str) -> list[SecretVersion]:
        metadata = self._metadata(path)
        if metadata is None:
            return []
        now = datetime.now(UTC)
        versions = []
        for number, info in (metadata.get("versions") or {}).items():
            deletion_time = _parse_time(info.get("deletion_time") or "")
            versions.append(
                SecretVersion(
                    path=path,
                    version=int(number),
                    created_at=_parse_time(info.get("created_time") or ""),
                    # Vault also reports deletions scheduled by delete_version_after.
                    deleted=deletion_time is not None and deletion_time <= now,
                    destroyed=bool(info.get("destroyed")),
                )
            )
        return sorted(versions, key=lambda item: item.version)

    # --- plumbing -------------------------------------------------------------------------

    @sensitive_variables("clean")
    def _write_once(self, path: str, clean: dict[str, str], cas: int | None) -> Any:
        sent = cas if cas is not None else (self.current_version(path) or 0)
        return self._call(
            "writing",
            f"vault:{path}",
            lambda: self._kv.create_or_update_secret(
                path=self._full(path), secret=clean, cas=sent, mount_point=self._mount
            ),
            cas=sent,
        )

    @property
    def _kv(self) -> Any:
        return self._client.secrets.kv.v2

    def _full(self, path: str) -> str:
        return f"{self._prefix}/{path}" if self._prefix else path

    def _metadata(self, path: str) -> dict[str, Any] | None:
        validate_path(path)
        try:
            response = self._call(
                "reading metadata of",
                f"vault:{path}",
                lambda: self._kv.read_secret_metadata(
                    path=self._full(path), mount_point=self._mount
                ),
            )
        except SecretNotFound:
            return None
        return _data(response)

    def check_mount(self) -> None:
        """Raise a VaultError unless VAULT_MOUNT is a KV version 2 engine this token may use.

        Asks ``sys/internal/ui/mounts/<mount>``, which Vault and OpenBao answer for any token
        with a capability under the mount (the CLI's own KV preflight), so a least-privilege
        policy needs nothing extra.
        """
        response = self._call(
            "checking the secrets engine at",
            f"VAULT_MOUNT {self._mount!r}",
            lambda: self._client.adapter.get(f"/v1/sys/internal/ui/mounts/{self._mount}"),
            check_mount=False,
        )
        mount = _data(response)
        version = str((mount.get("options") or {}).get("version") or "1")
        if mount.get("type") not in {"kv", "generic"} or version != "2":
            kv = mount.get("type") in {"kv", "generic"}
            kind = f"KV version {version}" if mount.get("type") == "kv" else mount.get("type")
            # Only a KV engine can be upgraded in place; any other is the wrong mount.
            instead = (
                f"upgrade this one (vault kv enable-versioning {self._mount})"
                if kv
                else "point VAULT_MOUNT at a KV version 2 engine"
            )
            raise VaultRequestRejected(
                f"VAULT_MOUNT {self._mount!r} on HashiCorp Vault at {self._addr} is a {kind} "
                "secrets engine; AccessHive needs KV version 2 (versions and check-and-set). "
                f"Enable one (vault secrets enable -path={self._mount} kv-v2) or {instead}"
            )
        self._mount_checked = True

    def _call(
        self,
        action: str,
        label: str,
        request: Callable[[], T],
        *,
        cas: int | None = None,
        check_mount: bool = True,
    ) -> T:
        """Run one hvac request with auth in place, turning every failure into a VaultError."""
        if check_mount and not self._mount_checked:
            self.check_mount()
        for attempt in (1, 2):
            generation = self._ensure_token()
            try:
                result = request()
            except hvac_errors.Forbidden as exc:
                if attempt == 1 and self._relogin_after_denial(generation):
                    continue
                raise self._translate(exc, action, label, cas) from exc
            except (hvac_errors.VaultError, requests.RequestException) as exc:
                raise self._translate(exc, action, label, cas) from exc
            if generation == self._generation:
                self._token_proven = True
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _relogin_after_denial(self, generation: int) -> bool:
        """After a 403: True if a retry may succeed with a newer AppRole token.

        A token that worked before can be revoked or cut short (lease cut, Vault restarted
        without storage), and one fresh login tells that apart from a missing policy. A token
        just issued and already refused will not do better with another, so a burst of 403s
        costs at most one login, not one per request.
        """
        if not self._role_id:
            return False
        with self._login_lock:
            if generation != self._generation:
                return True  # another request logged in meanwhile: retry with its token
            if not self._token_proven:
                return False
            self._login()
            return True

    def _ensure_token(self) -> int:
        """Log in (AppRole) when there is no token or its lease is about to end; returns the
        token's generation, which counts logins."""
        if not self._role_id:
            return self._generation
        with self._login_lock:
            if self._token_good_until is None or time.monotonic() >= self._token_good_until:
                self._login()
            return self._generation

    @sensitive_variables("response")
    def _login(self) -> None:
        try:
            response = self._client.auth.approle.login(
                role_id=self._role_id,
                secret_id=self._secret_id or None,
                mount_point=self._approle_mount,
            )
        except (
            hvac_errors.InvalidRequest,
            hvac_errors.Forbidden,
            hvac_errors.Unauthorized,
        ) as exc:
            raise VaultPermissionDenied(
                f"AppRole login to HashiCorp Vault at {self._addr} failed: {_detail(exc)}. "
                "Check VAULT_ROLE_ID and VAULT_SECRET_ID"
            ) from exc
        except (hvac_errors.VaultError, requests.RequestException) as exc:
            raise self._translate(exc, "logging in (AppRole) for", "the vault", None) from exc
        lease = float(response["auth"].get("lease_duration") or 0)
        self._token_good_until = (
            float("inf")
            if lease <= 0
            else time.monotonic() + max(lease - RENEW_MARGIN_SECONDS, lease / 2)
        )
        self._generation += 1
        self._token_proven = False
        logger.info("vault.approle.login", extra={"vault_addr": self._addr, "lease_seconds": lease})

    def _translate(
        self, exc: BaseException, action: str, label: str, cas: int | None
    ) -> VaultError:
        where = f"HashiCorp Vault at {self._addr}"
        detail = _detail(exc)
        if isinstance(exc, hvac_errors.InvalidRequest):
            if CAS_REQUIRED in detail:
                return VaultRequestRejected(
                    f"{where} rejected {action} {label}: it requires check-and-set on every "
                    f"write and none was sent: {detail}"
                )
            if "check-and-set" in detail:
                return VaultConflict(
                    f"check-and-set failed {action} {label} (cas={cas}): {where} said: {detail}"
                )
            return VaultRequestRejected(f"{where} rejected {action} {label}: 400 {detail}")
        if isinstance(exc, hvac_errors.Forbidden) and "preflight capability check" in detail:
            return VaultRequestRejected(
                f"{where} has no secrets engine at VAULT_MOUNT {self._mount!r} that this token "
                "may use: none is mounted there, or the policy grants nothing under it. Check "
                f"VAULT_MOUNT and that the policy allows {self._mount}/data/{self._prefix}/*"
            )
        if isinstance(exc, hvac_errors.Forbidden | hvac_errors.Unauthorized):
            return VaultPermissionDenied(
                f"{where} denied {action} {label}: {detail}. Check that the token or AppRole "
                f"policy allows {self._mount}/data/{self._prefix}/* and "
                f"{self._mount}/metadata/{self._prefix}/*"
            )
        if isinstance(exc, hvac_errors.InvalidPath):
            if exc.errors:
                # A missing key is a bare 404 ({"errors": []}); a message means the route
                # itself is unknown, i.e. there is no KV v2 engine at this mount.
                return VaultRequestRejected(
                    f"{where} rejected {action} {label}: 404 {detail}. Check that VAULT_MOUNT "
                    f"({self._mount!r}) is a KV version 2 secrets engine"
                )
            deleted = _deleted_version(exc)
            if deleted:
                return SecretNotFound(f"{label} (version {deleted}) was deleted in {where}")
            return SecretNotFound(f"{label} does not exist in {where}")
        if isinstance(exc, _UNAVAILABLE_STATUS):
            return VaultUnavailable(f"{where} is unavailable while {action} {label}: {detail}")
        if isinstance(exc, requests.exceptions.SSLError):
            # Retrying does not fix a certificate that does not verify.
            return VaultRequestRejected(
                f"TLS to {where} failed while {action} {label}: {detail}. Check VAULT_CACERT"
            )
        if isinstance(exc, requests.RequestException):
            # Refused, reset, DNS, timeouts: the network, or Vault restarting.
            return VaultUnavailable(f"{where} is unreachable while {action} {label}: {detail}")
        return VaultRequestRejected(f"{where} failed {action} {label}: {detail}")


def _detail(exc: BaseException) -> str:
    """What the server or the network said, on one short line; Vault never echoes secret data
    in errors."""
    if isinstance(exc, hvac_errors.VaultError):
        if exc.errors:
            text = "; ".join(_one_line(str(error)) for error in exc.errors)
        else:
            text = f"{type(exc).__name__} (no error message)"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


_MULTI_ERROR_HEADER = re.compile(r"^\s*\d+ errors? occurred:\s*")


def _one_line(error: str) -> str:
    """Vault wraps some errors as ``1 error occurred:\\n\\t* permission denied\\n\\n``
    (Go's multierror); keep the items, joined by "; "."""
    body = _MULTI_ERROR_HEADER.sub("", error)
    items = [item.strip() for item in re.split(r"\n\s*\*\s*", "\n" + body) if item.strip()]
    return "; ".join(" ".join(item.split()) for item in items)


def _deleted_version(exc: hvac_errors.InvalidPath) -> int | None:
    """Vault answers a read of a deleted version with 404 and that version's metadata."""
    try:
        metadata = exc.json["data"]["metadata"]
    except (TypeError, KeyError):
        return None
    if not isinstance(metadata, dict) or not (
        metadata.get("deletion_time") or metadata.get("destroyed")
    ):
        return None
    return int(metadata.get("version") or 0) or None


def _data(response: Any) -> dict[str, Any]:
    data = response.get("data") if isinstance(response, dict) else None
    if not isinstance(data, dict):
        raise VaultRequestRejected("HashiCorp Vault answered without a JSON 'data' object")
    return data


def _parse_time(value: str) -> datetime | None:
    """Vault's RFC 3339 times: nanoseconds, cut to microseconds, and "Z" or an offset.

    Python 3.11's fromisoformat reads both. Cutting the digits by hand, as before, took an
    offset's digits for fraction digits and lost the offset ("04:19:08.5+02:00" read as
    04:19:08.502 UTC).
    """
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
