"""Settings > Jobs charts: finished per hour over the last 24 hours and the failure rate by
type, drawn as inline SVG from one aggregate query."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobs import charts
from jobs.models import Job, JobStatus, JobType
from tests import factories
from tests.conftest import require_services

pytestmark = pytest.mark.django_db

CHARTS_URL = reverse("jobs:charts")
# Half past the current hour: "6 minutes ago" stays in this hour whenever the test runs.
ANCHOR = timezone.now().replace(minute=30, second=0, microsecond=0)


def finished(status: str, hours_ago: float, job_type: str = JobType.DIRECTORY_SYNC) -> Job:
    job = factories.make_job(status=status, job_type=job_type)
    Job.objects.filter(pk=job.pk).update(completed_at=ANCHOR - timedelta(hours=hours_ago))
    return job


@pytest.fixture
def day() -> None:
    for _ in range(3):
        finished(JobStatus.COMPLETED, 0.1)
    finished(JobStatus.FAILED, 0.2)
    finished(JobStatus.COMPLETED, 5, JobType.BULK_IMPORT)
    finished(JobStatus.FAILED, 5, JobType.BULK_IMPORT)
    finished(JobStatus.FAILED, 22, JobType.REMEDIATION)
    finished(JobStatus.FAILED, 30, JobType.REMEDIATION)  # older than a day: not drawn
    factories.make_job(status=JobStatus.RUNNING)
    factories.make_job(status=JobStatus.PENDING)


def test_the_charts_count_the_last_24_hours(day) -> None:
    built = charts.build(now=ANCHOR)
    assert len(built.hours) == 24
    assert (built.completed, built.failed) == (4, 3)
    now = built.hours[-1]
    assert (now.completed, now.failed) == (3, 1)
    assert built.peak == 4
    assert now.completed_height > now.failed_height > 0
    rates = {rate.job_type: (rate.completed, rate.failed, rate.rate) for rate in built.rates}
    assert rates == {
        JobType.REMEDIATION: (0, 1, 1.0),
        JobType.BULK_IMPORT: (1, 1, 0.5),
        JobType.DIRECTORY_SYNC: (3, 1, 0.25),
    }
    assert built.rates[0].job_type == JobType.REMEDIATION  # worst first
    assert built.rates[2].text == "25.0% (1 of 4)"


def test_the_charts_page_draws_svg_from_one_query(client: Client, day) -> None:
    client.force_login(factories.make_viewer())
    with CaptureQueriesContext(connection) as queries:
        response = client.get(CHARTS_URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("<svg") == 2
    assert 'class="bar-failed"' in html
    assert "Directory sync" in html
    job_queries = [q["sql"] for q in queries.captured_queries if '"jobs_job"' in q["sql"]]
    assert len(job_queries) == 1
    assert "GROUP BY" in job_queries[0]
    assert "COUNT(" in job_queries[0].upper()
    assert '"completed_at" >=' in job_queries[0]


def test_no_finished_jobs_says_so(client: Client) -> None:
    client.force_login(factories.make_viewer())
    html = client.get(CHARTS_URL).content.decode()
    assert "No job finished in the last 24 hours." in html


def test_the_list_loads_the_charts_after_it_renders(client: Client) -> None:
    client.force_login(factories.make_viewer())
    html = client.get(reverse("jobs:list")).content.decode()
    assert f'hx-get="{CHARTS_URL}" hx-trigger="load, every 60s"' in html


def test_charts_need_the_view_permission(client: Client) -> None:
    client.force_login(factories.make_user("nobody"))
    assert client.get(CHARTS_URL).status_code == 403


def test_the_charts_query_uses_the_finished_index(day) -> None:
    require_services("postgres")  # EXPLAIN's plan is PostgreSQL's
    # A month of finished jobs, so the last day's are worth an index: on a handful of rows any
    # plan is as cheap, and the planner's pick followed what earlier tests left in the table.
    month_ago = timezone.now() - timedelta(days=30)
    Job.objects.bulk_create(
        Job(
            job_type=JobType.DIRECTORY_SYNC,
            status=JobStatus.COMPLETED if n % 4 else JobStatus.FAILED,
            created_at=month_ago + timedelta(minutes=10 * n),
            completed_at=month_ago + timedelta(minutes=10 * n, seconds=5),
        )
        for n in range(4000)
    )
    since = timezone.now() - timedelta(hours=24)
    sql, params = (
        Job.objects.filter(
            status__in=(JobStatus.COMPLETED, JobStatus.FAILED), completed_at__gte=since
        )
        .values("status")
        .query.sql_with_params()
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "job_status_finished" in plan
