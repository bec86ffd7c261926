"""A name with a newline, tab or NUL in it is refused with a field error in every way an
identity comes in: the page, the API and the CSV import, which share the identity forms."""

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from accounts.models import ApiToken
from identities.models import Identity, IdentityType, Platform
from imports import csvfile
from jobs.models import Job
from tests import factories

pytestmark = pytest.mark.django_db

SECRET = "s1ngle-line-s3cret"
CONTROLS = ["Ada\nLovelace", "Ada\tLovelace", "Ada\x00Lovelace", "Ada\rLovelace"]


def refusal(value: str) -> str:
    """What the field error says about ``value``."""
    if "\x00" in value:
        return "must not contain a NUL character"
    return "must be a single line without control characters"


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record job messages instead of publishing them: nothing here may reach a broker."""
    calls: list[int] = []
    monkeypatch.setattr("jobs.services.send", lambda job_id, **kwargs: calls.append(job_id))
    return calls


@pytest.fixture
def gws() -> Platform:
    return factories.make_platform("Workspace")


@pytest.fixture
def admin() -> User:
    return factories.make_identity_admin()


def human(gws: Platform, **fields: str) -> dict[str, object]:
    return {**factories.identity_form_data(IdentityType.HUMAN_INTERACTIVE, gws, SECRET), **fields}


@pytest.mark.parametrize("given_name", CONTROLS)
def test_the_page_shows_a_field_error_and_creates_nothing(
    client: Client, admin: User, gws: Platform, given_name: str
) -> None:
    client.force_login(admin)
    url = reverse("identities:create", args=[IdentityType.HUMAN_INTERACTIVE])
    response = client.post(url, human(gws, given_name=given_name))
    assert response.status_code == 200  # the form again, with its error
    form = response.context["form"]
    assert list(form.errors) == ["given_name"]
    assert refusal(given_name) in form.errors["given_name"][0]
    assert refusal(given_name) in response.content.decode()
    assert not Identity.objects.exists()
    assert not Job.objects.exists()


@pytest.mark.parametrize("field", ["family_name", "org_unit_path"])
def test_every_single_line_field_of_the_form_refuses_a_newline(
    client: Client, admin: User, gws: Platform, field: str
) -> None:
    client.force_login(admin)
    url = reverse("identities:create", args=[IdentityType.HUMAN_INTERACTIVE])
    response = client.post(url, human(gws, **{field: "/Eng\nineering"}))
    assert list(response.context["form"].errors) == [field]


def test_a_multiline_secret_still_goes_through(client: Client, admin: User, gws: Platform) -> None:
    """Secrets are not names: a pasted key or password may hold any character."""
    client.force_login(admin)
    data = factories.identity_form_data(IdentityType.API_KEY, gws, "line one\nline two")
    response = client.post(reverse("identities:create", args=[IdentityType.API_KEY]), data)
    assert response.status_code == 302
    assert Identity.objects.filter(login="ci-deploy").exists()


@pytest.mark.parametrize("given_name", CONTROLS)
def test_the_api_answers_400_naming_the_field(
    client: Client, admin: User, gws: Platform, given_name: str
) -> None:
    _, raw = ApiToken.issue(admin, "tests")
    body = {"type": IdentityType.HUMAN_INTERACTIVE, **human(gws, given_name=given_name)}
    response = client.post(
        reverse("identities:api-list"),
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == ["given_name"]
    assert refusal(given_name) in errors["given_name"][0]
    assert not Identity.objects.exists()


def test_a_csv_row_with_a_newline_in_a_quoted_name_is_a_row_problem(gws: Platform) -> None:
    """A spreadsheet quotes a cell with a line break; the row parses, and the form refuses it."""
    good = factories.import_row(IdentityType.HUMAN_INTERACTIVE, gws, SECRET)
    bad = {**good, "email": "eve@example.com", "given_name": "Eve\nMallory"}
    data = factories.import_csv([good, bad])
    assert b'"Eve\nMallory"' in data
    _, rows = csvfile.read_rows([data])
    checks = [csvfile.check_row(row, csvfile.platform_index([gws])) for row in rows]
    assert [check.outcome for check in checks] == ["valid", "failed"]
    assert checks[1].row.number == 3
    [(field, message)] = checks[1].problems
    assert field == "given_name"
    assert "single line without control characters" in message


@pytest.mark.parametrize(
    ("form_path", "fields"),
    [
        ("sso.forms.SamlSettingsForm", ["idp_entity_id", "email_attribute", "groups_attribute"]),
        ("policies.forms.PolicyForm", ["name", "allowed_group", "privileged_group"]),
        ("directory.forms.LdapSourceForm", ["name", "ldap_bind_dn", "ldap_base_dn", "map_email"]),
        ("directory.forms.GoogleWorkspaceSourceForm", ["name", "gws_domain"]),
        ("identities.forms.PlatformForm", ["name", "primary_domain", "customer_id"]),
        ("identities.forms.IdentityProviderForm", ["name"]),
    ],
)
def test_the_settings_forms_names_are_single_lines_too(form_path: str, fields: list[str]) -> None:
    from django.core.exceptions import ValidationError
    from django.utils.module_loading import import_string

    form = import_string(form_path)()
    for name in fields:
        with pytest.raises(ValidationError, match="single line without control characters"):
            form.fields[name].clean("cn=admin\n,dc=example")
