"""LDAP and Active Directory reads over ldap3; the only module importing ldap3."""

import contextlib
import ssl
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import ldap3
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from ldap3.core import exceptions as ldap_exceptions

from jobs.errors import PermanentError, TransientError

# RFC 2696 simple paged results; every AD and OpenLDAP serves it.
PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
DEFAULT_TIMEOUT_SECONDS = 30.0
# Result codes (RFC 4511 §4.1.9) that a later attempt may get past: busy, unavailable,
# unwillingToPerform (AD says this when it is starting or overloaded), timeLimitExceeded, other.
_TRANSIENT_RESULTS = frozenset({3, 51, 52, 53, 80})
# Attributes Active Directory stores as binary GUIDs (little-endian on the wire).
_GUID_ATTRIBUTES = frozenset({"objectguid"})


@dataclass(frozen=True)
class LdapEntry:
    """One entry as found: its DN and its attributes (names lower-cased, values as text)."""

    dn: str
    attributes: dict[str, tuple[str, ...]]

    def first(self, name: str) -> str:
        """The first value of an attribute, or "" when the entry lacks it."""
        values = self.attributes.get(name.lower()) or ()
        return values[0] if values else ""

    def values(self, name: str) -> tuple[str, ...]:
        return self.attributes.get(name.lower()) or ()


@dataclass(frozen=True)
class LdapEndpoint:
    """Where and how to connect. ``url`` is ldap://host[:port] or ldaps://host[:port]."""

    url: str
    bind_dn: str
    start_tls: bool = False
    # PEM of the CA to trust for this server only (pinned); empty: the system's CAs. The
    # certificate is always verified, host name included.
    ca_certificate: str = ""
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def use_ssl(self) -> bool:
        return urlsplit(self.url).scheme.lower() == "ldaps"


class LdapDirectory:
    """Read-only searches on one directory, bound as one account. The password is the one
    the caller just read from the vault; it is sent in the bind and appears in no message.
    Not thread-safe (one connection): build one per job, and close it."""

    def __init__(self, endpoint: LdapEndpoint, password: str, *, name: str = "LDAP") -> None:
        self.endpoint = endpoint
        self.name = name
        parts = urlsplit(endpoint.url)
        if parts.scheme.lower() not in ("ldap", "ldaps") or not parts.hostname:
            raise PermanentError(
                f"{name}: {endpoint.url!r} is not an ldap:// or ldaps:// URL with a host"
            )
        if endpoint.start_tls and endpoint.use_ssl:
            raise PermanentError(f"{name}: choose LDAPS or StartTLS, not both")
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            # None: the system's trusted CAs (ssl.create_default_context's own default).
            ca_certs_data=endpoint.ca_certificate or None,
        )
        self._where = (
            f"{parts.scheme}://{parts.hostname}:{parts.port or (636 if endpoint.use_ssl else 389)}"
        )
        server = ldap3.Server(
            parts.hostname,
            port=parts.port,
            use_ssl=endpoint.use_ssl,
            tls=tls,
            get_info=ldap3.NONE,
            connect_timeout=endpoint.timeout,
        )
        self._password = password
        self._connection = ldap3.Connection(
            server,
            user=endpoint.bind_dn or None,
            password=password or None,
            auto_bind=ldap3.AUTO_BIND_NONE,
            read_only=True,
            raise_exceptions=False,
            # ldap3 packs this into a socket option as whole seconds.
            receive_timeout=max(1, int(endpoint.timeout)),
            # Values come back as bytes: text or binary is decided here, not by a schema read.
            return_empty_attributes=False,
        )
        self._bound = False

    def __repr__(self) -> str:
        return f"<LdapDirectory {self.name} at {self._where} as {self.endpoint.bind_dn}>"

    def __enter__(self) -> "LdapDirectory":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        # Already gone is fine: nothing to tell anyone.
        with contextlib.suppress(ldap_exceptions.LDAPException):
            self._connection.unbind()

    def bind(self) -> None:
        """Connect, StartTLS when asked, and bind; errors say which server and what it said."""
        if self._bound:
            return
        try:
            self._connection.open()
            if self.endpoint.start_tls and not self._connection.start_tls():
                raise PermanentError(
                    f"{self.name}: StartTLS refused by {self._where}: {self._described()}"
                )
            if not self._connection.bind():
                result = self._connection.result or {}
                code = int(result.get("result") or 0)
                if code in _TRANSIENT_RESULTS:
                    raise TransientError(
                        f"{self.name}: {self._where} could not bind now: {self._described()}"
                    )
                hint = " (check the bind DN and password)" if code == 49 else ""
                raise PermanentError(
                    f"{self.name}: {self._where} rejected the bind as "
                    f"{self.endpoint.bind_dn or 'anonymous'}: {self._described()}{hint}"
                )
        except ldap_exceptions.LDAPStartTLSError as exc:
            raise PermanentError(
                f"{self.name}: StartTLS with {self._where} failed: {self._redact(exc)}"
            ) from None
        except (ldap_exceptions.LDAPSocketOpenError, ldap_exceptions.LDAPCertificateError) as exc:
            if _is_certificate_failure(exc):
                # Retrying cannot fix a certificate that does not verify.
                raise PermanentError(
                    f"{self.name}: the certificate of {self._where} did not verify "
                    f"({_certificate_reason(exc)}); give the source the certificate of the CA "
                    "that issued it"
                ) from None
            raise TransientError(
                f"{self.name}: LDAP server {self._where} unreachable: {self._redact(exc)}"
            ) from None
        except (
            ldap_exceptions.LDAPCommunicationError,
            ldap_exceptions.LDAPResponseTimeoutError,
        ) as exc:
            raise TransientError(
                f"{self.name}: lost the connection to {self._where}: {self._redact(exc)}"
            ) from None
        self._bound = True

    def search_pages(
        self,
        base: str,
        search_filter: str,
        attributes: Sequence[str],
        *,
        page_size: int = 500,
    ) -> Iterator[list[LdapEntry]]:
        """Every entry under ``base`` matching the filter, one server page at a time (the
        paged results control), so a caller never holds more than one page."""
        self.bind()
        cookie: bytes | None = None
        subject = f"the search {search_filter} under {base}"
        while True:
            try:
                ok = self._connection.search(
                    base,
                    search_filter,
                    search_scope=ldap3.SUBTREE,
                    attributes=list(attributes),
                    paged_size=page_size,
                    paged_cookie=cookie,
                    paged_criticality=True,
                )
            except ldap_exceptions.LDAPInvalidFilterError as exc:
                raise PermanentError(f"{self.name}: bad filter in {subject}: {exc}") from None
            except (
                ldap_exceptions.LDAPCommunicationError,
                ldap_exceptions.LDAPResponseTimeoutError,
            ) as exc:
                raise TransientError(
                    f"{self.name}: lost the connection to {self._where} during {subject}: "
                    f"{self._redact(exc)}"
                ) from None
            result = self._connection.result or {}
            code = int(result.get("result") or 0)
            if not ok and code != 0:
                error_class = TransientError if code in _TRANSIENT_RESULTS else PermanentError
                raise error_class(
                    f"{self.name}: {self._where} refused {subject}: {self._described()}"
                )
            page = [
                _entry(item)
                for item in self._connection.response or []
                if item.get("type") == "searchResEntry"
            ]
            yield page
            control = (result.get("controls") or {}).get(PAGED_RESULTS_OID) or {}
            cookie = (control.get("value") or {}).get("cookie") or None
            if not cookie:
                return

    def _described(self) -> str:
        result = self._connection.result or {}
        description = result.get("description") or "error"
        message = str(result.get("message") or "").strip()
        return self._redact(
            f"{result.get('result')} {description}" + (f" ({message})" if message else "")
        )

    def _redact(self, text: object) -> str:
        out = str(text)
        # A very short password would blank out ordinary words; no message quotes one anyway.
        if len(self._password) >= 4:
            out = out.replace(self._password, "[redacted]")
        return out


def _is_certificate_failure(exc: Exception) -> bool:
    text = str(exc)
    return isinstance(exc, ldap_exceptions.LDAPCertificateError) or any(
        marker in text for marker in ("CERTIFICATE_VERIFY_FAILED", "doesn't match any name")
    )


def _certificate_reason(exc: Exception) -> str:
    """OpenSSL's reason ("unable to get local issuer certificate"), not ldap3's wrapping."""
    text = str(exc)
    if "doesn't match any name" in text:
        return "it is not issued for this host name"
    reason = text.partition("certificate verify failed:")[2].partition("(")[0].strip()
    return reason or "certificate verify failed"


def _entry(item: dict[str, object]) -> LdapEntry:
    # A case-insensitive mapping of attribute name to a list of bytes values.
    raw: Mapping[str, list[bytes]] = item.get("raw_attributes") or {}  # type: ignore[assignment]
    attributes = {
        str(name).lower(): tuple(_text(str(name), value) for value in values)
        for name, values in raw.items()
        if values
    }
    return LdapEntry(dn=str(item.get("dn") or ""), attributes=attributes)


def _text(name: str, value: bytes | str) -> str:
    if isinstance(value, str):
        return value
    if name.lower() in _GUID_ATTRIBUTES and len(value) == 16:
        return str(uuid.UUID(bytes_le=value))
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.hex()  # another binary attribute: stable and comparable, if not readable


def normalize_dn(dn: str) -> str:
    """A DN in one spelling for comparisons: lower-case, no spaces around separators.

    Good enough for the DNs one server hands out about its own entries (member, memberOf,
    manager all quote the DN as stored); not a full RFC 4514 canonical form.
    """
    parts = []
    for rdn in _split_dn(dn):
        attribute, _, value = rdn.partition("=")
        parts.append(f"{attribute.strip().lower()}={value.strip().lower()}")
    return ",".join(parts)


def _split_dn(dn: str) -> list[str]:
    """Split on commas that are not escaped with a backslash."""
    parts, current, escaped = [], [], False
    for char in dn:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if current or parts:
        parts.append("".join(current))
    return [part for part in parts if part.strip()]


def org_unit_path(dn: str) -> str:
    """The organisational units above an entry as a path, outermost first:
    ``cn=Ada,ou=Research,ou=Staff,dc=example,dc=com`` → ``/Staff/Research``."""
    units = []
    for rdn in _split_dn(dn)[1:]:
        attribute, _, value = rdn.partition("=")
        if attribute.strip().lower() == "ou":
            units.append(value.strip().replace("\\", ""))
    return "/" + "/".join(reversed(units))


def normalize_ca_certificate(text: str) -> str:
    """One or more PEM certificates to trust for a server, re-encoded; "" stays "".
    ValueError (in words for a form) when it is not that."""
    text = text.strip()
    if not text:
        return ""
    if "PRIVATE KEY" in text:
        raise ValueError("This is a private key; give the CA's public certificate (PEM).")
    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise ValueError(
            "This is not a PEM certificate (-----BEGIN CERTIFICATE----- ...)."
        ) from None
    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in certificates)
