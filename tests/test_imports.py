"""The bulk_import job through the engine's runner: every identity type created through the
identity service (jobs, vault), row problems named by row and field, dry runs, idempotent
re-imports, resuming after a failure, continuation jobs, and no secret left outside the vault."""

import json
import logging
import re
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection

from identities.models import Identity, IdentityStatus, IdentityType, Platform
from identities.services import IdentityInput, create_identities
from imports import csvfile, services
from imports.models import ImportBatch, ImportChunk, ImportLogin, ImportProblem, ImportStatus
from jobs import services as job_services
from jobs.models import Job, JobStatus, JobType
from tests import factories
from tests.inline import deliver
from vault.backends import get_vault
from vault.base import SecretRef
from vault.models import EncryptedSecret

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record job messages instead of publishing them, so no test touches a broker."""
    calls: list[int] = []
    monkeypatch.setattr("jobs.services.send", lambda job_id, **kwargs: calls.append(job_id))
    return calls


@pytest.fixture
def admin():
    return factories.make_identity_admin()


@pytest.fixture
def gws() -> Platform:
    return factories.make_platform("Workspace")


@pytest.fixture
def github() -> Platform:
    return factories.make_platform("GitHub", kind=Platform.Kind.GITHUB)


def upload(data: bytes, actor: Any, *, dry_run: bool = False) -> ImportBatch:
    return services.start_import(
        SimpleUploadedFile("people.csv", data), filename="people.csv", dry_run=dry_run, actor=actor
    )


def current_job(batch: ImportBatch) -> Job:
    batch.refresh_from_db()
    assert batch.job_id is not None
    return Job.objects.get(pk=batch.job_id)


def result(job: Job) -> dict[str, Any]:
    assert isinstance(job.result, dict)
    return job.result


def run_to_end(batch: ImportBatch, *, limit: int = 100) -> ImportBatch:
    """Deliver the import's job, and each continuation it hands over to, until the import
    finishes or a delivery leaves its job waiting for a retry."""
    for _ in range(limit):
        batch.refresh_from_db()
        if not batch.is_active:
            return batch
        job = deliver(current_job(batch))
        if job.status != JobStatus.COMPLETED:
            batch.refresh_from_db()
            return batch
    raise AssertionError(f"import #{batch.pk} did not finish after {limit} deliveries")


def secret(n: int) -> str:
    return f"pl4nted-s3cret-r{n:02d}-7f3a"


def mixed_rows(gws: Platform, github: Platform) -> tuple[bytes, list[str]]:
    """Valid rows of every type, then invalid ones; and every secret value in the file."""
    key = json.dumps(factories.service_account_key(secret(6)), indent=2)
    rows = [
        factories.import_row(IdentityType.HUMAN_INTERACTIVE, gws, ""),  # row 2
        factories.import_row(IdentityType.HUMAN_INTERACTIVE, github, ""),  # row 3
        factories.import_row(IdentityType.SHARED_CREDENTIAL_MANAGED, gws, ""),  # row 4
        factories.import_row(IdentityType.SHARED_CREDENTIAL_EXTERNAL, gws, secret(5)),  # row 5
        factories.import_row(IdentityType.SERVICE_ACCOUNT, gws, "", json_key=key),  # row 6
        factories.import_row(IdentityType.API_KEY, gws, secret(7)),  # row 7
        factories.import_row(IdentityType.OAUTH_CLIENT, gws, secret(8)),  # row 8
        # Invalid from here on.
        factories.import_row(IdentityType.HUMAN_INTERACTIVE, gws, "", email="eve@evil.org"),
        factories.import_row(
            IdentityType.SHARED_CREDENTIAL_MANAGED, github, "", email="ops@github.example"
        ),  # row 10
        factories.import_row(
            IdentityType.SHARED_CREDENTIAL_EXTERNAL, gws, "", username="svc-backup"
        ),  # row 11: no password
        factories.import_row(
            IdentityType.SERVICE_ACCOUNT, gws, "", json_key=f"{{not json {secret(12)}"
        ),  # row 12
        factories.import_row(
            IdentityType.API_KEY, gws, secret(13), name="ci-other", password=secret(31)
        ),  # row 13: a password cell an API key does not use
        factories.import_row(IdentityType.OAUTH_CLIENT, gws, secret(14), platform="Nope"),
        {"type": "robot", "platform": "Workspace", "api_key": secret(15)},  # row 15
        factories.import_row(IdentityType.HUMAN_INTERACTIVE, gws, "", given_name=""),  # 16
        # Row 17: the same API key name as row 7 on the same platform.
        factories.import_row(IdentityType.API_KEY, gws, secret(17)),
    ]
    data = factories.import_csv(rows)
    # Row 18: a row with one cell too many.
    data += f"api_key,Workspace,,,,,,,,,{secret(18)},x,y,z,extra\r\n".encode()
    # A 13's second cell, 31, is a secret too.
    secrets = [secret(n) for n in (5, 6, 7, 8, 12, 13, 14, 15, 17, 18, 31)]
    return data, secrets


EXPECTED_PROBLEMS = [
    ("failed", "row 9, email: Not on the platform's domain example.com."),
    (
        "failed",
        "row 10, platform: A managed shared credential needs a Google Workspace platform.",
    ),
    ("failed", "row 11, password: This field is required."),
    ("failed", "row 12, json_key: This is not valid JSON."),
    ("failed", "row 13, password: Not used by type api_key; leave it empty."),
    ("failed", "row 14, platform: No platform named “Nope”."),
    (
        "failed",
        "row 15, type: Unknown type “robot”. Expected one of: human_interactive, "
        "shared_credential_managed, shared_credential_external, service_account, api_key, "
        "oauth_client.",
    ),
    ("failed", "row 16, given_name: This field is required."),
    ("skipped", "row 17, name: ci-deploy already exists on Workspace."),
    (
        "failed",
        "row 18, columns: 15 cells, but the header has 14 columns; is a cell with a comma "
        "missing its quotes?",
    ),
]


def problems(batch: ImportBatch) -> list[tuple[str, str]]:
    return [(p.outcome, p.text) for p in ImportProblem.objects.filter(batch=batch)]


def job_types(identity: Identity) -> list[str]:
    return list(
        Job.objects.filter(
            subject_type=ContentType.objects.get_for_model(Identity), subject_id=str(identity.pk)
        )
        .order_by("id")
        .values_list("job_type", flat=True)
    )


def vault_text(identity: Identity) -> str:
    ref = SecretRef.parse(identity.secret_ref)
    return json.dumps(get_vault().read(ref.path, ref.version))


def database_text() -> str:
    """Every row of every table as text, binary columns decoded too: what a dump would show."""
    tables = connection.introspection.table_names()
    parts: list[str] = []
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f'SELECT t::text FROM "{table}" AS t')  # noqa: S608 - our table names
            parts.extend(row[0] for row in cursor.fetchall())
    text = "\n".join(parts)
    # PostgreSQL shows bytea as \x<hex>: decode it, or a stored file would go unseen.
    decoded = [
        bytes.fromhex(match).decode("utf-8", errors="replace")
        for match in re.findall(r"\\+x((?:[0-9a-f]{2})+)", text)
    ]
    return "\n".join([text, *decoded])


# --- a file with every type, valid and not --------------------------------------------------


def test_mixed_file_creates_valid_rows_of_every_type_and_reports_the_rest(
    admin, gws, github, sent, django_capture_on_commit_callbacks
) -> None:
    data, _ = mixed_rows(gws, github)
    batch = upload(data, admin)
    assert batch.rows_total == 17
    with django_capture_on_commit_callbacks(execute=True):
        batch = run_to_end(batch)

    assert batch.status == ImportStatus.COMPLETED
    assert (batch.rows_done, batch.created, batch.skipped, batch.failed) == (17, 7, 1, 9)
    job = current_job(batch)
    assert job.job_type == JobType.BULK_IMPORT
    assert job.triggered_by == admin
    assert job.result == {
        "batch_id": batch.pk,
        "dry_run": False,
        "rows_total": 17,
        "rows_done": 17,
        "created": 7,
        "would_create": None,
        "skipped": 1,
        "failed": 9,
    }
    assert problems(batch) == EXPECTED_PROBLEMS

    identities = {i.login: i for i in Identity.objects.all()}
    assert len(identities) == 7
    assert all(i.created_by == admin for i in identities.values())
    human = identities["ada@example.com"]
    assert human.platform == gws
    assert human.status == IdentityStatus.PROVISIONING
    assert (human.given_name, human.family_name, human.org_unit_path) == (
        "Ada",
        "Lovelace",
        "/Engineering",
    )
    assert job_types(human) == [JobType.CREATE_DOMAIN_USER, JobType.PROVISION_SSO_USER]
    assert job_types(identities["ada@elsewhere.org"]) == [JobType.PROVISION_SSO_USER]
    assert job_types(identities["ops-shared@example.com"]) == [JobType.CREATE_DOMAIN_USER]
    credentials = {
        "ops-bot": secret(5),
        "robot@accesshive-tests.iam.gserviceaccount.com": secret(6),
        "ci-deploy": secret(7),
        "portal-client-123": secret(8),
    }
    for login, value in credentials.items():
        identity = identities[login]
        assert identity.status == IdentityStatus.PROVISIONED
        assert job_types(identity) == []
        assert value in vault_text(identity)
    # Only the provisioning jobs and no continuation were sent, after their chunk committed;
    # the human's SSO job waits for its Google user, so its message is not sent yet.
    provisioning = Job.objects.exclude(job_type=JobType.BULK_IMPORT)
    assert sorted(sent) == sorted(
        provisioning.exclude(status=JobStatus.WAITING).values_list("pk", flat=True)
    )
    assert len(sent) == 3
    assert provisioning.filter(status=JobStatus.WAITING).count() == 1


def test_secrets_are_only_in_the_vault_afterwards(admin, gws, github, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    data, secrets = mixed_rows(gws, github)
    batch = upload(data, admin)
    before = database_text()
    # The upload waits encrypted with the vault's key ring: no secret readable in the tables,
    # while the file itself reads back whole.
    assert "people.csv" in before
    assert [value for value in secrets if value in before] == []
    assert not ImportChunk.objects.filter(key_id="").exists()
    stored = b"".join(services.stored_chunks(batch.pk)).decode()
    assert all(value in stored for value in secrets)
    batch = run_to_end(batch)
    assert batch.status == ImportStatus.COMPLETED

    after = database_text()
    leaked = [value for value in secrets if value in after]
    assert leaked == []
    assert not ImportChunk.objects.exists()
    assert batch.upload_deleted_at is not None
    # Each stored credential reads back from the vault, and is ciphertext in the database.
    assert EncryptedSecret.objects.count() == 4
    for job in Job.objects.all():
        text = json.dumps([job.params, job.result, job.error_message, job.error_traceback])
        assert not [value for value in secrets if value in text]
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert not [value for value in secrets if value in logged]
    report = "\n".join(
        f"{p.field} {p.message} {p.login} {p.platform} {p.identity_type}"
        for p in ImportProblem.objects.all()
    )
    assert not [value for value in secrets if value in report]


def test_dry_run_validates_everything_and_creates_nothing(
    admin, gws, github, sent, django_capture_on_commit_callbacks
) -> None:
    data, secrets = mixed_rows(gws, github)
    with django_capture_on_commit_callbacks(execute=True):
        batch = run_to_end(upload(data, admin, dry_run=True))

    assert batch.status == ImportStatus.COMPLETED
    assert batch.dry_run
    assert (batch.rows_done, batch.created, batch.skipped, batch.failed) == (17, 7, 1, 9)
    assert result(current_job(batch))["would_create"] == 7
    assert not Identity.objects.exists()
    assert not EncryptedSecret.objects.exists()
    assert set(Job.objects.values_list("job_type", flat=True)) == {JobType.BULK_IMPORT}
    assert sent == [batch.job_id]
    dry = problems(batch)
    assert dry[:-2] == EXPECTED_PROBLEMS[:-2]
    # Row 17 duplicates row 7 within the file: the dry run says so, as the import would.
    assert dry[-2] == (
        "skipped",
        "row 17, name: ci-deploy would already exist: row 7 has it.",
    )
    assert not ImportLogin.objects.exists()
    assert not [value for value in secrets if value in database_text()]

    # The real import of the same file then gives the same counts.
    real = run_to_end(upload(data, admin))
    assert (real.created, real.skipped, real.failed) == (batch.created, batch.skipped, 9)


def test_a_dry_run_remembers_logins_across_chunks(admin, gws, settings) -> None:
    """A login repeated further down the file, in the same chunk or a later one, is skipped
    by the dry run naming the first row that has it, as the real import skips it."""
    settings.IMPORT_CHUNK_ROWS = 2
    names = ["a", "b", "c", "a", "a", "c", "d", "d"]  # rows 2 to 9, two rows a chunk
    data = factories.import_csv(
        [
            factories.import_row(IdentityType.API_KEY, gws, secret(n), name=f"key-{name}")
            for n, name in enumerate(names)
        ]
    )
    dry = run_to_end(upload(data, admin, dry_run=True))
    assert (dry.created, dry.skipped, dry.failed) == (4, 4, 0)
    assert problems(dry) == [
        ("skipped", "row 5, name: key-a would already exist: row 2 has it."),
        ("skipped", "row 6, name: key-a would already exist: row 2 has it."),
        ("skipped", "row 7, name: key-c would already exist: row 4 has it."),
        ("skipped", "row 9, name: key-d would already exist: row 8 has it."),
    ]
    real = run_to_end(upload(data, admin))
    assert (real.created, real.skipped, real.failed) == (4, 4, 0)
    assert [row for _, row in problems(real)] == [
        "row 5, name: key-a already exists on Workspace.",
        "row 6, name: key-a already exists on Workspace.",
        "row 7, name: key-c already exists on Workspace.",
        "row 9, name: key-d already exists on Workspace.",
    ]


def test_importing_the_same_file_again_creates_nothing_new(admin, gws, github) -> None:
    data, _ = mixed_rows(gws, github)
    first = run_to_end(upload(data, admin))
    identities = set(Identity.objects.values_list("pk", flat=True))
    jobs = Job.objects.exclude(job_type=JobType.BULK_IMPORT).count()
    secrets_stored = EncryptedSecret.objects.count()

    second = run_to_end(upload(data, admin))
    assert second.status == ImportStatus.COMPLETED
    assert (second.created, second.skipped, second.failed) == (0, 8, 9)
    assert set(Identity.objects.values_list("pk", flat=True)) == identities
    assert Job.objects.exclude(job_type=JobType.BULK_IMPORT).count() == jobs
    assert EncryptedSecret.objects.count() == secrets_stored
    skipped = [text for outcome, text in problems(second) if outcome == "skipped"]
    assert skipped[:2] == [
        "row 2, email: ada@example.com already exists on Workspace.",
        "row 3, email: ada@elsewhere.org already exists on GitHub.",
    ]
    assert first.sha256 == second.sha256


def test_identity_created_meanwhile_is_skipped_not_failed(admin, gws) -> None:
    """Between a row's check and its creation someone else may create the identity: the
    service's duplicate error counts as skipped too."""
    row = factories.import_row(IdentityType.API_KEY, gws, secret(1))
    batch = upload(factories.import_csv([row]), admin)
    check = csvfile.check_row(
        csvfile.Row(2, {k: row.get(k, "") for k in csvfile.COLUMNS}),
        csvfile.platform_index([gws]),
    )
    assert check.outcome == "valid"
    factories.make_identity(platform=gws, identity_type=IdentityType.API_KEY, login="ci-deploy")
    batch = run_to_end(batch)
    assert (batch.created, batch.skipped, batch.failed) == (0, 1, 0)


def test_a_batch_with_a_login_that_exists_keeps_nothing(admin, gws) -> None:
    """create_identities is all or nothing: a login created since the chunk was checked
    fails the whole insert before any secret is written, and nothing of it is kept. The
    batch without that row then creates each identity with its secret and jobs."""
    factories.make_identity(platform=gws, identity_type=IdentityType.API_KEY, login="key-1")
    inputs = [
        IdentityInput(IdentityType.API_KEY, gws, "Key 0", "key-0", secret={"api_key": secret(0)}),
        IdentityInput(IdentityType.API_KEY, gws, "Key 1", "key-1", secret={"api_key": secret(1)}),
        IdentityInput(
            IdentityType.HUMAN_INTERACTIVE,
            gws,
            "Ada Lovelace",
            "ada@example.com",
            given_name="Ada",
            family_name="Lovelace",
            org_unit_path="/",
        ),
    ]
    with pytest.raises(IntegrityError):
        create_identities(inputs, actor=admin)
    assert Identity.objects.count() == 1
    assert not EncryptedSecret.objects.exists()
    assert not Job.objects.exists()

    key, person = create_identities([inputs[0], inputs[2]], actor=admin)
    key.refresh_from_db()
    assert (key.login, key.status, key.created_by) == ("key-0", IdentityStatus.PROVISIONED, admin)
    assert key.secret_ref == f"vault:{key.vault_path}#1"
    assert json.loads(vault_text(key)) == {"api_key": secret(0)}
    assert job_types(key) == []
    person.refresh_from_db()
    assert (person.status, person.secret_ref) == (IdentityStatus.PROVISIONING, "")
    assert job_types(person) == [JobType.CREATE_DOMAIN_USER, JobType.PROVISION_SSO_USER]


# --- long imports, retries and duplicate deliveries ------------------------------------------


def api_file(gws: Platform, count: int) -> bytes:
    return factories.import_csv(
        [
            factories.import_row(IdentityType.API_KEY, gws, secret(n), name=f"key-{n}")
            for n in range(count)
        ]
    )


def test_a_long_import_hands_over_to_continuation_jobs(
    admin, gws, settings, sent, django_capture_on_commit_callbacks
) -> None:
    settings.IMPORT_CHUNK_ROWS = 2
    settings.IMPORT_SLICE_SECONDS = 0
    batch = upload(api_file(gws, 5), admin)
    first = batch.job_id
    with django_capture_on_commit_callbacks(execute=True):
        batch = run_to_end(batch)
    assert batch.status == ImportStatus.COMPLETED
    assert (batch.rows_done, batch.created) == (5, 5)
    chain = list(Job.objects.filter(job_type=JobType.BULK_IMPORT).order_by("id"))
    assert len(chain) == 3
    assert chain[0].pk == first
    assert all(job.status == JobStatus.COMPLETED for job in chain)
    assert [result(job).get("continued_by_job") for job in chain] == [
        chain[1].pk,
        chain[2].pk,
        None,
    ]
    assert [result(job)["rows_done"] for job in chain] == [2, 4, 5]
    assert [job.params.get("continues_job") for job in chain] == [None, chain[0].pk, chain[1].pk]
    assert chain[1].trigger == "job"
    assert chain[1].triggered_by == admin
    # Each continuation is sent once the hand-over commits (the upload's own job was sent
    # before this capture began).
    assert sent == [chain[1].pk, chain[2].pk]
    assert Identity.objects.count() == 5


def test_duplicate_deliveries_never_create_twice(admin, gws, settings) -> None:
    settings.IMPORT_CHUNK_ROWS = 2
    settings.IMPORT_SLICE_SECONDS = 0
    batch = upload(api_file(gws, 5), admin)
    first = deliver(current_job(batch))
    batch.refresh_from_db()
    assert (batch.rows_done, Identity.objects.count()) == (2, 2)
    # The broker delivers the first job's message again: the engine ignores it.
    assert deliver(first).attempt_count == 1
    # Two deliveries of the continuation both get past the engine (a lost worker's message
    # and its re-send): the second finds the import handed on and does nothing.
    second = current_job(batch)
    assert services.run_import(second)["continued_by_job"]
    assert "ignored" in services.run_import(second)
    assert services.run_import(first) == {
        "batch_id": batch.pk,
        "ignored": f"import #{batch.pk} is processed by job #{current_job(batch).pk} now",
    }
    batch = run_to_end(batch)
    assert (batch.rows_done, batch.created, batch.skipped) == (5, 5, 0)
    assert Identity.objects.count() == 5


def unreachable_vault(settings) -> None:
    """A HashiCorp Vault address nothing listens on: every write is VaultUnavailable."""
    settings.VAULT_ADDR = "http://127.0.0.1:9"
    settings.VAULT_TOKEN = "unused"
    settings.VAULT_TIMEOUT = 1


def test_a_transient_failure_resumes_at_the_chunk_it_stopped_in(admin, gws, settings) -> None:
    settings.IMPORT_CHUNK_ROWS = 2
    batch = upload(api_file(gws, 5), admin)
    unreachable_vault(settings)
    job = deliver(current_job(batch))
    batch.refresh_from_db()
    assert job.status == JobStatus.RETRYING
    assert "vault" in job.error_message.lower()
    # The chunk rolled back whole: no identity, no problem row, the checkpoint unmoved.
    assert batch.status == ImportStatus.RUNNING
    assert (batch.rows_done, batch.last_row) == (0, 1)
    assert not Identity.objects.exists()
    assert not ImportProblem.objects.exists()
    assert ImportChunk.objects.filter(batch=batch).exists()  # kept for the retry

    settings.VAULT_ADDR = ""
    batch = run_to_end(batch)
    assert batch.status == ImportStatus.COMPLETED
    assert (batch.rows_done, batch.created, batch.skipped, batch.failed) == (5, 5, 0, 0)
    assert Job.objects.get(pk=job.pk).attempt_count == 2
    assert EncryptedSecret.objects.count() == 5


def test_a_job_that_fails_for_good_fails_the_import_and_deletes_the_upload(
    admin, gws, settings
) -> None:
    settings.JOB_MAX_RETRIES = 0
    batch = upload(api_file(gws, 3), admin)
    unreachable_vault(settings)
    job = deliver(current_job(batch))
    batch.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert batch.status == ImportStatus.FAILED
    assert batch.error_message == job.error_message
    assert "127.0.0.1:9" in batch.error_message
    assert batch.upload_deleted_at is not None
    assert not ImportChunk.objects.exists()
    assert not [value for value in map(secret, range(3)) if value in database_text()]

    # An admin's retry cannot go on without the file, and says what to do instead.
    settings.VAULT_ADDR = ""
    assert job_services.retry_job(job, actor=admin)
    job = deliver(job)
    assert job.status == JobStatus.FAILED
    assert "Upload the file again: rows already imported are skipped." in job.error_message
    batch.refresh_from_db()
    assert batch.status == ImportStatus.FAILED


# --- bad uploads leave nothing behind --------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty."),
        (b"type;platform;name;api_key\napi_key;W;n;k\n", "use commas"),
        (b"type,platform,name,api_key\n", "The file has a header but no rows."),
        ("type,platform,name\napi_key,W,Zoë\n".encode("latin-1"), "Latin-1"),
    ],
)
def test_a_bad_file_is_refused_before_anything_is_written(admin, data, message) -> None:
    with pytest.raises(services.ImportFileError, match=message):
        upload(data, admin)
    assert not ImportBatch.objects.exists()
    assert not ImportChunk.objects.exists()
    assert not Job.objects.exists()


def test_a_file_over_the_size_limit_is_refused_unread(admin, gws, settings) -> None:
    settings.IMPORT_MAX_BYTES = 1024
    with pytest.raises(services.ImportFileError) as caught:
        upload(api_file(gws, 40), admin)
    assert str(caught.value).startswith("The file is ")
    assert "the limit is 1 KB" in str(caught.value)
    assert not ImportBatch.objects.exists()


def test_a_large_upload_is_stored_in_pieces(admin, gws) -> None:
    data = api_file(gws, 35_000)
    assert len(data) > 2 * 1024 * 1024
    batch = upload(data, admin)
    pieces = list(ImportChunk.objects.filter(batch=batch).order_by("number"))
    assert len(pieces) == 3
    # Each piece sealed on its own (nonce and tag: 28 bytes more), read back whole.
    assert sum(len(piece.data) for piece in pieces) == len(data) + 3 * 28
    assert b"".join(services.stored_chunks(batch.pk)) == data
    assert (batch.rows_total, batch.size_bytes) == (35_000, len(data))
