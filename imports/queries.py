"""Read side of the import pages and API: recent imports, one import, its problems."""

from collections.abc import Iterator
from dataclasses import dataclass

from imports.models import ImportBatch, ImportProblem
from jobs.models import Job


@dataclass(frozen=True)
class BatchPage:
    """One keyset page of imports, newest first."""

    batches: list[ImportBatch]
    next_before: int | None


def list_batches(*, before: int | None = None, size: int = 20) -> BatchPage:
    batches = ImportBatch.objects.select_related("created_by", "job").order_by("-id")
    if before is not None:
        batches = batches.filter(id__lt=before)
    rows = list(batches[: size + 1])
    next_before = rows[size - 1].pk if len(rows) > size else None
    return BatchPage(batches=rows[:size], next_before=next_before)


def get_batch(batch_id: int) -> ImportBatch | None:
    return ImportBatch.objects.select_related("created_by", "job").filter(pk=batch_id).first()


def get_job(batch: ImportBatch) -> Job | None:
    """The import's current job, without its heavy columns."""
    if batch.job_id is None:
        return None
    return Job.objects.defer("params", "result", "error_traceback").filter(pk=batch.job_id).first()


def list_problems(batch: ImportBatch, *, limit: int) -> tuple[list[ImportProblem], bool]:
    """The first ``limit`` problems in row order, and whether there are more."""
    rows = list(ImportProblem.objects.filter(batch=batch).order_by("row", "id")[: limit + 1])
    return rows[:limit], len(rows) > limit


def iter_problems(batch: ImportBatch) -> Iterator[ImportProblem]:
    """Every problem in row order, streamed from the database."""
    return ImportProblem.objects.filter(batch=batch).order_by("row", "id").iterator(chunk_size=2000)
