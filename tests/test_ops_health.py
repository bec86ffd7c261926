"""/healthz on the real PostgreSQL and Redis: 200 when all answer, 503 naming the one that
does not (a dead database port, a dead broker port), open to probes, and saying nothing
secret."""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from tests.conftest import require_services
from tests.integration.worker import ROOT, database_url
from tests.settings import TEST_REDIS_URL

pytestmark = pytest.mark.django_db

PROBE = """
import json, django
django.setup()
from django.test import Client
from django.utils import timezone
response = Client().get("/healthz")
print(json.dumps({"status": response.status_code, "body": response.json()}))
"""


@pytest.fixture(autouse=True)
def services() -> None:
    require_services("postgres", "redis")
    beat()  # beat ticked just now, as in a running deployment


def beat() -> None:
    from ops.beat import beat as tick

    tick()


def dead_port() -> int:
    """A port nothing listens on: bound once to pick it, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def probe(**env: str) -> tuple[int, dict[str, object]]:
    """GET /healthz in a fresh process whose settings point where ``env`` says."""
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "accesshive.settings",
        "DJANGO_SECRET_KEY": "tests-only-secret-key",
        "ACCESSHIVE_VAR_DIR": tempfile.mkdtemp(prefix="accesshive-healthz-"),
        "ACCESSHIVE_HEALTH_CHECK_TIMEOUT": "1",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return int(result["status"]), dict(result["body"])


def test_healthy_answers_200_with_every_check(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "web": True,
        "database": True,
        "broker": True,
    }
    assert response["Cache-Control"].startswith("max-age=0")
    assert not response.cookies  # no session is made for a probe


def test_probes_by_ip_address_are_answered(client: Client) -> None:
    # A load balancer calls the container by its address, which is not in ALLOWED_HOSTS.
    response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200


def test_a_dead_database_answers_503() -> None:
    port = dead_port()
    status, body = probe(
        DATABASE_URL=f"postgres://postgres:hunter2@127.0.0.1:{port}/accesshive",
        CELERY_BROKER_URL=TEST_REDIS_URL,
    )
    assert status == 503
    assert body["status"] == "fail"
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert checks["database"]["ok"] is False
    assert checks["database"]["error"] == "OperationalError"
    assert checks["broker"]["ok"] is True
    assert "hunter2" not in json.dumps(body)  # no URL, no password, only the error's class


def test_a_dead_broker_answers_503() -> None:
    port = dead_port()
    status, body = probe(
        DATABASE_URL=database_url(),  # the test database, which is up
        CELERY_BROKER_URL=f"redis://:hunter2@127.0.0.1:{port}/0",
    )
    assert status == 503
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert checks["database"]["ok"] is True
    assert (checks["broker"]["ok"], checks["broker"]["error"]) == (False, "ConnectionError")
    assert "hunter2" not in json.dumps(body)


def test_both_up_in_a_fresh_process_answers_200() -> None:
    beat()
    status, body = probe(DATABASE_URL=database_url(), CELERY_BROKER_URL=TEST_REDIS_URL)
    assert (status, body["status"]) == (200, "ok")
    assert connection.vendor == "postgresql"


def test_a_job_waiting_too_long_makes_it_degraded_with_the_reason(client: Client, settings) -> None:
    settings.HEALTH_MAX_JOB_DELAY = 60
    from jobs import services as job_services
    from jobs.models import Job

    job = job_services.enqueue("remediation")
    Job.objects.filter(pk=job.pk).update(dispatched_at=timezone.now() - timedelta(seconds=61))
    response = client.get("/healthz")
    assert response.status_code == 200  # this web process can serve; the workers cannot
    body = response.json()
    assert body["status"] == "degraded"
    assert body["degraded"]["jobs"].startswith("the oldest due job has waited 61 s")
    assert "beat" not in body["degraded"]
    # /metrics says the same, for alerting.
    settings.METRICS_TOKEN = "health-token"
    scraped = client.get("/metrics", HTTP_AUTHORIZATION="Bearer health-token").content.decode()
    assert 'accesshive_degraded{reason="jobs"} 1.0' in scraped
    assert 'accesshive_degraded{reason="beat"} 0.0' in scraped
    assert re.search(r"^accesshive_oldest_due_job_age_seconds 6\d\.\d+$", scraped, re.M)
    Job.objects.filter(pk=job.pk).update(dispatched_at=timezone.now() - timedelta(seconds=50))
    assert client.get("/healthz").json()["status"] == "ok"
    scraped = client.get("/metrics", HTTP_AUTHORIZATION="Bearer health-token").content.decode()
    assert 'accesshive_degraded{reason="jobs"} 0.0' in scraped


def test_a_silent_beat_makes_it_degraded_and_check_beat_fail(client: Client, settings) -> None:
    import redis

    from ops.beat import KEY

    redis.Redis.from_url(TEST_REDIS_URL).set(KEY, repr(time.time() - 100))
    body = client.get("/healthz").json()
    assert body["status"] == "degraded"
    assert body["degraded"]["beat"].startswith("beat: last heartbeat 100 s ago (limit 60 s)")
    redis.Redis.from_url(TEST_REDIS_URL).delete(KEY)
    assert client.get("/healthz").json()["degraded"]["beat"].startswith("beat: no heartbeat")


def test_check_beat_follows_beats_heartbeat_file(tmp_path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "accesshive.settings",
        "DJANGO_SECRET_KEY": "tests-only-secret-key",
        "ACCESSHIVE_VAR_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }

    def check_beat() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "check_beat", "--max-age", "30"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    missing = check_beat()
    assert (missing.returncode, missing.stderr.strip()) == (1, "beat: no heartbeat (limit 30 s)")
    (tmp_path / "beat-heartbeat").touch()
    os.utime(tmp_path / "beat-heartbeat", (time.time() - 40, time.time() - 40))
    stale = check_beat()
    assert stale.returncode == 1
    assert re.search(r"beat: last heartbeat 4\d s ago \(limit 30 s\)", stale.stderr)
    (tmp_path / "beat-heartbeat").touch()
    alive = check_beat()
    assert alive.returncode == 0, alive.stderr
