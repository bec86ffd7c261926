"""What Flower, the monitor Celery operators already run, shows of jobs: a real Flower process
reads the real worker's task events, and the test asks its HTTP API, as an operator's browser
would. It must agree with Settings > Jobs: every task named with its job type, a delivery that
ran nothing (a cancelled job's late message, a job paced back into its queue) not a success."""

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from jobs import services
from jobs.models import Job, JobStatus
from tests import factories
from tests.integration import handlers  # noqa: F401 - registers the test job types
from tests.integration.test_ops_support import OpsWorker
from tests.integration.worker import ROOT, CeleryProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class Flower(CeleryProcess):
    """`celery -A accesshive flower` on a free local port, its API open without sign-in."""

    def __init__(self) -> None:
        super().__init__("flower", {"FLOWER_UNAUTHENTICATED_API": "true"})
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    def start(self) -> "Flower":
        args = [
            *(sys.executable, "-m", "celery", "-A", "accesshive", "flower"),
            *("--address=127.0.0.1", f"--port={self.port}"),
        ]
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            # Its event receiver's connection (Celery's logging setup leaves no debug line).
            connected = b"Connected to redis"
            wait_for(lambda: connected in self.log_path.read_bytes(), 30, "Flower", self)
        except AssertionError:
            self.stop()
            raise
        return self

    def task(self, task_id: str) -> dict[str, Any] | None:
        """The task as Flower's API shows it, or None while Flower has not heard of it."""
        url = f"http://127.0.0.1:{self.port}/api/task/info/{task_id}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return dict(json.load(response))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def wait_for_state(self, task_id: str, state: str, process: CeleryProcess) -> dict[str, Any]:
        wait_for(
            lambda: (self.task(task_id) or {}).get("state") == state,
            30,
            f"Flower to show task {task_id} {state} (it shows {self.task(task_id)})",
            process,
        )
        shown = self.task(task_id)
        assert shown is not None
        return shown


@pytest.fixture
def flower(broker: "redis.Redis[bytes]") -> Iterator[Flower]:
    if importlib.util.find_spec("flower") is None:
        pytest.fail("Flower is not installed: pip install -e '.[dev]'")
    process = Flower().start()
    yield process
    process.stop()


def test_a_cancelled_jobs_late_delivery_shows_ignored_and_every_task_its_type(
    flower: Flower,
) -> None:
    # An admin cancels a job whose message waits in the queue for a worker.
    cancelled = services.enqueue("test_noop", trigger_label="test")
    services.cancel_job(cancelled.pk, actor=factories.make_user("olga"))
    late_id = str(cancelled.celery_task_id)
    # Events are broadcast: Flower sees only those sent once it has subscribed, a moment after
    # it connects. Until it has seen the message, send it again (a late duplicate, as the
    # sweeper's re-send would be).
    queued = flower.task(late_id)
    for _ in range(50):
        if queued is not None:
            break
        time.sleep(0.2)
        queued = flower.task(late_id)
        if queued is None:
            services.send(cancelled.pk, task_id=late_id, retries=0, job_type="test_noop")
    # Queued, not yet taken by any worker: Flower already names it with its type.
    assert queued is not None
    assert (queued["state"], queued["name"]) == ("PENDING", "jobs.run_job:test_noop")

    worker = OpsWorker().start()
    try:
        done = services.enqueue("test_noop", trigger_label="test")
        shown_done = flower.wait_for_state(str(done.celery_task_id), "SUCCESS", worker)
        late = flower.wait_for_state(late_id, "IGNORED", worker)
    finally:
        worker.stop()

    assert shown_done["name"] == "jobs.run_job:test_noop"
    # Celery's task state for the late delivery: ignored, not a success; its Result row says why.
    assert late["name"] == "jobs.run_job:test_noop"
    assert late["succeeded"] is None
    assert "'ignored': 'stale or duplicate delivery'" in late["result"]
    # What Settings > Jobs shows: the job stays cancelled, and no attempt ran.
    cancelled.refresh_from_db()
    assert cancelled.status == JobStatus.FAILED
    assert cancelled.attempt_count == 0


def test_a_paced_job_shows_deferred_then_its_next_message_succeeds(flower: Flower) -> None:
    worker = OpsWorker(env={"ACCESSHIVE_RATE_LIMIT_MAX_WAIT": "0.1"}).start()
    try:
        job = services.enqueue("test_ops_paced_once", trigger_label="test")
        first_id = str(job.celery_task_id)
        wait_for(
            lambda: Job.objects.filter(pk=job.pk, status=JobStatus.COMPLETED).exists(),
            30,
            "the paced job to complete",
            worker,
        )
        job.refresh_from_db()
        assert str(job.celery_task_id) != first_id  # it ran under the message it was put back as
        paced = flower.wait_for_state(first_id, "DEFERRED", worker)
        ran = flower.wait_for_state(str(job.celery_task_id), "SUCCESS", worker)
    finally:
        worker.stop()

    # The delivery that only put the job back in its queue is no success, and the one that
    # ran it is: both named with the job's type; the first names the second.
    assert paced["succeeded"] is None
    assert f"'next_task_id': '{job.celery_task_id}'" in paced["result"]
    assert paced["name"] == ran["name"] == "jobs.run_job:test_ops_paced_once"
    assert (job.attempt_count, job.retries) == (1, 0)
