"""Bulk imports: store an uploaded CSV and start its job; process it in resumable chunks
through identities.services.create_identity; delete the upload once processing ends."""

import itertools
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from identities.models import Platform
from identities.services import DuplicateIdentityError, create_identities, create_identity
from imports import csvfile
from imports.csvfile import ImportFileError
from imports.models import (
    FINISHED_STATUSES,
    ImportBatch,
    ImportChunk,
    ImportLogin,
    ImportProblem,
    ImportStatus,
    RowOutcome,
)
from jobs.errors import PermanentError
from jobs.models import Job, JobType, Trigger
from jobs.services import enqueue
from trail.services import record
from vault.crypto import KeyRing

log = logging.getLogger(__name__)

__all__ = ["ImportFileError", "fail_import", "run_import", "start_import"]

T = TypeVar("T")


def max_bytes() -> int:
    return int(settings.IMPORT_MAX_BYTES)


def max_rows() -> int:
    return int(settings.IMPORT_MAX_ROWS)


def chunk_rows() -> int:
    """Rows per transaction, and so per progress update."""
    return max(1, int(settings.IMPORT_CHUNK_ROWS))


def slice_seconds() -> float:
    """How long one job works on a file before a continuation job takes over: well inside the
    job time limit, so a long import never times out (0: hand over after every chunk)."""
    return float(settings.IMPORT_SLICE_SECONDS)


class Superseded(Exception):
    """Another delivery owns this import now (or already processed these rows)."""


# --- upload ---------------------------------------------------------------------------------


def start_import(upload: "File[Any]", *, filename: str, dry_run: bool, actor: Any) -> ImportBatch:
    """Check the whole file, store it and enqueue its bulk_import job, in one transaction:
    a bad file raises ImportFileError and leaves nothing behind."""
    limit = max_bytes()
    if upload.size is not None and upload.size > limit:
        raise ImportFileError(
            f"The file is {csvfile.human_size(upload.size)}; the limit is "
            f"{csvfile.human_size(limit)}. Split it into smaller files."
        )
    with transaction.atomic():
        batch = ImportBatch.objects.create(
            filename=(filename or "upload.csv")[:255], dry_run=dry_run, created_by=actor
        )
        numbers = itertools.count()

        keys = upload_key_ring()

        def store(chunk: bytes) -> None:
            number = next(numbers)
            key_id, sealed = keys.seal(chunk, piece_label(batch.pk, number))
            ImportChunk.objects.create(batch=batch, number=number, key_id=key_id, data=sealed)

        summary = csvfile.scan(
            read_pieces(upload), max_rows=max_rows(), max_bytes=limit, sink=store
        )
        batch.rows_total = summary.rows
        batch.size_bytes = summary.size
        batch.sha256 = summary.sha256
        batch.job = enqueue(
            JobType.BULK_IMPORT,
            subject=batch,
            params={"batch_id": batch.pk, "dry_run": dry_run},
            triggered_by=actor,
        )
        batch.save(update_fields=["rows_total", "size_bytes", "sha256", "job"])
        # Once for the whole file; its rows' identities are not on the trail one by one.
        record(
            "import.started",
            actor=actor,
            target=batch,
            batch=batch.pk,
            file=batch.filename,
            rows=batch.rows_total,
            dry_run=dry_run,
        )
    log.info(
        "imports.batch.uploaded",
        extra={"batch_id": batch.pk, "rows": batch.rows_total, "dry_run": dry_run},
    )
    return batch


def read_pieces(upload: "File[Any]") -> Iterator[bytes]:
    """The upload in pieces of CHUNK_BYTES (an in-memory upload's chunks() is one piece)."""
    upload.seek(0)
    while piece := upload.read(csvfile.CHUNK_BYTES):
        yield bytes(piece)


def upload_key_ring() -> KeyRing:
    """The embedded vault's keys, which also seal uploads while they wait (with HashiCorp
    Vault too: uploads stay in our database)."""
    try:
        return KeyRing.from_lines(settings.VAULT_EMBEDDED_KEYS)
    except ImproperlyConfigured:
        raise ImportFileError(
            "Uploads are kept encrypted until they are imported, with the keys of "
            "ACCESSHIVE_VAULT_KEYS, which is not set: ask an operator to set it."
        ) from None


def piece_label(batch_id: int, number: int) -> bytes:
    """Bound into each piece's encryption: a piece cannot be passed off as another."""
    return f"imports/{batch_id}/{number}".encode()


def stored_chunks(batch_id: int) -> Iterator[bytes]:
    """The stored file, one piece per query, so memory holds a piece, never the file."""
    numbers = ImportChunk.objects.filter(batch_id=batch_id).order_by("number")
    keys: KeyRing | None = None
    for number in list(numbers.values_list("number", flat=True)):
        row = (
            ImportChunk.objects.filter(batch_id=batch_id, number=number)
            .values_list("key_id", "data")
            .first()
        )
        if row is None:
            raise Superseded(f"the upload of import #{batch_id} was deleted meanwhile")
        key_id, data = row
        if not key_id:
            yield bytes(data)
            continue
        keys = keys or upload_key_ring()
        label = piece_label(batch_id, number)
        yield keys.open(key_id, bytes(data), label, label=f"import #{batch_id} piece {number}")


# --- processing -----------------------------------------------------------------------------


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def run_import(job: Job) -> dict[str, Any]:
    """Process the import ``job`` is for, from where the last chunk left off, until the file
    ends (complete it) or the time slice does (hand over to a continuation job)."""
    batch_id = int(job.params.get("batch_id") or job.subject_id)
    batch = ImportBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        raise PermanentError(f"Import #{batch_id} does not exist (any more).")
    if batch.job_id != job.pk:
        return {
            "batch_id": batch_id,
            "ignored": f"import #{batch_id} is processed by job #{batch.job_id} now",
        }
    if batch.status == ImportStatus.COMPLETED:
        return summary(batch)
    if batch.status == ImportStatus.FAILED or batch.upload_deleted_at is not None:
        raise PermanentError(
            f"Import #{batch_id} failed and its upload was deleted (it held credentials), so "
            f"it cannot go on; rows up to row {batch.last_row} were processed. Upload the file "
            "again: rows already imported are skipped."
        )
    ImportBatch.objects.filter(
        pk=batch_id, status__in=(ImportStatus.PENDING, ImportStatus.RUNNING)
    ).update(status=ImportStatus.RUNNING, started_at=Coalesce(F("started_at"), timezone.now()))
    platforms = csvfile.platform_index(Platform.objects.select_related("identity_provider"))
    forms = csvfile.row_forms(platforms)
    deadline = time.monotonic() + slice_seconds()
    _, rows = csvfile.read_rows(stored_chunks(batch_id))
    pending = (row for row in rows if row.number > batch.last_row)
    try:
        for chunk in batched(pending, chunk_rows()):
            apply_chunk(batch, job, chunk, platforms, forms)
            if time.monotonic() >= deadline and next(pending, None) is not None:
                return hand_over(batch, job)
        return finish(batch, job)
    except Superseded as exc:
        log.info("imports.batch.superseded", extra={"batch_id": batch_id, "job_id": job.pk})
        return {"batch_id": batch_id, "ignored": str(exc)}


def lock_batch(batch: ImportBatch, job: Job) -> ImportBatch:
    """Lock the import's row; only the job it names may go on with it."""
    locked = ImportBatch.objects.select_for_update().filter(pk=batch.pk).first()
    if locked is None or locked.job_id != job.pk or locked.status in FINISHED_STATUSES:
        raise Superseded(f"import #{batch.pk} is no longer job #{job.pk}'s to process")
    return locked


def apply_chunk(
    batch: ImportBatch,
    job: Job,
    rows: list[csvfile.Row],
    platforms: dict[str, Platform],
    forms: csvfile.RowForms,
) -> None:
    """Validate (and unless a dry run, create) one chunk of rows and move the checkpoint past
    them, in one transaction: a crash or a retry resumes at this chunk, never inside it."""
    with transaction.atomic():
        locked = lock_batch(batch, job)
        if locked.last_row >= rows[0].number:
            raise Superseded(f"rows from row {rows[0].number} of import #{batch.pk} are done")
        if batch.dry_run:
            if connection.vendor == "postgresql":
                # A dry run's chunk changes nothing outside its own report: if PostgreSQL
                # lost this commit in a crash, the job would check these rows again from
                # the checkpoint before it. So its commit need not wait for the disk.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            checks = csvfile.check_rows(rows, platforms, forms=forms)
            note_logins(batch, checks)
        else:
            checks = create_rows(rows, platforms, forms, actor=batch.created_by)
        counts = {outcome: 0 for outcome in (csvfile.VALID, csvfile.SKIPPED, csvfile.FAILED)}
        problems: list[ImportProblem] = []
        for check in checks:
            counts[check.outcome] += 1
            problems.extend(problem_rows(batch, check))
        ImportProblem.objects.bulk_create(problems)
        ImportBatch.objects.filter(pk=batch.pk).update(
            last_row=rows[-1].number,
            rows_done=F("rows_done") + len(rows),
            created=F("created") + counts[csvfile.VALID],
            skipped=F("skipped") + counts[csvfile.SKIPPED],
            failed=F("failed") + counts[csvfile.FAILED],
        )


def create_rows(
    rows: list[csvfile.Row],
    platforms: dict[str, Platform],
    forms: csvfile.RowForms,
    *,
    actor: Any,
) -> list[csvfile.RowCheck]:
    """Check a chunk of rows and create their identities together. A login twice in the
    chunk is "already exists" the second time, as it would be row by row. If another import
    or a person created one of them meanwhile, the chunk goes again one row at a time."""
    checks = csvfile.check_rows(rows, platforms, forms=forms)
    creating: dict[tuple[int, str], csvfile.RowCheck] = {}
    for check in checks:
        data = check.data
        if check.outcome != csvfile.VALID or data is None:
            continue
        if (data.platform.pk, data.login) in creating:
            check.skip(f"{data.login} already exists on {data.platform.name}.")
        else:
            creating[(data.platform.pk, data.login)] = check
    try:
        with transaction.atomic():
            create_identities(
                [check.data for check in creating.values() if check.data is not None],
                actor=actor,
            )
    except IntegrityError:
        return [create_row(row, platforms, actor=actor) for row in rows]
    return checks


def create_row(row: csvfile.Row, platforms: dict[str, Platform], *, actor: Any) -> csvfile.RowCheck:
    """Check one row and create its identity through the service the identity form uses."""
    check = csvfile.check_row(row, platforms)
    if check.outcome == csvfile.VALID and check.data is not None:
        try:
            create_identity(check.data, actor=actor, on_trail=False)
        except DuplicateIdentityError as exc:
            # Another import or a person created it between the check and now.
            check.skip(f"{exc}.")
    return check


def note_logins(batch: ImportBatch, checks: list[csvfile.RowCheck]) -> None:
    """Dry runs: skip a valid row whose login a row above it already has (in this chunk or
    an earlier one), as the real import would, and remember this chunk's new logins."""
    first: dict[str, int] = {}
    for check in checks:
        if check.outcome == csvfile.VALID and check.data is not None:
            first.setdefault(login_key(check.data.platform.pk, check.data.login), check.row.number)
    if not first:
        return
    earlier = remember_logins(batch.pk, first)
    for check in checks:
        if check.outcome != csvfile.VALID or check.data is None:
            continue
        key = login_key(check.data.platform.pk, check.data.login)
        row = earlier.get(key, first[key])
        if row != check.row.number:
            check.skip(f"{check.data.login} would already exist: row {row} has it.")


REMEMBER_LOGINS = (
    "WITH incoming AS (SELECT * FROM unnest(%s::text[], %s::int[]) AS t(key, row)), "  # noqa: S608
    f"added AS (INSERT INTO {ImportLogin._meta.db_table} (batch_id, key, row) "
    "SELECT %s, key, row FROM incoming ON CONFLICT (batch_id, key) DO NOTHING) "
    f"SELECT l.key, l.row FROM {ImportLogin._meta.db_table} AS l JOIN incoming USING (key) "
    "WHERE l.batch_id = %s"
)


def remember_logins(batch_id: int, logins: dict[str, int]) -> dict[str, int]:
    """Store the logins (key: first row) that earlier chunks did not store, and return the
    rows of those they did. PostgreSQL: one statement, whose SELECT sees the table as it was
    before its own INSERT."""
    if connection.vendor != "postgresql":
        earlier = dict(
            ImportLogin.objects.filter(batch_id=batch_id, key__in=list(logins)).values_list(
                "key", "row"
            )
        )
        ImportLogin.objects.bulk_create(
            ImportLogin(batch_id=batch_id, key=key, row=row)
            for key, row in logins.items()
            if key not in earlier
        )
        return earlier
    with connection.cursor() as cursor:
        cursor.execute(REMEMBER_LOGINS, [list(logins), list(logins.values()), batch_id, batch_id])
        return {key: row for key, row in cursor.fetchall()}


def login_key(platform_id: int, login: str) -> str:
    return f"{platform_id}:{login}"


def problem_rows(batch: ImportBatch, check: csvfile.RowCheck) -> list[ImportProblem]:
    outcome = RowOutcome.SKIPPED if check.outcome == csvfile.SKIPPED else RowOutcome.FAILED
    return [
        ImportProblem(
            batch=batch,
            row=check.row.number,
            outcome=outcome,
            field=name[:64],
            message=message,
            identity_type=check.identity_type,
            platform=check.platform,
            login=check.login,
        )
        for name, message in check.problems
    ]


def hand_over(batch: ImportBatch, job: Job) -> dict[str, Any]:
    """Enqueue the job that goes on from the checkpoint, and make it the import's job."""
    with transaction.atomic():
        locked = lock_batch(batch, job)
        successor = enqueue(
            JobType.BULK_IMPORT,
            subject=locked,
            params={"batch_id": batch.pk, "dry_run": batch.dry_run, "continues_job": job.pk},
            triggered_by=batch.created_by,
            trigger=Trigger.JOB,
            trigger_label=f"bulk import job #{job.pk}",
        )
        ImportBatch.objects.filter(pk=batch.pk).update(job=successor)
    locked.refresh_from_db()
    log.info(
        "imports.batch.handed_over",
        extra={"batch_id": batch.pk, "job_id": job.pk, "successor": successor.pk},
    )
    return {**summary(locked), "continued_by_job": successor.pk}


def finish(batch: ImportBatch, job: Job) -> dict[str, Any]:
    """Complete the import and delete its upload; the report stays."""
    now = timezone.now()
    with transaction.atomic():
        lock_batch(batch, job)
        ImportBatch.objects.filter(pk=batch.pk).update(
            status=ImportStatus.COMPLETED, finished_at=now, upload_deleted_at=now
        )
        delete_upload(batch.pk)
    batch.refresh_from_db()
    counts = {"rows_created": batch.created, "rows_skipped": batch.skipped}
    log.info(
        "imports.batch.completed",
        extra={"batch_id": batch.pk, "rows_failed": batch.failed, **counts},
    )
    return summary(batch)


def delete_upload(batch_id: int) -> None:
    """The file held credentials that now live in the vault (or nowhere): drop every copy."""
    ImportChunk.objects.filter(batch_id=batch_id).delete()
    ImportLogin.objects.filter(batch_id=batch_id).delete()


def fail_import(job_id: int) -> None:
    """The import's job failed for good: mark the import failed and delete its upload."""
    with transaction.atomic():
        _fail_import(job_id)


def _fail_import(job_id: int) -> None:
    batch = (
        ImportBatch.objects.select_for_update()
        .filter(job_id=job_id)
        .exclude(status__in=FINISHED_STATUSES)
        .first()
    )
    if batch is None:
        return
    message = Job.objects.filter(pk=job_id).values_list("error_message", flat=True).first()
    now = timezone.now()
    ImportBatch.objects.filter(pk=batch.pk).update(
        status=ImportStatus.FAILED,
        finished_at=now,
        upload_deleted_at=now,
        error_message=message or "The import's job failed.",
    )
    delete_upload(batch.pk)
    log.warning("imports.batch.failed", extra={"batch_id": batch.pk, "job_id": job_id})


def summary(batch: ImportBatch) -> dict[str, Any]:
    """The counts as a job result and in the API: created, skipped and failed rows."""
    return {
        "batch_id": batch.pk,
        "dry_run": batch.dry_run,
        "rows_total": batch.rows_total,
        "rows_done": batch.rows_done,
        "created": 0 if batch.dry_run else batch.created,
        "would_create": batch.created if batch.dry_run else None,
        "skipped": batch.skipped,
        "failed": batch.failed,
    }
