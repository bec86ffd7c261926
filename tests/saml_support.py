"""SAML test helpers: one sandbox IdP key per run, settings trusting a sandbox IdP, and the
browser's side of the HTTP-Redirect and HTTP-POST bindings."""

import functools
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.test import Client
from django.urls import reverse

from sandbox.saml_idp import SamlIdpSandbox, SigningKey, decode_redirect_message
from sso import saml
from sso.models import SamlSettings
from sso.services import update_settings

SERVER = "http://testserver"
SP_ENTITY_ID = SERVER + "/sso/saml/metadata/"
ACS_URL = SERVER + "/sso/saml/acs/"
SLS_URL = SERVER + "/sso/saml/sls/"
GROUP_MAPPING = {
    "admin_groups": ["accesshive-admins"],
    "operator_groups": ["accesshive-operators"],
    "viewer_groups": ["accesshive-viewers"],
}


@functools.cache
def idp_key() -> SigningKey:
    """Generated once per run: RSA keys are the slow part of a sandbox IdP."""
    return SigningKey.generate()


@functools.cache
def other_key() -> SigningKey:
    """A key nobody trusts, as an attacker's."""
    return SigningKey.generate("Not the IdP")


def new_idp() -> SamlIdpSandbox:
    return SamlIdpSandbox(signing_key=idp_key())


def configure(idp: SamlIdpSandbox, **overrides: Any) -> SamlSettings:
    """SSO on, trusting ``idp`` as its metadata says, with the sandbox's groups mapped."""
    metadata = saml.parse_idp_metadata(idp.metadata_xml())
    values: dict[str, Any] = {
        "enabled": True,
        "idp_entity_id": metadata.entity_id,
        "idp_sso_url": metadata.sso_url,
        "idp_slo_url": metadata.slo_url,
        "idp_x509_cert": metadata.certificates,
        **GROUP_MAPPING,
    }
    values.update(overrides)
    return update_settings(actor=None, **values)


def redirect_query(location: str) -> dict[str, str]:
    return {name: values[-1] for name, values in parse_qs(urlsplit(location).query).items()}


def start_login(client: Client, next_url: str | None = None) -> tuple[str, str]:
    """GET sso:login as a browser would; the AuthnRequest's ID and the RelayState."""
    query = {"next": next_url} if next_url is not None else {}
    response = client.get(reverse("sso:login"), query)
    assert response.status_code == 302, response.content
    params = redirect_query(response["Location"])
    request = decode_redirect_message(params["SAMLRequest"])
    request_id = request.split(' ID="', 1)[1].split('"', 1)[0]
    return request_id, params.get("RelayState", "")


def post_response(client: Client, encoded: str, relay_state: str = "") -> Any:
    return client.post(reverse("sso:acs"), {"SAMLResponse": encoded, "RelayState": relay_state})


def mint(idp: SamlIdpSandbox, email: str, **options: Any) -> str:
    """A response for the test client's SP (http://testserver), as the IdP would send it."""
    options.setdefault("acs_url", ACS_URL)
    options.setdefault("audience", SP_ENTITY_ID)
    return idp.mint_response(email, **options)


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(Form(values.get("action", ""), values.get("method", "get").lower()))
        elif tag == "input" and self.forms and values.get("name"):
            self.forms[-1].fields[values["name"]] = values.get("value", "")
        elif tag == "button" and self.forms and values.get("name"):
            self.forms[-1].buttons.append((values["name"], values.get("value", "")))


def parse_forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms
