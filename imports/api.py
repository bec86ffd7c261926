"""The imports API (/api/v1/imports/): upload a CSV (multipart ``file``, ``dry_run``), list
imports, follow one, download its report."""

from datetime import datetime
from typing import Any, cast

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Query, Router, Schema
from pydantic import Field

from imports import csvfile, queries, services
from imports.models import ImportBatch, ImportStatus
from imports.views import IMPORT_PERMISSIONS, report_response
from web.api import idempotency
from web.api.auth import allowed
from web.api.paging import BEFORE_DESCRIPTION, next_url
from web.api.problems import ApiError, Problem, not_found
from web.api.schemas import Out
from web.api.types import Id

PROBLEMS_IN_DETAIL = 1000
PAGE_SIZE = 50
# Room for the multipart boundaries and the dry_run field around the file itself.
MULTIPART_OVERHEAD = 64 * 1024
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"", "0", "false", "no", "off"})


def api_url(request: HttpRequest, name: str, batch_id: int) -> str:
    return request.build_absolute_uri(reverse(name, args=[batch_id]))


def batch_data(request: HttpRequest, batch: ImportBatch) -> dict[str, Any]:
    """An import's state and counts; never a secret (none is stored here)."""
    job = None
    if batch.job_id is not None:
        job = {
            "id": batch.job_id,
            "status": batch.job.status if batch.job else None,
            "url": request.build_absolute_uri(reverse("jobs:api-detail", args=[batch.job_id])),
        }
    return {
        "id": batch.pk,
        "url": api_url(request, "imports:api-detail", batch.pk),
        "filename": batch.filename,
        "size_bytes": batch.size_bytes,
        "sha256": batch.sha256,
        "status": batch.status,
        "status_label": batch.get_status_display(),
        **services.summary(batch),
        "percent_done": batch.percent_done,
        "error": batch.error_message or None,
        "created_by": batch.created_by.get_username() if batch.created_by else None,
        "created_at": batch.created_at,
        "started_at": batch.started_at,
        "finished_at": batch.finished_at,
        "upload_deleted_at": batch.upload_deleted_at,
        "job": job,
        "report_url": api_url(request, "imports:api-report", batch.pk),
    }


def parse_dry_run(raw: str) -> bool | None:
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    return None


def too_big(request: HttpRequest) -> str:
    """A refusal, before the body is read, of a request far larger than any allowed file."""
    limit = services.max_bytes()
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isascii() and length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD:
        return (
            f"The file is larger than the limit of {csvfile.human_size(limit)}; "
            "split it into smaller files."
        )
    return ""


router = Router(tags=["imports"])
ERRORS: dict[int, Any] = {400: Problem, 401: Problem, 403: Problem}


class ImportJobLink(Out):
    id: int
    status: str | None
    url: str


class Batch(Out):
    id: int
    url: str
    filename: str
    size_bytes: int
    sha256: str
    status: ImportStatus
    status_label: str
    batch_id: int
    dry_run: bool
    rows_total: int
    rows_done: int
    created: int
    would_create: int | None
    skipped: int
    failed: int
    percent_done: int | float | None
    error: str | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    upload_deleted_at: datetime | None
    job: ImportJobLink | None
    report_url: str


class RowProblem(Out):
    row: int | None
    outcome: str
    field: str
    message: str
    text: str
    type: str
    platform: str
    login: str


class BatchDetail(Batch):
    problems: list[RowProblem]
    problems_truncated: bool


class BatchPage(Out):
    results: list[Batch]
    next: str | None


class BeforeQuery(Schema):
    before: Id | None = Field(None, description=BEFORE_DESCRIPTION)


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "dry_run": {"type": "string", "enum": sorted(TRUE | FALSE)},
                    },
                    "required": ["file"],
                }
            }
        },
    },
    **idempotency.HEADER_DOC,
}


@router.post(
    "imports/",
    response={202: Batch, 409: Problem, 413: Problem, **ERRORS},
    auth=allowed(*IMPORT_PERMISSIONS),
    openapi_extra=UPLOAD_BODY,
)
def create_import(request: HttpRequest) -> HttpResponse:
    """Upload a CSV of identities; it is checked and imported by a job (``dry_run``: only
    checked). Follow the answer's ``url``."""
    if problem := too_big(request):
        raise ApiError(400, f"invalid file: {problem}", {"file": [problem]})

    def run() -> tuple[int, dict[str, Any]]:
        errors: dict[str, list[str]] = {}
        upload = request.FILES.get("file")
        if upload is None:
            errors["file"] = ["Send the CSV as the multipart/form-data field “file”."]
        dry_run = parse_dry_run(str(request.POST.get("dry_run", "")))
        if dry_run is None:
            errors["dry_run"] = ["Must be true or false."]
        if errors or upload is None or dry_run is None:
            raise ApiError(400, "invalid import: see errors", errors)
        try:
            batch = services.start_import(
                upload, filename=upload.name or "", dry_run=dry_run, actor=request.user
            )
        except services.ImportFileError as exc:
            raise ApiError(400, f"invalid file: {exc}", {"file": [str(exc)]}) from None
        batch = queries.get_batch(batch.pk) or batch
        return 202, Batch.model_validate(batch_data(request, batch)).model_dump(mode="json")

    return idempotency.create_once(request, run, location=lambda body: str(body["url"]))


@router.get("imports/", response={200: BatchPage, **ERRORS}, auth=allowed(*IMPORT_PERMISSIONS))
def list_imports(request: HttpRequest, query: Query[BeforeQuery]) -> dict[str, Any]:
    """Imports newest first."""
    page = queries.list_batches(before=query.before, size=PAGE_SIZE)
    return {
        "results": [batch_data(request, batch) for batch in page.batches],
        "next": next_url(request, "imports:api-list", {}, page.next_before),
    }


def get_or_404(batch_id: int) -> ImportBatch:
    batch = queries.get_batch(batch_id)
    if batch is None:
        raise not_found("import", batch_id)
    return batch


@router.get(
    "imports/{int:batch_id}/",
    response={200: BatchDetail, 404: Problem, **ERRORS},
    auth=allowed(*IMPORT_PERMISSIONS),
)
def get_import(request: HttpRequest, batch_id: Id) -> dict[str, Any]:
    """One import: its state, counts and the first problems found."""
    batch = get_or_404(batch_id)
    problems, more = queries.list_problems(batch, limit=PROBLEMS_IN_DETAIL)
    return {
        **batch_data(request, batch),
        "problems": [
            {
                "row": p.row,
                "outcome": p.outcome,
                "field": p.field,
                "message": p.message,
                "text": p.text,
                "type": p.identity_type,
                "platform": p.platform,
                "login": p.login,
            }
            for p in problems
        ],
        "problems_truncated": more,
    }


@router.get(
    "imports/{int:batch_id}/report.csv",
    response={200: None, 404: Problem, **ERRORS},
    auth=allowed(*IMPORT_PERMISSIONS),
    openapi_extra={
        "responses": {
            "200": {
                "description": "The report: one row per input row with its outcome",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        }
    },
)
def import_report(request: HttpRequest, batch_id: Id) -> HttpResponse:
    """The report of an import as CSV."""
    return cast(HttpResponse, report_response(get_or_404(batch_id)))
