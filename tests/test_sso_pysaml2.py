"""SAML sign-in with pysaml2 as an independent identity provider: signed assertions, a
signed Response alone (refused unless the admin accepts it), AccessHive's SP key signing
its AuthnRequests and metadata, and encrypted assertions."""

import html
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from lxml import etree  # type: ignore[import-untyped]

from accounts.services import role_of
from sso import saml
from sso.models import SamlSettings
from sso.services import SP_KEY_PATH, generate_sp_key, get_settings, update_settings
from tests import saml_support
from tests.pysaml2_idp import SSO_URL, Pysaml2Idp
from tests.saml_support import GROUP_MAPPING, post_response
from trail.models import TrailEntry
from vault.backends import get_vault

pytestmark = pytest.mark.django_db

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
ENTITY_DESCRIPTOR = f"{MD}:EntityDescriptor"
ADA = "ada@example.com"

MakeIdp = Callable[..., Pysaml2Idp]


@pytest.fixture
def make_idp(client: Client) -> Iterator[MakeIdp]:
    """make_idp(want_signed_requests=..., **settings): a pysaml2 IdP reading our metadata as
    it is now, and SSO configured from the IdP's own metadata."""
    made: list[Pysaml2Idp] = []

    def make(*, want_signed_requests: bool = False, **overrides: Any) -> Pysaml2Idp:
        sp_metadata = client.get(reverse("sso:metadata")).content.decode()
        idp = Pysaml2Idp(
            saml_support.idp_key(), sp_metadata, want_signed_requests=want_signed_requests
        )
        made.append(idp)
        metadata = saml.parse_idp_metadata(idp.metadata_xml())
        update_settings(
            actor=None,
            enabled=True,
            idp_entity_id=metadata.entity_id,
            idp_sso_url=metadata.sso_url,
            idp_slo_url=metadata.slo_url,
            idp_x509_cert=metadata.certificates,
            **{**GROUP_MAPPING, **overrides},
        )
        return idp

    yield make
    for idp in made:
        idp.close()


def admin_client() -> Client:
    browser = Client()
    browser.force_login(User.objects.create_superuser("root", "root@example.com", "x" * 20))
    return browser


def start(client: Client) -> str:
    response = client.get(reverse("sso:login"), {"next": "/identities/"})
    assert response.status_code == 302
    location = str(response["Location"])
    assert location.startswith(SSO_URL)
    return location


def signed_in(client: Client) -> User | None:
    user_id = client.session.get(SESSION_KEY)
    return User.objects.get(pk=user_id) if user_id else None


def sign_in(client: Client, idp: Pysaml2Idp, **answer: Any) -> Any:
    request, relay_state = idp.read_request(start(client))
    encoded = idp.respond(request, ADA, groups=("accesshive-admins",), **answer)
    return post_response(client, encoded, relay_state)


def test_a_pysaml2_signed_assertion_signs_in(client, make_idp):
    idp = make_idp()

    response = sign_in(client, idp)

    assert response.status_code == 302, response.content.decode()
    assert response["Location"] == "/identities/"
    user = signed_in(client)
    assert user is not None
    assert user.email == ADA
    assert role_of(user) == "admin"


def test_a_response_signed_only_around_the_assertion_is_refused_by_default(client, make_idp):
    idp = make_idp()

    response = sign_in(client, idp, sign_response=True, sign_assertion=False)

    assert response.status_code == 403
    assert "assertion was not signed" in response.content.decode()
    assert signed_in(client) is None


def test_a_signed_response_is_enough_once_the_admin_accepts_it(client, make_idp):
    idp = make_idp(accept_signed_response=True)

    assert sign_in(client, idp, sign_response=True, sign_assertion=False).status_code == 302
    assert signed_in(client) is not None
    # A signed assertion alone still does, and nothing unsigned ever does.
    other = Client()
    assert sign_in(other, idp).status_code == 302
    unsigned = Client()
    refused = sign_in(unsigned, idp, sign_response=False, sign_assertion=False)
    assert refused.status_code == 403
    assert signed_in(unsigned) is None


def test_the_sp_key_signs_authn_requests_and_the_metadata(client, make_idp):
    generate_sp_key(actor=None)
    config = get_settings()
    # The private key is in the vault only; the certificate is public.
    assert "PRIVATE KEY" not in config.sp_certificate
    assert "PRIVATE KEY" in get_vault().read("sso/sp-key")["private_key"]
    assert "PRIVATE KEY" not in config.sp_key_ref
    idp = make_idp(want_signed_requests=True)

    metadata = client.get(reverse("sso:metadata")).content.decode()
    assert idp.verifies_signature_of(metadata, config.sp_certificate, ENTITY_DESCRIPTOR)
    assert not idp.verifies_signature_of(
        metadata.replace(
            "AssertionConsumerService Binding", "AssertionConsumerService  Binding"
        ).replace("/sso/saml/acs/", "/evil/acs/"),
        config.sp_certificate,
        ENTITY_DESCRIPTOR,
    )
    descriptor = etree.fromstring(metadata.encode()).find(f"{{{MD}}}SPSSODescriptor")
    assert descriptor.get("AuthnRequestsSigned") == "true"
    uses = {key.get("use") for key in descriptor.findall(f"{{{MD}}}KeyDescriptor")}
    assert uses == {"signing", "encryption"}

    location = start(client)
    query = parse_qs(urlsplit(location).query)
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]
    # pysaml2 checks the signature against the certificate in our metadata, and signs in.
    request, relay_state = idp.read_request(location)
    encoded = idp.respond(request, ADA, groups=("accesshive-admins",))
    assert post_response(client, encoded, relay_state).status_code == 302
    assert signed_in(client) is not None

    # A request altered on the way (another RelayState) no longer verifies at the IdP.
    forged = {name: values[0] for name, values in query.items()}
    forged["RelayState"] = "https://evil.example/"
    with pytest.raises(Exception, match="Request was not signed correctly"):
        idp.read_request(f"{SSO_URL}?{urlencode(forged)}")
    page = admin_client().get(reverse("sso:settings")).content.decode()
    fingerprint = saml.describe_certificates(config.sp_certificate)[0].sha256
    assert fingerprint in page
    assert "PRIVATE KEY" not in page
    entry = TrailEntry.objects.filter(action="sso.settings_changed").first()
    assert entry is not None
    assert "sp_certificate" in str(entry.detail)


def test_the_sp_signs_with_the_key_version_its_settings_name(client, make_idp):
    """A newer version at the key's vault path (a key generation that stopped before the
    settings were saved, say) must not be used: it does not match the certificate the IdP
    was given, which would then refuse every signed request."""
    config = generate_sp_key(actor=None)
    stray = saml_support.other_key()
    get_vault().write(SP_KEY_PATH, {"private_key": stray.private_key_pem})
    idp = make_idp(want_signed_requests=True)

    metadata = client.get(reverse("sso:metadata")).content.decode()

    assert idp.verifies_signature_of(metadata, config.sp_certificate, ENTITY_DESCRIPTOR)
    request, relay_state = idp.read_request(start(client))  # pysaml2 checks the signature
    encoded = idp.respond(request, ADA, groups=("accesshive-admins",))
    assert post_response(client, encoded, relay_state).status_code == 302


def test_an_encrypted_assertion_is_decrypted_with_the_sp_key(client, make_idp):
    generate_sp_key(actor=None)
    idp = make_idp()
    certificate = SamlSettings.objects.get().sp_certificate

    response = sign_in(client, idp, encrypt_to=certificate)

    assert response.status_code == 302, response.content.decode()
    user = signed_in(client)
    assert user is not None
    assert user.email == ADA


def test_an_encrypted_assertion_without_an_sp_key_is_refused_with_what_to_do(client, make_idp):
    idp = make_idp()
    key = saml_support.other_key()  # the IdP encrypts to a certificate we hold no key for

    response = sign_in(client, idp, encrypt_to=key.certificate_pem)

    assert response.status_code == 403
    text = response.content.decode()
    assert "encrypted" in text
    assert "sso_generate_sp_key" in text
    assert signed_in(client) is None
    refused = TrailEntry.objects.get(action="user.sign_in_refused")
    assert refused.detail["code"] == "encryption"


def test_an_assertion_encrypted_to_a_replaced_sp_certificate_is_refused_with_what_to_do(
    client, make_idp
):
    """The SP key was generated anew after the IdP read our metadata: the IdP still encrypts
    to the old certificate, whose key is gone."""
    generate_sp_key(actor=None)
    idp = make_idp()
    old_certificate = SamlSettings.objects.get().sp_certificate
    generate_sp_key(actor=None)

    response = sign_in(client, idp, encrypt_to=old_certificate)

    assert response.status_code == 403
    text = html.unescape(response.content.decode())
    assert "encrypted to a certificate whose key AccessHive does not hold" in text
    assert "current metadata" in text
    assert signed_in(client) is None
    refused = TrailEntry.objects.get(action="user.sign_in_refused")
    assert refused.detail["code"] == "encryption"


def test_a_decrypted_assertion_failing_another_check_is_not_blamed_on_the_sp_key(client, make_idp):
    """The SP key decrypted the assertion, which then lacks its AuthnStatement: refused as an
    unencrypted one would be, not as "encrypted and AccessHive has no SP key"."""
    generate_sp_key(actor=None)
    idp = make_idp()
    certificate = SamlSettings.objects.get().sp_certificate

    response = sign_in(client, idp, encrypt_to=certificate, authn_statement=False)

    assert response.status_code == 400
    text = html.unescape(response.content.decode())
    assert "not a well-formed SAML 2.0 response" in text
    assert "SP key" not in text
    assert signed_in(client) is None
    refused = TrailEntry.objects.get(action="user.sign_in_refused")
    assert refused.detail["code"] == "malformed"
    # The same assertion unencrypted is refused for the same reason.
    unencrypted = Client()
    assert sign_in(unencrypted, idp, authn_statement=False).status_code == 400
    assert signed_in(unencrypted) is None
