"""Faults a worker must ride out by itself: a pool process whose database connection
PostgreSQL dropped still claims and runs its next deliveries in one attempt each, with no
sweeper (no beat) to rescue them; jobs waiting for Google's rate limit leave the pool slots
to SSO jobs."""

import time
from collections.abc import Iterator

import pytest
import redis
from django.db import connection

from identities.models import IdentityStatus, IdentityType
from identities.services import IdentityInput, create_identity
from jobs import services
from jobs.models import AttemptOutcome, Job, JobAttempt, JobEvent, JobStatus, JobType
from tests import factories
from tests.conftest import require_services
from tests.integration import handlers  # noqa: F401 - registers the test job types
from tests.integration.test_provisioning import gws, idp, platform  # noqa: F401 - fixtures
from tests.integration.worker import CeleryProcess, wait_for
from tests.settings import TEST_REDIS_URL

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker() -> Iterator[CeleryProcess]:
    require_services("postgres", "redis")
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    process = CeleryProcess("worker").start()
    yield process
    process.stop()


def all_completed(jobs: list[Job]) -> bool:
    ids = [job.pk for job in jobs]
    return Job.objects.filter(pk__in=ids, status=JobStatus.COMPLETED).count() == len(ids)


def drop_other_connections() -> int:
    """What a PostgreSQL restart does to every session but this test's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        (dropped,) = cursor.fetchone()
    return int(dropped)


def test_deliveries_after_a_dropped_connection_run_in_one_attempt(worker) -> None:
    # Both pool processes open their connection.
    warm = [services.enqueue("test_noop") for _ in range(4)]
    wait_for(lambda: all_completed(warm), 20, "the first jobs", worker)
    assert drop_other_connections() >= 2

    after = [services.enqueue("test_noop") for _ in range(6)]
    wait_for(lambda: all_completed(after), 20, "the jobs after the drop", worker)
    for job in after:
        assert [a.outcome for a in job.attempts.all()] == [AttemptOutcome.SUCCEEDED]
    assert not JobEvent.objects.filter(job__in=after).exists()  # nothing re-sent
    assert "connection is closed" not in worker.output()


def test_sso_jobs_keep_their_own_pace_during_a_google_rate_limit_flood(
    settings,
    gws,  # noqa: F811
    idp,  # noqa: F811
    platform,  # noqa: F811
) -> None:
    require_services("postgres", "redis")
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    # Google at 1 call a second: the flood below takes it well over ten seconds.
    settings.JOB_TIMEOUT, settings.JOB_HARD_TIMEOUT = 20, 25
    paced = {"ACCESSHIVE_RATE_LIMITS": "google_workspace=1/1", "ACCESSHIVE_JOB_TIMEOUT": "20"}
    worker = CeleryProcess("worker", env=paced).start()
    try:
        started = time.monotonic()
        for number in range(12):
            create_identity(
                IdentityInput(
                    identity_type=IdentityType.HUMAN_INTERACTIVE,
                    platform=platform,
                    display_name=f"Flood {number}",
                    login=f"flood{number}@example.com",
                ),
                actor=None,
            )
        # A new person's SSO user waits for their Google user (jobs.dependencies), so the SSO
        # jobs that must keep their own pace are for people whose Google users exist already.
        present = [
            factories.make_identity(
                platform=platform,
                status=IdentityStatus.PROVISIONING,
                login=f"present{number}@example.com",
                display_name=f"Present {number}",
            )
            for number in range(12)
        ]
        for person in present:
            services.enqueue(JobType.PROVISION_SSO_USER, subject=person)
        sso = Job.objects.filter(
            job_type=JobType.PROVISION_SSO_USER, subject_id__in=[str(p.pk) for p in present]
        )
        google = Job.objects.filter(job_type=JobType.CREATE_DOMAIN_USER)
        wait_for(
            lambda: sso.filter(status=JobStatus.COMPLETED).count() == 12,
            6,
            "every SSO job, while Google's are paced",
            worker,
        )
        sso_done = time.monotonic() - started
        google_done_then = google.filter(status=JobStatus.COMPLETED).count()
        wait_for(
            lambda: google.filter(status=JobStatus.COMPLETED).count() == 12,
            60,
            "every Google job",
            worker,
        )
        every_sso = Job.objects.filter(job_type=JobType.PROVISION_SSO_USER)
        wait_for(
            lambda: every_sso.filter(status=JobStatus.COMPLETED).count() == 24,
            30,
            "the flood's SSO jobs, each after its Google job",
            worker,
        )
    finally:
        worker.stop()
    assert google_done_then < 12  # the SSO jobs did not wait for the Google flood to end
    assert sso_done < 6
    assert len(gws.users()) == 12
    assert len(idp.users()) == 24
    assert not JobAttempt.objects.exclude(outcome=AttemptOutcome.SUCCEEDED).exists()
