"""The one module that talks to python3-saml: AccessHive as a SAML service provider.

It builds the toolkit's settings from SamlSettings and the request, and turns the toolkit's
findings into plain dataclasses, or into SignInRefused with a reason an admin understands.
"""

import base64
import binascii
import datetime as dt
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from django.http import HttpRequest
from django.urls import reverse
from onelogin.saml2.auth import OneLogin_Saml2_Auth  # type: ignore[import-untyped]
from onelogin.saml2.constants import OneLogin_Saml2_Constants  # type: ignore[import-untyped]
from onelogin.saml2.errors import (  # type: ignore[import-untyped]
    OneLogin_Saml2_Error,
    OneLogin_Saml2_ValidationError,
)
from onelogin.saml2.idp_metadata_parser import (  # type: ignore[import-untyped]
    OneLogin_Saml2_IdPMetadataParser,
)
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request  # type: ignore[import-untyped]
from onelogin.saml2.metadata import OneLogin_Saml2_Metadata  # type: ignore[import-untyped]
from onelogin.saml2.response import OneLogin_Saml2_Response  # type: ignore[import-untyped]
from onelogin.saml2.settings import OneLogin_Saml2_Settings  # type: ignore[import-untyped]
from onelogin.saml2.utils import OneLogin_Saml2_Utils  # type: ignore[import-untyped]
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML  # type: ignore[import-untyped]

from sso.errors import SignInRefused
from sso.models import SamlSettings

EMAIL_NAME_ID_FORMAT = OneLogin_Saml2_Constants.NAMEID_EMAIL_ADDRESS
# How far apart the IdP's clock and ours may be; the toolkit allows it on Conditions.
CLOCK_DRIFT_SECONDS: int = OneLogin_Saml2_Constants.ALLOWED_CLOCK_DRIFT
_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL
)
_ASSERTION = "/samlp:Response/saml:Assertion"


@dataclass(frozen=True)
class ServiceProvider:
    """AccessHive's own SAML endpoints as the IdP must know them."""

    entity_id: str
    acs_url: str
    sls_url: str

    @property
    def metadata_url(self) -> str:
        return self.entity_id


@dataclass(frozen=True)
class VerifiedAssertion:
    """What a response that passed every check says about the person signing in."""

    assertion_id: str
    # The last moment the toolkit would still accept this assertion (a replay after it fails).
    usable_until: dt.datetime
    in_response_to: str | None
    name_id: str
    name_id_format: str
    name_id_nq: str
    name_id_spnq: str
    session_index: str
    attributes: dict[str, list[str]] = field(default_factory=dict)
    friendly_attributes: dict[str, list[str]] = field(default_factory=dict)

    def attribute(self, name: str) -> list[str]:
        """An attribute's values by its Name, else by its FriendlyName."""
        return self.attributes.get(name) or self.friendly_attributes.get(name) or []


@dataclass(frozen=True)
class IdpMetadata:
    entity_id: str
    sso_url: str
    slo_url: str
    certificates: str  # PEM, one or more


@dataclass(frozen=True)
class CertificateSummary:
    subject: str
    not_valid_after: dt.datetime
    sha256: str


@dataclass(frozen=True)
class IdpLogoutRequest:
    """Whom the IdP's own LogoutRequest signs out."""

    name_id: str
    session_indexes: tuple[str, ...]
    signed: bool


@dataclass(frozen=True)
class LogoutOutcome:
    """What became of a message at the SLS: where to send the browser next (the IdP, with
    the answer to its own LogoutRequest), or why the message was refused."""

    redirect_url: str | None = None
    error: str = ""


# --- the request and our endpoints ---------------------------------------------------------


def request_data(request: HttpRequest) -> dict[str, Any]:
    """The request as the toolkit reads it. Host and scheme come from Django, so
    USE_X_FORWARDED_HOST and SECURE_PROXY_SSL_HEADER apply to SAML as to every page."""
    return {
        "https": "on" if request.is_secure() else "off",
        "http_host": request.get_host(),
        "script_name": request.path,
        "get_data": request.GET.dict(),
        "post_data": request.POST.dict(),
        # A redirect-binding signature is checked over the query string exactly as sent.
        "query_string": request.META.get("QUERY_STRING", ""),
        "validate_signature_from_qs": True,
    }


def service_provider(request: HttpRequest) -> ServiceProvider:
    return ServiceProvider(
        entity_id=request.build_absolute_uri(reverse("sso:metadata")),
        acs_url=request.build_absolute_uri(reverse("sso:acs")),
        sls_url=request.build_absolute_uri(reverse("sso:sls")),
    )


def cookie_path() -> str:
    """The narrowest path holding both the start of a sign-in and the ACS."""
    return posixpath.commonpath([reverse("sso:login"), reverse("sso:acs")])


class _MetadataWithEncryptionKey(OneLogin_Saml2_Metadata):  # type: ignore[misc]
    """Our metadata names the SP certificate for encryption too, so an IdP may encrypt
    assertions to us, without the toolkit then requiring that every assertion be encrypted."""

    @classmethod
    def add_x509_key_descriptors(
        cls, metadata: Any, cert: Any = None, add_encryption: bool = True
    ) -> Any:
        return super().add_x509_key_descriptors(metadata, cert, True)


def toolkit_settings(config: SamlSettings, sp: ServiceProvider, sp_key: str = "") -> dict[str, Any]:
    """The toolkit's settings. ``sp_key``: AccessHive's SP private key (PEM, from the vault)
    when it has one; then requests, logout messages and the metadata are signed with it, and
    encrypted assertions are decrypted with it."""
    idp: dict[str, Any] = {
        "entityId": config.idp_entity_id,
        "singleSignOnService": {
            "url": config.idp_sso_url,
            "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT,
        },
    }
    if config.idp_slo_url:
        idp["singleLogoutService"] = {
            "url": config.idp_slo_url,
            "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT,
        }
    signing = bool(sp_key and config.sp_certificate)
    certificates = split_certificates(config.idp_x509_cert)
    if len(certificates) > 1:
        idp["x509certMulti"] = {"signing": certificates}
    else:
        idp["x509cert"] = certificates[0] if certificates else ""
    return {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": sp.entity_id,
            "assertionConsumerService": {
                "url": sp.acs_url,
                "binding": OneLogin_Saml2_Constants.BINDING_HTTP_POST,
            },
            "singleLogoutService": {
                "url": sp.sls_url,
                "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT,
            },
            "NameIDFormat": OneLogin_Saml2_Constants.NAMEID_UNSPECIFIED,
            "x509cert": config.sp_certificate if signing else "",
            "privateKey": sp_key if signing else "",
        },
        "idp": idp,
        "security": {
            # The assertion must be signed (a signed Response around it is checked too), unless
            # the admin accepts a signed Response alone: then at least one of the two must be
            # signed (the toolkit refuses a response with no signature at all).
            "wantAssertionsSigned": not config.accept_signed_response,
            "wantMessagesSigned": False,
            "authnRequestsSigned": signing,
            "logoutRequestSigned": signing,
            "logoutResponseSigned": signing,
            "signMetadata": signing,
            "signatureAlgorithm": OneLogin_Saml2_Constants.RSA_SHA256,
            "digestAlgorithm": OneLogin_Saml2_Constants.SHA256,
            "wantNameId": True,
            # Some IdPs send the email as the NameID and no attributes at all.
            "wantAttributeStatement": False,
            "rejectDeprecatedAlgorithm": True,
            # Asking for password authentication exactly fails at IdPs signing in with MFA
            # or passkeys; how the person proved who they are is the IdP's policy.
            "requestedAuthnContext": False,
            # Intranet host names (https://accesshive/) are common for an admin tool.
            "allowSingleLabelDomains": True,
        },
    }


def _sp_key(config: SamlSettings) -> str:
    """The SP private key, read from the vault at the moment of use; "" when there is none."""
    if not config.sp_key_ref:
        return ""
    from vault.backends import get_vault
    from vault.base import SecretRef

    ref = SecretRef.parse(config.sp_key_ref)
    return get_vault().read(ref.path, ref.version)["private_key"]


def _toolkit(config: SamlSettings, request: HttpRequest) -> OneLogin_Saml2_Settings:
    try:
        toolkit = OneLogin_Saml2_Settings(
            toolkit_settings(config, service_provider(request), _sp_key(config))
        )
    except OneLogin_Saml2_Error as exc:
        raise SignInRefused(
            "not_configured",
            "single sign-on is not completely configured (an admin must check the "
            "identity provider's URLs and certificate in Settings > Single sign-on)",
            status=400,
        ) from exc
    toolkit.metadata_class = _MetadataWithEncryptionKey
    return toolkit


def metadata_xml(config: SamlSettings, request: HttpRequest) -> str:
    """Our SP metadata (signed, with our certificate for signing and encryption, once there
    is an SP key); it needs nothing of the IdP, so an admin can hand it over first."""
    toolkit = OneLogin_Saml2_Settings(
        toolkit_settings(config, service_provider(request), _sp_key(config)),
        sp_validation_only=True,
    )
    toolkit.metadata_class = _MetadataWithEncryptionKey
    metadata = toolkit.get_sp_metadata()
    return metadata.decode() if isinstance(metadata, bytes) else str(metadata)


# --- sign-in ---------------------------------------------------------------------------------


def login_redirect(
    config: SamlSettings, request: HttpRequest, *, return_to: str
) -> tuple[str, str]:
    """The IdP URL carrying a new AuthnRequest (HTTP-Redirect binding), and its ID."""
    auth = OneLogin_Saml2_Auth(request_data(request), _toolkit(config, request))
    url = auth.login(return_to=return_to)
    return str(url), str(auth.get_last_request_id())


def verify_response(config: SamlSettings, request: HttpRequest, encoded: str) -> VerifiedAssertion:
    """Every check of the SAML Web SSO profile python3-saml makes in strict mode (schema,
    signature, issuer, audience, destination, recipient, validity window), plus ours: an
    audience and an expiry are required. InResponseTo and replays are the caller's."""
    toolkit = _toolkit(config, request)
    data = request_data(request)
    try:
        response = OneLogin_Saml2_Response(toolkit, encoded)
    except xmlsec.Error as exc:  # reading the response calls xmlsec only to decrypt it
        raise SignInRefused("encryption", _UNDECRYPTABLE) from exc
    except Exception as exc:  # base64, XML and DTD errors each have their own type
        if (
            isinstance(exc, OneLogin_Saml2_Error)
            and exc.code == OneLogin_Saml2_Error.PRIVATE_KEY_NOT_FOUND
        ):
            key, reason = _REASONS[OneLogin_Saml2_ValidationError.NO_ENCRYPTED_ASSERTION]
            raise SignInRefused(key, reason) from exc
        raise SignInRefused(
            "malformed",
            "the identity provider's answer is not a readable SAML response",
            status=400,
        ) from exc
    try:
        response.is_valid(data, raise_exceptions=True)
        assertion = _verified(response)
    except OneLogin_Saml2_ValidationError as exc:
        raise _refusal(exc.code, response, data) from exc
    except SignInRefused:
        raise
    except Exception as exc:  # xmlsec and lxml raise their own types on hostile input
        raise SignInRefused(
            "unverifiable", "the identity provider's answer could not be verified"
        ) from exc
    return assertion


def _verified(response: Any) -> VerifiedAssertion:
    if not response.get_audiences():
        raise SignInRefused(
            "no_audience", "the assertion does not say which service it is meant for (audience)"
        )
    usable_until = _usable_until(_assertion_document(response))
    if usable_until is None:
        raise SignInRefused(
            "no_expiry", "the assertion has no expiry time (NotOnOrAfter), so it could be replayed"
        )
    in_response_to = {response.get_in_response_to()} | {
        node.get("InResponseTo")
        for node in _subject_confirmation_data(_assertion_document(response))
    }
    in_response_to.discard(None)
    if len(in_response_to) > 1:
        raise SignInRefused(
            "in_response_to_mismatch",
            "the response and its assertion answer different sign-in requests",
        )
    nameid_data = response.get_nameid_data()
    return VerifiedAssertion(
        assertion_id=str(response.get_assertion_id()),
        usable_until=usable_until,
        in_response_to=next(iter(in_response_to), None),
        name_id=str(nameid_data.get("Value") or ""),
        name_id_format=str(nameid_data.get("Format") or ""),
        name_id_nq=str(nameid_data.get("NameQualifier") or ""),
        name_id_spnq=str(nameid_data.get("SPNameQualifier") or ""),
        session_index=str(response.get_session_index() or ""),
        attributes=_text_values(response.get_attributes()),
        friendly_attributes=_friendly_attributes(response),
    )


def _assertion_document(response: Any) -> Any:
    """The response with its assertion readable: decrypted when it came encrypted."""
    return response.decrypted_document if response.encrypted else response.document


def _friendly_attributes(response: Any) -> dict[str, list[str]]:
    try:
        return _text_values(response.get_friendlyname_attributes())
    except OneLogin_Saml2_ValidationError:
        # Two attributes sharing a FriendlyName: lookups by Name still work.
        return {}


def _text_values(attributes: dict[str, list[Any]]) -> dict[str, list[str]]:
    return {
        name: [value for value in values if isinstance(value, str)]
        for name, values in attributes.items()
    }


def _subject_confirmation_data(document: Any) -> list[Any]:
    nodes = OneLogin_Saml2_XML.query(
        document,
        _ASSERTION + "/saml:Subject/saml:SubjectConfirmation",
    )
    bearer = [
        node for node in nodes if node.get("Method") in (None, OneLogin_Saml2_Constants.CM_BEARER)
    ]
    found = []
    for node in bearer:
        data = node.find("saml:SubjectConfirmationData", namespaces=OneLogin_Saml2_Constants.NSMAP)
        if data is not None:
            found.append(data)
    return found


def _saml_time(value: str | None) -> float | None:
    return None if not value else float(OneLogin_Saml2_Utils.parse_SAML_to_time(value))


def _usable_until(document: Any) -> dt.datetime | None:
    """The toolkit accepts the assertion while both a bearer SubjectConfirmationData and the
    Conditions are current; the earlier of the two bounds it. None: it never expires."""
    confirmations = [
        _saml_time(node.get("NotOnOrAfter")) for node in _subject_confirmation_data(document)
    ]
    confirmation_bound = (
        None if not confirmations or None in confirmations else max(c for c in confirmations if c)
    )
    conditions = OneLogin_Saml2_XML.query(document, _ASSERTION + "/saml:Conditions")
    conditions_end = _saml_time(conditions[0].get("NotOnOrAfter")) if conditions else None
    conditions_bound = None if conditions_end is None else conditions_end + CLOCK_DRIFT_SECONDS
    bounds = [bound for bound in (confirmation_bound, conditions_bound) if bound is not None]
    if not bounds:
        return None
    return dt.datetime.fromtimestamp(min(bounds), tz=dt.UTC)


_BAD_SIGNATURE = (
    "the assertion's signature did not verify against the identity provider's certificate"
)
_MALFORMED = "the identity provider's answer is not a well-formed SAML 2.0 response"
_UNDECRYPTABLE = (
    "the assertion is encrypted to a certificate whose key AccessHive does not hold (the "
    "identity provider may still have an older AccessHive certificate); give it AccessHive's "
    "current metadata, or turn assertion encryption off there"
)
_REASONS: dict[int, tuple[str, str]] = {
    OneLogin_Saml2_ValidationError.INVALID_SIGNATURE: ("bad_signature", _BAD_SIGNATURE),
    OneLogin_Saml2_ValidationError.WRONG_SIGNED_ELEMENT: ("bad_signature", _BAD_SIGNATURE),
    OneLogin_Saml2_ValidationError.ID_NOT_FOUND_IN_SIGNED_ELEMENT: (
        "bad_signature",
        _BAD_SIGNATURE,
    ),
    OneLogin_Saml2_ValidationError.DUPLICATED_ID_IN_SIGNED_ELEMENTS: (
        "bad_signature",
        _BAD_SIGNATURE,
    ),
    OneLogin_Saml2_ValidationError.INVALID_SIGNED_ELEMENT: ("bad_signature", _BAD_SIGNATURE),
    OneLogin_Saml2_ValidationError.DUPLICATED_REFERENCE_IN_SIGNED_ELEMENTS: (
        "bad_signature",
        _BAD_SIGNATURE,
    ),
    OneLogin_Saml2_ValidationError.UNEXPECTED_SIGNED_ELEMENTS: ("bad_signature", _BAD_SIGNATURE),
    OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_SIGNATURES_IN_RESPONSE: (
        "bad_signature",
        _BAD_SIGNATURE,
    ),
    OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_SIGNATURES_IN_ASSERTION: (
        "bad_signature",
        _BAD_SIGNATURE,
    ),
    OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_SIGNATURES: ("bad_signature", _BAD_SIGNATURE),
    OneLogin_Saml2_ValidationError.NO_SIGNED_ASSERTION: (
        "unsigned",
        "the assertion was not signed by the identity provider",
    ),
    OneLogin_Saml2_ValidationError.NO_SIGNATURE_FOUND: (
        "unsigned",
        "the assertion was not signed by the identity provider",
    ),
    OneLogin_Saml2_ValidationError.DEPRECATED_SIGNATURE_METHOD: (
        "weak_signature",
        "the identity provider signed with SHA-1, which AccessHive does not accept; "
        "set it to sign with SHA-256",
    ),
    OneLogin_Saml2_ValidationError.DEPRECATED_DIGEST_METHOD: (
        "weak_signature",
        "the identity provider signed with SHA-1, which AccessHive does not accept; "
        "set it to sign with SHA-256",
    ),
    OneLogin_Saml2_ValidationError.WRONG_AUDIENCE: (
        "wrong_audience",
        "the assertion was meant for another service (audience)",
    ),
    OneLogin_Saml2_ValidationError.WRONG_DESTINATION: (
        "wrong_destination",
        "the response was addressed to another address than AccessHive's (destination)",
    ),
    OneLogin_Saml2_ValidationError.EMPTY_DESTINATION: (
        "wrong_destination",
        "the response was addressed to another address than AccessHive's (destination)",
    ),
    OneLogin_Saml2_ValidationError.ASSERTION_EXPIRED: ("expired", "the assertion has expired"),
    OneLogin_Saml2_ValidationError.SESSION_EXPIRED: ("expired", "the assertion has expired"),
    OneLogin_Saml2_ValidationError.RESPONSE_EXPIRED: ("expired", "the assertion has expired"),
    OneLogin_Saml2_ValidationError.ASSERTION_TOO_EARLY: (
        "not_yet_valid",
        "the assertion is not valid yet; the clocks of AccessHive and the identity provider "
        "disagree",
    ),
    OneLogin_Saml2_ValidationError.WRONG_ISSUER: (
        "wrong_issuer",
        "the assertion came from another identity provider than the one configured (issuer)",
    ),
    OneLogin_Saml2_ValidationError.ISSUER_MULTIPLE_IN_RESPONSE: (
        "wrong_issuer",
        "the assertion came from another identity provider than the one configured (issuer)",
    ),
    OneLogin_Saml2_ValidationError.ISSUER_NOT_FOUND_IN_ASSERTION: (
        "wrong_issuer",
        "the assertion came from another identity provider than the one configured (issuer)",
    ),
    OneLogin_Saml2_ValidationError.NO_NAMEID: (
        "no_name_id",
        "the assertion does not name the person (no NameID)",
    ),
    OneLogin_Saml2_ValidationError.EMPTY_NAMEID: (
        "no_name_id",
        "the assertion does not name the person (no NameID)",
    ),
    OneLogin_Saml2_ValidationError.WRONG_INRESPONSETO: (
        "in_response_to_mismatch",
        "the response and its assertion answer different sign-in requests",
    ),
    OneLogin_Saml2_ValidationError.NO_ENCRYPTED_ASSERTION: (
        "encryption",
        "the assertion is encrypted and AccessHive has no SP key to decrypt it; run "
        "manage.py sso_generate_sp_key and give the identity provider the new metadata, or "
        "turn assertion encryption off there",
    ),
    OneLogin_Saml2_ValidationError.ENCRYPTED_ATTRIBUTES: (
        "encryption",
        "the identity provider encrypted single attributes, which AccessHive does not read; "
        "encrypt the whole assertion instead, or nothing",
    ),
}


# What an XML-signature-wrapping attack trips: a signature that covers another element than
# the one read, moved, duplicated or extra signed elements, more than one assertion.
_WRAPPING_CODES = frozenset(
    {
        OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_ASSERTIONS,
        OneLogin_Saml2_ValidationError.WRONG_SIGNED_ELEMENT,
        OneLogin_Saml2_ValidationError.ID_NOT_FOUND_IN_SIGNED_ELEMENT,
        OneLogin_Saml2_ValidationError.DUPLICATED_ID_IN_SIGNED_ELEMENTS,
        OneLogin_Saml2_ValidationError.INVALID_SIGNED_ELEMENT,
        OneLogin_Saml2_ValidationError.DUPLICATED_REFERENCE_IN_SIGNED_ELEMENTS,
        OneLogin_Saml2_ValidationError.UNEXPECTED_SIGNED_ELEMENTS,
        OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_SIGNATURES_IN_RESPONSE,
        OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_SIGNATURES_IN_ASSERTION,
        OneLogin_Saml2_ValidationError.WRONG_NUMBER_OF_SIGNATURES,
    }
)
TAMPERING = "tampering"
_TAMPERING_REASON = (
    "the response was rearranged around the identity provider's signature (several "
    "assertions, or a signed part moved or copied): a forgery attempt, not a faulty IdP"
)


def _looks_wrapped(document: Any) -> bool:
    """More than one assertion anywhere, or an element ID twice: no honest IdP sends that,
    whatever check (the schema's, often) failed first."""
    assertions = OneLogin_Saml2_XML.query(document, "//saml:Assertion | //saml:EncryptedAssertion")
    ids = [node.get("ID") for node in OneLogin_Saml2_XML.query(document, "//*[@ID]")]
    return len(assertions) > 1 or len(ids) != len(set(ids))


def _refusal(code: int, response: Any, data: dict[str, Any]) -> SignInRefused:
    if code in _WRAPPING_CODES or _looks_wrapped(response.document):
        return SignInRefused(TAMPERING, _TAMPERING_REASON, status=400)
    if code == OneLogin_Saml2_ValidationError.STATUS_CODE_IS_NOT_SUCCESS:
        status = OneLogin_Saml2_Utils.get_status(response.document).get("code") or ""
        return SignInRefused(
            "idp_refused",
            f"the identity provider did not sign the person in (status {status.split(':')[-1]})",
        )
    if code == OneLogin_Saml2_ValidationError.WRONG_SUBJECTCONFIRMATION:
        return _subject_confirmation_refusal(response, data)
    if code in _REASONS:
        key, reason = _REASONS[code]
        return SignInRefused(key, reason)
    # An encrypted assertion got here decrypted (without the key, reading it failed first),
    # so the SP key is not what is wrong.
    return SignInRefused("malformed", _MALFORMED, status=400)


def _subject_confirmation_refusal(response: Any, data: dict[str, Any]) -> SignInRefused:
    """The toolkit says only that no SubjectConfirmation fit; say which part did not."""
    acs_url = OneLogin_Saml2_Utils.get_self_url_no_query(data)
    nodes = _subject_confirmation_data(_assertion_document(response))
    now = OneLogin_Saml2_Utils.now()
    if nodes and all(
        node.get("Recipient") and acs_url not in node.get("Recipient") for node in nodes
    ):
        return SignInRefused(
            "wrong_recipient",
            "the assertion was meant for another address than AccessHive's (recipient)",
        )
    times = [_saml_time(node.get("NotOnOrAfter")) for node in nodes]
    if nodes and all(t is not None and t <= now for t in times):
        return SignInRefused("expired", "the assertion has expired")
    return SignInRefused(
        "subject_confirmation",
        "the assertion's subject confirmation does not fit this sign-in",
    )


# --- single logout ----------------------------------------------------------------------------


def logout_redirect(
    config: SamlSettings,
    request: HttpRequest,
    *,
    name_id: str,
    name_id_format: str,
    name_id_nq: str,
    name_id_spnq: str,
    session_index: str,
    return_to: str,
) -> tuple[str, str]:
    """The IdP URL carrying a LogoutRequest for the session that just ended, and its ID."""
    auth = OneLogin_Saml2_Auth(request_data(request), _toolkit(config, request))
    url = auth.logout(
        return_to=return_to,
        name_id=name_id,
        session_index=session_index or None,
        nq=name_id_nq or None,
        name_id_format=name_id_format or None,
        spnq=name_id_spnq or None,
    )
    return str(url), str(auth.get_last_request_id())


def process_logout_message(
    config: SamlSettings,
    request: HttpRequest,
    *,
    logout_request_id: str | None,
    end_session: Callable[[IdpLogoutRequest], None],
) -> LogoutOutcome:
    """The IdP's LogoutResponse to our LogoutRequest ``logout_request_id``, or its own
    LogoutRequest (the person signed out elsewhere): ``end_session`` gets that request once
    it passed its checks, and decides whether it names this browser's session."""
    try:
        toolkit = _toolkit(config, request)
    except SignInRefused as exc:
        return LogoutOutcome(error=exc.reason)
    data = request_data(request)
    get_data = data["get_data"]
    idp_request = None
    if "SAMLRequest" in get_data:
        try:
            xml = OneLogin_Saml2_Logout_Request(toolkit, get_data["SAMLRequest"]).get_xml()
            idp_request = IdpLogoutRequest(
                name_id=str(OneLogin_Saml2_Logout_Request.get_nameid(xml) or ""),
                session_indexes=tuple(OneLogin_Saml2_Logout_Request.get_session_indexes(xml)),
                # process_slo checks a signature that is there before end_session runs.
                signed="Signature" in get_data,
            )
        except Exception:  # base64, inflate and XML errors each have their own type
            return LogoutOutcome(error="the identity provider's logout request is not readable")
    elif "SAMLResponse" in get_data and logout_request_id is None:
        return LogoutOutcome(
            error="AccessHive did not ask the identity provider to sign anyone out"
        )

    def on_valid() -> None:
        # A LogoutResponse: the local session already ended when the sign-out started.
        if idp_request is not None:
            end_session(idp_request)

    auth = OneLogin_Saml2_Auth(data, toolkit)
    try:
        url = auth.process_slo(request_id=logout_request_id, delete_session_cb=on_valid)
    except OneLogin_Saml2_Error:
        return LogoutOutcome(error="there is no SAML logout message in this request")
    except Exception:  # base64, inflate and XML errors each have their own type
        return LogoutOutcome(error="the identity provider's logout message is not readable")
    errors = auth.get_errors()
    if errors:
        return LogoutOutcome(error=_logout_reason(errors))
    return LogoutOutcome(redirect_url=url)


def _logout_reason(errors: list[str]) -> str:
    if any("signature" in error for error in errors):
        return (
            "the logout message's signature did not verify against the identity provider's "
            "certificate"
        )
    if "logout_not_success" in errors:
        return "the identity provider reported that it could not sign the person out"
    return "the logout message did not pass its checks (issuer, destination, request or expiry)"


# --- IdP metadata and certificates -------------------------------------------------------------


def parse_idp_metadata(xml: str) -> IdpMetadata:
    """The IdP's entity ID, HTTP-Redirect sign-in and sign-out URLs and signing certificates,
    or ValueError saying what is missing."""
    try:
        data = OneLogin_Saml2_IdPMetadataParser.parse(xml.strip().encode())
    except Exception as exc:  # lxml's and the DTD guard's errors
        raise ValueError("This is not well-formed XML.") from exc
    idp = data.get("idp") or {}
    if not idp.get("entityId"):
        raise ValueError(
            "This is not the SAML metadata of an identity provider (no EntityDescriptor "
            "with an IDPSSODescriptor)."
        )
    sso_url = (idp.get("singleSignOnService") or {}).get("url") or ""
    if not sso_url:
        raise ValueError(
            "The metadata has no sign-in URL with the HTTP-Redirect binding, which AccessHive uses."
        )
    certificates = idp.get("x509certMulti", {}).get("signing") or (
        [idp["x509cert"]] if idp.get("x509cert") else []
    )
    if not certificates:
        raise ValueError("The metadata has no signing certificate.")
    return IdpMetadata(
        entity_id=idp["entityId"],
        sso_url=sso_url,
        slo_url=(idp.get("singleLogoutService") or {}).get("url") or "",
        # One by one: metadata carries them as bare base64, which run together once joined.
        certificates="\n".join(normalize_certificates(cert) for cert in certificates),
    )


def _load_certificates(text: str) -> list[x509.Certificate]:
    if "PRIVATE KEY" in text:
        raise ValueError("This is a private key; paste the identity provider's public certificate.")
    bodies = _PEM_CERTIFICATE.findall(text) or [text]
    certificates = []
    for body in bodies:
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
            certificates.append(x509.load_der_x509_certificate(der))
        except (binascii.Error, ValueError) as exc:
            raise ValueError(
                "This is not an X.509 certificate (PEM, or base64 as in metadata)."
            ) from exc
    return certificates


def normalize_certificates(text: str) -> str:
    """One or more certificates as PEM, one after the other; ValueError if any is not one."""
    text = text.strip()
    if not text:
        return ""
    return "".join(
        cert.public_bytes(serialization.Encoding.PEM).decode() for cert in _load_certificates(text)
    ).strip()


def split_certificates(text: str) -> list[str]:
    return [match.group(0) for match in _PEM_CERTIFICATE.finditer(text)]


def describe_certificates(text: str) -> list[CertificateSummary]:
    try:
        certificates = _load_certificates(text.strip()) if text.strip() else []
    except ValueError:
        return []
    return [
        CertificateSummary(
            subject=cert.subject.rfc4514_string(),
            not_valid_after=cert.not_valid_after_utc,
            sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        )
        for cert in certificates
    ]
