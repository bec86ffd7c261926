"""A real worker's side of operations: its JSON log lines name the job and hide planted
secrets, and its heartbeat file tells check_worker whether it is alive."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs import services
from jobs.models import Job, JobStatus
from tests.integration.test_ops_support import PLANTED, OpsWorker
from tests.integration.worker import ROOT, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def check_worker(var_dir: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "accesshive.settings",
        "DJANGO_SECRET_KEY": "tests-only-secret-key",
        "ACCESSHIVE_VAR_DIR": var_dir,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", "check_worker", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_json_log_lines_name_the_job_and_never_a_secret(broker) -> None:
    worker = OpsWorker(env={"ACCESSHIVE_LOG_FORMAT": "json"}).start()
    try:
        job = services.enqueue("test_ops_log")
        # Celery's "succeeded" line is the delivery's last: stopping before it would cut
        # lines off, since the job row is completed a little earlier.
        wait_for(lambda: "succeeded in" in worker.output(), 20, "the logging job to finish", worker)
    finally:
        worker.stop()
    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED
    output = worker.output()
    assert PLANTED not in output
    # Everything logged is JSON, one object a line (Celery's banner is printed, not logged).
    logged = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(line["msg"].endswith(" ready.") for line in logged)
    written = [
        line
        for line in logged
        if line["logger"]
        in {"jobs.runner", "tests.integration.ops_handler", "connectors.fake_system"}
    ]
    assert {line["msg"] for line in written} >= {
        "jobs.attempt.started",
        "handler.step",
        "connector.call password=[redacted]",
        "handler.nested",
        "jobs.attempt.succeeded",
    }
    for line in written:
        assert (line["job_id"], line["job_type"], line["attempt"]) == (job.pk, "test_ops_log", 1)
    # Celery's own line about the delivery comes after the attempt, and names it too.
    (done,) = [
        line
        for line in logged
        if line["logger"] == "celery.app.trace" and "succeeded" in line["msg"]
    ]
    assert (done["job_id"], done["job_type"], done["attempt"]) == (job.pk, "test_ops_log", 1)
    step = next(line for line in written if line["msg"] == "handler.step")
    assert step["password"] == step["api_token"] == "[redacted]"
    assert step["user"] == "ada"


def test_check_worker_follows_the_heartbeat(broker) -> None:
    worker = OpsWorker().start()
    heartbeat = Path(worker.var_dir) / "worker-heartbeat"
    try:
        wait_for(heartbeat.exists, 10, "the first heartbeat", worker)
        before = heartbeat.stat().st_mtime
        # Celery's event heartbeat comes every 2 s: wait for the next one to touch the file.
        wait_for(lambda: heartbeat.stat().st_mtime > before, 15, "the next heartbeat", worker)
        # A pool process reached the database and the broker (it checks every 2 s).
        wait_for(
            lambda: (Path(worker.var_dir) / "worker-heartbeat.pool").exists(), 10, "pool", worker
        )
        alive = check_worker(worker.var_dir)
        assert alive.returncode == 0, alive.stderr
        assert "alive" in alive.stdout
        assert "pool reached the database and the broker" in alive.stdout
    finally:
        worker.stop()
    assert not heartbeat.exists()  # a warm shutdown says goodbye
    gone = check_worker(worker.var_dir)
    assert gone.returncode == 1
    assert "no heartbeat" in gone.stderr


def test_check_worker_fails_on_a_stale_heartbeat(tmp_path) -> None:
    stale = tmp_path / "heartbeat"
    stale.touch()
    os.utime(stale, (time.time() - 120, time.time() - 120))
    result = check_worker(str(tmp_path), "--file", str(stale), "--max-age", "60")
    assert result.returncode == 1
    assert re.search(r"last heartbeat 12\d s ago \(limit 60 s\)", result.stderr), result.stderr
    no_pool = check_worker(str(tmp_path), "--file", str(stale), "--max-age", "300")
    assert no_pool.returncode == 1
    assert "no pool process has reached the database" in no_pool.stderr
    pool = tmp_path / "heartbeat.pool"
    pool.touch()
    os.utime(pool, (time.time() - 90, time.time() - 90))
    stuck = check_worker(str(tmp_path), "--file", str(stale), "--max-age", "60")
    assert stuck.returncode == 1
    fresh = check_worker(str(tmp_path), "--file", str(stale), "--max-age", "300")
    assert fresh.returncode == 0, fresh.stderr
