"""The daily late-arrival check on a real worker: beat's task sends it, the worker re-reads the
previous day and counts (and stores) what the runs' overlap missed."""

import datetime as dt
from collections.abc import Iterator

import pytest
import redis
from django.utils import timezone

from audit import services
from audit.models import AuditCheckpoint, AuditEvent, AuditLateCheck, AuditSettings
from audit.tasks import schedule_late_checks
from jobs.models import Job, JobStatus, JobType
from tests import factories
from tests.conftest import require_services
from tests.integration.worker import CeleryProcess, wait_for
from tests.settings import TEST_REDIS_URL

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker() -> Iterator[CeleryProcess]:
    require_services("postgres", "redis")
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    process = CeleryProcess("worker", env={"ACCESSHIVE_JOB_TIMEOUT": "30"}).start()
    yield process
    process.stop()


def test_the_daily_check_counts_what_the_overlap_missed_yesterday(worker, gws) -> None:
    platform = factories.make_sandbox_platform(gws)
    AuditSettings.objects.create(platform=platform, applications=["login"], overlap_minutes=10)
    yesterday = (timezone.now() - dt.timedelta(days=1)).date()
    noon = dt.datetime.combine(yesterday, dt.time(12), tzinfo=dt.UTC)
    # The runs have read well past yesterday; two activities of yesterday noon were
    # published only afterwards, later than any overlap re-read.
    AuditCheckpoint.objects.create(
        platform=platform, application="login", position=timezone.now() - dt.timedelta(hours=1)
    )
    log = gws.reports.log
    log.add("login", log.activity("login", noon, unique_qualifier="-1"))
    log.add("login", log.activity("login", noon + dt.timedelta(minutes=1), unique_qualifier="-2"))

    assert schedule_late_checks() == 1
    job = Job.objects.get(job_type=JobType.AUDIT_INGESTION)
    wait_for(
        lambda: Job.objects.filter(pk=job.pk, status=JobStatus.COMPLETED).exists(),
        60,
        "the late-arrival check",
        worker,
    )

    check = AuditLateCheck.objects.get(platform=platform, application="login", day=yesterday)
    assert (check.read, check.missed, check.overlap_minutes) == (2, 2, 10)
    assert AuditEvent.objects.count() == 2
    assert services.list_late_checks(platform) == [check]
