"""The management commands an operator runs by hand: create_demo_admin, set_role and
setup_sandbox (create_api_token is in tests/test_api_tokens.py)."""

import json
import stat
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from accounts.services import role_of
from identities.handlers.common import google_workspace_client, read_secret, scim_client
from identities.models import IdentityProvider, Platform
from sandbox import google_directory, scim
from tests.directory_support import running_gws, running_idp
from trail.models import TrailEntry
from vault.models import EncryptedSecret

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


# --- create_demo_admin ----------------------------------------------------------------------


def signs_in(username: str, password: str) -> bool:
    response = Client().post(reverse("login"), {"username": username, "password": password})
    return response.status_code == 302


def test_create_demo_admin_prints_a_password_that_signs_in(tmp_path: Path) -> None:
    password_file = tmp_path / "admin-password"
    printed = run("create_demo_admin", "--password-file", str(password_file))

    password = password_file.read_text().strip()
    assert printed == f"Sign in at http://127.0.0.1:8000/ as admin / {password}"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    user = User.objects.get(username="admin")
    assert (user.is_staff, user.is_superuser, user.is_active) == (True, True, True)
    assert signs_in("admin", password)
    assert password not in user.password  # only its hash is kept


def test_create_demo_admin_again_resets_the_password(tmp_path: Path) -> None:
    first = run("create_demo_admin", "--username", "demo").rsplit(" ", 1)[-1]
    second = run("create_demo_admin", "--username", "demo").rsplit(" ", 1)[-1]
    assert first != second
    assert User.objects.filter(username="demo").count() == 1
    assert signs_in("demo", second)
    assert not signs_in("demo", first)


# --- set_role -------------------------------------------------------------------------------


def test_set_role_creates_the_user_without_a_usable_password() -> None:
    assert run("set_role", "vera", "viewer") == "vera is now viewer"
    vera = User.objects.get(username="vera")
    assert role_of(vera) == "viewer"
    assert not vera.has_usable_password()
    client = Client()
    client.force_login(vera)
    assert client.get(reverse("jobs:list")).status_code == 200
    assert client.post(reverse("jobs:retry", args=[1])).status_code == 403  # a viewer only


def test_set_role_changes_a_role_and_records_it_on_the_trail() -> None:
    run("set_role", "otto", "viewer")
    assert run("set_role", "otto", "operator") == "otto is now operator"
    assert run("set_role", "otto", "operator") == "otto already is operator"
    assert role_of(User.objects.get(username="otto")) == "operator"
    changes = TrailEntry.objects.filter(action="user.role_changed").order_by("id")
    assert [entry.target_label for entry in changes] == ["otto", "otto"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ada", "root"), "invalid choice: 'root'"),
        (("  ", "admin"), "username must not be empty"),
    ],
)
def test_set_role_refuses_bad_input_and_changes_nothing(args, message) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("set_role", *args)
    assert not User.objects.exists()


# --- setup_sandbox --------------------------------------------------------------------------


@pytest.fixture
def gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    yield from running_gws()


@pytest.fixture
def idp() -> Iterator[scim.ScimSandbox]:
    yield from running_idp()


def setup_sandbox(
    tmp_path: Path, gws: google_directory.GoogleDirectorySandbox, key: dict[str, str], token: str
) -> str:
    key_file, token_file = tmp_path / "gws-key.json", tmp_path / "scim-token"
    key_file.write_text(json.dumps(key))
    token_file.write_text(token + "\n")
    return run(
        "setup_sandbox",
        *("--gws-url", gws.base_url, "--gws-key-file", str(key_file)),
        *("--scim-url", "http://127.0.0.1:1/v2", "--scim-token-file", str(token_file)),
    )


def test_setup_sandbox_makes_a_platform_that_reaches_both_sandboxes(
    tmp_path: Path, gws, idp
) -> None:
    key, token_file = gws.issue_key(), tmp_path / "scim-token"
    (tmp_path / "gws-key.json").write_text(json.dumps(key))
    token_file.write_text(idp.bearer_token + "\n")
    printed = run(
        "setup_sandbox",
        *("--gws-url", gws.base_url, "--gws-key-file", str(tmp_path / "gws-key.json")),
        *("--scim-url", idp.base_url, "--scim-token-file", str(token_file)),
    )
    assert (
        printed
        == "Sandbox Workspace (example.com) and Sandbox IdP point at the local sandbox servers"
    )

    platform = Platform.objects.get(name="Sandbox Workspace")
    assert (platform.primary_domain, platform.api_endpoint) == ("example.com", gws.base_url)
    # The stored key and token authenticate: each sandbox answers "no such user", not 401.
    assert google_workspace_client(platform).get_user("nobody@example.com") is None
    with scim_client(platform.identity_provider, platform) as client:
        assert client.find_user_by_username("nobody@example.com") is None
    # Only ciphertext reached the database.
    stored = b"".join(bytes(row.ciphertext) for row in EncryptedSecret.objects.all())
    assert idp.bearer_token.encode() not in stored
    assert key["private_key"].encode() not in stored


def test_setup_sandbox_again_follows_new_servers_and_secrets_only_when_they_change(
    tmp_path: Path, gws
) -> None:
    key = gws.issue_key()
    setup_sandbox(tmp_path, gws, key, "token-one")
    versions = EncryptedSecret.objects.count()

    setup_sandbox(tmp_path, gws, key, "token-one")
    assert EncryptedSecret.objects.count() == versions  # nothing changed, nothing rewritten
    assert Platform.objects.count() == IdentityProvider.objects.count() == 1

    new_key = gws.issue_key("rotated")
    setup_sandbox(tmp_path, gws, new_key, "token-two")
    platform = Platform.objects.get()
    provider = IdentityProvider.objects.get()
    assert read_secret(provider.token_ref, "token") == {"token": "token-two"}
    assert json.loads(read_secret(platform.service_account_key_ref, "key")["json"]) == new_key
    assert EncryptedSecret.objects.count() == versions + 2
    assert google_workspace_client(platform).get_user("nobody@example.com") is None


def test_setup_sandbox_with_a_missing_key_file_writes_nothing(tmp_path: Path, gws) -> None:
    (tmp_path / "scim-token").write_text("token")
    with pytest.raises(FileNotFoundError):
        run(
            "setup_sandbox",
            *("--gws-url", gws.base_url, "--gws-key-file", str(tmp_path / "absent.json")),
            *("--scim-url", "http://127.0.0.1:1/v2"),
            *("--scim-token-file", str(tmp_path / "scim-token")),
        )
    assert not Platform.objects.exists()
    assert not IdentityProvider.objects.exists()
    assert not EncryptedSecret.objects.exists()
