"""The embedded vault: ciphertext-only storage, versions and cas, key rotation, tamper evidence."""

import base64
import io
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone
from django.views.debug import ExceptionReporter

from imports.services import upload_key_ring
from jobs.errors import JobError, PermanentError, TransientError
from tests.conftest import require_services
from vault.backends import VaultSettings, get_vault
from vault.backends.embedded import EmbeddedVault, associated_data
from vault.backends.hashicorp import HvacVault
from vault.base import CredentialVault, SecretRef
from vault.checks import check_vault_settings
from vault.crypto import KeyRing, generate_key_line
from vault.errors import (
    SecretNotFound,
    VaultConflict,
    VaultDecryptionError,
    VaultError,
    VaultPermissionDenied,
    VaultRequestRejected,
    VaultUnavailable,
)
from vault.models import EncryptedSecret

pytestmark = pytest.mark.django_db

KEY_A = generate_key_line("key-a")
KEY_B = generate_key_line("key-b")
PATH = "identities/42/password"
SECRET = "correct horse battery staple 8c1f"
FIELD = "gws_admin_password"


def key_material(line: str) -> str:
    return line.partition(":")[2]


@pytest.fixture
def use_keys(settings):
    """Point the embedded vault at these key lines and return the backend get_vault() builds."""

    def configure(*lines: str) -> CredentialVault:
        settings.VAULT_ADDR = ""
        settings.VAULT_EMBEDDED_KEYS = list(lines)
        return get_vault()

    return configure


@pytest.fixture
def vault(use_keys):
    return use_keys(KEY_A)


def raw_rows() -> list[tuple[str, int, str, bytes, bool]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT path, version, key_id, ciphertext, deleted FROM vault_encryptedsecret "
            "ORDER BY path, version"
        )
        return [
            (path, version, key_id, bytes(blob), deleted)
            for path, version, key_id, blob, deleted in cursor.fetchall()
        ]


def set_raw_ciphertext(path: str, version: int, blob: bytes, key_id: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE vault_encryptedsecret SET ciphertext = %s, key_id = %s "
            "WHERE path = %s AND version = %s",
            [blob, key_id, path, version],
        )


def test_get_vault_builds_the_embedded_backend_when_vault_addr_is_empty(vault):
    assert isinstance(vault, EmbeddedVault)
    assert isinstance(vault, CredentialVault)
    assert get_vault() is vault  # one instance per configuration: no key parsing per call


def test_the_database_holds_only_ciphertext(vault):
    ref = vault.write(PATH, {FIELD: SECRET, "username": "admin@example.com"})

    assert ref == SecretRef(PATH, 1)
    rows = raw_rows()
    assert len(rows) == 1
    path, version, key_id, blob, deleted = rows[0]
    assert (path, version, key_id, deleted) == (PATH, 1, "key-a", False)
    for needle in (SECRET, FIELD, "admin@example.com"):
        assert needle.encode() not in blob
        assert needle.encode("utf-16-le") not in blob
        assert base64.b64encode(needle.encode()) not in blob
    # nonce + ciphertext + 16-byte tag: nothing but the sealed bytes
    assert len(blob) > 12 + 16
    assert vault.read(PATH) == {FIELD: SECRET, "username": "admin@example.com"}


def test_the_same_secret_encrypts_differently_every_time(vault):
    vault.write("a/one", {FIELD: SECRET})
    vault.write("a/two", {FIELD: SECRET})
    vault.write("a/one", {FIELD: SECRET})
    blobs = [row[3] for row in raw_rows()]
    assert len(set(blobs)) == 3
    assert len({blob[:12] for blob in blobs}) == 3  # fresh random nonces


def test_versions_count_up_and_old_versions_stay_readable(vault):
    assert vault.current_version(PATH) is None
    assert vault.list_versions(PATH) == []

    refs = [vault.write(PATH, {FIELD: f"value-{n}"}) for n in range(1, 4)]

    assert [ref.version for ref in refs] == [1, 2, 3]
    assert vault.current_version(PATH) == 3
    assert vault.read(PATH) == {FIELD: "value-3"}
    assert vault.read(PATH, version=1) == {FIELD: "value-1"}
    assert vault.read(PATH, 2) == {FIELD: "value-2"}
    versions = vault.list_versions(PATH)
    assert [(v.version, v.deleted, v.readable) for v in versions] == [
        (1, False, True),
        (2, False, True),
        (3, False, True),
    ]
    assert versions[0].created_at is not None
    assert versions[2].ref == refs[2]


def test_cas_zero_writes_only_when_the_path_is_absent(vault):
    assert vault.write(PATH, {FIELD: "first"}, cas=0).version == 1

    with pytest.raises(VaultConflict) as excinfo:
        vault.write(PATH, {FIELD: "second"}, cas=0)

    assert "only if absent" in str(excinfo.value)
    assert "vault:identities/42/password" in str(excinfo.value)
    assert "second" not in str(excinfo.value)
    assert isinstance(excinfo.value, PermanentError)
    assert vault.read(PATH) == {FIELD: "first"}
    assert vault.current_version(PATH) == 1


def test_cas_must_name_the_current_version(vault):
    vault.write(PATH, {FIELD: "v1"})
    vault.write(PATH, {FIELD: "v2"})

    with pytest.raises(VaultConflict, match="expected current version 1, found version 2"):
        vault.write(PATH, {FIELD: "stale"}, cas=1)
    with pytest.raises(VaultConflict, match="expected current version 3, found version 2"):
        vault.write(PATH, {FIELD: "ahead"}, cas=3)
    with pytest.raises(VaultConflict, match="found no version yet"):
        vault.write("identities/43/password", {FIELD: "x"}, cas=1)

    assert vault.write(PATH, {FIELD: "v3"}, cas=2) == SecretRef(PATH, 3)
    assert EncryptedSecret.objects.filter(path=PATH).count() == 3


def test_missing_paths_and_versions_raise_secret_not_found(vault):
    with pytest.raises(SecretNotFound, match="vault:nobody/here does not exist"):
        vault.read("nobody/here")
    vault.write(PATH, {FIELD: SECRET})
    with pytest.raises(SecretNotFound, match=r"vault:identities/42/password#7 does not exist"):
        vault.read(PATH, version=7)


def test_delete_is_soft_and_keeps_history(vault):
    vault.write(PATH, {FIELD: "v1"})
    vault.write(PATH, {FIELD: "v2"})

    vault.delete(PATH)

    with pytest.raises(SecretNotFound, match=r"#2 was deleted"):
        vault.read(PATH)
    with pytest.raises(SecretNotFound, match=r"#2 was deleted"):
        vault.read(PATH, version=2)
    assert vault.read(PATH, version=1) == {FIELD: "v1"}
    assert vault.current_version(PATH) == 2  # still the number a cas write must name
    assert [(v.version, v.deleted) for v in vault.list_versions(PATH)] == [(1, False), (2, True)]
    assert [row[4] for row in raw_rows()] == [False, True]  # the row is kept, only flagged

    vault.delete(PATH, version=1)
    assert [v.deleted for v in vault.list_versions(PATH)] == [True, True]

    with pytest.raises(VaultConflict):
        vault.write(PATH, {FIELD: "v3"}, cas=0)
    assert vault.write(PATH, {FIELD: "v3"}, cas=2).version == 3
    assert vault.read(PATH) == {FIELD: "v3"}

    vault.delete("never/written")  # deleting what is absent is not an error


def test_tampered_ciphertext_fails_to_decrypt(vault):
    vault.write(PATH, {FIELD: SECRET})
    blob = raw_rows()[0][3]
    flipped = blob[:20] + bytes([blob[20] ^ 0x01]) + blob[21:]
    set_raw_ciphertext(PATH, 1, flipped, "key-a")

    with pytest.raises(VaultDecryptionError) as excinfo:
        vault.read(PATH)

    message = str(excinfo.value)
    assert "vault:identities/42/password#1" in message
    assert "failed authentication" in message
    assert SECRET not in message
    assert key_material(KEY_A) not in message


def test_truncated_ciphertext_fails_to_decrypt(vault):
    vault.write(PATH, {FIELD: SECRET})
    set_raw_ciphertext(PATH, 1, b"\x00" * 5, "key-a")
    with pytest.raises(VaultDecryptionError, match="truncated"):
        vault.read(PATH)


def test_ciphertext_moved_to_another_path_or_version_fails_to_decrypt(vault):
    vault.write("identities/1/password", {FIELD: "alice's"})
    vault.write("identities/2/password", {FIELD: "bob's"})
    vault.write("identities/2/password", {FIELD: "bob's new"})
    alice_blob = next(row[3] for row in raw_rows() if row[0] == "identities/1/password")
    bob_v2_blob = next(
        row[3] for row in raw_rows() if row[0] == "identities/2/password" and row[1] == 2
    )

    set_raw_ciphertext("identities/2/password", 1, alice_blob, "key-a")
    with pytest.raises(VaultDecryptionError, match=r"vault:identities/2/password#1"):
        vault.read("identities/2/password", version=1)

    set_raw_ciphertext("identities/1/password", 1, bob_v2_blob, "key-a")
    with pytest.raises(VaultDecryptionError, match="copied from another path or version"):
        vault.read("identities/1/password")


def test_an_old_version_copied_over_the_current_one_fails_to_decrypt(vault):
    """Copying version 1's ciphertext over version 2 of the same path would roll a rotated
    password back to the old one, unseen: each ciphertext is bound to its version."""
    vault.write(PATH, {FIELD: "old password"})
    vault.write(PATH, {FIELD: "new password"})
    blobs = {version: blob for path, version, _, blob, _ in raw_rows() if path == PATH}

    set_raw_ciphertext(PATH, 2, blobs[1], "key-a")
    with pytest.raises(VaultDecryptionError, match=r"identities/42/password#2.*copied from"):
        vault.read(PATH)

    set_raw_ciphertext(PATH, 2, blobs[2], "key-a")
    set_raw_ciphertext(PATH, 1, blobs[2], "key-a")
    with pytest.raises(VaultDecryptionError, match=r"identities/42/password#1.*copied from"):
        vault.read(PATH, version=1)
    assert vault.read(PATH) == {FIELD: "new password"}


def test_key_rotation_keeps_every_secret_readable(use_keys):
    vault_a = use_keys(KEY_A)
    vault_a.write("identities/1/password", {FIELD: "one"})
    vault_a.write("identities/1/password", {FIELD: "one again"})
    vault_a.write("identities/2/password", {FIELD: "two"})
    vault_a.delete("identities/2/password")
    before = {(row[0], row[1]): row[3] for row in raw_rows()}

    # Without the old key nothing written with it can be read, and the error says which key.
    with pytest.raises(VaultDecryptionError, match="vault key 'key-a', which is not configured"):
        use_keys(KEY_B).read("identities/1/password")

    vault_ba = use_keys(KEY_B, KEY_A)
    assert vault_ba.read("identities/1/password", version=1) == {FIELD: "one"}
    assert vault_ba.write("identities/3/password", {FIELD: "three"}).version == 1
    assert EncryptedSecret.objects.get(path="identities/3/password").key_id == "key-b"

    out = io.StringIO()
    call_command("vault_rotate_key", stdout=out)

    assert "Re-encrypted 3 secret version(s) with key 'key-b'" in out.getvalue()
    assert {row[2] for row in raw_rows()} == {"key-b"}
    after = {(row[0], row[1]): row[3] for row in raw_rows()}
    assert all(after[key] != blob for key, blob in before.items())
    assert all(SECRET.encode() not in blob for blob in after.values())

    vault_b = use_keys(KEY_B)
    assert vault_b.read("identities/1/password") == {FIELD: "one again"}
    assert vault_b.read("identities/1/password", version=1) == {FIELD: "one"}
    deleted_row = EncryptedSecret.objects.get(path="identities/2/password")
    assert deleted_row.deleted
    assert (
        KeyRing.from_lines([KEY_B]).open(
            deleted_row.key_id,
            bytes(deleted_row.ciphertext),
            associated_data("identities/2/password", 1),
            label="test",
        )
        == b'{"%s":"two"}' % FIELD.encode()
    )
    assert vault_b.read("identities/3/password") == {FIELD: "three"}

    out = io.StringIO()
    call_command("vault_rotate_key", stdout=out)  # running it again changes nothing
    assert "Re-encrypted 0 secret version(s)" in out.getvalue()


def test_rotation_reports_rows_it_cannot_decrypt_and_leaves_them(use_keys):
    use_keys(KEY_A).write("identities/1/password", {FIELD: "one"})
    key_c = generate_key_line("key-c")
    use_keys(key_c).write("identities/2/password", {FIELD: "two"})
    use_keys(KEY_B, KEY_A)

    with pytest.raises(CommandError) as excinfo:
        call_command("vault_rotate_key", stdout=io.StringIO())

    assert "vault:identities/2/password#1" in str(excinfo.value)
    assert key_material(key_c) not in str(excinfo.value)
    keys = {row[0]: row[2] for row in raw_rows()}
    assert keys == {"identities/1/password": "key-b", "identities/2/password": "key-c"}


def test_no_key_configured_is_a_configuration_error(use_keys):
    with pytest.raises(ImproperlyConfigured, match="ACCESSHIVE_VAULT_KEYS") as excinfo:
        use_keys()
    assert "vault_generate_key" in str(excinfo.value)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("no-colon-here", "entry #1 is not 'key_id:base64key'"),
        ("bad:!!!notbase64!!!", "'bad' is not valid base64"),
        (f"short:{base64.b64encode(b'k' * 16).decode()}", "'short' is 16 bytes; AES-256 needs 32"),
        (f"bad id:{key_material(KEY_A)}", "must be 1 to 64 letters"),
        (f":{key_material(KEY_A)}", "must be 1 to 64 letters"),
        (f"{'k' * 65}:{key_material(KEY_A)}", "must be 1 to 64 letters"),
    ],
    # Fixed ids: the key material is new in every process, and mutmut names tests by id.
    ids=["no-colon", "not-base64", "short", "bad-id", "empty-id", "id-too-long"],
)
def test_malformed_keys_are_reported_without_their_material(use_keys, line, expected):
    with pytest.raises(ImproperlyConfigured, match=expected) as excinfo:
        use_keys(line)
    material = line.partition(":")[2]
    assert not material or material not in str(excinfo.value)


def test_a_key_id_of_64_characters_is_accepted(use_keys):
    key_id = "k" * 63 + "-"
    vault = use_keys(f"{key_id}:{key_material(KEY_A)}")
    vault.write(PATH, {FIELD: SECRET})
    assert raw_rows()[0][2] == key_id


def test_duplicate_key_ids_are_refused(use_keys):
    with pytest.raises(ImproperlyConfigured, match="configured twice"):
        use_keys(KEY_A, "key-a:" + key_material(KEY_B))


def test_keys_from_one_comma_separated_string(settings):
    settings.VAULT_ADDR = ""
    settings.VAULT_EMBEDDED_KEYS = f"{KEY_B},{KEY_A}"
    vault = get_vault()
    assert "key-b" in repr(vault)
    assert vault.write(PATH, {FIELD: SECRET}).version == 1


def test_generate_key_prints_a_usable_key_line(use_keys):
    out = io.StringIO()
    call_command("vault_generate_key", "--id", "k2031", stdout=out)
    line = out.getvalue().strip()

    key_id, _, material = line.partition(":")
    assert key_id == "k2031"
    assert len(base64.b64decode(material)) == 32
    vault = use_keys(line)
    vault.write(PATH, {FIELD: SECRET})
    assert vault.read(PATH) == {FIELD: SECRET}

    out = io.StringIO()
    call_command("vault_generate_key", stdout=out)
    assert out.getvalue().strip() != line
    assert out.getvalue().startswith("k")


def test_nothing_shows_a_secret_or_a_key(vault, caplog):
    caplog.set_level(logging.DEBUG)
    ref = vault.write(PATH, {FIELD: SECRET})
    vault.read(PATH)
    with pytest.raises(VaultConflict) as conflict:
        vault.write(PATH, {FIELD: SECRET}, cas=0)
    row = EncryptedSecret.objects.get()
    config = VaultSettings(addr="", token="hvs.not-shown", embedded_keys=(KEY_A,))
    keyring = KeyRing.from_lines([KEY_A])

    shown = [
        str(ref),
        repr(ref),
        repr(vault),
        str(row),
        repr(row),
        str(conflict.value),
        repr(conflict.value),
        repr(config),
        repr(keyring),
        *(record.getMessage() for record in caplog.records),
        *(repr(record.__dict__) for record in caplog.records),
    ]
    assert str(ref) == "vault:identities/42/password#1"
    assert repr(ref) == "<SecretRef vault:identities/42/password#1>"
    assert any("vault.secret.written" in text for text in shown)
    for text in shown:
        assert SECRET not in text
        assert key_material(KEY_A) not in text
        assert "hvs.not-shown" not in text


def test_django_error_reports_hide_the_secret_in_frame_locals(vault):
    vault.write(PATH, {FIELD: "v1"})
    data = {FIELD: SECRET}
    try:
        vault.write(PATH, data, cas=0)
    except VaultConflict:
        frames = ExceptionReporter(None, *sys.exc_info()).get_traceback_data()["frames"]
    write_frame = next(f for f in frames if f["function"] == "write" and "vault/" in f["filename"])
    assert dict(write_frame["vars"])["data"] == "'********************'"
    for frame in frames:
        if frame["function"] != "test_django_error_reports_hide_the_secret_in_frame_locals":
            assert SECRET not in repr(frame["vars"])


def test_secret_refs_round_trip_and_reject_junk():
    ref = SecretRef.parse("vault:identities/42/password#3")
    assert ref == SecretRef("identities/42/password", 3)
    assert SecretRef.parse(str(ref)) == ref
    for junk in [
        "identities/42/password#3",
        "vault:identities/42/password",
        "vault:identities/42/password#0",
        "vault:identities/42/password#x",
        "vault:#3",
        "vault:../etc/passwd#1",
        "vault:a//b#1",
        "vault:/a#1",
        "vault:a b#1",
    ]:
        with pytest.raises(ValueError):  # noqa: PT011 - each message is asserted elsewhere
            SecretRef.parse(junk)


def test_bad_arguments_fail_before_touching_the_database(vault):
    with pytest.raises(ValueError, match="bad secret path"):
        vault.write("a/../b", {FIELD: SECRET})
    with pytest.raises(ValueError, match="cas is a whole number"):
        vault.write(PATH, {FIELD: SECRET}, cas=-1)
    with pytest.raises(TypeError, match="'pin' holds a int") as excinfo:
        vault.write(PATH, {"pin": 1234})
    assert "1234" not in str(excinfo.value)
    with pytest.raises(ValueError, match="version is a whole number"):
        vault.read(PATH, version=0)
    assert raw_rows() == []
    vault.write(PATH, {FIELD: SECRET})
    # Refused, not quietly matching no version while the caller believes it deleted one.
    for version in (0, True, "1"):
        with pytest.raises(ValueError, match="version is a whole number"):
            vault.delete(PATH, version=version)
    assert vault.read(PATH) == {FIELD: SECRET}


def test_error_classes_sort_into_transient_and_permanent():
    assert issubclass(VaultError, JobError)
    assert issubclass(VaultUnavailable, TransientError)
    for permanent in (
        VaultPermissionDenied,
        VaultConflict,
        SecretNotFound,
        VaultDecryptionError,
        VaultRequestRejected,
    ):
        assert issubclass(permanent, VaultError)
        assert issubclass(permanent, PermanentError)
        assert not issubclass(permanent, TransientError)


def test_vault_addr_selects_the_hvac_backend(settings):
    settings.VAULT_ADDR = "http://127.0.0.1:8200"
    settings.VAULT_TOKEN = "hvs.example"
    settings.VAULT_ROLE_ID = ""
    vault = get_vault()
    assert isinstance(vault, HvacVault)
    assert "hvs.example" not in repr(vault)

    settings.VAULT_ROLE_ID = "role"
    with pytest.raises(ImproperlyConfigured, match="exactly one way to authenticate"):
        get_vault()


def test_system_checks_report_vault_configuration(settings):
    settings.VAULT_ADDR = ""
    settings.VAULT_EMBEDDED_KEYS = [KEY_A]
    assert check_vault_settings(None) == []
    settings.VAULT_EMBEDDED_KEYS = []
    assert [m.id for m in check_vault_settings(None)] == ["vault.W001"]
    settings.VAULT_EMBEDDED_KEYS = ["nope"]
    assert [m.id for m in check_vault_settings(None)] == ["vault.E001"]
    settings.VAULT_ADDR = "http://127.0.0.1:8200"
    settings.VAULT_TOKEN = ""
    settings.VAULT_ROLE_ID = ""
    assert [m.id for m in check_vault_settings(None)] == ["vault.E002"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_get_distinct_versions(vault):
    require_services("postgres")
    writers = 16
    barrier = threading.Barrier(writers)

    def write(n: int):
        try:
            barrier.wait(timeout=10)
            return vault.write("race/plain", {FIELD: f"value-{n}"})
        finally:
            connection.close()

    with ThreadPoolExecutor(writers) as pool:
        refs = list(pool.map(write, range(writers)))

    assert sorted(ref.version for ref in refs) == list(range(1, writers + 1))
    values = {vault.read("race/plain", ref.version)[FIELD] for ref in refs}
    assert values == {f"value-{n}" for n in range(writers)}


@pytest.mark.django_db(transaction=True)
def test_concurrent_cas_writers_exactly_one_wins(vault):
    require_services("postgres")
    vault.write("race/cas", {FIELD: "v1"})
    writers = 8
    barrier = threading.Barrier(writers * 2)

    def write(args: tuple[str, int]) -> str:
        path, cas = args
        try:
            barrier.wait(timeout=10)
            vault.write(path, {FIELD: "mine"}, cas=cas)
            return "won"
        except VaultConflict:
            return "conflict"
        finally:
            connection.close()

    # Half race to replace an existing version, half to create a new path with cas=0.
    jobs = [("race/cas", 1)] * writers + [("race/new", 0)] * writers
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(write, jobs))

    assert results[:writers].count("won") == 1
    assert results[writers:].count("won") == 1
    assert vault.current_version("race/cas") == 2
    assert vault.current_version("race/new") == 1


def test_write_new_stores_first_versions_together_or_not_at_all(vault) -> None:
    paths = [f"identities/{n}/credential" for n in (7, 8, 9)]
    refs = vault.write_new({path: {"api_key": f"{SECRET}-{n}"} for n, path in enumerate(paths)})

    assert [str(ref) for ref in refs] == [f"vault:{path}#1" for path in paths]
    assert [vault.read(path) for path in paths] == [{"api_key": f"{SECRET}-{n}"} for n in range(3)]
    assert all(SECRET.encode() not in row[3] for row in raw_rows())
    # One path that has a version already refuses the whole batch, like write(cas=0) does.
    with pytest.raises(VaultConflict, match="cas=0"):
        vault.write_new({"identities/10/credential": {"k": "v"}, paths[1]: {"k": "v"}})
    assert vault.current_version("identities/10/credential") is None
    assert vault.current_version(paths[1]) == 1


# Written once by AccessHive's sealing (key below, nonce 0x64..0x6f) for identities/7/password
# version 2: the stored format itself, which every later release must still open.
RELEASE_1_KEY = "release-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
RELEASE_1_BLOB = bytes.fromhex(
    "6465666768696a6b6c6d6e6f3339b9110ab637fa530b31b7aa04198e35ad746ea956d101c2b0c02d9f83"
    "c731b49b25ac2973e861ddc25a13df37b9aa6935f98a45687b0a9b95c1bf81c1c0f269e1ab62b365586a"
    "e64d90f572f1bfe183a023fbf415afe0d4d732"
)


def test_a_secret_sealed_by_an_earlier_release_stays_readable(use_keys):
    vault = use_keys(KEY_B, RELEASE_1_KEY)
    EncryptedSecret.objects.create(
        path="identities/7/password", version=2, ciphertext=RELEASE_1_BLOB, key_id="release-1"
    )

    assert vault.read("identities/7/password") == {
        FIELD: "sealed by release 1",
        "username": "admin@example.com",
    }
    # Rotation re-seals it under the new key, still bound to its path and version.
    assert isinstance(vault, EmbeddedVault)
    assert vault.reencrypt_all().reencrypted == 1
    assert use_keys(KEY_B).read("identities/7/password", version=2)[FIELD] == "sealed by release 1"


def test_what_is_stored_is_the_documented_format(vault):
    """nonce (12 bytes) + AES-256-GCM of the data as compact JSON with sorted keys, bound to
    "accesshive-vault/v1", the path and the version: what an operator's recovery tool opens."""
    vault.write(PATH, {"username": "admin@example.com", FIELD: SECRET})
    vault.write(PATH, {FIELD: "second"})
    key = base64.b64decode(key_material(KEY_A))

    opened = [
        AESGCM(key).decrypt(
            blob[:12], blob[12:], b"accesshive-vault/v1\x00" + path.encode() + b"\x00%d" % version
        )
        for path, version, _, blob, _ in raw_rows()
    ]

    assert opened == [
        b'{"%s":"%s","username":"admin@example.com"}' % (FIELD.encode(), SECRET.encode()),
        b'{"%s":"second"}' % FIELD.encode(),
    ]


def test_rotation_in_batches_gets_past_a_row_it_cannot_decrypt(use_keys):
    """A row sealed with a key no longer configured is reported once and skipped; every other
    row, in every batch, is re-sealed, the first one ever stored (id 1) too. A row left under
    the old key would be lost when that key is removed."""
    vault_a = use_keys(KEY_A)
    vault_a.write("identities/1/password", {FIELD: "one"})
    use_keys(generate_key_line("key-c")).write("identities/2/password", {FIELD: "two"})
    vault_a.write("identities/3/password", {FIELD: "three"})
    vault_a.write("identities/3/password", {FIELD: "three again"})
    vault_a.write("identities/4/password", {FIELD: "four"})
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE vault_encryptedsecret SET id = 1 WHERE path = %s", ["identities/1/password"]
        )
    vault_ba = use_keys(KEY_B, KEY_A)
    assert isinstance(vault_ba, EmbeddedVault)

    report = vault_ba.reencrypt_all(batch_size=3)

    assert (report.reencrypted, report.failed) == (4, ["vault:identities/2/password#1"])
    assert [(row[0], row[1], row[2]) for row in raw_rows()] == [
        ("identities/1/password", 1, "key-b"),
        ("identities/2/password", 1, "key-c"),
        ("identities/3/password", 1, "key-b"),
        ("identities/3/password", 2, "key-b"),
        ("identities/4/password", 1, "key-b"),
    ]
    vault_b = use_keys(KEY_B)
    assert vault_b.read("identities/1/password") == {FIELD: "one"}
    assert vault_b.read("identities/3/password", version=1) == {FIELD: "three"}
    assert vault_b.read("identities/3/password") == {FIELD: "three again"}
    assert vault_b.read("identities/4/password") == {FIELD: "four"}

    again = vault_ba.reencrypt_all(batch_size=1)
    assert (again.reencrypted, again.failed) == (0, ["vault:identities/2/password#1"])


@pytest.mark.parametrize(
    "plaintext", [b"not json 5150", b'{"pin": 5150}', b'["5150"]'], ids=["text", "int", "list"]
)
def test_a_decrypted_value_that_is_not_secret_data_is_refused_without_showing_it(vault, plaintext):
    """Only a writer holding the key can seal such a value; reading it is a decryption error
    naming the secret, not a crash, and the value stays out of the message."""
    keyring = KeyRing.from_lines([KEY_A])
    key_id, blob = keyring.seal(plaintext, associated_data(PATH, 1))
    EncryptedSecret.objects.create(path=PATH, version=1, ciphertext=blob, key_id=key_id)

    with pytest.raises(VaultDecryptionError) as excinfo:
        vault.read(PATH)

    assert str(excinfo.value) == f"vault:{PATH}#1 decrypted to something that is not secret data"
    assert excinfo.value.__suppress_context__


def test_key_entries_may_carry_spaces_and_a_trailing_newline(settings):
    settings.VAULT_ADDR = ""
    settings.VAULT_EMBEDDED_KEYS = f" {KEY_B} ,\t{KEY_A.replace(':', ': ')}\n"
    vault = get_vault()
    assert repr(vault) == "<EmbeddedVault primary_key='key-b' keys=['key-b', 'key-a']>"
    assert vault.write(PATH, {FIELD: SECRET}).version == 1
    assert raw_rows()[0][2] == "key-b"


def test_a_key_with_a_stray_character_is_refused(use_keys):
    """base64 that skipped characters it does not know would take a mistyped key as another."""
    material = key_material(KEY_A)
    for stray in ("*", "!", "\u00e9"):
        with pytest.raises(ImproperlyConfigured, match="'stray' is not valid base64"):
            use_keys(f"stray:{material[:20]}{stray}{material[20:]}")


@pytest.mark.parametrize("insert", ["copy", "orm"])
def test_write_new_stores_the_same_rows_by_copy_and_by_the_orm(vault, monkeypatch, insert):
    """PostgreSQL takes new rows by COPY; any other database (SQLite under `make run`) by
    bulk_create. Both paths run here, on PostgreSQL, by naming another vendor for the ORM one."""
    if insert == "orm":
        monkeypatch.setattr(connection, "vendor", "sqlite")
    before = timezone.now()
    assert vault.write_new({}) == []

    refs = vault.write_new({"imports/a": {"api_key": "k-a"}, "imports/b": {"api_key": "k-b"}})

    monkeypatch.undo()
    assert [str(ref) for ref in refs] == ["vault:imports/a#1", "vault:imports/b#1"]
    rows = EncryptedSecret.objects.order_by("path")
    assert [(row.path, row.version, row.key_id, row.deleted) for row in rows] == [
        ("imports/a", 1, "key-a", False),
        ("imports/b", 1, "key-a", False),
    ]
    assert all(before <= row.created_at <= timezone.now() for row in rows)
    assert vault.read("imports/b") == {"api_key": "k-b"}


def test_import_uploads_take_the_keys_from_one_comma_separated_string(settings):
    """The imports seal uploads with KeyRing.from_lines(settings.VAULT_EMBEDDED_KEYS) itself,
    so the comma form a hand-written settings file may give reaches from_lines as a string."""
    settings.VAULT_EMBEDDED_KEYS = f"{KEY_B},{KEY_A},"
    ring = upload_key_ring()
    assert (ring.primary_id, ring.key_ids) == ("key-b", ["key-b", "key-a"])
    label = b"imports/1/1"
    key_id, blob = KeyRing.from_lines([KEY_A]).seal(b"row 1", label)
    assert ring.open(key_id, blob, label, label="upload") == b"row 1"
