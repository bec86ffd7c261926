"""Local SAML 2.0 identity provider: AuthnRequests in over HTTP-Redirect, signed responses
out over HTTP-POST, single logout over HTTP-Redirect; plus minting responses from Python."""

import argparse
import base64
import datetime as dt
import html
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, quote_plus, urlsplit
from xml.sax.saxutils import escape, quoteattr

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from onelogin.saml2.utils import OneLogin_Saml2_Utils  # type: ignore[import-untyped]
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML  # type: ignore[import-untyped]

from sandbox.serving import ServedInThread

NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
NS_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
PASSWORD_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"  # noqa: S105 - a URN
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1_DIGEST = "http://www.w3.org/2000/09/xmldsig#sha1"
ASSERTION_LIFETIME = dt.timedelta(minutes=5)
# AccessHive's SAML endpoints under its base URL (sso/urls.py).
ACCESSHIVE_PATHS = {
    "entity_id": "sso/saml/metadata/",
    "acs_url": "sso/saml/acs/",
    "sls_url": "sso/saml/sls/",
}


@dataclass(frozen=True)
class SigningKey:
    """An RSA key and the self-signed certificate an SP is told to trust."""

    private_key_pem: str
    certificate_pem: str

    @classmethod
    def generate(cls, common_name: str = "AccessHive sandbox IdP") -> "SigningKey":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        return cls(
            private_key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        )

    @classmethod
    def from_pem(cls, pem: str) -> "SigningKey":
        """From one file holding the private key and the certificate (as to_pem writes)."""
        begin = pem.index("-----BEGIN CERTIFICATE-----")
        return cls(
            private_key_pem=pem[:begin].strip() + "\n", certificate_pem=pem[begin:].strip() + "\n"
        )

    def to_pem(self) -> str:
        return self.private_key_pem + self.certificate_pem

    @property
    def certificate_base64(self) -> str:
        """The certificate as metadata carries it: base64 DER, no PEM armour."""
        body = self.certificate_pem.split("-----")[2]
        return "".join(body.split())

    def sign(self, data: bytes) -> bytes:
        """RSA-SHA256, as the HTTP-Redirect binding signs its query string."""
        key = serialization.load_pem_private_key(self.private_key_pem.encode(), password=None)
        return cast(rsa.RSAPrivateKey, key).sign(data, padding.PKCS1v15(), hashes.SHA256())


@dataclass
class SandboxUser:
    email: str
    first_name: str
    last_name: str
    groups: list[str] = field(default_factory=list)

    @property
    def attributes(self) -> dict[str, list[str]]:
        return {
            "email": [self.email],
            "firstName": [self.first_name],
            "lastName": [self.last_name],
            "groups": list(self.groups),
        }


DEFAULT_USERS = (
    SandboxUser("alice@example.com", "Alice", "Admin", ["accesshive-admins"]),
    SandboxUser("bob@example.com", "Bob", "Operator", ["accesshive-operators"]),
    SandboxUser("carol@example.com", "Carol", "Viewer", ["accesshive-viewers"]),
)


@dataclass(frozen=True)
class ServiceProvider:
    entity_id: str
    acs_url: str
    sls_url: str = ""

    @classmethod
    def accesshive(cls, base_url: str) -> "ServiceProvider":
        """AccessHive's endpoints under its base URL (http://127.0.0.1:8000)."""
        base = base_url.rstrip("/") + "/"
        return cls(**{name: base + path for name, path in ACCESSHIVE_PATHS.items()})


@dataclass(frozen=True)
class AuthnRequest:
    id: str
    issuer: str
    acs_url: str


@dataclass(frozen=True)
class IdpSession:
    """One sign-in the IdP answered: what a LogoutRequest names."""

    email: str
    session_index: str
    sp_entity_id: str


@dataclass(frozen=True)
class Reply:
    status: int
    body: str = ""
    content_type: str = "text/html; charset=utf-8"
    location: str = ""


class SamlError(Exception):
    """A message the sandbox refuses, answered with 400 and this text."""


def saml_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    # An xs:ID must not start with a digit.
    return "_" + secrets.token_hex(20)


def decode_redirect_message(value: str) -> str:
    """A SAMLRequest/SAMLResponse of the HTTP-Redirect binding as XML."""
    inflated = OneLogin_Saml2_Utils.decode_base64_and_inflate(value)
    return inflated.decode() if isinstance(inflated, bytes) else str(inflated)


def parse_authn_request(encoded: str) -> AuthnRequest:
    try:
        root = OneLogin_Saml2_XML.to_etree(decode_redirect_message(encoded))
    except Exception as exc:  # base64, inflate and XML errors each have their own type
        raise SamlError("SAMLRequest is not a deflated, base64-encoded AuthnRequest") from exc
    if root.tag != f"{{{NS_SAMLP}}}AuthnRequest" or not root.get("ID"):
        raise SamlError("SAMLRequest is not an AuthnRequest")
    issuer = root.find(f"{{{NS_SAML}}}Issuer")
    return AuthnRequest(
        id=root.get("ID"),
        issuer=(issuer.text or "").strip() if issuer is not None else "",
        acs_url=root.get("AssertionConsumerServiceURL") or "",
    )


class SamlIdpSandbox(ServedInThread):
    """An in-memory IdP with a few users, served over HTTP; see the module docstring."""

    thread_name = "saml-idp-sandbox"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        users: Iterable[SandboxUser] = DEFAULT_USERS,
        signing_key: SigningKey | None = None,
        next_signing_key: SigningKey | None = None,
        service_providers: Iterable[ServiceProvider] = (),
    ) -> None:
        self.signing_key = signing_key or SigningKey.generate()
        # Published beside the signing key before a rollover (the key it will sign with next),
        # and after it (the key it signed with before), as ADFS and Entra ID do.
        self.other_published_key = next_signing_key
        self._lock = threading.Lock()
        self._users = {
            user.email.lower(): replace(user, groups=list(user.groups)) for user in users
        }
        self._service_providers = {sp.entity_id: sp for sp in service_providers}
        self._sessions: list[IdpSession] = []
        self._logout_responses: list[str] = []
        self._httpd = _HTTPServer((host, port), self)
        bound_host, bound_port = self._httpd.server_address[:2]
        self.base_url = f"http://{bound_host!s}:{bound_port}/"
        self.entity_id = self.base_url + "metadata"
        self.metadata_url = self.base_url + "metadata"
        self.sso_url = self.base_url + "sso"
        self.slo_url = self.base_url + "slo"

    # Python-side controls for tests and `make run`.

    def users(self) -> list[SandboxUser]:
        with self._lock:
            return [replace(user, groups=list(user.groups)) for user in self._users.values()]

    def user(self, email: str) -> SandboxUser:
        with self._lock:
            found = self._users.get(email.lower())
        if found is None:
            raise KeyError(f"the sandbox IdP has no user {email}")
        return replace(found, groups=list(found.groups))

    def add_user(self, user: SandboxUser) -> None:
        with self._lock:
            self._users[user.email.lower()] = replace(user, groups=list(user.groups))

    def set_groups(self, email: str, groups: Sequence[str]) -> None:
        with self._lock:
            self._users[email.lower()].groups = list(groups)

    def register_service_provider(self, sp: ServiceProvider) -> ServiceProvider:
        """Known SPs get answers only at their own ACS, and take part in single logout."""
        with self._lock:
            self._service_providers[sp.entity_id] = sp
        return sp

    def register_accesshive(self, base_url: str) -> ServiceProvider:
        return self.register_service_provider(ServiceProvider.accesshive(base_url))

    def sessions(self) -> list[IdpSession]:
        with self._lock:
            return list(self._sessions)

    def logout_responses(self) -> list[str]:
        """The XML of each LogoutResponse SPs sent back to IdP-initiated logouts."""
        with self._lock:
            return list(self._logout_responses)

    def roll_over(self) -> None:
        """Sign with the next key from now on; the old one stays published for a while."""
        if self.other_published_key is None:
            raise ValueError("the sandbox IdP was given no next signing key")
        self.signing_key, self.other_published_key = self.other_published_key, self.signing_key

    def metadata_xml(self) -> str:
        keys = [self.signing_key]
        if self.other_published_key is not None:
            keys.append(self.other_published_key)
        key_descriptors = "".join(
            '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
            f"{key.certificate_base64}"
            "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
            for key in keys
        )
        return (
            f'<md:EntityDescriptor xmlns:md="{NS_MD}" xmlns:ds="{NS_DS}" '
            f"entityID={quoteattr(self.entity_id)}>"
            f'<md:IDPSSODescriptor WantAuthnRequestsSigned="false" '
            f'protocolSupportEnumeration="{NS_SAMLP}">'
            f"{key_descriptors}"
            f'<md:SingleLogoutService Binding="{BINDING_REDIRECT}" '
            f"Location={quoteattr(self.slo_url)}/>"
            f"<md:NameIDFormat>{EMAIL_FORMAT}</md:NameIDFormat>"
            f'<md:SingleSignOnService Binding="{BINDING_REDIRECT}" '
            f"Location={quoteattr(self.sso_url)}/>"
            "</md:IDPSSODescriptor></md:EntityDescriptor>"
        )

    def response_xml(
        self,
        email: str,
        *,
        acs_url: str,
        audience: str,
        in_response_to: str | None = None,
        destination: str | None = None,
        recipient: str | None = None,
        not_before: dt.datetime | None = None,
        not_on_or_after: dt.datetime | None = None,
        issue_instant: dt.datetime | None = None,
        assertion_id: str | None = None,
        session_index: str | None = None,
        name_id: str | None = None,
        with_name_id: bool = True,
        name_id_format: str = EMAIL_FORMAT,
        name_qualifier: str = "",
        sp_name_qualifier: str = "",
        confirmation_not_on_or_after: dt.datetime | None = None,
        confirmation_expires: bool = True,
        conditions_expire: bool = True,
        attributes: Mapping[str, Sequence[str]] | None = None,
        friendly_names: Mapping[str, str] | None = None,
        issuer: str | None = None,
        status: str = STATUS_SUCCESS,
        sign_assertion: bool = True,
        sign_response: bool = False,
        signing_key: SigningKey | None = None,
        sha1: bool = False,
        tamper: Callable[[str], str] | None = None,
    ) -> str:
        """A samlp:Response for ``email`` (a configured user, or anyone given
        ``attributes``). destination and recipient default to ``acs_url``; pass "" to leave
        them out. ``not_on_or_after`` ends both the bearer confirmation and the Conditions;
        ``confirmation_not_on_or_after`` ends the confirmation at another time, and
        ``confirmation_expires`` / ``conditions_expire`` False leave either without an end.
        ``signing_key`` signs instead of the IdP's own key; ``sha1`` signs with RSA-SHA1 and a
        SHA-1 digest, as old IdPs still do; ``with_name_id=False`` leaves the NameID out;
        ``friendly_names`` gives attributes a FriendlyName beside their Name (Shibboleth names
        them by OID, "urn:oid:0.9.2342.19200300.100.1.3", with FriendlyName "mail");
        ``tamper`` edits the XML after signing."""
        now = issue_instant or dt.datetime.now(dt.UTC)
        if attributes is None:
            attributes = self.user(email).attributes
        key = signing_key or self.signing_key
        issuer = issuer or self.entity_id
        expiry = saml_time(not_on_or_after or now + ASSERTION_LIFETIME)
        starts = not_before or now - dt.timedelta(seconds=30)
        session_index = session_index or new_id()
        confirmation_expiry = (
            saml_time(confirmation_not_on_or_after) if confirmation_not_on_or_after else expiry
        )
        confirmation = (
            f"NotOnOrAfter={quoteattr(confirmation_expiry)}" if confirmation_expires else ""
        )
        recipient = acs_url if recipient is None else recipient
        if recipient:
            confirmation += f" Recipient={quoteattr(recipient)}"
        if in_response_to:
            confirmation += f" InResponseTo={quoteattr(in_response_to)}"
        statement = "".join(
            f"<saml:Attribute Name={quoteattr(name)}"
            + (
                f" FriendlyName={quoteattr(friendly_names[name])}"
                if friendly_names and name in friendly_names
                else ""
            )
            + ' NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">'
            + "".join(
                f'<saml:AttributeValue xsi:type="xs:string">{escape(value)}</saml:AttributeValue>'
                for value in values
            )
            + "</saml:Attribute>"
            for name, values in attributes.items()
        )
        assertion = (
            f'<saml:Assertion xmlns:saml="{NS_SAML}" '
            'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'ID={quoteattr(assertion_id or new_id())} Version="2.0" '
            f"IssueInstant={quoteattr(saml_time(now))}>"
            f"<saml:Issuer>{escape(issuer)}</saml:Issuer>"
            "<saml:Subject>"
            + (
                f"<saml:NameID Format={quoteattr(name_id_format)}"
                + (f" NameQualifier={quoteattr(name_qualifier)}" if name_qualifier else "")
                + (f" SPNameQualifier={quoteattr(sp_name_qualifier)}" if sp_name_qualifier else "")
                + f">{escape(name_id or email)}</saml:NameID>"
                if with_name_id
                else ""
            )
            + f'<saml:SubjectConfirmation Method="{BEARER}">'
            f"<saml:SubjectConfirmationData {confirmation}/>"
            "</saml:SubjectConfirmation></saml:Subject>"
            f"<saml:Conditions NotBefore={quoteattr(saml_time(starts))}"
            + (f" NotOnOrAfter={quoteattr(expiry)}" if conditions_expire else "")
            + ">"
            f"<saml:AudienceRestriction><saml:Audience>{escape(audience)}</saml:Audience>"
            "</saml:AudienceRestriction></saml:Conditions>"
            f"<saml:AuthnStatement AuthnInstant={quoteattr(saml_time(now))} "
            f"SessionIndex={quoteattr(session_index)}>"
            f"<saml:AuthnContext><saml:AuthnContextClassRef>{PASSWORD_CONTEXT}"
            "</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"
            + (
                f"<saml:AttributeStatement>{statement}</saml:AttributeStatement>"
                if statement
                else ""
            )
            + "</saml:Assertion>"
        )
        if sign_assertion:
            assertion = _signed(assertion, key, sha1=sha1)
        destination = acs_url if destination is None else destination
        response = (
            f'<samlp:Response xmlns:samlp="{NS_SAMLP}" xmlns:saml="{NS_SAML}" '
            f'ID={quoteattr(new_id())} Version="2.0" IssueInstant={quoteattr(saml_time(now))}'
            + (f" Destination={quoteattr(destination)}" if destination else "")
            + (f" InResponseTo={quoteattr(in_response_to)}" if in_response_to else "")
            + f"><saml:Issuer>{escape(issuer)}</saml:Issuer>"
            f"<samlp:Status><samlp:StatusCode Value={quoteattr(status)}/></samlp:Status>"
            f"{assertion}</samlp:Response>"
        )
        if sign_response:
            response = _signed(response, key, sha1=sha1)
        return tamper(response) if tamper else response

    def mint_response(self, email: str, **options: Any) -> str:
        """response_xml, base64-encoded as the SAMLResponse form field of HTTP-POST."""
        return base64.b64encode(self.response_xml(email, **options).encode()).decode()

    def answer(self, request: AuthnRequest, email: str) -> str:
        """The SAMLResponse (base64) this IdP posts back to ``request`` for ``email``, as a
        real IdP would: to the request's ACS, for the SP that asked; the sign-in is kept as
        an IdP session."""
        sp = self._sp_for(request)
        session_index = new_id()
        encoded = self.mint_response(
            email,
            acs_url=sp.acs_url,
            audience=sp.entity_id,
            in_response_to=request.id,
            session_index=session_index,
        )
        with self._lock:
            self._sessions.append(IdpSession(email.lower(), session_index, sp.entity_id))
        return encoded

    def unsolicited(self, sp_entity_id: str, email: str) -> str:
        """A SAMLResponse (base64) answering no request: IdP-initiated sign-in."""
        sp = self._known_sp(sp_entity_id)
        session_index = new_id()
        encoded = self.mint_response(
            email, acs_url=sp.acs_url, audience=sp.entity_id, session_index=session_index
        )
        with self._lock:
            self._sessions.append(IdpSession(email.lower(), session_index, sp.entity_id))
        return encoded

    def logout_request_url(
        self,
        email: str,
        sp_entity_id: str,
        *,
        relay_state: str = "",
        signed: bool = True,
        with_session_index: bool = True,
    ) -> str:
        """The URL of the SP's SLS carrying a LogoutRequest for ``email``'s latest session
        there: IdP-initiated single logout (the person signed out at the IdP)."""
        sp = self._known_sp(sp_entity_id)
        if not sp.sls_url:
            raise SamlError(f"{sp.entity_id} has no single logout URL")
        with self._lock:
            ended = [
                s
                for s in self._sessions
                if s.email == email.lower() and s.sp_entity_id == sp.entity_id
            ]
            self._sessions = [s for s in self._sessions if s not in ended]
        session_index = (
            f"<samlp:SessionIndex>{escape(ended[-1].session_index)}</samlp:SessionIndex>"
            if ended and with_session_index
            else ""
        )
        xml = (
            f'<samlp:LogoutRequest xmlns:samlp="{NS_SAMLP}" xmlns:saml="{NS_SAML}" '
            f'ID={quoteattr(new_id())} Version="2.0" '
            f"IssueInstant={quoteattr(saml_time(dt.datetime.now(dt.UTC)))} "
            f"Destination={quoteattr(sp.sls_url)}>"
            f"<saml:Issuer>{escape(self.entity_id)}</saml:Issuer>"
            f'<saml:NameID Format="{EMAIL_FORMAT}">{escape(email)}</saml:NameID>'
            f"{session_index}</samlp:LogoutRequest>"
        )
        return self._redirect_url(sp.sls_url, "SAMLRequest", xml, relay_state, signed=signed)

    # HTTP.

    def handle(self, verb: str, target: str, form: dict[str, str]) -> Reply:
        url = urlsplit(target)
        query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        try:
            if url.path == "/metadata" and verb == "GET":
                return Reply(200, self.metadata_xml(), "application/samlmetadata+xml")
            if url.path == "/sso" and verb == "GET":
                if "SAMLRequest" in query:
                    request = parse_authn_request(query["SAMLRequest"])
                    self._sp_for(request)
                    return Reply(
                        200,
                        self._picker_page(
                            query["SAMLRequest"], query.get("RelayState", ""), request
                        ),
                    )
                return Reply(200, self._unsolicited_page())
            if url.path == "/sso" and verb == "POST":
                return self._post_sign_in(form)
            if url.path == "/slo" and verb == "GET":
                return self._slo(query)
        except SamlError as exc:
            return Reply(400, str(exc), "text/plain; charset=utf-8")
        except KeyError as exc:
            return Reply(400, f"unknown {exc.args[0]}", "text/plain; charset=utf-8")
        return Reply(404, "not found", "text/plain; charset=utf-8")

    def _known_sp(self, entity_id: str) -> ServiceProvider:
        with self._lock:
            sp = self._service_providers.get(entity_id)
        if sp is None:
            raise SamlError(f"unknown service provider {entity_id!r}")
        return sp

    def _sp_for(self, request: AuthnRequest) -> ServiceProvider:
        """A registered SP gets answers at its own ACS only. An unknown one (no --acs-base)
        is taken at its word, which only a sandbox may do."""
        with self._lock:
            sp = self._service_providers.get(request.issuer)
        if sp is None:
            if not request.issuer or not request.acs_url:
                raise SamlError("the AuthnRequest names no Issuer or AssertionConsumerServiceURL")
            return ServiceProvider(entity_id=request.issuer, acs_url=request.acs_url)
        if request.acs_url and request.acs_url != sp.acs_url:
            raise SamlError(f"{request.acs_url} is not the ACS registered for {sp.entity_id}")
        return sp

    def _user_buttons(self) -> str:
        return "".join(
            f'<p><button type="submit" name="user" value="{html.escape(user.email)}">'
            f"{html.escape(user.first_name)} {html.escape(user.last_name)} "
            f"&lt;{html.escape(user.email)}&gt; "
            f"({html.escape(', '.join(user.groups) or 'no groups')})"
            "</button></p>"
            for user in self.users()
        )

    def _picker_page(self, encoded: str, relay_state: str, request: AuthnRequest) -> str:
        return _page(
            "Sign in",
            f"<p>{html.escape(request.issuer)} asks who you are. Sign in as:</p>"
            '<form method="post" action="/sso">'
            f'<input type="hidden" name="SAMLRequest" value="{html.escape(encoded)}">'
            f'<input type="hidden" name="RelayState" value="{html.escape(relay_state)}">'
            f"{self._user_buttons()}</form>",
        )

    def _unsolicited_page(self) -> str:
        with self._lock:
            providers = list(self._service_providers.values())
        if not providers:
            return _page("Sandbox IdP", "<p>No service provider is registered (--acs-base).</p>")
        forms = "".join(
            f"<h2>{html.escape(sp.entity_id)}</h2>"
            '<form method="post" action="/sso">'
            f'<input type="hidden" name="sp" value="{html.escape(sp.entity_id)}">'
            f"{self._user_buttons()}</form>"
            for sp in providers
        )
        return _page("Sign in to a service (IdP-initiated)", forms)

    def _post_sign_in(self, form: dict[str, str]) -> Reply:
        email = form.get("user", "")
        self.user(email)
        if form.get("SAMLRequest"):
            request = parse_authn_request(form["SAMLRequest"])
            acs_url = self._sp_for(request).acs_url
            encoded = self.answer(request, email)
        elif form.get("sp"):
            acs_url = self._known_sp(form["sp"]).acs_url
            encoded = self.unsolicited(form["sp"], email)
        else:
            raise SamlError("no SAMLRequest and no service provider")
        return Reply(200, post_form(acs_url, encoded, form.get("RelayState", "")))

    def _slo(self, query: dict[str, str]) -> Reply:
        if "SAMLResponse" in query:
            with self._lock:
                self._logout_responses.append(decode_redirect_message(query["SAMLResponse"]))
            return Reply(200, _page("Signed out", "<p>The service signed you out.</p>"))
        if "SAMLRequest" not in query:
            raise SamlError("no SAMLRequest or SAMLResponse")
        try:
            root = OneLogin_Saml2_XML.to_etree(decode_redirect_message(query["SAMLRequest"]))
        except Exception as exc:  # base64, inflate and XML errors each have their own type
            raise SamlError("SAMLRequest is not a deflated, base64-encoded LogoutRequest") from exc
        issuer = root.find(f"{{{NS_SAML}}}Issuer")
        name_id = root.find(f"{{{NS_SAML}}}NameID")
        if root.tag != f"{{{NS_SAMLP}}}LogoutRequest" or issuer is None or name_id is None:
            raise SamlError("SAMLRequest is not a LogoutRequest with an Issuer and a NameID")
        sp = self._known_sp((issuer.text or "").strip())
        if not sp.sls_url:
            raise SamlError(f"{sp.entity_id} has no single logout URL")
        indexes = {
            (node.text or "").strip() for node in root.findall(f"{{{NS_SAMLP}}}SessionIndex")
        }
        email = (name_id.text or "").strip().lower()
        with self._lock:
            self._sessions = [
                s
                for s in self._sessions
                if not (
                    s.sp_entity_id == sp.entity_id
                    and s.email == email
                    and (not indexes or s.session_index in indexes)
                )
            ]
        xml = (
            f'<samlp:LogoutResponse xmlns:samlp="{NS_SAMLP}" xmlns:saml="{NS_SAML}" '
            f'ID={quoteattr(new_id())} Version="2.0" '
            f"IssueInstant={quoteattr(saml_time(dt.datetime.now(dt.UTC)))} "
            f"Destination={quoteattr(sp.sls_url)} InResponseTo={quoteattr(root.get('ID') or '')}>"
            f"<saml:Issuer>{escape(self.entity_id)}</saml:Issuer>"
            f'<samlp:Status><samlp:StatusCode Value="{STATUS_SUCCESS}"/></samlp:Status>'
            "</samlp:LogoutResponse>"
        )
        location = self._redirect_url(sp.sls_url, "SAMLResponse", xml, query.get("RelayState", ""))
        return Reply(302, location=location)

    def _redirect_url(
        self, url: str, parameter: str, xml: str, relay_state: str, *, signed: bool = True
    ) -> str:
        """HTTP-Redirect binding: deflated and base64-encoded, the query string signed."""
        encoded = OneLogin_Saml2_Utils.deflate_and_base64_encode(xml)
        query = f"{parameter}={quote_plus(encoded)}"
        if relay_state:
            query += f"&RelayState={quote_plus(relay_state)}"
        if not signed:
            return f"{url}{'&' if '?' in url else '?'}{query}"
        query += f"&SigAlg={quote_plus(RSA_SHA256)}"
        signature = base64.b64encode(self.signing_key.sign(query.encode())).decode()
        return f"{url}{'&' if '?' in url else '?'}{query}&Signature={quote_plus(signature)}"


def _signed(xml: str, key: SigningKey, *, sha1: bool = False) -> str:
    """``xml`` with an enveloped signature over its root element (after its Issuer)."""
    algorithms = {"sign_algorithm": RSA_SHA1, "digest_algorithm": SHA1_DIGEST} if sha1 else {}
    signed = OneLogin_Saml2_Utils.add_sign(
        xml, key.private_key_pem, key.certificate_pem, **algorithms
    )
    return signed.decode() if isinstance(signed, bytes) else str(signed)


def post_form(acs_url: str, encoded: str, relay_state: str) -> str:
    """The HTTP-POST binding: a page that posts the response to the ACS by itself."""
    return _page(
        "Signing you in",
        f'<form method="post" action="{html.escape(acs_url)}">'
        f'<input type="hidden" name="SAMLResponse" value="{html.escape(encoded)}">'
        f'<input type="hidden" name="RelayState" value="{html.escape(relay_state)}">'
        '<noscript><button type="submit">Continue</button></noscript></form>'
        "<script>document.forms[0].submit()</script>",
    )


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)} · "
        f"Sandbox IdP</title></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: SamlIdpSandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        form = {name: values[-1] for name, values in parse_qs(raw).items()}
        sandbox = cast(_HTTPServer, self.server).sandbox
        reply = sandbox.handle(self.command, self.path, form)
        payload = reply.body.encode()
        self.send_response(reply.status)
        if reply.location:
            self.send_header("Location", reply.location)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read sessions() and logout_responses() instead of stderr."""


def start(**options: Any) -> SamlIdpSandbox:
    """A sandbox IdP serving in a daemon thread (port 0: a free port); shutdown() when done."""
    return SamlIdpSandbox(**options).serve_in_thread()


def load_or_create_key(path: Path) -> SigningKey:
    """The key kept in ``path`` (so the SP's trust survives a restart), made if missing."""
    if path.exists():
        return SigningKey.from_pem(path.read_text())
    key = SigningKey.generate()
    # The file holds a private key: readable by its owner only, from the first byte.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(key.to_pem())
    return key


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.saml_idp", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8083, help="0 picks a free port")
    parser.add_argument(
        "--acs-base",
        action="append",
        default=[],
        metavar="URL",
        help="AccessHive's base URL (http://127.0.0.1:8000): registers its SAML endpoints "
        "for IdP-initiated sign-in and single logout (repeatable)",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        help="the IdP's signing key and certificate: kept if the file exists, else written",
    )
    args = parser.parse_args(argv)
    key = load_or_create_key(args.key_file) if args.key_file else None
    sandbox = SamlIdpSandbox(host=args.host, port=args.port, signing_key=key)
    for base in args.acs_base:
        sandbox.register_accesshive(base)
    users = ", ".join(f"{u.email} ({', '.join(u.groups)})" for u in sandbox.users())
    print(
        f"SAML IdP sandbox on {sandbox.base_url}, metadata at {sandbox.metadata_url}; "
        f"users: {users}",
        flush=True,
    )
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.shutdown()


if __name__ == "__main__":
    main()
