"""A stored secret is sent only where it was entered for: moving a platform's API endpoint, an
identity provider's SCIM URL or an LDAP source's URL needs the secret again, and the trail
records where from and where to."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.services import set_role
from directory import services as directory_services
from directory.forms import LdapSourceForm
from directory.models import IdentitySource
from identities.models import Identity, IdentityProvider, IdentityType, Platform
from identities.services import IdentityInput, create_identity, create_identity_provider
from jobs.models import Job, JobStatus
from sandbox import google_directory
from tests.directory_support import gws_platform, running_gws
from tests.factories import make_user
from tests.inline import deliver
from trail.models import TrailEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    yield from running_gws()


@pytest.fixture
def elsewhere() -> Iterator[google_directory.GoogleDirectorySandbox]:
    """Another Google API on another port: where a changed endpoint would send the token."""
    yield from running_gws()


@pytest.fixture
def admin_client() -> Client:
    admin = make_user("chief")
    set_role(admin, "admin", actor=None)
    client = Client()
    client.force_login(admin)
    return client


def platform_data(platform: Platform, **changes: Any) -> dict[str, Any]:
    data = {
        "name": platform.name,
        "kind": platform.kind,
        "identity_provider": platform.identity_provider_id or "",
        "primary_domain": platform.primary_domain,
        "customer_id": platform.customer_id,
        "admin_email": platform.admin_email,
        "api_endpoint": platform.api_endpoint,
        "service_account_key": "",
    }
    return {**data, **changes}


def provision(platform: Platform, login: str) -> Job:
    identity = create_identity(
        IdentityInput(
            identity_type=IdentityType.SHARED_CREDENTIAL_MANAGED,
            platform=platform,
            display_name=login,
            login=login,
            given_name="Ops",
            family_name="Shared",
        ),
        actor=None,
    )
    job = Job.objects.get(subject_id=str(identity.pk))
    assert Identity.objects.filter(pk=identity.pk).exists()
    return deliver(job)


def logins(sandbox: google_directory.GoogleDirectorySandbox) -> set[str]:
    return {user["primaryEmail"] for user in sandbox.directory.users()}


def test_a_new_api_endpoint_without_the_key_is_refused_and_no_job_goes_there(
    gws: google_directory.GoogleDirectorySandbox,
    elsewhere: google_directory.GoogleDirectorySandbox,
    admin_client: Client,
) -> None:
    platform = gws_platform(gws)
    url = reverse("identities:platform-edit", args=[platform.pk])
    response = admin_client.post(url, platform_data(platform, api_endpoint=elsewhere.base_url))
    assert response.status_code == 200
    assert "would send the stored secret there: enter it again" in response.content.decode()
    platform.refresh_from_db()
    assert platform.api_endpoint == gws.base_url

    # The real handler, after the refused change: the token goes where the key was given for.
    assert provision(platform, "first@example.com").status == JobStatus.COMPLETED
    assert logins(gws) == {"first@example.com"}
    assert logins(elsewhere) == set()

    # With the new place's key, the move is made, on the trail, and jobs follow it.
    key = elsewhere.issue_key()
    moved = platform_data(platform, api_endpoint=elsewhere.base_url)
    moved["service_account_key"] = json.dumps(key)
    assert admin_client.post(url, moved).status_code == 302
    entry = TrailEntry.objects.filter(action="platform.changed").latest("id")
    assert entry.detail["moved"] == {
        "api_endpoint": {"from": gws.base_url, "to": elsewhere.base_url}
    }
    assert entry.detail["key_replaced"] is True
    assert provision(platform, "second@example.com").status == JobStatus.COMPLETED
    assert logins(elsewhere) == {"second@example.com"}
    assert logins(gws) == {"first@example.com"}


def test_renaming_a_platform_keeps_its_key_without_asking(
    gws: google_directory.GoogleDirectorySandbox, admin_client: Client
) -> None:
    platform = gws_platform(gws)
    url = reverse("identities:platform-edit", args=[platform.pk])
    assert admin_client.post(url, platform_data(platform, name="Renamed")).status_code == 302


def test_a_new_scim_url_needs_the_token_again(admin_client: Client) -> None:
    provider = create_identity_provider(
        name="IdP", scim_base_url="https://idp.example.com/scim/v2", token="t0ken"
    )
    url = reverse("identities:provider-edit", args=[provider.pk])
    data = {"name": "IdP", "scim_base_url": "https://user:pw@evil.example.net/scim/v2"}
    response = admin_client.post(url, data)
    assert "enter it again" in response.content.decode()
    provider.refresh_from_db()
    assert provider.scim_base_url == "https://idp.example.com/scim/v2"

    assert admin_client.post(url, {**data, "scim_token": "new-t0ken"}).status_code == 302
    assert IdentityProvider.objects.get().scim_base_url.endswith("evil.example.net/scim/v2")
    entry = TrailEntry.objects.filter(action="identity_provider.changed").latest("id")
    # Old and new address, without the user and password a URL can carry.
    assert entry.detail["moved"] == {
        "scim_base_url": {
            "from": "https://idp.example.com/scim/v2",
            "to": "https://evil.example.net/scim/v2",
        }
    }


def test_a_new_ldap_url_needs_the_bind_password_again() -> None:
    source = directory_services.create_source(
        name="Corp AD",
        kind=IdentitySource.Kind.LDAP,
        ldap_url="ldaps://dc1.example.com:636",
        ldap_bind_dn="cn=reader,dc=example,dc=com",
        bind_password="s3cret",
        ldap_base_dn="dc=example,dc=com",
    )
    unbound = LdapSourceForm(instance=source)
    data = {
        name: unbound[name].value()
        for name in unbound.fields
        if unbound[name].value() not in (None, False)
    }
    data["ldap_url"] = "ldaps://attacker.example.net:636"
    form = LdapSourceForm(data, instance=source)
    assert not form.is_valid()
    assert "enter it again" in str(form.errors["bind_password"])

    form = LdapSourceForm({**data, "bind_password": "s3cret"}, instance=source)
    assert form.is_valid(), form.errors
    form = LdapSourceForm({**data, "ldap_url": source.ldap_url}, instance=source)
    assert form.is_valid(), form.errors
