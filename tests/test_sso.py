"""SAML sign-in of AccessHive's own users against the sandbox IdP's responses: who is signed
in with which role, every refusal an attacker or a misconfigured IdP causes, replays,
redirects after sign-in, single logout, and the SP metadata."""

import base64
import datetime as dt
import html
import re
import time
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import reverse
from lxml import etree  # type: ignore[import-untyped]
from onelogin.saml2.constants import OneLogin_Saml2_Constants  # type: ignore[import-untyped]
from onelogin.saml2.settings import OneLogin_Saml2_Settings  # type: ignore[import-untyped]
from onelogin.saml2.utils import OneLogin_Saml2_Utils  # type: ignore[import-untyped]

from accounts.models import UserRole
from accounts.services import role_of
from sandbox.saml_idp import (
    EMAIL_FORMAT,
    NS_SAML,
    NS_SAMLP,
    AuthnRequest,
    SamlIdpSandbox,
    SandboxUser,
    ServiceProvider,
    SigningKey,
    decode_redirect_message,
    saml_time,
)
from sso import saml
from sso.models import UsedAssertion
from sso.services import generate_sp_key
from tests import saml_support
from tests.saml_support import (
    ACS_URL,
    SERVER,
    SLS_URL,
    SP_ENTITY_ID,
    configure,
    mint,
    post_response,
    redirect_query,
    start_login,
)
from trail.models import TrailEntry

pytestmark = pytest.mark.django_db

HOME = "/identities/"


@pytest.fixture
def idp() -> Any:
    server = saml_support.new_idp()
    server.register_service_provider(ServiceProvider(SP_ENTITY_ID, ACS_URL, SLS_URL))
    yield server
    server.shutdown()


@pytest.fixture
def sso(idp: SamlIdpSandbox) -> None:
    configure(idp)


def sign_in(client: Client, idp: SamlIdpSandbox, email: str, next_url: str = HOME) -> Any:
    """A whole sign-in as the browser and the IdP would do it; the ACS's answer."""
    request_id, relay_state = start_login(client, next_url)
    encoded = idp.answer(AuthnRequest(request_id, SP_ENTITY_ID, ACS_URL), email)
    return post_response(client, encoded, relay_state)


def signed_in_user(client: Client) -> User | None:
    user_id = client.session.get(SESSION_KEY)
    return User.objects.get(pk=user_id) if user_id else None


def refusal_text(response: Any) -> str:
    text = str(response.content.decode())
    assert "Sign-in refused" in text
    return text


# --- signing in -------------------------------------------------------------------------------


def test_sign_in_creates_the_user_with_the_role_of_their_group(client, idp, sso):
    response = sign_in(client, idp, "alice@example.com")

    assert response.status_code == 302
    assert response["Location"] == HOME
    alice = User.objects.get(username="alice@example.com")
    assert (alice.email, alice.first_name, alice.last_name) == (
        "alice@example.com",
        "Alice",
        "Admin",
    )
    assert not alice.has_usable_password()
    assert role_of(alice) == "admin"
    assert signed_in_user(client) == alice
    assert client.session["accesshive_auth_method"] == "saml"
    # The admin's session works, with the admin's permissions.
    assert client.get(reverse("sso:settings")).status_code == 200
    role_changed = TrailEntry.objects.get(action="user.role_changed")
    assert (role_changed.target_label, role_changed.source) == ("alice@example.com", "sso")
    signed_in = TrailEntry.objects.get(action="user.signed_in")
    assert (signed_in.actor, signed_in.source, signed_in.detail["method"]) == (alice, "sso", "saml")


def test_the_next_sign_in_is_the_same_user_and_the_role_follows_the_idp(client, idp, sso):
    sign_in(client, idp, "carol@example.com")
    carol = User.objects.get(username="carol@example.com")
    assert role_of(carol) == "viewer"

    idp.set_groups("carol@example.com", ["accesshive-operators", "accesshive-viewers"])
    again = Client()
    assert sign_in(again, idp, "carol@example.com").status_code == 302

    assert signed_in_user(again) == carol
    assert User.objects.count() == 1
    assert role_of(carol) == "operator"


def test_an_existing_user_is_matched_by_email_whatever_its_case(client, idp, sso):
    existing = User.objects.create_user("bob.ops", email="Bob@Example.COM", password="pw")

    sign_in(client, idp, "bob@example.com")

    assert signed_in_user(client) == existing
    assert User.objects.count() == 1
    assert role_of(existing) == "operator"
    assert existing.check_password("pw")  # break-glass password stays


def test_a_superuser_signs_in_unchanged(client, idp, sso):
    root = User.objects.create_superuser("root", "alice@example.com", "pw")
    idp.set_groups("alice@example.com", ["accesshive-viewers"])

    sign_in(client, idp, "alice@example.com")

    assert signed_in_user(client) == root
    assert not UserRole.objects.filter(user=root).exists()
    root.refresh_from_db()
    assert (root.first_name, root.is_superuser) == ("", True)


def test_the_email_may_come_as_the_name_id(client, idp, sso):
    request_id, relay_state = start_login(client)
    encoded = mint(
        idp,
        "Erin@Example.com",
        in_response_to=request_id,
        attributes={"groups": ["accesshive-viewers"]},
    )

    assert post_response(client, encoded, relay_state).status_code == 302
    assert role_of(User.objects.get(username="erin@example.com")) == "viewer"


def test_an_idp_sending_the_email_as_the_name_id_and_no_attributes_at_all_signs_in(client, idp):
    configure(idp, default_role="viewer")
    request_id, relay_state = start_login(client)
    encoded = mint(idp, "frank@example.com", in_response_to=request_id, attributes={})
    assert "AttributeStatement" not in base64.b64decode(encoded).decode()

    response = post_response(client, encoded, relay_state)

    assert response.status_code == 302, response.content.decode()
    frank = User.objects.get(username="frank@example.com")
    assert signed_in_user(client) == frank
    assert role_of(frank) == "viewer"


def test_attributes_named_by_oid_are_found_by_their_friendly_name(client, idp):
    """Shibboleth and other IdPs name attributes by OID and give the familiar name as
    FriendlyName: the settings' attribute names match either."""
    configure(idp, email_attribute="mail", groups_attribute="memberOf")
    request_id, relay_state = start_login(client)
    mail, member_of = "urn:oid:0.9.2342.19200300.100.1.3", "urn:oid:1.2.840.113556.1.2.102"
    encoded = mint(
        idp,
        "grace@example.com",
        in_response_to=request_id,
        name_id="grace-7f3a",
        name_id_format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        attributes={mail: ["grace@example.com"], member_of: ["accesshive-operators"]},
        friendly_names={mail: "mail", member_of: "memberOf"},
    )

    response = post_response(client, encoded, relay_state)

    assert response.status_code == 302, response.content.decode()
    grace = User.objects.get(email="grace@example.com")
    assert signed_in_user(client) == grace
    assert role_of(grace) == "operator"


def test_a_person_in_no_mapped_group_gets_the_default_role_if_there_is_one(client, idp):
    idp.add_user(SandboxUser("dave@example.com", "Dave", "Sales", ["sales"]))
    configure(idp, default_role="viewer")

    sign_in(client, idp, "dave@example.com")

    assert role_of(User.objects.get(username="dave@example.com")) == "viewer"


def test_expired_used_assertions_are_pruned_at_a_sign_in(client, idp, sso):
    now = dt.datetime.now(dt.UTC)
    UsedAssertion.objects.create(assertion_id="_old", not_on_or_after=now - dt.timedelta(hours=1))

    sign_in(client, idp, "alice@example.com")

    assert not UsedAssertion.objects.filter(assertion_id="_old").exists()
    assert UsedAssertion.objects.get().not_on_or_after > now


# --- refusals ---------------------------------------------------------------------------------


def _past(minutes: int) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)


# (options, the reason shown, the code the trail records for it: what an audit filters on)
REFUSALS = [
    pytest.param(
        lambda: {"signing_key": saml_support.other_key()},
        "signature did not verify",
        "bad_signature",
        id="signed-by-another-key",
    ),
    pytest.param(
        lambda: {"tamper": lambda xml: xml.replace("accesshive-viewers", "accesshive-admins")},
        "signature did not verify",
        "bad_signature",
        id="tampered-after-signing",
    ),
    pytest.param(
        lambda: {"sign_assertion": False}, "assertion was not signed", "unsigned", id="unsigned"
    ),
    pytest.param(
        lambda: {"sign_assertion": False, "sign_response": True},
        "assertion was not signed",
        "unsigned",
        id="unsigned-assertion-in-signed-response",
    ),
    pytest.param(
        lambda: {"sha1": True},
        "signed with SHA-1, which AccessHive does not accept",
        "weak_signature",
        id="sha1",
    ),
    pytest.param(
        # The email attribute alone would do for signing in, but no sign-out could name them.
        lambda: {"with_name_id": False},
        "the assertion does not name the person (no NameID)",
        "no_name_id",
        id="no-name-id",
    ),
    pytest.param(
        lambda: {"audience": "https://other.example/saml"},
        "meant for another service (audience)",
        "wrong_audience",
        id="wrong-audience",
    ),
    pytest.param(
        lambda: {"recipient": "https://other.example/acs"},
        "(recipient)",
        "wrong_recipient",
        id="wrong-recipient",
    ),
    pytest.param(
        lambda: {"destination": "https://other.example/acs"},
        "(destination)",
        "wrong_destination",
        id="wrong-destination",
    ),
    pytest.param(
        # Past NotOnOrAfter by more than the 5 minutes of clock drift the toolkit allows.
        lambda: {"issue_instant": _past(20), "not_on_or_after": _past(10)},
        "the assertion has expired",
        "expired",
        id="expired",
    ),
    pytest.param(
        # Within the drift allowed on Conditions, but the bearer confirmation has none.
        lambda: {"issue_instant": _past(3), "not_on_or_after": _past(1)},
        "the assertion has expired",
        "expired",
        id="expired-a-minute-ago",
    ),
    pytest.param(
        lambda: {"status": "urn:oasis:names:tc:SAML:2.0:status:Responder"},
        "the identity provider did not sign the person in (status Responder)",
        "idp_refused",
        id="idp-said-no",
    ),
    pytest.param(
        lambda: {"issuer": "https://impostor.example/idp"},
        "another identity provider than the one configured",
        "wrong_issuer",
        id="wrong-issuer",
    ),
    pytest.param(
        # The toolkit checks the audience only when there is one: any SP would take this.
        lambda: {"audience": ""},
        "the assertion does not say which service it is meant for (audience)",
        "no_audience",
        id="no-audience",
    ),
    pytest.param(
        # The toolkit takes an assertion with no end at all; its ID could never be forgotten.
        lambda: {"confirmation_expires": False, "conditions_expire": False},
        "the assertion has no expiry time (NotOnOrAfter), so it could be replayed",
        "no_expiry",
        id="never-expires",
    ),
]


@pytest.mark.parametrize(("options", "reason", "code"), REFUSALS)
def test_a_response_that_fails_a_check_is_refused(client, idp, sso, caplog, options, reason, code):
    request_id, relay_state = start_login(client)
    encoded = mint(idp, "carol@example.com", in_response_to=request_id, **options())

    response = post_response(client, encoded, relay_state)

    assert response.status_code == 403
    text = refusal_text(response)
    assert reason in text
    # Nothing of the assertion, and no traceback, reaches the page.
    assert "carol@example.com" not in text
    assert "Traceback" not in text
    assert signed_in_user(client) is None
    assert not User.objects.exists()
    assert not UsedAssertion.objects.exists()
    refused = TrailEntry.objects.get(action="user.sign_in_refused")
    assert reason in refused.detail["reason"]
    assert refused.detail["code"] == code
    assert (refused.source, refused.actor) == ("sso", None)
    assert any(
        record.getMessage() == "sso.signin.refused" and record.reason == refused.detail["code"]
        for record in caplog.records
    )


DRIFT = dt.timedelta(seconds=saml.CLOCK_DRIFT_SECONDS)

# (how the response's bearer confirmation and Conditions end, given ``ends``: the moment the
# toolkit stops taking it, until which its ID is kept to refuse a replay)
LIFETIMES = [
    pytest.param(lambda ends: {}, lambda ends: ends, id="both-end-together"),
    pytest.param(
        lambda ends: {"confirmation_not_on_or_after": ends - dt.timedelta(minutes=5)},
        lambda ends: ends - dt.timedelta(minutes=5),
        id="confirmation-ends-first",
    ),
    pytest.param(
        # The toolkit allows the clock drift on Conditions, not on the confirmation.
        lambda ends: {"confirmation_not_on_or_after": ends + dt.timedelta(hours=1)},
        lambda ends: ends + DRIFT,
        id="conditions-end-first",
    ),
    pytest.param(
        lambda ends: {"confirmation_expires": False},
        lambda ends: ends + DRIFT,
        id="no-confirmation-end",
    ),
    pytest.param(
        lambda ends: {"conditions_expire": False}, lambda ends: ends, id="no-conditions-end"
    ),
]


@pytest.mark.parametrize(("lifetime", "kept_until"), LIFETIMES)
def test_a_used_assertion_is_kept_while_it_could_still_be_replayed(
    client, idp, sso, lifetime, kept_until
):
    ends = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).replace(microsecond=0)
    request_id, relay_state = start_login(client)
    encoded = mint(
        idp, "alice@example.com", in_response_to=request_id, not_on_or_after=ends, **lifetime(ends)
    )

    assert post_response(client, encoded, relay_state).status_code == 302

    assert UsedAssertion.objects.get().not_on_or_after == kept_until(ends)


def test_a_used_assertion_is_kept_until_its_end_on_a_host_outside_utc(
    client, idp, sso, monkeypatch
):
    """The replay window is an instant, whatever time zone the host's clock is set to."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        ends = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).replace(microsecond=0)
        request_id, relay_state = start_login(client)
        encoded = mint(idp, "alice@example.com", in_response_to=request_id, not_on_or_after=ends)

        assert post_response(client, encoded, relay_state).status_code == 302

        assert UsedAssertion.objects.get().not_on_or_after == ends
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_same_response_posted_twice_is_refused(client, idp, sso):
    request_id, relay_state = start_login(client)
    encoded = mint(idp, "alice@example.com", in_response_to=request_id)
    assert post_response(client, encoded, relay_state).status_code == 302

    again = post_response(client, encoded, relay_state)
    stolen = post_response(Client(), encoded, relay_state)

    for response in (again, stolen):
        assert response.status_code == 403
        assert "already used" in refusal_text(response)
    refused = TrailEntry.objects.filter(action="user.sign_in_refused")
    assert [entry.target_label for entry in refused] == ["alice@example.com"] * 2


def test_a_new_response_around_a_used_assertion_id_is_refused(client, idp, sso):
    first, _ = start_login(client)
    second, _ = start_login(client)
    post_response(client, mint(idp, "alice@example.com", in_response_to=first, assertion_id="_a1"))

    response = post_response(
        client, mint(idp, "alice@example.com", in_response_to=second, assertion_id="_a1")
    )

    assert response.status_code == 403
    assert "already used" in refusal_text(response)


def test_an_idp_initiated_sign_in_is_accepted_when_allowed_but_only_once(client, idp):
    configure(idp, allow_idp_initiated=True)
    encoded = mint(idp, "bob@example.com")

    assert post_response(client, encoded).status_code == 302
    assert signed_in_user(client) == User.objects.get(username="bob@example.com")

    replay = post_response(Client(), encoded)
    assert replay.status_code == 403
    assert "already used" in refusal_text(replay)


def test_an_unsolicited_response_is_refused_when_idp_initiated_sign_in_is_off(client, idp, sso):
    response = post_response(client, mint(idp, "alice@example.com"))

    assert response.status_code == 403
    assert "did not ask for" in refusal_text(response)
    assert signed_in_user(client) is None


def test_an_answer_to_another_browsers_request_is_refused(idp, sso):
    victim, attacker = Client(), Client()
    request_id, relay_state = start_login(victim)
    encoded = mint(idp, "alice@example.com", in_response_to=request_id)

    response = post_response(attacker, encoded, relay_state)

    assert response.status_code == 403
    assert "not started in this browser" in refusal_text(response)
    # A browser that kept the cookie back (another site over plain HTTP) is told why.
    assert "same host name" in response.content.decode()
    assert signed_in_user(attacker) is None
    # The browser that asked can still use it.
    assert post_response(victim, encoded, relay_state).status_code == 302


def test_a_victims_assertion_rewrapped_as_an_answer_to_this_browser_is_refused(idp, sso):
    """The assertion is signed, the response around it is not: an attacker who caught the
    victim's assertion puts it in a response that answers the attacker's own request."""
    victim, attacker = Client(), Client()
    victims_request, _ = start_login(victim)
    attackers_request, relay_state = start_login(attacker)

    def answer_the_attacker(xml: str) -> str:  # the response's InResponseTo, not the assertion's
        return xml.replace(
            f'InResponseTo="{victims_request}"', f'InResponseTo="{attackers_request}"', 1
        )

    encoded = mint(
        idp, "alice@example.com", in_response_to=victims_request, tamper=answer_the_attacker
    )
    response = post_response(attacker, encoded, relay_state)

    assert response.status_code == 403
    # The toolkit takes a bearer confirmation only if it answers the response's request.
    assert "subject confirmation does not fit this sign-in" in refusal_text(response)
    assert signed_in_user(attacker) is None


def test_an_answer_to_a_request_nobody_sent_is_refused(client, idp, sso):
    start_login(client)
    response = post_response(client, mint(idp, "alice@example.com", in_response_to="_made_up"))

    assert response.status_code == 403
    assert "not started in this browser" in refusal_text(response)
    # This browser did send its cookie: no hint about host names.
    assert "same host name" not in response.content.decode()


def test_a_person_in_no_mapped_group_is_refused_without_a_default_role(client, idp, sso):
    idp.add_user(SandboxUser("dave@example.com", "Dave", "Sales", ["sales"]))

    response = sign_in(client, idp, "dave@example.com")

    assert response.status_code == 403
    assert "none of the person" in refusal_text(response)
    assert not User.objects.exists()
    refused = TrailEntry.objects.get(action="user.sign_in_refused")
    assert refused.target_label == "dave@example.com"


def test_a_response_without_an_email_is_refused(client, idp, sso):
    request_id, relay_state = start_login(client)
    encoded = mint(
        idp,
        "erin",
        in_response_to=request_id,
        name_id_format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        attributes={"groups": ["accesshive-viewers"]},
    )

    response = post_response(client, encoded, relay_state)

    assert response.status_code == 403
    assert "sent no email address" in refusal_text(response)


def test_a_deactivated_user_is_refused(client, idp, sso):
    User.objects.create_user("alice@example.com", "alice@example.com", is_active=False)

    response = sign_in(client, idp, "alice@example.com")

    assert response.status_code == 403
    assert "deactivated" in refusal_text(response)


def test_garbage_is_refused_as_unreadable(client, idp, sso):
    response = post_response(client, "not base64 at all!")

    assert response.status_code == 400
    assert "not a readable SAML response" in refusal_text(response)


def test_sign_in_is_refused_while_sso_is_off(client, idp):
    configure(idp, enabled=False)

    assert client.get(reverse("sso:login")).status_code == 404
    response = post_response(client, mint(idp, "alice@example.com"))
    assert response.status_code == 404
    assert "not turned on" in refusal_text(response)


# --- where the browser goes after signing in ------------------------------------------------


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)", "http:/\\evil"]
)
def test_an_off_site_next_is_never_followed(client, idp, sso, target):
    default = resolve_url(settings.LOGIN_REDIRECT_URL)
    request_id, relay_state = start_login(client, target)
    assert relay_state == default

    # An IdP (or an attacker) sending the off-site target back as RelayState.
    response = post_response(
        client, mint(idp, "alice@example.com", in_response_to=request_id), target
    )

    assert response.status_code == 302
    assert response["Location"] == default


def test_several_sign_ins_may_be_outstanding_in_one_browser(client, idp, sso):
    first, _ = start_login(client)
    second, _ = start_login(client)

    assert (
        post_response(client, mint(idp, "alice@example.com", in_response_to=first)).status_code
        == 302
    )
    assert (
        post_response(client, mint(idp, "alice@example.com", in_response_to=second)).status_code
        == 302
    )
    # Each request is answered once.
    third = post_response(client, mint(idp, "alice@example.com", in_response_to=first))
    assert third.status_code == 403


def test_sign_in_starts_with_an_authn_request_to_the_idp(client, idp, sso):
    response = client.get(reverse("sso:login"), {"next": "/audit/?platform=2"})

    assert response.status_code == 302
    assert response["Location"].startswith(idp.sso_url + "?")
    params = redirect_query(response["Location"])
    assert params["RelayState"] == "/audit/?platform=2"
    request = etree.fromstring(decode_redirect_message(params["SAMLRequest"]).encode())
    assert request.get("AssertionConsumerServiceURL") == ACS_URL
    # How the person proves who they are is the IdP's policy: asking for a password exactly
    # fails at IdPs that sign in with MFA or passkeys.
    assert request.find(f"{{{NS_SAMLP}}}RequestedAuthnContext") is None
    assert "SigAlg" not in params  # no SP key yet
    assert request.get("Destination") == idp.sso_url
    assert request.findtext("{urn:oasis:names:tc:SAML:2.0:assertion}Issuer") == SP_ENTITY_ID
    cookie = response.cookies["accesshive_saml_requests"]
    assert cookie["httponly"]
    assert cookie["path"] == "/sso/saml"


# --- single logout --------------------------------------------------------------------------


def test_signing_out_ends_the_session_here_and_at_the_idp(client, idp, sso):
    sign_in(client, idp, "alice@example.com")
    assert len(idp.sessions()) == 1

    response = client.post(reverse("sso:logout"))

    assert response.status_code == 302
    assert response["Location"].startswith(idp.slo_url + "?")
    assert signed_in_user(client) is None
    request = decode_redirect_message(redirect_query(response["Location"])["SAMLRequest"])
    # The NameID as the IdP issued it, format included: how the IdP finds the session.
    name_id = etree.fromstring(request.encode()).find(f"{{{NS_SAML}}}NameID")
    assert (name_id.text, name_id.get("Format")) == ("alice@example.com", EMAIL_FORMAT)
    assert idp.sessions()[0].session_index in request

    reply = idp.handle("GET", response["Location"].removeprefix(idp.base_url[:-1]), {})
    assert reply.status == 302
    assert reply.location.startswith(SLS_URL + "?")
    assert idp.sessions() == []

    back = client.get(reply.location.removeprefix(SERVER), follow=True)
    assert back.redirect_chain[-1] == (reverse("login"), 302)
    assert "signed out of AccessHive and of your identity provider" in back.content.decode()


@pytest.mark.parametrize("qualified", [True, False], ids=["qualified", "unqualified"])
def test_the_logout_request_names_the_person_as_the_idp_did(client, idp, sso, qualified):
    """An IdP finds the session by the NameID exactly as it issued it, qualifiers included."""
    qualifiers = (idp.entity_id, SP_ENTITY_ID) if qualified else (None, None)
    request_id, relay_state = start_login(client)
    encoded = mint(
        idp,
        "alice@example.com",
        in_response_to=request_id,
        name_qualifier=qualifiers[0] or "",
        sp_name_qualifier=qualifiers[1] or "",
        session_index="_session-1",
    )
    assert post_response(client, encoded, relay_state).status_code == 302

    response = client.post(reverse("sso:logout"))

    request = decode_redirect_message(redirect_query(response["Location"])["SAMLRequest"])
    root = etree.fromstring(request.encode())
    name_id = root.find(f"{{{NS_SAML}}}NameID")
    assert (name_id.text, name_id.get("Format")) == ("alice@example.com", EMAIL_FORMAT)
    assert (name_id.get("NameQualifier"), name_id.get("SPNameQualifier")) == qualifiers
    assert [node.text for node in root.findall(f"{{{NS_SAMLP}}}SessionIndex")] == ["_session-1"]


def test_the_idp_signing_the_person_out_ends_their_session(client, idp, sso):
    sign_in(client, idp, "alice@example.com")

    response = client.get(
        idp.logout_request_url("alice@example.com", SP_ENTITY_ID).removeprefix(SERVER)
    )

    assert signed_in_user(client) is None
    assert response.status_code == 302
    assert response["Location"].startswith(idp.slo_url + "?")
    reply = idp.handle("GET", response["Location"].removeprefix(idp.base_url[:-1]), {})
    assert reply.status == 200
    [answer] = idp.logout_responses()
    assert "urn:oasis:names:tc:SAML:2.0:status:Success" in answer


def _verifies(location: str, certificate_pem: str) -> bool:
    """Whether the HTTP-Redirect signature of ``location`` verifies with the certificate, over
    its query as sent (SAMLRequest or SAMLResponse, RelayState, SigAlg)."""
    parts = location.split("?", 1)[1].split("&")
    [signature] = [part.removeprefix("Signature=") for part in parts if "Signature=" in part]
    signed = "&".join(part for part in parts if "Signature=" not in part)
    params = redirect_query(location)
    assert params["SigAlg"] == OneLogin_Saml2_Constants.RSA_SHA256
    return bool(
        OneLogin_Saml2_Utils.validate_binary_sign(
            signed,
            base64.b64decode(unquote_plus(signature)),
            certificate_pem,
            OneLogin_Saml2_Constants.RSA_SHA256,
        )
    )


def test_with_an_sp_key_the_logout_messages_to_the_idp_are_signed(client, idp):
    """IdPs such as ADFS refuse unsigned logout messages from an SP that has a key."""
    config = generate_sp_key(actor=None)
    configure(idp)
    sign_in(client, idp, "alice@example.com")

    started = client.post(reverse("sso:logout"))

    assert started["Location"].startswith(idp.slo_url + "?")
    assert _verifies(started["Location"], config.sp_certificate)
    assert not _verifies(started["Location"], saml_support.other_key().certificate_pem)

    again = Client()
    sign_in(again, idp, "alice@example.com")
    answered = again.get(
        idp.logout_request_url("alice@example.com", SP_ENTITY_ID).removeprefix(SERVER)
    )

    assert signed_in_user(again) is None
    assert answered["Location"].startswith(idp.slo_url + "?")
    assert "SAMLResponse" in redirect_query(answered["Location"])
    assert _verifies(answered["Location"], config.sp_certificate)


def test_the_idp_signing_someone_else_out_leaves_this_session(client, idp, sso):
    sign_in(client, idp, "alice@example.com")

    response = client.get(
        idp.logout_request_url("bob@example.com", SP_ENTITY_ID).removeprefix(SERVER)
    )

    assert response.status_code == 302
    assert signed_in_user(client) == User.objects.get(username="alice@example.com")


def test_a_logout_request_with_a_forged_signature_is_refused(client, idp, sso):
    sign_in(client, idp, "alice@example.com")
    genuine = idp.signing_key
    idp.signing_key = saml_support.other_key()
    try:
        url = idp.logout_request_url("alice@example.com", SP_ENTITY_ID)
    finally:
        idp.signing_key = genuine

    response = client.get(url.removeprefix(SERVER))

    assert response.status_code == 400
    assert "signature did not verify" in response.content.decode()
    assert signed_in_user(client) is not None


def test_a_logout_request_signed_over_its_query_as_sent_is_accepted(client, idp, sso):
    """ADFS escapes the query string in lower case and signs it as sent: the signature is
    checked over the query exactly as it came, not as Python would encode it again."""
    sign_in(client, idp, "alice@example.com")
    unsigned = idp.logout_request_url("alice@example.com", SP_ENTITY_ID, signed=False)

    def escaped(value: str) -> str:
        return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(value, safe=""))

    query = (
        f"SAMLRequest={escaped(redirect_query(unsigned)['SAMLRequest'])}"
        f"&SigAlg={escaped(OneLogin_Saml2_Constants.RSA_SHA256)}"
    )
    signature = base64.b64encode(idp.signing_key.sign(query.encode())).decode()

    response = client.get(f"{reverse('sso:sls')}?{query}&Signature={escaped(signature)}")

    assert response.status_code == 302
    assert response["Location"].startswith(idp.slo_url + "?")
    assert signed_in_user(client) is None


def test_an_unsigned_logout_request_needs_this_sessions_index(client, idp, sso):
    sign_in(client, idp, "alice@example.com")
    guessed = idp.logout_request_url(
        "alice@example.com", SP_ENTITY_ID, signed=False, with_session_index=False
    )

    # Knowing someone's email is not enough to sign them out.
    assert client.get(guessed.removeprefix(SERVER)).status_code == 302
    assert signed_in_user(client) is not None

    sign_in(client, idp, "alice@example.com")
    from_the_idp = idp.logout_request_url("alice@example.com", SP_ENTITY_ID, signed=False)
    assert client.get(from_the_idp.removeprefix(SERVER)).status_code == 302
    assert signed_in_user(client) is None


def test_a_signed_logout_request_needs_no_session_index(client, idp, sso):
    """An IdP that signs its LogoutRequest but keeps no SessionIndex still signs people out:
    the signature, checked against the IdP's certificate, is the proof."""
    sign_in(client, idp, "alice@example.com")
    signed = idp.logout_request_url("alice@example.com", SP_ENTITY_ID, with_session_index=False)

    assert client.get(signed.removeprefix(SERVER)).status_code == 302
    assert signed_in_user(client) is None


def test_a_logout_response_this_browser_did_not_ask_for_is_refused(client, idp, sso):
    sign_in(client, idp, "alice@example.com")
    other = Client()
    sign_in(other, idp, "bob@example.com")
    started = other.post(reverse("sso:logout"))["Location"]
    answer = idp.handle("GET", started.removeprefix(idp.base_url[:-1]), {})

    # The IdP's answer to the other browser's LogoutRequest, brought to this one.
    response = client.get(answer.location.removeprefix(SERVER))

    assert response.status_code == 400
    assert "did not ask the identity provider" in response.content.decode()
    assert signed_in_user(client) is not None


def unsigned_sls_path(parameter: str, xml: str) -> str:
    """A logout message to the SLS over HTTP-Redirect, unsigned: what any site can send."""
    encoded = OneLogin_Saml2_Utils.deflate_and_base64_encode(xml)
    return f"{reverse('sso:sls')}?{parameter}={quote_plus(encoded)}"


def refused_logout_reason(response: Any) -> str:
    assert response.status_code == 400
    text = html.unescape(response.content.decode())
    assert "Sign-out message refused" in text
    return text.split("sign-out message because ", 1)[1].split(".</p>", 1)[0]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "there is no SAML logout message in this request"),
        ("SAMLRequest=bm90IGRlZmxhdGVk", "the identity provider's logout request is not readable"),
    ],
)
def test_an_sls_visit_without_a_readable_logout_request_signs_no_one_out(
    client, idp, sso, query, reason
):
    sign_in(client, idp, "alice@example.com")

    response = client.get(f"{reverse('sso:sls')}?{query}")

    assert refused_logout_reason(response) == reason
    assert "You are still signed in to AccessHive." in response.content.decode()
    assert signed_in_user(client) is not None


def test_an_unreadable_logout_response_is_refused(client, idp, sso):
    sign_in(client, idp, "alice@example.com")
    client.post(reverse("sso:logout"))

    response = client.get(f"{reverse('sso:sls')}?SAMLResponse=bm90IGRlZmxhdGVk")

    assert refused_logout_reason(response) == (
        "the identity provider's logout message is not readable"
    )


def test_the_sls_refuses_every_message_while_single_sign_on_is_not_configured(client):
    response = client.get(f"{reverse('sso:sls')}?SAMLRequest=bm90IGRlZmxhdGVk")

    assert refused_logout_reason(response).startswith("single sign-on is not completely configured")


def test_a_logout_request_for_another_sls_is_refused_as_failing_its_checks(client, idp, sso):
    sign_in(client, idp, "alice@example.com")
    xml = (
        f'<samlp:LogoutRequest xmlns:samlp="{NS_SAMLP}" xmlns:saml="{NS_SAML}" ID="_other" '
        f'Version="2.0" IssueInstant="{saml_time(dt.datetime.now(dt.UTC))}" '
        'Destination="https://elsewhere.example/sls">'
        f"<saml:Issuer>{idp.entity_id}</saml:Issuer>"
        f'<saml:NameID Format="{EMAIL_FORMAT}">alice@example.com</saml:NameID>'
        "</samlp:LogoutRequest>"
    )

    response = client.get(unsigned_sls_path("SAMLRequest", xml))

    assert refused_logout_reason(response) == (
        "the logout message did not pass its checks (issuer, destination, request or expiry)"
    )
    assert signed_in_user(client) is not None


def test_an_idp_that_could_not_sign_the_person_out_is_named(client, idp, sso):
    sign_in(client, idp, "alice@example.com")
    started = client.post(reverse("sso:logout"))["Location"]
    request = decode_redirect_message(redirect_query(started)["SAMLRequest"])
    request_id = etree.fromstring(request.encode()).get("ID")
    xml = (
        f'<samlp:LogoutResponse xmlns:samlp="{NS_SAMLP}" xmlns:saml="{NS_SAML}" ID="_answer" '
        f'Version="2.0" IssueInstant="{saml_time(dt.datetime.now(dt.UTC))}" '
        f'Destination="{SLS_URL}" InResponseTo="{request_id}">'
        f"<saml:Issuer>{idp.entity_id}</saml:Issuer>"
        '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"/>'
        "</samlp:Status></samlp:LogoutResponse>"
    )

    response = client.get(unsigned_sls_path("SAMLResponse", xml))

    assert refused_logout_reason(response) == (
        "the identity provider reported that it could not sign the person out"
    )


def test_a_logout_response_to_another_browsers_request_is_refused(client, idp, sso):
    """Both browsers signed out; this one brings the IdP's answer to the other's request:
    its InResponseTo is not this browser's request, so it is not taken as an answer."""
    sign_in(client, idp, "alice@example.com")
    other = Client()
    sign_in(other, idp, "bob@example.com")
    client.post(reverse("sso:logout"))
    started = other.post(reverse("sso:logout"))["Location"]
    answer = idp.handle("GET", started.removeprefix(idp.base_url[:-1]), {})

    response = client.get(answer.location.removeprefix(SERVER))

    assert refused_logout_reason(response) == (
        "the logout message did not pass its checks (issuer, destination, request or expiry)"
    )


def test_signing_out_a_password_session_stays_local(client, idp, sso):
    client.force_login(User.objects.create_user("ops", "ops@example.com", "pw"))

    response = client.post(reverse("sso:logout"))

    assert response["Location"] == reverse("login")
    assert signed_in_user(client) is None


def test_an_admin_sees_the_trusted_certificates_subject_expiry_and_fingerprint(client, idp, sso):
    """What an admin checks before the IdP's certificate expires or is replaced."""
    certificate = x509.load_pem_x509_certificate(idp.signing_key.certificate_pem.encode())
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))

    page = client.get(reverse("sso:settings")).content.decode()

    fingerprint = certificate.fingerprint(hashes.SHA256()).hex(":").upper()
    assert (
        f"<tr><td>CN=AccessHive sandbox IdP</td>"
        f"<td>{certificate.not_valid_after_utc:%Y-%m-%d %H:%M}</td>"
        f"<td><code>{fingerprint}</code></td></tr>"
    ) in page


def test_an_idp_rolling_its_signing_key_over_keeps_people_signing_in(client):
    """The IdP's metadata publishes its next key beside the current one (ADFS, Entra ID):
    AccessHive trusts both, so people sign in before the IdP switches keys and after, while
    a key it never published is still refused."""
    current, upcoming = saml_support.idp_key(), saml_support.other_key()
    idp = SamlIdpSandbox(signing_key=current, next_signing_key=upcoming)
    idp.register_service_provider(ServiceProvider(SP_ENTITY_ID, ACS_URL, SLS_URL))
    try:
        config = configure(idp)
        assert saml.split_certificates(config.idp_x509_cert) == [
            current.certificate_pem.strip(),
            upcoming.certificate_pem.strip(),
        ]

        assert sign_in(client, idp, "alice@example.com").status_code == 302
        idp.roll_over()
        after = Client()
        assert sign_in(after, idp, "alice@example.com").status_code == 302
        assert signed_in_user(after) == User.objects.get(username="alice@example.com")

        stranger = Client()
        request_id, relay_state = start_login(stranger)
        forged = mint(
            idp,
            "alice@example.com",
            in_response_to=request_id,
            signing_key=SigningKey.generate("Not the IdP either"),
        )
        assert post_response(stranger, forged, relay_state).status_code == 403
        assert signed_in_user(stranger) is None
        refused = TrailEntry.objects.get(action="user.sign_in_refused")
        assert refused.detail["code"] == "bad_signature"
    finally:
        idp.shutdown()


# --- metadata ---------------------------------------------------------------------------------


def test_the_sp_metadata_is_public_and_valid(client):
    response = client.get(reverse("sso:metadata"))

    assert response.status_code == 200
    xml = response.content.decode()
    toolkit = OneLogin_Saml2_Settings(
        {"sp": {"entityId": "x", "assertionConsumerService": {"url": "http://x.example/"}}},
        sp_validation_only=True,
    )
    assert toolkit.validate_metadata(xml) == []
    md = "urn:oasis:names:tc:SAML:2.0:metadata"
    root = etree.fromstring(response.content)
    assert root.get("entityID") == SP_ENTITY_ID
    descriptor = root.find(f"{{{md}}}SPSSODescriptor")
    assert descriptor.get("WantAssertionsSigned") == "true"
    # No SP key yet: no certificate offered, no request promised signed.
    assert descriptor.findall(f"{{{md}}}KeyDescriptor") == []
    assert descriptor.get("AuthnRequestsSigned") == "false"
    acs = descriptor.find(f"{{{md}}}AssertionConsumerService")
    assert (acs.get("Location"), acs.get("Binding")) == (
        ACS_URL,
        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
    )
    assert descriptor.find(f"{{{md}}}SingleLogoutService").get("Location") == SLS_URL


def test_a_sign_in_over_https_behind_a_proxy_is_checked_against_the_https_urls(
    client, idp, settings
):
    """Behind a TLS-terminating proxy the response is addressed to https://: AccessHive's
    own URLs must be https too, or every honest response fails its destination check."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # As a proxy forwards it: the Host header, and the scheme the browser used.
    client.defaults.update(HTTP_HOST="testserver", HTTP_X_FORWARDED_PROTO="https")
    configure(idp)
    request_id, relay_state = start_login(client)
    encoded = mint(
        idp,
        "alice@example.com",
        in_response_to=request_id,
        acs_url=ACS_URL.replace("http://", "https://"),
        audience=SP_ENTITY_ID.replace("http://", "https://"),
    )

    response = post_response(client, encoded, relay_state)

    assert response.status_code == 302, response.content.decode()
    assert signed_in_user(client) == User.objects.get(username="alice@example.com")


def test_the_sp_urls_follow_the_proxy_settings(client, settings):
    settings.USE_X_FORWARDED_HOST = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["accesshive.example.com"]

    response = client.get(
        reverse("sso:metadata"),
        headers={"x-forwarded-host": "accesshive.example.com", "x-forwarded-proto": "https"},
    )

    root = etree.fromstring(response.content)
    assert root.get("entityID") == "https://accesshive.example.com/sso/saml/metadata/"
