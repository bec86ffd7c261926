"""The hvac backend against a real OpenBao server (tests/openbao.py): AppRole with a policy
limited to our prefix, KV v2, a cas_required mount, a KV v1 mount, sealing, a slow proxy."""

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import hvac
import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from jobs.errors import PermanentError, TransientError
from tests.openbao import (
    CAS_MOUNT,
    KV1_MOUNT,
    ROOT_TOKEN,
    OpenBao,
    SlowProxy,
    running_openbao,
)
from tests.servers import free_port
from vault.backends import get_vault
from vault.backends.hashicorp import AUTO_CAS_ATTEMPTS, CAS_MISMATCH, HvacVault, _parse_time
from vault.base import CredentialVault, SecretRef
from vault.errors import (
    SecretNotFound,
    VaultConflict,
    VaultPermissionDenied,
    VaultRequestRejected,
    VaultUnavailable,
)

PATH = "identities/42/password"
SECRET = "correct horse battery staple 8c1f"
LOGIN = "auth/approle/login"


@pytest.fixture(scope="module")
def openbao() -> Iterator[OpenBao]:
    yield from running_openbao()


@pytest.fixture
def prefix() -> str:
    """A fresh prefix under ours per test: one server, no test sees another's secrets."""
    return f"accesshive/t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def vault_settings(settings, openbao, prefix):
    settings.VAULT_ADDR = openbao.url
    settings.VAULT_TOKEN = ""
    settings.VAULT_ROLE_ID = openbao.role_id
    settings.VAULT_SECRET_ID = openbao.new_secret_id()
    settings.VAULT_MOUNT = "secret"
    settings.VAULT_PATH_PREFIX = prefix
    settings.VAULT_TIMEOUT = 5
    return settings


@pytest.fixture
def vault(vault_settings) -> CredentialVault:
    return get_vault()


def vault_checks() -> list[checks.CheckMessage]:
    return [
        m
        for m in checks.run_checks(tags=[checks.Tags.security])
        if (m.id or "").startswith("vault")
    ]


def test_get_vault_builds_the_hvac_backend(vault, openbao, vault_settings, prefix):
    assert isinstance(vault, HvacVault)
    assert isinstance(vault, CredentialVault)
    assert get_vault() is vault
    assert repr(vault) == (
        f"<HvacVault addr='{openbao.url}' mount='secret' prefix='{prefix}' auth=approle>"
    )
    assert vault_settings.VAULT_SECRET_ID not in repr(vault)
    assert vault_checks() == []


def test_write_and_read_versions(vault, openbao, prefix):
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
    stored = openbao.client().secrets.kv.v2.read_secret_version(
        path=f"{prefix}/{PATH}", mount_point="secret", raise_on_deleted_version=True
    )
    assert stored["data"]["data"]["password"] == "two"
    assert stored["data"]["metadata"]["version"] == 2


def test_check_and_set(vault):
    assert vault.write(PATH, {"password": "first"}, cas=0).version == 1

    with pytest.raises(VaultConflict) as absent_only:
        vault.write(PATH, {"password": SECRET}, cas=0)
    with pytest.raises(VaultConflict) as stale:
        vault.write(PATH, {"password": SECRET}, cas=5)

    assert "(cas=0)" in str(absent_only.value)
    assert "(cas=5)" in str(stale.value)
    for excinfo in (absent_only, stale):
        message = str(excinfo.value)
        assert CAS_MISMATCH in message
        assert "vault:identities/42/password" in message
        assert SECRET not in message
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
    with pytest.raises(ValueError, match="version is a whole number"):
        vault.delete(PATH, version=0)  # refused here, not sent to the server


def test_versions_past_delete_version_after_read_as_deleted(vault, openbao, prefix):
    vault.write(PATH, {"password": "one"})
    openbao.client().secrets.kv.v2.update_metadata(
        path=f"{prefix}/{PATH}", delete_version_after="1s", mount_point="secret"
    )
    vault.write(PATH, {"password": "two"})
    time.sleep(1.2)

    # Only versions written after the setting get a deletion time.
    assert [(v.version, v.deleted) for v in vault.list_versions(PATH)] == [(1, False), (2, True)]
    with pytest.raises(SecretNotFound):
        vault.read(PATH)
    assert vault.read(PATH, version=1) == {"password": "one"}
    assert vault.current_version(PATH) == 2


def test_missing_path_raises_secret_not_found(vault):
    with pytest.raises(SecretNotFound) as excinfo:
        vault.read("nobody/here")
    assert "vault:nobody/here does not exist" in str(excinfo.value)
    assert isinstance(excinfo.value, PermanentError)
    vault.write(PATH, {"password": "one"})
    with pytest.raises(SecretNotFound, match=r"#9 does not exist"):
        vault.read(PATH, version=9)


def test_a_missing_mount_is_reported_at_startup_and_first_use(vault_settings):
    vault_settings.VAULT_MOUNT = "kv"

    with pytest.raises(VaultRequestRejected) as excinfo:
        get_vault().current_version(PATH)

    message = str(excinfo.value)
    assert "no secrets engine at VAULT_MOUNT 'kv'" in message
    assert "\n" not in message
    assert isinstance(excinfo.value, PermanentError)
    [check] = vault_checks()
    assert (check.id, check.level) == ("vault.E003", checks.ERROR)
    assert "VAULT_MOUNT 'kv'" in check.msg


def test_a_kv_version_1_mount_is_refused_before_any_write(vault_settings, openbao, prefix):
    vault_settings.VAULT_MOUNT = KV1_MOUNT
    vault = get_vault()

    with pytest.raises(VaultRequestRejected, match="is a KV version 1 secrets engine"):
        vault.write(PATH, {"password": SECRET})
    with pytest.raises(VaultRequestRejected, match="AccessHive needs KV version 2"):
        vault.current_version(PATH)

    [check] = vault_checks()
    assert check.id == "vault.E003"
    assert "kv enable-versioning kv-v1" in check.msg
    # Nothing landed under <mount>/data/... as it did before the mount was checked.
    with pytest.raises(hvac.exceptions.InvalidPath):
        openbao.client().secrets.kv.v1.list_secrets(path="", mount_point=KV1_MOUNT)


def test_a_cas_required_mount_takes_writes_without_a_caller_cas(vault_settings, openbao, prefix):
    vault_settings.VAULT_MOUNT = CAS_MOUNT
    vault = get_vault()

    assert vault.write(PATH, {"password": "one"}).version == 1
    assert vault.write(PATH, {"password": "two"}).version == 2
    assert vault.read(PATH) == {"password": "two"}
    with pytest.raises(VaultConflict, match=CAS_MISMATCH):
        vault.write(PATH, {"password": SECRET}, cas=1)
    # The mount really demands cas: a write without it is refused.
    with pytest.raises(Exception, match="check-and-set parameter required"):
        openbao.client().secrets.kv.v2.create_or_update_secret(
            path=f"{prefix}/{PATH}", secret={"a": "b"}, mount_point=CAS_MOUNT
        )


def test_a_write_without_cas_loses_no_concurrent_version(vault, openbao, prefix):
    vault.write(PATH, {"password": "one"})
    # Another writer between our version read and our write: we retry, not overwrite blindly.
    kv = openbao.client().secrets.kv.v2
    kv.create_or_update_secret(path=f"{prefix}/{PATH}", secret={"password": "x"}, cas=1)

    assert vault.write(PATH, {"password": "three"}).version == 3


def test_concurrent_writes_without_cas_all_land_as_distinct_versions(vault_settings):
    vault_settings.VAULT_MOUNT = CAS_MOUNT  # every write must name the version it replaces
    vault = get_vault()
    writers = AUTO_CAS_ATTEMPTS
    barrier = threading.Barrier(writers)

    def write(n: int) -> SecretRef:
        barrier.wait(timeout=10)
        return vault.write(PATH, {"password": f"value-{n}"})

    with ThreadPoolExecutor(writers) as pool:
        refs = list(pool.map(write, range(writers)))

    assert sorted(ref.version for ref in refs) == list(range(1, writers + 1))
    values = {vault.read(PATH, ref.version)["password"] for ref in refs}
    assert values == {f"value-{n}" for n in range(writers)}


def test_bad_token_is_permission_denied_on_one_line(vault_settings, openbao):
    vault_settings.VAULT_ROLE_ID = ""
    vault_settings.VAULT_SECRET_ID = ""
    vault_settings.VAULT_TOKEN = "s.wrong-token"
    vault = get_vault()
    since = openbao.audit_lines()

    with pytest.raises(VaultPermissionDenied) as excinfo:
        vault.read(PATH)

    # A static token has no fresh login to try: refused once, not asked again.
    assert len(openbao.answers("sys/internal/ui/mounts/secret", since=since)) == 1

    message = str(excinfo.value)
    assert "permission denied" in message
    assert "s.wrong-token" not in message
    assert isinstance(excinfo.value, PermanentError)


def test_a_policy_denial_is_one_readable_line_and_one_login(vault_settings, openbao):
    # The AppRole policy covers accesshive/* only.
    vault_settings.VAULT_PATH_PREFIX = "elsewhere"
    vault = get_vault()
    since = openbao.audit_lines()

    for _ in range(5):
        with pytest.raises(VaultPermissionDenied) as excinfo:
            vault.read(PATH)

    message = str(excinfo.value)
    assert "denied reading vault:identities/42/password: permission denied." in message
    assert "error occurred" not in message
    assert "\n" not in message
    assert "\t" not in message
    assert "secret/data/elsewhere/*" in message
    # The first login, then one more for the whole burst (the token had worked: it read the
    # mount), not one per refused request.
    assert len(openbao.answers(LOGIN, since=since)) == 2
    # The first read is tried again with the fresh token; the rest, refused to a token that
    # never worked, are not.
    assert len(openbao.answers("secret/data/elsewhere/identities/42/password", since=since)) == 6
    with pytest.raises(
        VaultPermissionDenied,
        match="denied reading metadata of vault:identities/42/password: permission denied",
    ):
        vault.current_version(PATH)


def test_a_revoked_token_gets_one_fresh_login(vault, openbao):
    since = openbao.audit_lines()
    vault.write(PATH, {"password": "one"})
    assert len(openbao.answers(LOGIN, since=since)) == 1  # one login, reused

    openbao.client().sys.revoke_prefix(LOGIN)
    assert vault.read(PATH) == {"password": "one"}
    assert vault.read(PATH) == {"password": "one"}
    assert len(openbao.answers(LOGIN, since=since)) == 2


def test_approle_tokens_are_renewed_before_their_lease_ends(vault_settings, openbao, prefix):
    vault_settings.VAULT_ROLE_ID = openbao.create_role("short-lived", token_ttl="2s")
    vault_settings.VAULT_SECRET_ID = openbao.new_secret_id("short-lived")
    vault = get_vault()
    since = openbao.audit_lines()
    vault.write(PATH, {"password": "one"})
    time.sleep(1.1)  # past half the lease: log in again before the token can die in flight

    assert vault.read(PATH) == {"password": "one"}
    assert len(openbao.answers(LOGIN, since=since)) == 2
    reads = openbao.answers(f"secret/data/{prefix}/{PATH}", since=since)
    assert reads
    assert not any(entry.get("error") for entry in reads)  # no 403 on the way


def test_approle_login_failure_is_permission_denied(vault_settings):
    vault_settings.VAULT_SECRET_ID = "not-the-secret-id"

    with pytest.raises(VaultPermissionDenied) as excinfo:
        get_vault().read(PATH)

    message = str(excinfo.value)
    assert "AppRole login" in message
    assert "invalid" in message
    assert "not-the-secret-id" not in message


def test_a_sealed_vault_is_unavailable(vault, openbao):
    vault.write(PATH, {"password": "one"})
    openbao.seal()
    try:
        with pytest.raises(VaultUnavailable) as excinfo:
            vault.read(PATH)
        assert isinstance(excinfo.value, TransientError)
        assert "is unavailable while reading vault:identities/42/password" in str(excinfo.value)
        assert "sealed" in str(excinfo.value)
        with pytest.raises(VaultUnavailable):
            vault.write(PATH, {"password": SECRET})
        [check] = vault_checks()
        assert (check.id, check.level) == ("vault.W002", checks.WARNING)
    finally:
        openbao.unseal()
    assert vault.read(PATH) == {"password": "one"}


def test_connection_refused_is_vault_unavailable(vault_settings):
    vault_settings.VAULT_ADDR = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(VaultUnavailable, match="is unreachable while") as excinfo:
        get_vault().read(PATH)

    assert isinstance(excinfo.value, TransientError)


def test_a_slow_vault_times_out_as_unavailable(vault, vault_settings, openbao):
    vault.write(PATH, {"password": "one"})
    proxy = SlowProxy(openbao.port, delay=2.0)
    try:
        vault_settings.VAULT_ADDR = proxy.url
        vault_settings.VAULT_TIMEOUT = 0.3
        slow_client = get_vault()
        started = time.monotonic()
        with pytest.raises(VaultUnavailable, match="Timeout"):
            slow_client.read(PATH)
        # Given up before the 2 s answer came (the 0.3 s timeout, however loaded the machine).
        assert time.monotonic() - started < 2.0
    finally:
        proxy.close()


def test_errors_and_logs_never_carry_the_secret(vault, vault_settings, caplog):
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
        assert vault_settings.VAULT_SECRET_ID not in text
        assert ROOT_TOKEN not in text


def test_write_new_writes_each_path_once_with_check_and_set(vault):
    refs = vault.write_new({"imports/a": {"api_key": "k-a"}, "imports/b": {"api_key": "k-b"}})
    assert [str(ref) for ref in refs] == ["vault:imports/a#1", "vault:imports/b#1"]
    assert vault.read("imports/b") == {"api_key": "k-b"}
    with pytest.raises(VaultConflict):
        vault.write_new({"imports/a": {"api_key": "again"}})
    assert vault.read("imports/a") == {"api_key": "k-a"}


def test_every_call_on_a_non_default_mount_stays_on_that_mount(vault_settings, openbao, prefix):
    # The same path on the default mount is another secret: nothing done on kv-cas touches it.
    on_default = get_vault()
    on_default.write(PATH, {"password": "default mount"})
    vault_settings.VAULT_MOUNT = CAS_MOUNT
    vault = get_vault()
    vault.write(PATH, {"password": "one"})
    vault.write(PATH, {"password": "two"})
    assert vault.read(PATH, version=1) == {"password": "one"}
    assert [v.version for v in vault.list_versions(PATH)] == [1, 2]

    vault.delete(PATH)
    vault.delete(PATH, version=1)

    kv = openbao.client().secrets.kv.v2
    versions = kv.read_secret_metadata(path=f"{prefix}/{PATH}", mount_point=CAS_MOUNT)
    assert all(info["deletion_time"] for info in versions["data"]["versions"].values())
    with pytest.raises(SecretNotFound):
        vault.read(PATH)
    with pytest.raises(SecretNotFound):
        vault.read(PATH, version=1)
    assert [(v.version, v.deleted) for v in vault.list_versions(PATH)] == [(1, True), (2, True)]
    assert on_default.read(PATH) == {"password": "default mount"}
    assert on_default.current_version(PATH) == 1


def test_a_destroyed_version_is_listed_as_destroyed_and_reads_as_gone(vault, openbao, prefix):
    vault.write(PATH, {"password": "one"})
    vault.write(PATH, {"password": "two"})
    openbao.client().secrets.kv.v2.destroy_secret_versions(
        path=f"{prefix}/{PATH}", versions=[1], mount_point="secret"
    )

    versions = vault.list_versions(PATH)
    assert [(v.ref, v.deleted, v.destroyed, v.readable) for v in versions] == [
        (SecretRef(PATH, 1), False, True, False),
        (SecretRef(PATH, 2), False, False, True),
    ]
    with pytest.raises(SecretNotFound, match=r"#1 \(version 1\) was deleted in HashiCorp"):
        vault.read(PATH, version=1)
    assert vault.read(PATH) == {"password": "two"}
    assert vault.current_version(PATH) == 2


def test_version_times_are_vaults_own_to_the_microsecond(vault, openbao, prefix):
    vault.write(PATH, {"password": "one"})
    vault.delete(PATH)
    raw = openbao.client().secrets.kv.v2.read_secret_metadata(
        path=f"{prefix}/{PATH}", mount_point="secret"
    )["data"]["versions"]["1"]

    def parsed(text: str) -> datetime:
        # RFC 3339 with up to 9 fractional digits (trailing zeros dropped), in UTC.
        seconds, _, fraction = text.removesuffix("Z").partition(".")
        micro = int((fraction + "000000")[:6])
        return datetime.fromisoformat(seconds).replace(microsecond=micro, tzinfo=UTC)

    [version] = vault.list_versions(PATH)
    assert version.created_at == parsed(raw["created_time"])
    assert version.deleted
    assert raw["deletion_time"]


def test_a_secret_holding_other_than_strings_is_refused_without_its_values(vault, openbao, prefix):
    # Written by another Vault client: AccessHive itself only stores strings.
    openbao.client().secrets.kv.v2.create_or_update_secret(
        path=f"{prefix}/{PATH}", secret={"pin": 5150, "password": "x"}, mount_point="secret"
    )

    with pytest.raises(VaultRequestRejected) as excinfo:
        vault.read(PATH)

    assert "vault:identities/42/password in HashiCorp Vault" in str(excinfo.value)
    assert "not strings" in str(excinfo.value)
    assert "5150" not in str(excinfo.value)
    assert isinstance(excinfo.value, PermanentError)


def test_approle_on_a_non_default_auth_mount(vault_settings, openbao):
    client = openbao.client()
    client.sys.enable_auth_method("approle", path="approle-ops")
    client.auth.approle.create_or_update_approle(
        role_name="ops", token_policies=["accesshive"], mount_point="approle-ops"
    )
    vault_settings.VAULT_ROLE_ID = client.auth.approle.read_role_id(
        role_name="ops", mount_point="approle-ops"
    )["data"]["role_id"]
    vault_settings.VAULT_SECRET_ID = client.auth.approle.generate_secret_id(
        role_name="ops", mount_point="approle-ops"
    )["data"]["secret_id"]
    vault_settings.VAULT_APPROLE_MOUNT = "approle-ops"
    since = openbao.audit_lines()

    vault = get_vault()
    assert vault.write(PATH, {"password": "one"}).version == 1

    assert len(openbao.answers("auth/approle-ops/login", since=since)) == 1
    assert openbao.answers(LOGIN, since=since) == []


def test_requests_refused_together_after_a_revoke_share_one_fresh_login(
    vault: CredentialVault, openbao: OpenBao
) -> None:
    vault.write(PATH, {"password": "one"})
    since = openbao.audit_lines()
    openbao.client().sys.revoke_prefix(LOGIN)
    readers = 6
    barrier = threading.Barrier(readers)

    def read(_: int) -> dict[str, str]:
        barrier.wait(timeout=10)
        return vault.read(PATH)

    with ThreadPoolExecutor(readers) as pool:
        results = list(pool.map(read, range(readers)))

    assert results == [{"password": "one"}] * readers
    assert len(openbao.answers(LOGIN, since=since)) == 1


def test_the_mount_is_checked_once_and_a_stale_cas_is_sent_once(vault, openbao, prefix):
    since = openbao.audit_lines()
    vault.write(PATH, {"password": "one"})
    vault.read(PATH)
    with pytest.raises(VaultConflict):
        vault.write(PATH, {"password": SECRET}, cas=5)
    assert vault.current_version(PATH) == 1

    assert len(openbao.answers("sys/internal/ui/mounts/secret", since=since)) == 1
    writes = [
        entry
        for entry in openbao.answers(f"secret/data/{prefix}/{PATH}", since=since)
        if entry["request"]["operation"] in ("create", "update")
    ]
    assert [entry["request"]["data"]["options"]["cas"] for entry in writes] == [0, 5]


def test_addresses_mounts_and_prefixes_are_taken_with_or_without_slashes(openbao, prefix):
    vault = HvacVault(
        addr=f"{openbao.url}/", token=ROOT_TOKEN, mount="/secret/", prefix=f"/{prefix}/"
    )
    assert repr(vault) == (
        f"<HvacVault addr='{openbao.url}' mount='secret' prefix='{prefix}' auth=token>"
    )
    assert vault.write(PATH, {"password": "one"}) == SecretRef(PATH, 1)
    assert vault.read(PATH) == {"password": "one"}
    kv = openbao.client().secrets.kv.v2
    stored = kv.read_secret_version(
        path=f"{prefix}/{PATH}", mount_point="secret", raise_on_deleted_version=True
    )
    assert stored["data"]["data"] == {"password": "one"}

    # No prefix: paths sit at the mount's root (a token whose policy allows that).
    bare = HvacVault(addr=openbao.url, token=ROOT_TOKEN, prefix="")
    own_path = f"{prefix.rpartition('/')[2]}/bare"
    assert bare.write(own_path, {"password": "bare"}).version == 1
    stored = kv.read_secret_version(
        path=own_path, mount_point="secret", raise_on_deleted_version=True
    )
    assert stored["data"]["data"] == {"password": "bare"}
    assert bare.list_versions(own_path)[0].version == 1


@pytest.mark.parametrize("timeout", [0, -1, 0.0])
def test_a_timeout_that_is_not_positive_is_refused(timeout):
    with pytest.raises(ImproperlyConfigured, match="VAULT_TIMEOUT must be a positive number"):
        HvacVault(addr="http://127.0.0.1:8200", token="t", timeout=timeout)
    assert HvacVault(addr="http://127.0.0.1:8200", token="t", timeout=0.001)


def test_a_mount_removed_after_its_check_says_so_and_long_answers_are_cut(openbao):
    # The mount is checked once per process; an operator who disables or moves it later gets
    # OpenBao's own "no handler for route" and the setting to look at, not "does not exist".
    mount = f"kv-gone-{uuid.uuid4().hex[:8]}"
    client = openbao.client()
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    vault = HvacVault(addr=openbao.url, token=ROOT_TOKEN, mount=mount, prefix="p")
    vault.write(PATH, {"password": "one"})
    client.sys.disable_secrets_engine(mount)

    def said(path: str) -> str:
        with pytest.raises(hvac.exceptions.InvalidPath) as raw:
            client.secrets.kv.v2.read_secret_version(
                path=f"p/{path}", mount_point=mount, raise_on_deleted_version=True
            )
        [error] = raw.value.errors
        return str(error)

    overhead = len(said("x")) - 1
    for length, detail_length in ((300, 300), (301, 300)):
        path = "x" * (length - overhead)  # OpenBao's answer is exactly `length` characters
        answer = said(path)
        assert len(answer) == length
        shown = answer if length <= 300 else answer[:297] + "..."
        with pytest.raises(VaultRequestRejected) as excinfo:
            vault.read(path)
        assert str(excinfo.value) == (
            f"HashiCorp Vault at {openbao.url} rejected reading vault:{path}: 404 {shown}. "
            f"Check that VAULT_MOUNT ({mount!r}) is a KV version 2 secrets engine"
        )
        assert len(shown) == detail_length
        assert isinstance(excinfo.value, PermanentError)


def test_a_version_openbao_cannot_parse_is_rejected_with_its_reason(vault):
    vault.write(PATH, {"password": "one"})
    too_big = 2**63  # a whole number from 1, but past OpenBao's int64

    with pytest.raises(VaultRequestRejected) as read:
        vault.read(PATH, version=too_big)
    with pytest.raises(VaultRequestRejected) as delete:
        vault.delete(PATH, version=too_big)

    assert f"rejected reading vault:{PATH}#{too_big}: 400 " in str(read.value)
    assert f"rejected deleting vault:{PATH}#{too_big}: 400 " in str(delete.value)
    for excinfo in (read, delete):
        assert "value out of range" in str(excinfo.value)
        assert isinstance(excinfo.value, PermanentError)
    assert vault.read(PATH) == {"password": "one"}


def test_tls_to_a_vault_that_speaks_plain_http_is_refused_not_retried(vault_settings, openbao):
    https = openbao.url.replace("http://", "https://")
    vault_settings.VAULT_ADDR = https
    by_token = HvacVault(addr=https, token=ROOT_TOKEN)

    with pytest.raises(VaultRequestRejected) as login:
        get_vault().read(PATH)
    with pytest.raises(VaultRequestRejected) as first_call:
        by_token.read(PATH)

    assert str(login.value).startswith(
        f"TLS to HashiCorp Vault at {https} failed while logging in (AppRole) for the vault: "
        "SSLError: "
    )
    assert str(first_call.value).startswith(
        f"TLS to HashiCorp Vault at {https} failed while checking the secrets engine at "
        "VAULT_MOUNT 'secret': SSLError: "
    )
    for excinfo in (login, first_call):
        assert str(excinfo.value).endswith(". Check VAULT_CACERT")
        assert isinstance(excinfo.value, PermanentError)
        assert not isinstance(excinfo.value, TransientError)


def test_a_denied_delete_names_the_secret_and_version_and_deletes_are_logged(
    vault_settings, openbao, prefix, caplog
):
    caplog.set_level(logging.INFO, logger="vault.backends.hashicorp")
    vault_settings.VAULT_PATH_PREFIX = "elsewhere"  # outside the AppRole policy
    denied = get_vault()
    for version, ref in ((None, f"vault:{PATH}"), (1, f"vault:{PATH}#1")):
        with pytest.raises(VaultPermissionDenied) as excinfo:
            denied.delete(PATH, version=version)
        assert str(excinfo.value) == (
            f"HashiCorp Vault at {openbao.url} denied deleting {ref}: permission denied. "
            "Check that the token or AppRole policy allows secret/data/elsewhere/* and "
            "secret/metadata/elsewhere/*"
        )
    assert not [r for r in caplog.records if r.getMessage() == "vault.secret.deleted"]

    vault_settings.VAULT_PATH_PREFIX = prefix
    vault = get_vault()
    vault.write(PATH, {"password": SECRET})
    vault.write(PATH, {"password": SECRET})
    vault.delete(PATH)
    vault.delete(PATH, version=1)

    deleted = [r for r in caplog.records if r.getMessage() == "vault.secret.deleted"]
    assert [(r.__dict__["secret_ref"], r.__dict__["backend"]) for r in deleted] == [
        (f"vault:{PATH}#latest", "hvac"),
        (f"vault:{PATH}#1", "hvac"),
    ]
    assert [v.deleted for v in vault.list_versions(PATH)] == [True, True]
    assert not any(SECRET in repr(r.__dict__) for r in caplog.records)


def test_a_mount_of_another_engine_is_named_by_its_type(openbao):
    mount = f"transit-{uuid.uuid4().hex[:8]}"
    openbao.client().sys.enable_secrets_engine("transit", path=mount)
    vault = HvacVault(addr=openbao.url, token=ROOT_TOKEN, mount=mount)

    with pytest.raises(VaultRequestRejected) as excinfo:
        vault.current_version(PATH)

    # A transit engine cannot be upgraded to KV: the advice is to mount one, or use another.
    assert str(excinfo.value) == (
        f"VAULT_MOUNT {mount!r} on HashiCorp Vault at {openbao.url} is a transit secrets "
        "engine; AccessHive needs KV version 2 (versions and check-and-set). Enable one "
        f"(vault secrets enable -path={mount} kv-v2) or point VAULT_MOUNT at a KV version 2 engine"
    )


def test_a_generic_mount_upgraded_to_versions_is_taken(openbao):
    # Mounts from before "kv" was the engine's name keep the type "generic"; `vault kv
    # enable-versioning` makes one KV version 2.
    mount = f"generic-{uuid.uuid4().hex[:8]}"
    client = openbao.client()
    client.sys.enable_secrets_engine("generic", path=mount)
    with pytest.raises(VaultRequestRejected, match="is a generic secrets engine"):
        HvacVault(addr=openbao.url, token=ROOT_TOKEN, mount=mount).check_mount()

    client.sys.tune_mount_configuration(mount, options={"version": "2"})

    HvacVault(addr=openbao.url, token=ROOT_TOKEN, mount=mount).check_mount()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Go's RFC 3339 with nanoseconds, trailing zeros dropped, as OpenBao writes times.
        ("2026-12-05T02:19:08.795365952Z", datetime(2026, 12, 5, 2, 19, 8, 795365, tzinfo=UTC)),
        ("2026-12-05T02:19:08.5Z", datetime(2026, 12, 5, 2, 19, 8, 500000, tzinfo=UTC)),
        ("2026-12-05T02:19:08.00012Z", datetime(2026, 12, 5, 2, 19, 8, 120, tzinfo=UTC)),
        ("2026-12-05T02:19:08Z", datetime(2026, 12, 5, 2, 19, 8, tzinfo=UTC)),
        # A server that does not run in UTC, and one that names no zone at all (taken as UTC).
        ("2026-12-05T04:19:08.5+02:00", datetime(2026, 12, 5, 2, 19, 8, 500000, tzinfo=UTC)),
        (
            "2026-12-04T21:19:08.795365952-05:00",
            datetime(2026, 12, 5, 2, 19, 8, 795365, tzinfo=UTC),
        ),
        ("2026-12-05T02:19:08.5", datetime(2026, 12, 5, 2, 19, 8, 500000, tzinfo=UTC)),
        ("", None),
        ("not a time", None),
    ],
)
def test_version_times_in_every_form_vault_writes_them(text, expected):
    parsed = _parse_time(text)
    assert parsed == expected
    assert parsed is None or parsed.tzinfo is not None
