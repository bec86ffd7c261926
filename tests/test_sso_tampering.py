"""XML-signature-wrapping and multi-assertion responses are refused and recorded on the trail
as tampering attempts, apart from faulty or unreadable responses."""

import html
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from lxml import etree  # type: ignore[import-untyped]

from sandbox.saml_idp import NS_SAML, NS_SAMLP, ServiceProvider
from tests import saml_support
from tests.saml_support import ACS_URL, SLS_URL, SP_ENTITY_ID, configure, mint, post_response
from tests.saml_support import start_login as begin
from trail.models import TrailEntry

pytestmark = pytest.mark.django_db

VICTIM = "alice@example.com"  # an admin in the sandbox IdP's groups
ATTACKER = "carol@example.com"
NS = {"saml": NS_SAML, "samlp": NS_SAMLP}


@pytest.fixture
def idp() -> Any:
    server = saml_support.new_idp()
    server.register_service_provider(ServiceProvider(SP_ENTITY_ID, ACS_URL, SLS_URL))
    configure(server)
    yield server
    server.shutdown()


def _rewrite(edit: Callable[[Any, Any, Any], None]) -> Callable[[str], str]:
    """A tamper function: parse the signed response, let ``edit(root, signed, evil)`` move
    things around, serialise. ``evil`` is an unsigned copy of the signed assertion naming
    the victim instead of the attacker."""

    def tamper(xml: str) -> str:
        root = etree.fromstring(xml.encode())
        signed = root.find("saml:Assertion", NS)
        evil = etree.fromstring(etree.tostring(signed))
        for signature in evil.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
            evil.remove(signature)
        evil.find("saml:Subject/saml:NameID", NS).text = VICTIM
        edit(root, signed, evil)
        return str(etree.tostring(root).decode())

    return tamper


def _new_id(element: Any) -> None:
    element.set("ID", "_evil" + element.get("ID"))


def _evil_first(root: Any, signed: Any, evil: Any) -> None:
    _new_id(evil)
    signed.addprevious(evil)


def _evil_last(root: Any, signed: Any, evil: Any) -> None:
    _new_id(evil)
    signed.addnext(evil)


def _same_id_first(root: Any, signed: Any, evil: Any) -> None:
    signed.addprevious(evil)


def _signed_in_extensions(root: Any, signed: Any, evil: Any) -> None:
    signed.addprevious(evil)
    extensions = etree.Element(f"{{{NS_SAMLP}}}Extensions")
    root.find("saml:Issuer", NS).addnext(extensions)
    extensions.append(signed)


def _signed_in_advice(root: Any, signed: Any, evil: Any) -> None:
    signed.addprevious(evil)
    advice = etree.SubElement(evil, f"{{{NS_SAML}}}Advice")
    evil.find("saml:Conditions", NS).addnext(advice)
    advice.append(signed)


def _signed_inside_evil_subject(root: Any, signed: Any, evil: Any) -> None:
    _new_id(evil)
    signed.addprevious(evil)
    evil.find("saml:Subject", NS).append(signed)


def _signed_id_copied_onto_the_status(root: Any, signed: Any, evil: Any) -> None:
    # No second assertion: the schema check fails before any check of the signature.
    root.find("samlp:Status", NS).set("ID", signed.get("ID"))


WRAPPINGS = [
    pytest.param(_evil_first, id="unsigned-assertion-before-the-signed-one"),
    pytest.param(_evil_last, id="unsigned-assertion-after-the-signed-one"),
    pytest.param(_same_id_first, id="copy-with-the-signed-id"),
    pytest.param(_signed_in_extensions, id="signed-moved-into-extensions"),
    pytest.param(_signed_in_advice, id="signed-moved-into-advice"),
    pytest.param(_signed_inside_evil_subject, id="signed-nested-in-the-forgery"),
    pytest.param(_signed_id_copied_onto_the_status, id="signed-id-copied-onto-the-status"),
]


@pytest.mark.parametrize("edit", WRAPPINGS)
@pytest.mark.parametrize("sign_response", [False, True], ids=["assertion-signed", "both-signed"])
def test_a_wrapped_response_is_recorded_as_tampering(client, idp, edit, sign_response):
    request_id, relay_state = begin(client)
    encoded = mint(
        idp,
        ATTACKER,
        in_response_to=request_id,
        sign_response=sign_response,
        tamper=_rewrite(edit),
    )

    response = post_response(client, encoded, relay_state)

    assert response.status_code == 400
    assert "a forgery attempt" in response.content.decode()
    assert not User.objects.exists()
    entry = TrailEntry.objects.get(action__startswith="user.")
    assert entry.action == "user.sign_in_tampering"
    assert entry.detail["code"] == "tampering"
    assert (entry.source, entry.actor) == ("sso", None)


def test_faulty_and_unreadable_responses_are_not_tampering(client, idp):
    request_id, relay_state = begin(client)
    expired = mint(idp, ATTACKER, in_response_to=request_id, audience="https://other.example/")
    post_response(client, expired, relay_state)
    post_response(client, "not base64 at all!", relay_state)
    # Outside the schema, but one assertion and no ID twice: a faulty IdP, not a forgery.
    request_id, relay_state = begin(client)
    off_schema = mint(
        idp,
        ATTACKER,
        in_response_to=request_id,
        tamper=lambda xml: xml.replace("<samlp:Status>", '<samlp:Status Extra="1">'),
    )
    answer = post_response(client, off_schema, relay_state)

    assert answer.status_code == 400
    assert "is not a well-formed SAML 2.0 response" in html.unescape(answer.content.decode())
    actions = list(
        TrailEntry.objects.filter(action__startswith="user.").values_list("action", "detail__code")
    )
    assert actions == [
        ("user.sign_in_refused", "wrong_audience"),
        ("user.sign_in_refused", "malformed"),
        ("user.sign_in_refused", "malformed"),
    ]
