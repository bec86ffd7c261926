"""The hvac backend over real HTTP against sandbox/vault_server.py, and the sandbox's own API."""

import logging
import socket
import subprocess
import sys
import time

import hvac
import pytest
import requests

from jobs.errors import PermanentError, TransientError
from sandbox.vault_server import CAS_MISMATCH, start_vault_server
from vault.backends import get_vault
from vault.backends.hashicorp import HvacVault
from vault.base import CredentialVault, SecretRef
from vault.errors import (
    SecretNotFound,
    VaultConflict,
    VaultPermissionDenied,
    VaultRequestRejected,
    VaultUnavailable,
)

ROOT_TOKEN = "root-token-for-tests"
ROLE_ID = "accesshive-role"
SECRET_ID = "accesshive-secret-id"
PATH = "identities/42/password"
SECRET = "correct horse battery staple 8c1f"


@pytest.fixture
def vault_server():
    server = start_vault_server(root_token=ROOT_TOKEN, approles={ROLE_ID: SECRET_ID})
    yield server
    server.shutdown()


@pytest.fixture
def vault_settings(settings, vault_server):
    settings.VAULT_ADDR = vault_server.url
    settings.VAULT_TOKEN = ROOT_TOKEN
    settings.VAULT_ROLE_ID = ""
    settings.VAULT_SECRET_ID = ""
    settings.VAULT_MOUNT = "secret"
    settings.VAULT_PATH_PREFIX = "accesshive"
    settings.VAULT_TIMEOUT = 5
    return settings


@pytest.fixture
def vault(vault_settings) -> CredentialVault:
    return get_vault()


@pytest.fixture
def root_client(vault_server) -> hvac.Client:
    return hvac.Client(url=vault_server.url, token=ROOT_TOKEN, timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_get_vault_builds_the_hvac_backend(vault, vault_server):
    assert isinstance(vault, HvacVault)
    assert isinstance(vault, CredentialVault)
    assert get_vault() is vault
    assert vault_server.url in repr(vault)
    assert ROOT_TOKEN not in repr(vault)


def test_write_and_read_versions(vault, root_client):
    assert vault.current_version(PATH) is None
    assert vault.list_versions(PATH) == []

    first = vault.write(PATH, {"password": "one", "username": "admin@example.com"})
    second = vault.write(PATH, {"password": "two", "username": "admin@example.com"})

    assert (first, second) == (SecretRef(PATH, 1), SecretRef(PATH, 2))
    assert vault.read(PATH) == {"password": "two", "username": "admin@example.com"}
    assert vault.read(PATH, version=1) == {"password": "one", "username": "admin@example.com"}
    assert vault.current_version(PATH) == 2
    versions = vault.list_versions(PATH)
    assert [(v.version, v.deleted, v.destroyed) for v in versions] == [
        (1, False, False),
        (2, False, False),
    ]
    assert all(v.created_at is not None and v.created_at.tzinfo for v in versions)
    # Stored under the mount and prefix, where a plain Vault client finds it too.
    stored = root_client.secrets.kv.v2.read_secret_version(
        path=f"accesshive/{PATH}", mount_point="secret", raise_on_deleted_version=True
    )
    assert stored["data"]["data"]["password"] == "two"
    assert stored["data"]["metadata"]["version"] == 2


def test_check_and_set(vault):
    assert vault.write(PATH, {"password": "first"}, cas=0).version == 1

    with pytest.raises(VaultConflict) as absent_only:
        vault.write(PATH, {"password": SECRET}, cas=0)
    with pytest.raises(VaultConflict) as stale:
        vault.write(PATH, {"password": SECRET}, cas=5)

    for excinfo in (absent_only, stale):
        message = str(excinfo.value)
        assert CAS_MISMATCH in message
        assert "vault:identities/42/password" in message
        assert SECRET not in message
        assert ROOT_TOKEN not in message
        assert isinstance(excinfo.value, PermanentError)
    assert vault.write(PATH, {"password": "second"}, cas=1).version == 2
    assert vault.read(PATH) == {"password": "second"}


def test_delete_is_soft(vault):
    vault.write(PATH, {"password": "one"})
    vault.write(PATH, {"password": "two"})

    vault.delete(PATH)

    with pytest.raises(
        SecretNotFound, match=r"vault:identities/42/password \(version 2\) was deleted"
    ):
        vault.read(PATH)
    assert vault.read(PATH, version=1) == {"password": "one"}
    assert vault.current_version(PATH) == 2
    assert [(v.version, v.deleted) for v in vault.list_versions(PATH)] == [(1, False), (2, True)]

    vault.delete(PATH, version=1)
    with pytest.raises(SecretNotFound, match="was deleted"):
        vault.read(PATH, version=1)
    assert vault.write(PATH, {"password": "three"}, cas=2).version == 3
    vault.delete("never/written")  # as in Vault: not an error


def test_missing_path_raises_secret_not_found(vault):
    with pytest.raises(SecretNotFound) as excinfo:
        vault.read("nobody/here")
    assert "vault:nobody/here does not exist" in str(excinfo.value)
    assert isinstance(excinfo.value, PermanentError)
    vault.write(PATH, {"password": "one"})
    with pytest.raises(SecretNotFound, match=r"#9 does not exist"):
        vault.read(PATH, version=9)


def test_a_wrong_mount_is_reported_as_such(vault_settings):
    vault_settings.VAULT_MOUNT = "kv"

    with pytest.raises(VaultRequestRejected, match="Check that VAULT_MOUNT") as excinfo:
        get_vault().current_version(PATH)

    assert "no handler for route" in str(excinfo.value)
    assert isinstance(excinfo.value, PermanentError)


def test_bad_token_is_permission_denied(vault_settings):
    vault_settings.VAULT_TOKEN = "hvs.wrong-token"
    vault = get_vault()

    with pytest.raises(VaultPermissionDenied) as excinfo:
        vault.read(PATH)

    message = str(excinfo.value)
    assert "permission denied" in message
    assert "secret/data/accesshive/*" in message
    assert "hvs.wrong-token" not in message
    assert isinstance(excinfo.value, PermanentError)
    with pytest.raises(VaultPermissionDenied):
        vault.write(PATH, {"password": SECRET})


def test_approle_login(vault_settings, vault_server):
    vault_settings.VAULT_TOKEN = ""
    vault_settings.VAULT_ROLE_ID = ROLE_ID
    vault_settings.VAULT_SECRET_ID = SECRET_ID
    vault = get_vault()
    login = ("POST", "/v1/auth/approle/login")

    vault.write(PATH, {"password": "one"})
    assert vault.read(PATH) == {"password": "one"}
    assert vault_server.state.count(*login) == 1  # one login, reused

    # A revoked or expired token gets one fresh login, not an error.
    vault_server.state.revoke_tokens()
    assert vault.read(PATH) == {"password": "one"}
    assert vault_server.state.count(*login) == 2
    assert SECRET_ID not in repr(vault)


def test_approle_tokens_are_renewed_before_their_lease_ends(vault_settings, vault_server):
    vault_server.state.token_ttl = 1  # shorter than the renewal margin: log in every time
    vault_settings.VAULT_TOKEN = ""
    vault_settings.VAULT_ROLE_ID = ROLE_ID
    vault_settings.VAULT_SECRET_ID = SECRET_ID
    vault = get_vault()
    vault.write(PATH, {"password": "one"})
    time.sleep(0.6)
    assert vault.read(PATH) == {"password": "one"}
    assert vault_server.state.count("POST", "/v1/auth/approle/login") == 2
    assert vault_server.state.count("GET", f"/v1/secret/data/accesshive/{PATH}") == 1  # no 403


def test_approle_login_failure_is_permission_denied(vault_settings):
    vault_settings.VAULT_TOKEN = ""
    vault_settings.VAULT_ROLE_ID = ROLE_ID
    vault_settings.VAULT_SECRET_ID = "not-the-secret-id"

    with pytest.raises(VaultPermissionDenied) as excinfo:
        get_vault().read(PATH)

    message = str(excinfo.value)
    assert "AppRole login" in message
    assert "invalid role or secret ID" in message
    assert "not-the-secret-id" not in message


def test_503_is_vault_unavailable(vault, vault_server):
    vault.write(PATH, {"password": "one"})
    vault_server.set_unavailable()

    with pytest.raises(VaultUnavailable) as excinfo:
        vault.read(PATH)

    assert isinstance(excinfo.value, TransientError)
    assert "is unavailable while reading vault:identities/42/password" in str(excinfo.value)
    assert "Vault is sealed" in str(excinfo.value)
    with pytest.raises(VaultUnavailable):
        vault.write(PATH, {"password": SECRET})

    vault_server.set_unavailable(False)
    assert vault.read(PATH) == {"password": "one"}


def test_connection_refused_is_vault_unavailable(vault_settings):
    vault_settings.VAULT_ADDR = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(VaultUnavailable, match="is unreachable while reading") as excinfo:
        get_vault().read(PATH)

    assert isinstance(excinfo.value, TransientError)


def test_a_slow_vault_times_out_as_unavailable(vault, vault_settings, vault_server):
    vault_settings.VAULT_TIMEOUT = 0.3
    slow_client = get_vault()
    assert slow_client is not vault
    vault_server.set_delay(2.0)

    started = time.monotonic()
    with pytest.raises(VaultUnavailable, match="Timeout"):
        slow_client.read(PATH)

    # Given up before the 2 s answer came (the 0.3 s timeout, however loaded the machine).
    assert time.monotonic() - started < 2.0


def test_errors_and_logs_never_carry_the_secret(vault, caplog):
    caplog.set_level(logging.DEBUG)
    vault.write(PATH, {"password": SECRET})
    vault.read(PATH)
    with pytest.raises(VaultConflict) as excinfo:
        vault.write(PATH, {"password": SECRET}, cas=0)

    texts = [str(excinfo.value), repr(excinfo.value), repr(vault)]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(record.__dict__) for record in caplog.records]
    assert any("vault.secret.written" in text for text in texts)
    for text in texts:
        assert SECRET not in text
        assert ROOT_TOKEN not in text


# --- the sandbox's HTTP API, as Vault's documentation describes it --------------------------


def test_sandbox_requires_a_token(vault_server):
    response = requests.get(f"{vault_server.url}/v1/secret/data/anything", timeout=5)
    assert response.status_code == 403
    assert response.json() == {"errors": ["permission denied"]}
    response = requests.get(
        f"{vault_server.url}/v1/secret/data/anything",
        headers={"X-Vault-Token": "wrong"},
        timeout=5,
    )
    assert response.status_code == 403


def test_sandbox_answers_404_with_empty_errors(vault_server):
    headers = {"X-Vault-Token": ROOT_TOKEN}
    for path in ("secret/data/missing", "secret/metadata/missing"):
        response = requests.get(f"{vault_server.url}/v1/{path}", headers=headers, timeout=5)
        assert response.status_code == 404
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {"errors": []}


def test_sandbox_cas_mismatch_body(vault_server):
    url = f"{vault_server.url}/v1/secret/data/app/db"
    headers = {"X-Vault-Token": ROOT_TOKEN}
    first = requests.post(
        url, json={"data": {"a": "1"}, "options": {"cas": 0}}, headers=headers, timeout=5
    )
    assert first.status_code == 200
    assert first.json()["data"]["version"] == 1
    again = requests.post(
        url, json={"data": {"a": "2"}, "options": {"cas": 0}}, headers=headers, timeout=5
    )
    assert again.status_code == 400
    assert again.json() == {"errors": [CAS_MISMATCH]}


def test_sandbox_list_and_metadata(vault_server, root_client):
    kv = root_client.secrets.kv.v2
    kv.create_or_update_secret(path="app/db", secret={"a": "1"}, mount_point="secret")
    kv.create_or_update_secret(path="app/api/key", secret={"a": "1"}, mount_point="secret")
    kv.create_or_update_secret(path="top", secret={"a": "1"}, mount_point="secret")

    assert kv.list_secrets(path="", mount_point="secret")["data"]["keys"] == ["app/", "top"]
    assert kv.list_secrets(path="app", mount_point="secret")["data"]["keys"] == ["api/", "db"]
    listed = requests.get(
        f"{vault_server.url}/v1/secret/metadata/app/?list=true",
        headers={"X-Vault-Token": ROOT_TOKEN},
        timeout=5,
    )
    assert listed.json()["data"]["keys"] == ["api/", "db"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.list_secrets(path="nothing", mount_point="secret")

    kv.update_metadata(
        path="app/db",
        max_versions=2,
        cas_required=True,
        custom_metadata={"owner": "identities"},
        mount_point="secret",
    )
    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set parameter required"):
        kv.create_or_update_secret(path="app/db", secret={"a": "2"}, mount_point="secret")
    kv.create_or_update_secret(path="app/db", secret={"a": "2"}, cas=1, mount_point="secret")
    kv.create_or_update_secret(path="app/db", secret={"a": "3"}, cas=2, mount_point="secret")

    metadata = kv.read_secret_metadata(path="app/db", mount_point="secret")["data"]
    assert metadata["current_version"] == 3
    assert metadata["max_versions"] == 2
    assert metadata["cas_required"] is True
    assert metadata["custom_metadata"] == {"owner": "identities"}
    assert sorted(metadata["versions"]) == ["2", "3"]  # version 1 pruned by max_versions
    assert metadata["oldest_version"] == 2
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version(
            path="app/db", version=1, mount_point="secret", raise_on_deleted_version=True
        )

    kv.delete_metadata_and_all_versions(path="app/db", mount_point="secret")
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_metadata(path="app/db", mount_point="secret")


def test_sandbox_destroy_and_undelete(root_client):
    kv = root_client.secrets.kv.v2
    kv.create_or_update_secret(path="app/db", secret={"a": "1"}, mount_point="secret")
    kv.create_or_update_secret(path="app/db", secret={"a": "2"}, mount_point="secret")
    kv.delete_secret_versions(path="app/db", versions=[1, 2], mount_point="secret")
    kv.undelete_secret_versions(path="app/db", versions=[2], mount_point="secret")
    kv.destroy_secret_versions(path="app/db", versions=[1], mount_point="secret")

    latest = kv.read_secret_version(
        path="app/db", mount_point="secret", raise_on_deleted_version=True
    )
    assert latest["data"]["data"] == {"a": "2"}
    destroyed = kv.read_secret_version(
        path="app/db", version=1, mount_point="secret", raise_on_deleted_version=False
    )
    assert destroyed["data"]["data"] is None
    assert destroyed["data"]["metadata"]["destroyed"] is True


def test_sandbox_health_approle_and_lookup(vault_server):
    client = hvac.Client(url=vault_server.url, token="", timeout=5)
    health = client.sys.read_health_status(method="GET")
    assert health["initialized"] is True
    assert health["sealed"] is False

    login = client.auth.approle.login(role_id=ROLE_ID, secret_id=SECRET_ID)
    assert login["auth"]["client_token"].startswith("hvs.")
    assert login["auth"]["lease_duration"] == 3600
    assert client.is_authenticated()
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid role or secret ID"):
        client.auth.approle.login(role_id=ROLE_ID, secret_id="wrong")

    vault_server.set_unavailable()
    sealed = requests.get(f"{vault_server.url}/v1/sys/health", timeout=5)
    assert sealed.status_code == 503
    assert sealed.json()["sealed"] is True


def test_sandbox_runs_from_the_command_line():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.vault_server", "--port", str(port), "--token", "cli-token"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(f"{url}/v1/sys/health", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        client = hvac.Client(url=url, token="cli-token", timeout=5)
        client.secrets.kv.v2.create_or_update_secret(path="cli/check", secret={"a": "1"})
        read = client.secrets.kv.v2.read_secret_version(
            path="cli/check", raise_on_deleted_version=True
        )
        assert read["data"]["data"] == {"a": "1"}
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
