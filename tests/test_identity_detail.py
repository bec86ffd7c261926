"""An identity's page names what the identity is: a managed shared credential shows where its
generated password is in the vault, and not the placeholder names Google requires."""

import pytest
from django.test import Client
from django.urls import reverse

from identities.models import Identity, IdentityType
from tests import factories
from vault.backends import get_vault

pytestmark = pytest.mark.django_db

SECRET = "m4naged-Passw0rd-7e1"


@pytest.fixture
def managed() -> Identity:
    return factories.make_identity(
        identity_type=IdentityType.SHARED_CREDENTIAL_MANAGED,
        login="ops-shared@example.com",
        display_name="Ops shared mailbox",
        given_name="Ops shared mailbox",
        family_name="Shared",
    )


def page(client: Client, identity: Identity) -> str:
    client.force_login(factories.make_user("root", superuser=True))
    response = client.get(reverse("identities:detail", args=[identity.pk]))
    assert response.status_code == 200
    return str(response.content.decode())


def test_a_managed_credential_shows_its_vault_reference(client: Client, managed) -> None:
    get_vault().write(managed.password_path, {"password": "first"}, cas=0)
    ref = get_vault().write(managed.password_path, {"password": SECRET}, cas=1)
    html = page(client, managed)
    assert f"stored in the vault: <code>{ref}</code>" in html
    assert str(ref).endswith("#2")  # the current version, after a rotation
    assert SECRET not in html
    assert "first" not in html
    assert "<dt>Family name</dt>" not in html
    assert "<dt>Given name</dt>" not in html
    assert "<dt>Display name</dt><dd>Ops shared mailbox</dd>" in html


def test_before_its_first_job_the_page_says_the_password_is_not_there_yet(
    client: Client, managed
) -> None:
    html = page(client, managed)
    assert "not yet: its first job generates it" in html


def test_a_person_still_shows_given_and_family_name(client: Client) -> None:
    person = factories.make_identity(given_name="Grace", family_name="Hopper")
    html = page(client, person)
    assert "<dt>Given name</dt><dd>Grace</dd>" in html
    assert "<dt>Family name</dt><dd>Hopper</dd>" in html
