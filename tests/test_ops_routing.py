"""Each job type's message lands in its workload's queue on the real Redis broker."""

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from accesshive.celery import app
from jobs import routing, services
from jobs.models import JobType
from tests.conftest import require_services
from tests.integration import handlers  # noqa: F401 - registers test_noop
from tests.integration.worker import ROOT
from tests.settings import TEST_REDIS_URL

pytestmark = pytest.mark.django_db

EXPECTED = {
    JobType.CREATE_DOMAIN_USER: "provisioning",
    JobType.PROVISION_SSO_USER: "provisioning",
    JobType.CREDENTIAL_ROTATION: "provisioning",
    JobType.REMEDIATION: "provisioning",
    JobType.JML_AUTOMATION: "provisioning",
    JobType.DIRECTORY_SYNC: "sync",
    JobType.AUDIT_INGESTION: "sync",
    JobType.ASSET_DISCOVERY: "sync",
    JobType.BULK_IMPORT: "bulk",
}


@pytest.fixture
def broker() -> Iterator["redis.Redis[bytes]"]:
    require_services("redis")
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


def queued_task_ids(broker: "redis.Redis[bytes]", queue: str) -> list[str]:
    return [json.loads(raw)["headers"]["id"] for raw in broker.lrange(queue, 0, -1)]


def test_every_product_type_has_a_queue() -> None:
    assert set(EXPECTED) == set(JobType)
    assert {job_type: routing.queue_for(job_type) for job_type in JobType} == EXPECTED
    assert routing.queue_for("test_noop") == "celery"  # unnamed types share the default


@pytest.mark.parametrize("job_type", list(EXPECTED))
def test_enqueue_sends_each_type_to_its_queue(
    job_type, broker, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        job = services.enqueue(job_type)
    queue = EXPECTED[job_type]
    assert queued_task_ids(broker, queue) == [str(job.celery_task_id)]
    for other in set(routing.queue_names()) - {queue}:
        assert broker.llen(other) == 0, other


def test_types_without_a_queue_and_housekeeping_use_the_default_queue(
    broker, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        job = services.enqueue("test_noop")
    assert queued_task_ids(broker, "celery") == [str(job.celery_task_id)]
    # Beat's tasks name no queue: they go to the default one, which worker-bulk consumes.
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert "queue" not in str(entry.get("options", ""))
    assert app.conf.task_default_queue == "celery"


def test_a_worker_without_q_consumes_every_queue() -> None:
    # `make run` and single-worker setups start a worker without -Q.
    declared = {queue.name for queue in app.conf.task_queues}
    assert declared == {"celery", "provisioning", "sync", "bulk"}


def test_the_queue_map_can_be_overridden_from_the_environment(tmp_path) -> None:
    script = "import json, accesshive.settings as s; print(json.dumps(s.JOB_QUEUES))"
    env = {
        "DJANGO_SECRET_KEY": "x",
        "ACCESSHIVE_VAR_DIR": str(tmp_path),
        "ACCESSHIVE_JOB_QUEUES": "directory_sync=bulk, remediation=celery",
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    queues = json.loads(out)
    assert queues["directory_sync"] == "bulk"
    assert queues["remediation"] == "celery"
    assert queues["create_domain_user"] == "provisioning"
