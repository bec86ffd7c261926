"""The jobs API (/api/v1/jobs/): list, detail, retry and cancel one, retry and cancel many."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema, Status
from pydantic import Field, StrictInt, WithJsonSchema

from jobs import queries, serializers, services
from jobs.models import Job, JobStatus, JobType
from web.api import idempotency
from web.api.auth import allowed
from web.api.paging import BEFORE_DESCRIPTION, absolute, next_url
from web.api.problems import ApiError, Problem, not_found
from web.api.schemas import Out
from web.api.types import Id, Line, Moment

VIEW_PERMISSION = "jobs.view_job"
RETRY_PERMISSION = "jobs.retry_job"
CANCEL_PERMISSION = "jobs.cancel_job"
BULK_LIMIT = 10_000

router = Router(tags=["jobs"])

JobTypeKey = Annotated[
    Line,
    WithJsonSchema({"type": "string", "enum": list(JobType.values), "description": "Job type"}),
]
ERRORS: dict[int, Any] = {400: Problem, 401: Problem, 403: Problem}
FOUND: dict[int, Any] = {**ERRORS, 404: Problem}


class Subject(Out):
    id: str | None
    label: str


class SubjectWithType(Subject):
    type: str | None


class JobSummary(Out):
    id: int
    url: str
    type: str
    type_label: str
    status: JobStatus
    status_label: str
    subject: Subject
    trigger: str
    triggered_by: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    next_attempt_at: datetime | None
    duration_seconds: float | None
    attempt_count: int
    is_active: bool


class JobError(Out):
    class_: str = Field(alias="class")
    message: str
    traceback: str


class Attempt(Out):
    number: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    worker: str
    outcome: str
    outcome_label: str
    error_class: str
    error_message: str
    next_attempt_at: datetime | None
    wait_before_next_seconds: float | None


class JobEventOut(Out):
    kind: str
    kind_label: str
    at: datetime
    actor: str | None
    message: str


class JobDetail(JobSummary):
    subject: SubjectWithType
    params: Any
    result: Any
    error: JobError | None
    attempts: list[Attempt]
    events: list[JobEventOut]


class JobPage(Out):
    results: list[JobSummary]
    next: str | None = Field(description="The next page's URL, or null on the last page")
    counts: dict[str, int] = Field(description="Jobs per status (of the type filter only)")


class StatusFilter(StrEnum):
    """Every status, and ``cancelled``: failed jobs whose reason is a cancel."""

    PENDING = JobStatus.PENDING.value
    RUNNING = JobStatus.RUNNING.value
    COMPLETED = JobStatus.COMPLETED.value
    FAILED = JobStatus.FAILED.value
    RETRYING = JobStatus.RETRYING.value
    WAITING = JobStatus.WAITING.value
    CANCELLED = queries.CANCELLED


class JobFilterQuery(Schema):
    type: JobTypeKey | None = None
    status: StatusFilter | None = None
    created_after: Moment | None = None
    created_before: Moment | None = None
    error_class: Line | None = None

    def filters(self) -> queries.JobFilters:
        # parse_filters knows the registered job types; the rest is already typed.
        base = queries.parse_filters(
            {"type": self.type or "", "status": self.status.value if self.status else ""}
        )
        return queries.JobFilters(
            job_type=base.job_type,
            status=base.status,
            created_after=self.created_after,
            created_before=self.created_before,
            error_class=self.error_class or "",
        )


class ListQuery(JobFilterQuery):
    before: Id | None = Field(None, description=BEFORE_DESCRIPTION)


class BulkRequest(JobFilterQuery):
    """Which jobs to act on: the list's filters, and at most ``limit`` of them."""

    model_config = {"extra": "forbid"}
    limit: StrictInt = Field(1000, ge=1, le=BULK_LIMIT, description="At most this many jobs")


class JobQueued(Out):
    """A job started by an action ("Sync now", "Discover now", "Ingest now")."""

    job: int
    status: JobStatus
    created: bool = Field(description="False when one was already on its way (that one)")
    url: str


def queued(request: HttpRequest, job: Job, created: bool) -> dict[str, Any]:
    url = absolute(request, "jobs:api-detail", job.pk)
    return {"job": job.pk, "status": job.status, "created": created, "url": url}


class BulkResult(Out):
    count: int = Field(description="How many jobs this call acted on")
    jobs: list[int] = Field(description="Their ids")


class RetryResult(Out):
    retried: bool
    job: JobDetail


class RetryRefused(Problem):
    retried: bool
    job: JobDetail


class CancelResult(Out):
    cancelled: bool
    job: JobDetail


class CancelRefused(Problem):
    cancelled: bool
    job: JobDetail


def summary(request: HttpRequest, job: Job) -> dict[str, Any]:
    return {**serializers.job_summary(job), "url": absolute(request, "jobs:api-detail", job.pk)}


def detail(request: HttpRequest, job: Job) -> dict[str, Any]:
    data = serializers.job_detail(job, queries.list_attempts(job), queries.list_events(job))
    return {**data, "url": absolute(request, "jobs:api-detail", job.pk)}


def get_or_404(job_id: int) -> Job:
    job = queries.get_job(job_id)
    if job is None:
        raise not_found("job", job_id)
    return job


@router.get("jobs/", response={200: JobPage, **ERRORS}, auth=allowed(VIEW_PERMISSION))
def list_jobs(request: HttpRequest, query: Query[ListQuery]) -> dict[str, Any]:
    """Jobs newest first, filtered like Settings > Jobs; 50 a page."""
    filters = query.filters()
    page = queries.list_jobs(filters, before=query.before)
    return {
        "results": [summary(request, job) for job in page.jobs],
        "next": next_url(request, "jobs:api-list", filters.as_query(), page.next_before),
        "counts": queries.get_status_counts(filters.job_type),
    }


@router.get(
    "jobs/{int:job_id}/",
    response={200: JobDetail, **FOUND},
    auth=allowed(VIEW_PERMISSION),
    by_alias=True,
)
def get_job(request: HttpRequest, job_id: Id) -> dict[str, Any]:
    """One job: its input, outcome, every attempt and its history."""
    return detail(request, get_or_404(job_id))


@router.post(
    "jobs/{int:job_id}/retry/",
    response={202: RetryResult, 409: RetryRefused, **FOUND},
    auth=allowed(VIEW_PERMISSION, RETRY_PERMISSION),
    by_alias=True,
)
def retry_job(request: HttpRequest, job_id: Id) -> Status[dict[str, Any]]:
    """Retry a failed job with a fresh retry budget; 409 (retried: false) if it is not failed."""
    job = get_or_404(job_id)
    retried = services.retry_job(job, actor=request.user)
    job.refresh_from_db()
    if not retried:
        raise ApiError(
            409,
            "this job is not failed (any more); nothing to retry",
            retried=False,
            job=JobDetail.model_validate(detail(request, job)).model_dump(by_alias=True),
        )
    return Status(202, {"retried": True, "job": detail(request, job)})


@router.post(
    "jobs/{int:job_id}/cancel/",
    response={200: CancelResult, 409: CancelRefused, **FOUND},
    auth=allowed(VIEW_PERMISSION, CANCEL_PERMISSION),
    by_alias=True,
)
def cancel_job(request: HttpRequest, job_id: Id) -> dict[str, Any]:
    """Cancel a pending or retrying job before its next attempt; 409 otherwise."""
    job = get_or_404(job_id)
    try:
        job = services.cancel_job(job.pk, actor=request.user)
    except services.NotCancellableError as exc:
        job.refresh_from_db()
        job_data = JobDetail.model_validate(detail(request, job)).model_dump(by_alias=True)
        raise ApiError(409, str(exc), cancelled=False, job=job_data) from None
    return {"cancelled": True, "job": detail(request, job)}


@router.post(
    "jobs/retry/",
    response={200: BulkResult, 409: Problem, **ERRORS},
    auth=allowed(VIEW_PERMISSION, RETRY_PERMISSION),
    openapi_extra=idempotency.HEADER_DOC,
)
def retry_jobs(request: HttpRequest, body: BulkRequest) -> HttpResponse:
    """Retry every failed job matching the filters (up to ``limit``), each atomically;
    recorded on the trail as one bulk action with the count."""

    def run() -> tuple[int, dict[str, Any]]:
        retried = services.retry_jobs(body.filters(), limit=body.limit, actor=request.user)
        return 200, BulkResult(count=len(retried), jobs=retried).model_dump()

    return idempotency.create_once(request, run)


@router.post(
    "jobs/cancel/",
    response={200: BulkResult, 409: Problem, **ERRORS},
    auth=allowed(VIEW_PERMISSION, CANCEL_PERMISSION),
    openapi_extra=idempotency.HEADER_DOC,
)
def cancel_jobs(request: HttpRequest, body: BulkRequest) -> HttpResponse:
    """Cancel every pending or retrying job matching the filters (up to ``limit``), each
    atomically; recorded on the trail as one bulk action with the count."""

    def run() -> tuple[int, dict[str, Any]]:
        cancelled = services.cancel_jobs(body.filters(), limit=body.limit, actor=request.user)
        return 200, BulkResult(count=len(cancelled), jobs=cancelled).model_dump()

    return idempotency.create_once(request, run)
