"""Settings > Jobs pages: parse, check permissions, call one query or service, render."""

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST, require_safe

from jobs import charts, dependencies, queries, serializers, services
from jobs.models import Job, JobStatus
from web import pages
from web.pages import InvalidFilterError, require_permissions, wants_fragment

VIEW_PERMISSION = "jobs.view_job"
RETRY_PERMISSION = "jobs.retry_job"
CANCEL_PERMISSION = "jobs.cancel_job"


def list_url(filters: queries.JobFilters, *, before: int | None = None) -> str:
    return pages.list_url("jobs:list", filters.as_query(), before=before)


def filter_context() -> dict[str, Any]:
    return {
        "job_types": queries.list_job_types(),
        "statuses": [*JobStatus.choices, (queries.CANCELLED, "Cancelled (failed by a cancel)")],
        "job_settings": serializers.job_settings(),
    }


@require_safe
@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    require_permissions(request, VIEW_PERMISSION)
    try:
        filters = queries.parse_filters(request.GET)
        before = queries.parse_before(request.GET)
    except InvalidFilterError as exc:
        context = {**filter_context(), "filters": queries.JobFilters(), "filter_error": exc}
        return render(request, "jobs/job_list.html", context, status=400)
    page = queries.list_jobs(filters, before=before)
    counts = queries.get_status_counts(filters.job_type)
    context = {
        **filter_context(),
        "filters": filters,
        "page": page,
        "rows": [serializers.job_summary(job) for job in page.jobs],
        "counts": [
            (status, label, counts[status], list_url(queries.JobFilters(filters.job_type, status)))
            for status, label in JobStatus.choices
        ],
        "total": sum(counts.values()),
        "all_url": list_url(queries.JobFilters(filters.job_type)),
        "refresh_url": request.get_full_path(),
        "newest_url": list_url(filters) if before is not None else None,
        "next_url": list_url(filters, before=page.next_before) if page.next_before else None,
    }
    template = "jobs/job_list.html#live" if wants_fragment(request) else "jobs/job_list.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_safe
@login_required
def job_charts(request: HttpRequest) -> HttpResponse:
    """The last 24 hours as two SVG charts; loaded by the list page after it renders, and
    refreshed once a minute, not with the list's every-3-seconds refresh."""
    require_permissions(request, VIEW_PERMISSION)
    return render(request, "jobs/job_charts.html", {"charts": charts.build()})


@require_safe
@login_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    require_permissions(request, VIEW_PERMISSION)
    job = queries.get_job(job_id)
    if job is None:
        raise Http404("No such job")
    data = serializers.job_detail(
        job,
        queries.list_attempts(job),
        queries.list_events(job),
        dependencies.list_prerequisites(job),
    )
    context = {
        "job": data,
        "params_json": pretty_json(data["params"]),
        "result_json": pretty_json(data["result"]),
        "can_retry": job.status == JobStatus.FAILED and request.user.has_perm(RETRY_PERMISSION),
        "can_cancel": job.status in (JobStatus.PENDING, JobStatus.RETRYING, JobStatus.WAITING)
        and request.user.has_perm(CANCEL_PERMISSION),
    }
    template = "jobs/job_detail.html#live" if wants_fragment(request) else "jobs/job_detail.html"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_POST
@login_required
def job_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    # Acting on a job one cannot see makes no sense, so retrying needs both permissions.
    require_permissions(request, VIEW_PERMISSION, RETRY_PERMISSION)
    job = get_object_or_404(Job, pk=job_id)
    if services.retry_job(job, actor=request.user):
        messages.success(request, "Retry queued")
    else:
        messages.info(request, "This job is not failed (any more); nothing to retry")
    return redirect("jobs:detail", job_id=job.pk)


@require_POST
@login_required
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    require_permissions(request, VIEW_PERMISSION, CANCEL_PERMISSION)
    job = get_object_or_404(Job, pk=job_id)
    try:
        services.cancel_job(job.pk, actor=request.user)
    except services.NotCancellableError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Job cancelled; no worker will run it")
    return redirect("jobs:detail", job_id=job.pk)


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, cls=DjangoJSONEncoder)
