"""The identity forms: required fields per type, platform rules, service-account keys,
duplicates, and what each form hands to the service."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, UploadedFile
from django.forms.utils import ErrorDict
from django.utils.datastructures import MultiValueDict

from assets import services as asset_services
from identities.forms import (
    IDENTITY_FORMS,
    MAX_KEY_BYTES,
    IdentityForm,
    IdentityProviderForm,
    PlatformForm,
)
from identities.models import IdentityType, Platform
from jobs.models import JobStatus
from sandbox import google_directory
from tests import factories
from tests.inline import deliver

pytestmark = pytest.mark.django_db

SECRET = "f0rm-s3cret-5d21"


def bind(identity_type: str, data: dict[str, Any], upload: bytes | None = None) -> IdentityForm:
    """The bound form, validated; ``upload`` is sent as the key file."""
    files: MultiValueDict[str, UploadedFile[Any]] = MultiValueDict()
    if upload is not None:
        files["json_key_file"] = SimpleUploadedFile("key.json", upload)
    form = IDENTITY_FORMS[identity_type](data, files)
    form.is_valid()
    return form


@pytest.fixture
def gws() -> Platform:
    return factories.make_platform("Workspace")


@pytest.fixture
def github() -> Platform:
    return factories.make_platform("GitHub", kind=Platform.Kind.GITHUB)


def test_there_is_one_form_per_identity_type() -> None:
    assert set(IDENTITY_FORMS) == set(IdentityType.values)
    for key, form_class in IDENTITY_FORMS.items():
        assert form_class.identity_type == key


@pytest.mark.parametrize(
    ("identity_type", "required"),
    [
        (IdentityType.HUMAN_INTERACTIVE, {"platform", "given_name", "family_name", "email"}),
        (IdentityType.SHARED_CREDENTIAL_MANAGED, {"platform", "email"}),
        (IdentityType.SHARED_CREDENTIAL_EXTERNAL, {"platform", "username", "password"}),
        (IdentityType.SERVICE_ACCOUNT, {"platform", "json_key"}),
        (IdentityType.API_KEY, {"platform", "name", "api_key"}),
        (IdentityType.OAUTH_CLIENT, {"platform", "client_id", "client_secret"}),
    ],
)
def test_required_fields_per_type(identity_type, required) -> None:
    form = bind(identity_type, {})
    assert not form.is_valid()
    assert set(form.errors) == required


@pytest.mark.parametrize("identity_type", IdentityType.values)
def test_valid_data_of_every_type(gws, identity_type) -> None:
    form = bind(identity_type, factories.identity_form_data(identity_type, gws, SECRET))
    assert form.errors == {}
    data = form.to_input()
    assert data.identity_type == identity_type
    assert data.platform == gws
    assert SECRET not in repr(data)  # the secret stays out of reprs (and so of log lines)


def test_what_each_form_hands_over(gws) -> None:
    def to_input(identity_type: str):
        return bind(identity_type, factories.identity_form_data(identity_type, gws, SECRET))

    human = to_input(IdentityType.HUMAN_INTERACTIVE).to_input()
    assert (human.login, human.display_name, human.org_unit_path) == (
        "ada@example.com",
        "Ada Lovelace",
        "/Engineering",
    )
    assert human.secret is None
    assert to_input(IdentityType.SHARED_CREDENTIAL_MANAGED).to_input().secret is None
    assert to_input(IdentityType.SHARED_CREDENTIAL_EXTERNAL).to_input().secret == {
        "username": "ops-bot",
        "password": SECRET,
    }
    assert to_input(IdentityType.API_KEY).to_input().secret == {"api_key": SECRET}
    assert to_input(IdentityType.OAUTH_CLIENT).to_input().secret == {
        "client_id": "portal-client-123",
        "client_secret": SECRET,
    }
    account = to_input(IdentityType.SERVICE_ACCOUNT).to_input()
    assert account.login == "robot@accesshive-tests.iam.gserviceaccount.com"
    assert account.secret is not None
    assert json.loads(account.secret["json_key"]) == factories.service_account_key(SECRET)


# --- platform rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "identity_type", [IdentityType.HUMAN_INTERACTIVE, IdentityType.SHARED_CREDENTIAL_MANAGED]
)
def test_email_must_be_on_the_platforms_domain(gws, identity_type) -> None:
    data = factories.identity_form_data(identity_type, gws, SECRET)
    data["email"] = "ada@evil.example.org"
    form = bind(identity_type, data)
    assert form.errors == {"email": ["Not on the platform's domain example.com."]}


def test_email_is_lower_cased(gws) -> None:
    data = factories.identity_form_data(IdentityType.HUMAN_INTERACTIVE, gws, SECRET)
    data["email"] = "Ada@Example.COM"
    assert bind(IdentityType.HUMAN_INTERACTIVE, data).to_input().login == "ada@example.com"


def test_human_on_a_platform_of_another_kind_needs_no_domain(github) -> None:
    data = factories.identity_form_data(IdentityType.HUMAN_INTERACTIVE, github, SECRET)
    data["email"] = "ada@anywhere.org"
    assert bind(IdentityType.HUMAN_INTERACTIVE, data).errors == {}


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("Engineering", 'An org unit path starts with "/", e.g. /Engineering.'),
        ("/Engineering/Platform", None),
        ("", None),
    ],
)
def test_org_unit_path_format(gws, path, error) -> None:
    data = factories.identity_form_data(IdentityType.HUMAN_INTERACTIVE, gws, SECRET)
    data["org_unit_path"] = path
    form = bind(IdentityType.HUMAN_INTERACTIVE, data)
    if error:
        assert form.errors == {"org_unit_path": [error]}
    else:
        assert form.errors == {}
        assert form.to_input().org_unit_path == (path or "/")


def test_managed_shared_credential_needs_google_workspace(github) -> None:
    data = factories.identity_form_data(IdentityType.SHARED_CREDENTIAL_MANAGED, github, SECRET)
    data["email"] = "ops-shared@example.com"
    form = bind(IdentityType.SHARED_CREDENTIAL_MANAGED, data)
    assert form.errors == {
        "platform": ["A managed shared credential needs a Google Workspace platform."]
    }


def test_human_needs_a_platform_with_an_identity_provider() -> None:
    bare = factories.make_platform("Bare", with_identity_provider=False)
    form = bind(
        IdentityType.HUMAN_INTERACTIVE,
        factories.identity_form_data(IdentityType.HUMAN_INTERACTIVE, bare, SECRET),
    )
    assert form.errors == {
        "platform": ["Bare has no identity provider for single sign-on; set one first."]
    }


def test_unknown_platform_is_refused() -> None:
    form = bind(IdentityType.API_KEY, {"platform": 999999, "name": "x", "api_key": SECRET})
    assert list(form.errors) == ["platform"]


# --- service-account keys -------------------------------------------------------------------


def key_errors(gws, *, pasted: str | None = None, upload: bytes | None = None) -> ErrorDict:
    data: dict[str, Any] = {"platform": gws.pk}
    if pasted is not None:
        data["json_key"] = pasted
    return bind(IdentityType.SERVICE_ACCOUNT, data, upload).errors


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("{not json", "This is not valid JSON."),
        ('["a", "list"]', "A service-account key is a JSON object."),
        (
            json.dumps(factories.service_account_key(SECRET, type="authorized_user")),
            'This is not a Google service-account key ("type" must be "service_account").',
        ),
        (
            json.dumps(factories.service_account_key(SECRET, private_key_id="", client_email="")),
            "The key is missing: private_key_id, client_email.",
        ),
        (
            json.dumps(factories.service_account_key(SECRET, private_key=SECRET)),
            "private_key is not a PEM private key.",
        ),
        (
            json.dumps(factories.service_account_key(SECRET, client_email="robot")),
            "client_email is not an email address.",
        ),
    ],
)
def test_bad_pasted_key(gws, key, message) -> None:
    errors = key_errors(gws, pasted=key)
    assert errors == {"json_key": [message]}
    assert SECRET not in str(errors)


def test_bad_uploaded_key_names_the_upload_field(gws) -> None:
    errors = key_errors(gws, upload=b"{not json")
    assert errors == {"json_key_file": ["This is not valid JSON."]}


def test_oversized_upload_is_refused_unread(gws) -> None:
    big = json.dumps(factories.service_account_key("A" * MAX_KEY_BYTES)).encode()
    errors = key_errors(gws, upload=big)
    assert errors == {"json_key_file": ["The file is larger than 64 KB."]}


def test_oversized_paste_is_refused(gws) -> None:
    big = json.dumps(factories.service_account_key("A" * MAX_KEY_BYTES))
    errors = key_errors(gws, pasted=big)
    assert errors == {"json_key": ["The key is larger than 64 KB; is it a key?"]}


def test_pasted_and_uploaded_keys_give_the_same_identity(gws) -> None:
    raw = json.dumps(factories.service_account_key(SECRET))
    pasted = bind(IdentityType.SERVICE_ACCOUNT, {"platform": gws.pk, "json_key": raw})
    uploaded = bind(IdentityType.SERVICE_ACCOUNT, {"platform": gws.pk}, raw.encode())
    assert pasted.errors == uploaded.errors == {}
    assert pasted.to_input() == uploaded.to_input()


def test_a_key_is_needed_one_way_or_the_other(gws) -> None:
    assert key_errors(gws) == {"json_key": ["Paste the JSON key or upload its file."]}


# --- duplicates -----------------------------------------------------------------------------


@pytest.mark.parametrize("identity_type", IdentityType.values)
def test_same_login_on_the_same_platform_is_refused(gws, identity_type) -> None:
    data = factories.identity_form_data(identity_type, gws, SECRET)
    login = bind(identity_type, data).to_input().login
    factories.make_identity(platform=gws, identity_type=identity_type, login=login)
    form = bind(identity_type, data)
    login_field = IDENTITY_FORMS[identity_type].login_field
    assert form.errors == {login_field: [f"{login} already exists on Workspace."]}


def test_same_login_on_another_platform_is_allowed(gws) -> None:
    other = factories.make_platform("Second workspace")
    factories.make_identity(platform=gws, login="ada@example.com")
    data = factories.identity_form_data(IdentityType.HUMAN_INTERACTIVE, other, SECRET)
    assert bind(IdentityType.HUMAN_INTERACTIVE, data).errors == {}


def test_duplicate_check_ignores_case_of_emails(gws) -> None:
    factories.make_identity(platform=gws, login="ada@example.com")
    data = factories.identity_form_data(IdentityType.HUMAN_INTERACTIVE, gws, SECRET)
    data["email"] = "ADA@example.com"
    assert list(bind(IdentityType.HUMAN_INTERACTIVE, data).errors) == ["email"]


# --- secrets are never rendered back --------------------------------------------------------


@pytest.mark.parametrize(
    "identity_type",
    [
        IdentityType.SHARED_CREDENTIAL_EXTERNAL,
        IdentityType.SERVICE_ACCOUNT,
        IdentityType.API_KEY,
        IdentityType.OAUTH_CLIENT,
    ],
)
def test_bound_form_does_not_render_the_secret(gws, identity_type) -> None:
    data = factories.identity_form_data(identity_type, gws, SECRET)
    data.pop("display_name", None)
    data["platform"] = ""  # invalid, so a page would render the form again
    form = bind(identity_type, data)
    assert "platform" in form.errors
    assert SECRET not in form.as_div()


def test_platform_and_provider_forms_do_not_render_their_secrets() -> None:
    platform = PlatformForm(
        {
            "name": "",
            "kind": "google_workspace",
            "service_account_key": json.dumps(factories.service_account_key(SECRET)),
        }
    )
    provider = IdentityProviderForm({"name": "", "scim_token": SECRET})
    assert not platform.is_valid()
    assert not provider.is_valid()
    assert SECRET not in platform.as_div()
    assert SECRET not in provider.as_div()


@pytest.fixture
def discovered() -> Iterator[Platform]:
    """A Google Workspace platform whose org units asset discovery has listed from the
    sandbox: /Engineering and /Engineering/Platform."""
    server = google_directory.start(["example.com"], org_units=["/Engineering/Platform"])
    platform = factories.make_sandbox_platform(server)
    platform.identity_provider = factories.make_identity_provider()
    platform.save()
    job, _ = asset_services.discover_now(platform, actor=None)
    assert deliver(job).status == JobStatus.COMPLETED
    yield platform
    server.shutdown()


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/Engineering/Platform", None),
        ("/engineering", None),  # Google compares org unit paths case-insensitively
        ("/", None),
        ("/Engneering", "has no org unit /Engneering (as of its last asset discovery)."),
    ],
)
def test_org_unit_path_is_checked_against_the_discovered_org_units(discovered, path, error):
    data = factories.identity_form_data(IdentityType.HUMAN_INTERACTIVE, discovered, SECRET)
    data["org_unit_path"] = path

    form = bind(IdentityType.HUMAN_INTERACTIVE, data)

    if error is None:
        assert form.errors == {}
    else:
        assert form.errors == {"org_unit_path": [f"{discovered.name} {error}"]}


def test_org_unit_path_is_not_checked_before_any_discovery(gws) -> None:
    data = factories.identity_form_data(IdentityType.HUMAN_INTERACTIVE, gws, SECRET)
    data["org_unit_path"] = "/Anything/Goes"
    assert bind(IdentityType.HUMAN_INTERACTIVE, data).errors == {}
