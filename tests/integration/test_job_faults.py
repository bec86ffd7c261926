"""A pool process whose database connection PostgreSQL dropped: the next deliveries still
claim and run their jobs, each in one attempt, with no sweeper (no beat) to rescue them."""

from collections.abc import Iterator

import pytest
import redis
from django.db import connection

from jobs import services
from jobs.models import AttemptOutcome, Job, JobEvent, JobStatus
from tests.conftest import require_services
from tests.integration import handlers  # noqa: F401 - registers the test job types
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
