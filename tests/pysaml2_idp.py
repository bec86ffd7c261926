"""pysaml2 (an independent SAML implementation, signing and encrypting through xmlsec1) as
the identity provider AccessHive's SP talks to in tests: it reads our metadata, checks our
AuthnRequest signatures, and answers signed and, if asked, encrypted responses."""

import base64
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from saml2 import BINDING_HTTP_REDIRECT  # type: ignore[import-untyped]
from saml2.config import IdPConfig  # type: ignore[import-untyped]
from saml2.metadata import create_metadata_string  # type: ignore[import-untyped]
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID  # type: ignore[import-untyped]
from saml2.server import Server  # type: ignore[import-untyped]
from saml2.sigver import security_context  # type: ignore[import-untyped]

from sandbox.saml_idp import SigningKey
from tests.servers import missing

ENTITY_ID = "https://idp.pysaml2.test/metadata"
SSO_URL = "https://idp.pysaml2.test/sso/redirect"
SLO_URL = "https://idp.pysaml2.test/slo/redirect"
PASSWORD_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


def require_xmlsec1() -> str:
    binary = shutil.which("xmlsec1")
    if binary is None:
        missing("SAML", "needs xmlsec1 for pysaml2 (apt-get install xmlsec1; .ci/run installs it)")
    return binary


class Pysaml2Idp:
    """One pysaml2 IdP that knows one SP, by the metadata the SP serves."""

    def __init__(self, key: SigningKey, sp_metadata: str, *, want_signed_requests: bool) -> None:
        self.key = key
        self.root = Path(tempfile.mkdtemp(prefix="accesshive-pysaml2-"))
        (self.root / "idp.key").write_text(key.private_key_pem)
        (self.root / "idp.crt").write_text(key.certificate_pem)
        (self.root / "sp.xml").write_text(sp_metadata)
        self.config = IdPConfig().load(
            {
                "entityid": ENTITY_ID,
                "xmlsec_binary": require_xmlsec1(),
                "key_file": str(self.root / "idp.key"),
                "cert_file": str(self.root / "idp.crt"),
                "metadata": {"local": [str(self.root / "sp.xml")]},
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [(SSO_URL, BINDING_HTTP_REDIRECT)],
                            "single_logout_service": [(SLO_URL, BINDING_HTTP_REDIRECT)],
                        },
                        "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                        "want_authn_requests_signed": want_signed_requests,
                        "policy": {"default": {"lifetime": {"minutes": 5}}},
                    }
                },
            }
        )
        self.server = Server(config=self.config)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def metadata_xml(self) -> str:
        metadata = create_metadata_string(None, config=self.config, valid=1)
        return metadata.decode() if isinstance(metadata, bytes) else str(metadata)

    def read_request(self, location: str) -> tuple[Any, str]:
        """Parse the AuthnRequest a redirect to our SSO URL carries, checking its signature
        when there is one (pysaml2 raises on a bad one); the request and the RelayState."""
        query = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
        request = self.server.parse_authn_request(
            query["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=query.get("RelayState"),
            sigalg=query.get("SigAlg"),
            signature=query.get("Signature"),
        )
        return request, query.get("RelayState", "")

    def respond(
        self,
        request: Any,
        email: str,
        *,
        groups: tuple[str, ...] = (),
        sign_response: bool = False,
        sign_assertion: bool = True,
        encrypt_to: str | None = None,
        authn_statement: bool = True,
    ) -> str:
        """A Response to ``request`` for ``email``, base64 as the HTTP-POST form carries it.
        ``encrypt_to``: the SP certificate (PEM) to encrypt the assertion to;
        ``authn_statement=False``: an assertion that does not say how the person signed in."""
        message = request.message
        destination = message.assertion_consumer_service_url
        encrypt: dict[str, Any] = {}
        if encrypt_to is not None:
            body = "".join(encrypt_to.strip().splitlines()[1:-1])
            encrypt = {
                "encrypt_assertion": True,
                "encrypt_cert_assertion": body,
                "encrypted_advice_attributes": False,
                # pysaml2's default (True) copies namespace declarations into the signed
                # assertion before encrypting it, and python3-saml then finds the signature
                # broken; SATOSA and other pysaml2 IdPs let admins turn it off.
                "encrypt_assertion_self_contained": False,
            }
        response = self.server.create_authn_response(
            {"email": [email], "groups": list(groups)},
            in_response_to=message.id,
            destination=destination,
            sp_entity_id=message.issuer.text,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email),
            authn={"class_ref": PASSWORD_CONTEXT, "authn_auth": ENTITY_ID}
            if authn_statement
            else None,
            sign_response=sign_response,
            sign_assertion=sign_assertion,
            sign_alg=RSA_SHA256,
            digest_alg=SHA256,
            **encrypt,
        )
        return base64.b64encode(str(response).encode()).decode()

    def verifies_signature_of(self, xml: str, certificate_pem: str, node_name: str) -> bool:
        """Whether xmlsec1 (through pysaml2) verifies ``xml``'s signature with the cert."""
        cert_file = self.root / "signer.crt"
        cert_file.write_text(certificate_pem)
        context = security_context(self.config)
        try:
            return bool(
                context.verify_signature(
                    xml, cert_file=str(cert_file), cert_type="pem", node_name=node_name
                )
            )
        except Exception:  # pysaml2's SignatureError and xmlsec's own
            return False
