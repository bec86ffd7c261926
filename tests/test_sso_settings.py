"""Settings > Single sign-on: who may see and change it, pasted IdP metadata (from the
sandbox IdP over HTTP), errors named by field with nothing saved, CSRF, the trail, the
sign-in page's SSO button, and `manage.py setup_sandbox_sso`."""

import re
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.services import set_role
from sandbox.saml_idp import SamlIdpSandbox
from sso.models import SamlSettings
from tests import saml_support
from tests.saml_support import ACS_URL, SP_ENTITY_ID, configure
from trail.models import TrailEntry

pytestmark = pytest.mark.django_db

URL = reverse("sso:settings")


@pytest.fixture
def served_idp() -> Any:
    server = saml_support.new_idp().serve_in_thread()
    yield server
    server.shutdown()


def user_with_role(role: str) -> User:
    user = User.objects.create_user(role, f"{role}@example.com", "pw")
    set_role(user, role, actor=None)
    return user


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(user_with_role("admin"))
    return client


def form_data(**overrides: str) -> dict[str, str]:
    data = {
        "email_attribute": "email",
        "first_name_attribute": "firstName",
        "last_name_attribute": "lastName",
        "groups_attribute": "groups",
        "admin_groups": "",
        "operator_groups": "",
        "viewer_groups": "",
        "default_role": "",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_viewers_and_operators_may_not_see_or_change_it(client, role):
    client.force_login(user_with_role(role))

    assert client.get(URL).status_code == 403
    assert client.post(URL, form_data(enabled="on")).status_code == 403
    assert not SamlSettings.objects.exists()


def test_anonymous_people_are_sent_to_sign_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_an_admin_sees_what_to_give_the_idp(admin_client):
    response = admin_client.get(URL)

    assert response.status_code == 200
    text = response.content.decode()
    assert SP_ENTITY_ID in text
    assert ACS_URL in text
    assert "Off" in text
    # Looking writes nothing.
    assert not SamlSettings.objects.exists()


def test_an_admin_saves_the_idp_metadata_pasted_from_the_sandbox(admin_client, served_idp):
    metadata = requests.get(served_idp.metadata_url, timeout=5).text

    response = admin_client.post(
        URL,
        form_data(
            enabled="on",
            idp_metadata=metadata,
            admin_groups="accesshive-admins\n\n accesshive-admins \nIT Admins",
            viewer_groups="accesshive-viewers",
        ),
    )

    assert response.status_code == 302
    config = SamlSettings.objects.get()
    assert config.is_ready
    assert (config.idp_entity_id, config.idp_sso_url, config.idp_slo_url) == (
        served_idp.entity_id,
        served_idp.sso_url,
        served_idp.slo_url,
    )
    assert config.idp_x509_cert.strip() == served_idp.signing_key.certificate_pem.strip()
    assert config.admin_groups == ["accesshive-admins", "IT Admins"]
    assert (config.operator_groups, config.viewer_groups) == ([], ["accesshive-viewers"])
    assert config.updated_by == User.objects.get(username="admin")
    changed = TrailEntry.objects.get(action="sso.settings_changed")
    assert changed.actor == config.updated_by
    assert changed.source == "web"
    assert set(changed.detail["changed"]) == {
        "enabled",
        "idp_entity_id",
        "idp_sso_url",
        "idp_slo_url",
        "idp_x509_cert",
        "admin_groups",
        "viewer_groups",
    }
    page = admin_client.get(URL).content.decode()
    assert "CN=AccessHive sandbox IdP" in page
    assert "On" in page


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ("<md:EntityDescriptor", "not well-formed XML"),
        (
            '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
            'entityID="https://sp.example/"><md:SPSSODescriptor '
            'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"/>'
            "</md:EntityDescriptor>",
            "not the SAML metadata of an identity provider",
        ),
        ('<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>', "not well-formed XML"),
    ],
    ids=["truncated", "an-sp-not-an-idp", "entities"],
)
def test_bad_metadata_is_an_error_on_its_field_and_saves_nothing(admin_client, metadata, message):
    response = admin_client.post(
        URL, form_data(enabled="on", idp_metadata=metadata, admin_groups="admins")
    )

    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors["idp_metadata"])
    assert 'id="field-idp_metadata"' in response.content.decode()
    assert not SamlSettings.objects.exists()
    assert not TrailEntry.objects.filter(action="sso.settings_changed").exists()


def test_metadata_without_a_redirect_sign_in_url_is_refused(admin_client, served_idp):
    metadata = served_idp.metadata_xml().replace("HTTP-Redirect", "HTTP-Artifact")

    response = admin_client.post(URL, form_data(idp_metadata=metadata))

    assert response.status_code == 400
    assert "HTTP-Redirect" in " ".join(response.context["form"].errors["idp_metadata"])


def test_metadata_without_a_signing_certificate_is_refused(admin_client, served_idp):
    metadata = re.sub(
        "<md:KeyDescriptor.*?</md:KeyDescriptor>", "", served_idp.metadata_xml(), flags=re.S
    )

    response = admin_client.post(URL, form_data(enabled="on", idp_metadata=metadata))

    assert response.status_code == 400
    errors = response.context["form"].errors["idp_metadata"]
    assert errors == ["The metadata has no signing certificate."]
    assert not SamlSettings.objects.exists()


def test_metadata_without_a_sign_out_url_leaves_signing_out_local(admin_client, served_idp):
    metadata = re.sub("<md:SingleLogoutService[^>]*/>", "", served_idp.metadata_xml())

    response = admin_client.post(
        URL, form_data(enabled="on", idp_metadata=metadata, admin_groups="admins")
    )

    assert response.status_code == 302
    config = SamlSettings.objects.get()
    assert (config.idp_sso_url, config.idp_slo_url) == (served_idp.sso_url, "")


def test_the_metadata_of_an_idp_rolling_its_key_over_is_saved_with_both_certificates(
    admin_client,
):
    """IdPs publish the key they will sign with next beside the current one; metadata
    carries each as bare base64, so they must be read one by one."""
    current, upcoming = saml_support.idp_key(), saml_support.other_key()
    idp = SamlIdpSandbox(signing_key=current, next_signing_key=upcoming)
    try:
        metadata = idp.metadata_xml()
    finally:
        idp.shutdown()

    response = admin_client.post(
        URL, form_data(enabled="on", idp_metadata=metadata, admin_groups="admins")
    )

    assert response.status_code == 302, response.context["form"].errors
    config = SamlSettings.objects.get()
    assert config.idp_x509_cert == (
        current.certificate_pem.strip() + "\n" + upcoming.certificate_pem.strip()
    )
    page = admin_client.get(URL).content.decode()
    assert "CN=AccessHive sandbox IdP" in page
    assert "CN=Not the IdP" in page


def test_several_certificates_may_be_pasted_one_after_the_other(admin_client, served_idp):
    current, upcoming = saml_support.idp_key(), saml_support.other_key()

    response = admin_client.post(
        URL,
        form_data(
            idp_entity_id=served_idp.entity_id,
            idp_sso_url=served_idp.sso_url,
            idp_x509_cert=f"  {current.certificate_pem}\n\n{upcoming.certificate_pem}\n",
        ),
    )

    assert response.status_code == 302, response.context["form"].errors
    assert (
        SamlSettings.objects.get().idp_x509_cert
        == (current.certificate_pem + upcoming.certificate_pem).strip()
    )


def test_turning_it_on_without_a_certificate_is_refused(admin_client, served_idp):
    response = admin_client.post(
        URL,
        form_data(
            enabled="on",
            idp_entity_id=served_idp.entity_id,
            idp_sso_url=served_idp.sso_url,
            idp_x509_cert="  \n",
            admin_groups="admins",
        ),
    )

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == ["idp_x509_cert"]
    assert "Required while single sign-on is on" in errors["idp_x509_cert"][0]
    assert not SamlSettings.objects.exists()


def test_turning_it_on_needs_the_idp_and_someone_who_could_sign_in(admin_client):
    response = admin_client.post(URL, form_data(enabled="on", idp_x509_cert="hello"))

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "Required while single sign-on is on" in errors["idp_entity_id"][0]
    assert "Required while single sign-on is on" in errors["idp_sso_url"][0]
    assert "not an X.509 certificate" in errors["idp_x509_cert"][0]
    assert "Nobody could sign in" in errors["__all__"][0]
    assert not SamlSettings.objects.exists()


def test_a_private_key_pasted_as_the_certificate_is_refused(admin_client):
    key = saml_support.idp_key().private_key_pem

    response = admin_client.post(URL, form_data(idp_x509_cert=key))

    assert response.status_code == 400
    assert "private key" in response.context["form"].errors["idp_x509_cert"][0]
    assert key not in response.content.decode()


def test_the_fields_may_be_entered_one_by_one(admin_client, served_idp):
    response = admin_client.post(
        URL,
        form_data(
            enabled="on",
            idp_entity_id=served_idp.entity_id,
            idp_sso_url=served_idp.sso_url,
            idp_x509_cert=served_idp.signing_key.certificate_base64,
            default_role="viewer",
            allow_idp_initiated="on",
        ),
    )

    assert response.status_code == 302
    config = SamlSettings.objects.get()
    assert config.is_ready
    assert config.idp_x509_cert.startswith("-----BEGIN CERTIFICATE-----")
    assert (config.default_role, config.allow_idp_initiated, config.idp_slo_url) == (
        "viewer",
        True,
        "",
    )


def test_saving_without_a_csrf_token_is_refused(served_idp):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user_with_role("admin"))

    response = browser.post(
        URL, form_data(enabled="on", idp_metadata=served_idp.metadata_xml(), admin_groups="a")
    )

    assert response.status_code == 403
    assert not SamlSettings.objects.exists()


def test_the_sign_in_page_offers_sso_once_it_is_configured(client, served_idp):
    page = client.get(reverse("login")).content.decode()
    assert "Sign in with SSO" not in page

    configure(served_idp)

    page = client.get(reverse("login"), {"next": "/audit/"}).content.decode()
    assert "Sign in with SSO" in page
    assert f'action="{reverse("sso:login")}"' in page
    assert 'name="next" value="/audit/"' in page
    # Password sign-in stays, for when the IdP is down.
    assert 'name="password"' in page


def test_setup_sandbox_sso_points_sign_in_at_the_sandbox_idp(served_idp):
    call_command("setup_sandbox_sso", "--idp-url", served_idp.base_url)
    call_command("setup_sandbox_sso", "--idp-url", served_idp.base_url)

    config = SamlSettings.objects.get()
    assert config.is_ready
    assert config.idp_entity_id == served_idp.entity_id
    assert config.idp_slo_url == served_idp.slo_url
    assert (config.admin_groups, config.operator_groups, config.viewer_groups) == (
        ["accesshive-admins"],
        ["accesshive-operators"],
        ["accesshive-viewers"],
    )
    [changed] = TrailEntry.objects.filter(action="sso.settings_changed")
    assert changed.source == "command"
