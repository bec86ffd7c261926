"""/metrics after a known set of jobs, run through the engine's own runner on the real
PostgreSQL and Redis, read back by parsing the Prometheus text; and who may read it."""

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from django.test import Client
from django.utils import timezone

from jobs import lifecycle, services
from jobs.models import Job, JobType
from tests.conftest import require_services
from tests.inline import deliver
from tests.integration import handlers  # noqa: F401 - registers the test job types
from tests.settings import TEST_REDIS_URL

pytestmark = pytest.mark.django_db

TOKEN = "metrics-test-token"
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def broker() -> Iterator["redis.Redis[bytes]"]:
    require_services("postgres", "redis")
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    # Counter rows of test types were rolled back with earlier tests; make them again.
    lifecycle._types_with_counters.clear()
    yield client
    client.flushdb()


def parse(text: str) -> Samples:
    """Samples by (name, labels); every family announced with HELP and TYPE first."""
    samples: Samples = {}
    announced: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            announced.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, line
        name = match["name"]
        assert any(name == f or name.startswith(f + "_") for f in announced), name
        labels = frozenset(LABEL.findall(match["labels"] or ""))
        samples[(name, labels)] = float(match["value"])
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def scrape(client: Client) -> Samples:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.content.decode())


def test_metrics_are_off_without_a_token(client: Client, settings) -> None:
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_metrics_need_the_bearer_token(client: Client, settings, broker) -> None:
    settings.METRICS_TOKEN = TOKEN
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_metrics_after_a_known_set_of_jobs(
    client: Client, settings, broker, django_capture_on_commit_callbacks
) -> None:
    settings.METRICS_TOKEN = TOKEN
    for _ in range(3):
        deliver(services.enqueue("test_noop"))
    deliver(services.enqueue("test_permanent"))
    flaky = deliver(services.enqueue("test_flaky", params={"fail_times": 1}))  # retrying
    deliver(flaky)  # its retry succeeds
    with django_capture_on_commit_callbacks(execute=True):
        waiting = services.enqueue(JobType.CREATE_DOMAIN_USER)
        services.enqueue(JobType.BULK_IMPORT)
    Job.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - timedelta(seconds=120))

    samples = scrape(client)

    jobs = "accesshive_jobs"
    assert value(samples, jobs, job_type="test_noop", status="completed") == 3
    assert value(samples, jobs, job_type="test_noop", status="pending") == 0
    assert value(samples, jobs, job_type="test_permanent", status="failed") == 1
    assert value(samples, jobs, job_type="test_flaky", status="completed") == 1
    assert value(samples, jobs, job_type="test_flaky", status="retrying") == 0
    assert value(samples, jobs, job_type="create_domain_user", status="pending") == 1
    assert value(samples, jobs, job_type="bulk_import", status="pending") == 1

    attempts = "accesshive_job_attempts_total"
    assert value(samples, attempts, job_type="test_noop", outcome="succeeded") == 3
    assert value(samples, attempts, job_type="test_permanent", outcome="failed") == 1
    assert value(samples, attempts, job_type="test_flaky", outcome="failed") == 1
    assert value(samples, attempts, job_type="test_flaky", outcome="succeeded") == 1
    assert sum(v for (name, _), v in samples.items() if name == attempts) == 6

    duration = "accesshive_job_attempt_duration_seconds"
    assert value(samples, f"{duration}_count", job_type="test_noop") == 3
    assert value(samples, f"{duration}_count", job_type="test_flaky") == 2
    assert 0 < value(samples, f"{duration}_sum", job_type="test_noop") < 3
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in samples.items()
        if name == f"{duration}_bucket" and ("job_type", "test_noop") in labels
    )
    assert [le for le, _ in buckets][-1] == float("inf")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert buckets[-1][1] == 3

    depth = "accesshive_queue_depth"
    assert value(samples, depth, queue="provisioning") == 1
    assert value(samples, depth, queue="bulk") == 1
    assert value(samples, depth, queue="sync") == 0
    assert value(samples, depth, queue="celery") == 0

    age = value(samples, "accesshive_oldest_pending_job_age_seconds")
    assert 119 <= age <= 150
    assert value(samples, "accesshive_metrics_redis_up") == 1


def test_metrics_without_jobs_or_redis_counters(client: Client, settings, broker) -> None:
    settings.METRICS_TOKEN = TOKEN
    samples = scrape(client)
    assert value(samples, "accesshive_oldest_pending_job_age_seconds") == 0
    assert value(samples, "accesshive_jobs", job_type="directory_sync", status="failed") == 0
    assert not any(name == "accesshive_job_attempts_total" for name, _ in samples)


def test_attempts_are_counted_after_redis_forgot_its_scripts(
    client: Client, settings, broker
) -> None:
    """A restarted Redis has none of the scripts workers loaded into it: the first attempt
    recorded after that loads its script again and is counted all the same."""
    settings.METRICS_TOKEN = TOKEN
    deliver(services.enqueue("test_noop"))
    broker.script_flush()
    deliver(services.enqueue("test_noop"))

    samples = scrape(client)
    attempts = "accesshive_job_attempts_total"
    assert value(samples, attempts, job_type="test_noop", outcome="succeeded") == 2
    duration = "accesshive_job_attempt_duration_seconds"
    assert value(samples, f"{duration}_count", job_type="test_noop") == 2
