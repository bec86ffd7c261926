"""The imports JSON API (/api/v1/imports/): upload a CSV (multipart ``file``, ``dry_run``),
list imports, follow one, download its report; session or bearer-token auth."""

from typing import Any, cast
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from imports import csvfile, queries, services
from imports.models import ImportBatch
from imports.views import IMPORT_PERMISSIONS, report_response
from jobs.api import endpoint, error

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


@csrf_exempt
def import_collection(request: HttpRequest) -> HttpResponse:
    """/api/v1/imports/: GET lists, POST uploads."""
    if request.method == "POST":
        return import_create(request)
    if request.method == "GET":
        return import_list(request)
    response = error(405, f"method {request.method} not allowed; use GET or POST")
    response["Allow"] = "GET, POST"
    return response


def too_big(request: HttpRequest) -> str:
    """A refusal, before the body is read, of a request far larger than any allowed file."""
    limit = services.max_bytes()
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD:
        return (
            f"The file is larger than the limit of {csvfile.human_size(limit)}; "
            "split it into smaller files."
        )
    return ""


@endpoint("POST", *IMPORT_PERMISSIONS)
def import_create(request: HttpRequest) -> HttpResponse:
    if problem := too_big(request):
        return error(400, f"invalid file: {problem}", errors={"file": [problem]})
    errors: dict[str, list[str]] = {}
    upload = request.FILES.get("file")
    if upload is None:
        errors["file"] = ["Send the CSV as the multipart/form-data field “file”."]
    dry_run = parse_dry_run(str(request.POST.get("dry_run", "")))
    if dry_run is None:
        errors["dry_run"] = ["Must be true or false."]
    if errors or upload is None or dry_run is None:
        return error(400, "invalid import: see errors", errors=errors)
    try:
        batch = services.start_import(
            upload, filename=upload.name or "", dry_run=dry_run, actor=request.user
        )
    except services.ImportFileError as exc:
        return error(400, f"invalid file: {exc}", errors={"file": [str(exc)]})
    batch = queries.get_batch(batch.pk) or batch
    response = JsonResponse(batch_data(request, batch), status=202)
    response["Location"] = api_url(request, "imports:api-detail", batch.pk)
    return response


@endpoint("GET", *IMPORT_PERMISSIONS)
def import_list(request: HttpRequest) -> HttpResponse:
    raw = request.GET.get("before", "").strip()
    if raw and (not raw.isdigit() or int(raw) <= 0):
        return error(400, f"before must be a positive import id, got {raw!r}", parameter="before")
    page = queries.list_batches(before=int(raw) if raw else None, size=PAGE_SIZE)
    next_url = None
    if page.next_before:
        query = urlencode({"before": page.next_before})
        next_url = request.build_absolute_uri(f"{reverse('imports:api-list')}?{query}")
    return JsonResponse(
        {"results": [batch_data(request, batch) for batch in page.batches], "next": next_url}
    )


@endpoint("GET", *IMPORT_PERMISSIONS)
def import_detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = queries.get_batch(batch_id)
    if batch is None:
        return error(404, f"no import with id {batch_id}")
    problems, more = queries.list_problems(batch, limit=PROBLEMS_IN_DETAIL)
    return JsonResponse(
        {
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
    )


@endpoint("GET", *IMPORT_PERMISSIONS)
def import_report(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = queries.get_batch(batch_id)
    if batch is None:
        return error(404, f"no import with id {batch_id}")
    # The endpoint decorator is typed for HttpResponse; it passes any response through.
    return cast(HttpResponse, report_response(batch))
