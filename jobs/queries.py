"""Read side of Settings > Jobs: filter parsing, keyset pages, status counts, one job."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncHour

from jobs import registry
from jobs.lifecycle import CANCELLED_ERROR_CLASS
from jobs.models import Job, JobAttempt, JobEvent, JobStatus, JobStatusCount, JobType
from web.pages import QueryForm, choice_parameter, parse_id_cursor

# A status filter beside the five statuses: failed jobs whose reason is a cancel.
CANCELLED = "cancelled"

# Columns a list never shows and that can be large (JSON blobs, tracebacks).
HEAVY_COLUMNS = ("params", "result", "error_traceback", "error_message")


@dataclass(frozen=True)
class JobFilters:
    """The filters of the jobs list; an empty string means "any"."""

    job_type: str = ""
    status: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None
    error_class: str = ""

    def as_query(self) -> dict[str, str]:
        """The filters as URL query parameters, leaving out the empty ones."""
        query = {
            "type": self.job_type,
            "status": self.status,
            "created_after": self.created_after.isoformat() if self.created_after else "",
            "created_before": self.created_before.isoformat() if self.created_before else "",
            "error_class": self.error_class,
        }
        return {key: value for key, value in query.items() if value}


@dataclass(frozen=True)
class JobPage:
    """One keyset page of the jobs list, newest first."""

    jobs: list[Job]
    before: int | None
    next_before: int | None

    @property
    def has_active(self) -> bool:
        return any(job.is_active for job in self.jobs)


def list_job_types() -> list[tuple[str, str]]:
    """Every job type a filter may name: the built-in ones and any registered since."""
    types = list(JobType.choices)
    known = set(JobType.values)
    types += [(key, key) for key in registry.registered_types() if key not in known]
    return types


class JobFilterForm(QueryForm):
    type = choice_parameter("type", list_job_types, "job type")
    status = choice_parameter("status", [*JobStatus.values, CANCELLED], "job status")


def parse_filters(params: Mapping[str, str]) -> JobFilters:
    """Read ``type`` and ``status`` from a query string; unknown values raise."""
    values = JobFilterForm.parse(params)
    return JobFilters(job_type=values["type"], status=values["status"])


def parse_before(params: Mapping[str, str]) -> int | None:
    return parse_id_cursor(params, "job")


def filtered_jobs(filters: JobFilters) -> QuerySet[Job]:
    jobs = Job.objects.all()
    if filters.job_type:
        jobs = jobs.filter(job_type=filters.job_type)
    if filters.status == CANCELLED:
        jobs = jobs.filter(status=JobStatus.FAILED, error_class=CANCELLED_ERROR_CLASS)
    elif filters.status:
        jobs = jobs.filter(status=filters.status)
    if filters.created_after:
        jobs = jobs.filter(created_at__gt=filters.created_after)
    if filters.created_before:
        jobs = jobs.filter(created_at__lt=filters.created_before)
    if filters.error_class:
        jobs = jobs.filter(error_class=filters.error_class)
    return jobs


def list_job_ids(filters: JobFilters, *, statuses: tuple[str, ...], limit: int) -> list[int]:
    """Up to ``limit`` ids of jobs matching the filters and in one of ``statuses``, oldest
    first (the order a bulk action works through them)."""
    jobs = filtered_jobs(filters).filter(status__in=statuses).order_by("id")
    return list(jobs.values_list("id", flat=True)[:limit])


def list_jobs(
    filters: JobFilters, *, before: int | None = None, size: int | None = None
) -> JobPage:
    """The page of jobs older than ``before`` (newest first), without the heavy columns.

    Keyset paging on the primary key walks the (type, status, -id) indexes and costs the
    same on page 1 and page 10,000; one extra row tells whether there is a next page.
    """
    size = size or settings.JOB_PAGE_SIZE
    jobs = filtered_jobs(filters).defer(*HEAVY_COLUMNS).order_by("-id")
    if before is not None:
        jobs = jobs.filter(id__lt=before)
    rows = list(jobs[: size + 1])
    next_before = rows[size - 1].pk if len(rows) > size else None
    return JobPage(jobs=rows[:size], before=before, next_before=next_before)


def get_status_counts(job_type: str = "") -> dict[str, int]:
    """Jobs per status from the maintained counters (never a COUNT(*) over the job table)."""
    counters = JobStatusCount.objects.all()
    if job_type:
        counters = counters.filter(job_type=job_type)
    totals = dict(counters.values_list("status").annotate(total=Sum("count")).order_by())
    return {status: int(totals.get(status) or 0) for status in JobStatus.values}


def get_job(job_id: int) -> Job | None:
    return Job.objects.filter(pk=job_id).first()


def list_attempts(job: Job) -> list[JobAttempt]:
    """Every attempt of a job, first to last; each attempt's traceback stays in the database,
    the job keeps the last one."""
    return list(JobAttempt.objects.filter(job=job).defer("error_traceback").order_by("number"))


def list_events(job: Job) -> list[JobEvent]:
    """The job's history (admin retries, sweeper recoveries), oldest first."""
    return list(JobEvent.objects.filter(job=job).select_related("actor").order_by("at", "id"))


def list_finished_by_hour(since: datetime) -> list[tuple[datetime, str, str, int]]:
    """(hour, job type, status, jobs) for jobs completed or failed since ``since``: one
    aggregate over the (status, completed_at) index range, never the whole table."""
    rows = (
        Job.objects.filter(
            status__in=(JobStatus.COMPLETED, JobStatus.FAILED), completed_at__gte=since
        )
        .annotate(hour=TruncHour("completed_at"))
        .values_list("hour", "job_type", "status")
        .annotate(jobs=Count("pk"))
        .order_by()
    )
    return [(hour, job_type, status, jobs) for hour, job_type, status, jobs in rows]
