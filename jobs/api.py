"""The jobs JSON API (/api/v1/jobs/): list, detail, retry and cancel, over session or
bearer-token auth."""

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from jobs import queries, serializers, services
from jobs.models import Job
from web.pages import InvalidFilterError

VIEW_PERMISSION = "jobs.view_job"
RETRY_PERMISSION = "jobs.retry_job"
CANCEL_PERMISSION = "jobs.cancel_job"

ApiView = Callable[..., HttpResponse]


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def csrf_rejected(request: HttpRequest) -> bool:
    """Run Django's CSRF check by hand, so a failure can answer in JSON.

    Bearer-token requests pass (the token middleware marks them), as do safe methods.
    """

    def no_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    check = CsrfViewMiddleware(no_view)
    check.process_request(request)
    return check.process_view(request, no_view, (), {}) is not None


def endpoint(method: str, *perms: str) -> Callable[[ApiView], ApiView]:
    """Wrap an API view: one method, then authentication (401), CSRF (403), permissions (403)."""

    def decorator(view: ApiView) -> ApiView:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method != method:
                response = error(405, f"method {request.method} not allowed; use {method}")
                response["Allow"] = method
                return response
            if not request.user.is_authenticated:
                response = error(401, "authentication required: sign in or send a bearer token")
                response["WWW-Authenticate"] = 'Bearer realm="api"'
                return response
            if csrf_rejected(request):
                return error(
                    403, "CSRF check failed: send the X-CSRFToken header, or a bearer token"
                )
            if not request.user.has_perms(perms):
                return error(403, "permission denied")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def page_url(request: HttpRequest, filters: queries.JobFilters, before: int) -> str:
    query = {**filters.as_query(), "before": str(before)}
    return request.build_absolute_uri(f"{reverse('jobs:api-list')}?{urlencode(query)}")


def with_url(request: HttpRequest, data: dict[str, Any]) -> dict[str, Any]:
    return {
        **data,
        "url": request.build_absolute_uri(reverse("jobs:api-detail", args=[data["id"]])),
    }


def detail_of(job: Job) -> dict[str, Any]:
    return serializers.job_detail(job, queries.list_attempts(job), queries.list_events(job))


@endpoint("GET", VIEW_PERMISSION)
def job_list(request: HttpRequest) -> HttpResponse:
    try:
        filters = queries.parse_filters(request.GET)
        before = queries.parse_before(request.GET)
    except InvalidFilterError as exc:
        return error(400, exc.message, parameter=exc.parameter)
    page = queries.list_jobs(filters, before=before)
    return JsonResponse(
        {
            "results": [with_url(request, serializers.job_summary(job)) for job in page.jobs],
            "next": page_url(request, filters, page.next_before) if page.next_before else None,
            "counts": queries.get_status_counts(filters.job_type),
        }
    )


@endpoint("GET", VIEW_PERMISSION)
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = queries.get_job(job_id)
    if job is None:
        return error(404, f"no job with id {job_id}")
    return JsonResponse(with_url(request, detail_of(job)))


@endpoint("POST", VIEW_PERMISSION, RETRY_PERMISSION)
def job_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    job = queries.get_job(job_id)
    if job is None:
        return error(404, f"no job with id {job_id}")
    retried = services.retry_job(job, actor=request.user)
    job.refresh_from_db()
    body = {"retried": retried, "job": with_url(request, detail_of(job))}
    if not retried:
        body["error"] = "this job is not failed (any more); nothing to retry"
    return JsonResponse(body, status=202 if retried else 409)


@endpoint("POST", VIEW_PERMISSION, CANCEL_PERMISSION)
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = queries.get_job(job_id)
    if job is None:
        return error(404, f"no job with id {job_id}")
    try:
        job = services.cancel_job(job.pk, actor=request.user)
    except services.NotCancellableError as exc:
        job.refresh_from_db()
        return error(409, str(exc), cancelled=False, job=with_url(request, detail_of(job)))
    return JsonResponse({"cancelled": True, "job": with_url(request, detail_of(job))})
