"""The import pages: upload a CSV, follow its progress, read and download its report.
Parse, check permissions, call one service or query, render."""

import itertools
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_safe

from imports import csvfile, queries, services
from imports.forms import ImportUploadForm
from imports.models import ImportBatch
from web.pages import wants_fragment

# An import creates identities, so it asks what creating one identity asks.
IMPORT_PERMISSIONS = ("identities.view_identity", "identities.add_identity")
PROBLEMS_ON_PAGE = 200


def require_permissions(request: HttpRequest) -> None:
    if not request.user.has_perms(IMPORT_PERMISSIONS):
        raise PermissionDenied


def columns() -> list[tuple[str, str, bool, bool]]:
    return [
        (
            name,
            csvfile.COLUMN_HELP[name],
            name in csvfile.REQUIRED_COLUMNS,
            name in csvfile.SECRET_COLUMNS,
        )
        for name in csvfile.COLUMNS
    ]


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def upload(request: HttpRequest) -> HttpResponse:
    require_permissions(request)
    status = 200
    if request.method == "POST":
        form = ImportUploadForm(request.POST, request.FILES)
        if form.is_valid():
            csv_file = form.cleaned_data["file"]
            try:
                batch = services.start_import(
                    csv_file,
                    filename=csv_file.name or "",
                    dry_run=form.cleaned_data["dry_run"],
                    actor=request.user,
                )
            except services.ImportFileError as exc:
                form.add_error("file", str(exc))
            else:
                what = "Dry run of" if batch.dry_run else "Import of"
                messages.success(
                    request, f"{what} {batch.filename} started: {batch.rows_total:,} rows."
                )
                return redirect("imports:detail", batch_id=batch.pk)
        status = 400
    else:
        form = ImportUploadForm()
    context = {
        "nav": "imports",
        "form": form,
        "columns": columns(),
        "max_bytes": csvfile.human_size(services.max_bytes()),
        "max_rows": services.max_rows(),
        "recent": queries.list_batches(size=20).batches,
    }
    return render(request, "imports/import_upload.html", context, status=status)


def get_batch_or_404(batch_id: int) -> ImportBatch:
    batch = queries.get_batch(batch_id)
    if batch is None:
        raise Http404("No such import")
    return batch


@require_safe
@login_required
def detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    require_permissions(request)
    batch = get_batch_or_404(batch_id)
    problems, more = queries.list_problems(batch, limit=PROBLEMS_ON_PAGE)
    context: dict[str, Any] = {
        "nav": "imports",
        "batch": batch,
        "job": queries.get_job(batch),
        "problems": problems,
        "more_problems": more,
        "problems_on_page": PROBLEMS_ON_PAGE,
    }
    template = "imports/import_detail.html"
    if wants_fragment(request):
        template += "#live"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def report_response(batch: ImportBatch) -> StreamingHttpResponse:
    """Every skipped and failed row as CSV, streamed; no cell starts like a formula."""
    problems = (
        (p.row, p.outcome, p.field, p.message, p.identity_type, p.platform, p.login)
        for p in queries.iter_problems(batch)
    )
    lines = csvfile.csv_lines(itertools.chain([csvfile.REPORT_HEADER], problems))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{batch.pk}-report.csv"'
    return response


@require_safe
@login_required
def report(request: HttpRequest, batch_id: int) -> StreamingHttpResponse:
    require_permissions(request)
    return report_response(get_batch_or_404(batch_id))


@require_safe
@login_required
def template_csv(request: HttpRequest) -> HttpResponse:
    require_permissions(request)
    response = HttpResponse(
        "".join(csvfile.csv_lines(csvfile.template_rows())),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = 'attachment; filename="accesshive-import-template.csv"'
    return response
