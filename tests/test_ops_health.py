"""/healthz on the real PostgreSQL and Redis: 200 when all answer, 503 naming the one that
does not (a dead database port, a dead broker port), open to probes, and saying nothing
secret."""

import json
import os
import socket
import subprocess
import sys
import tempfile

import pytest
from django.db import connection
from django.test import Client

from tests.conftest import require_services
from tests.integration.worker import ROOT, database_url
from tests.settings import TEST_REDIS_URL

pytestmark = pytest.mark.django_db

PROBE = """
import json, django
django.setup()
from django.test import Client
response = Client().get("/healthz")
print(json.dumps({"status": response.status_code, "body": response.json()}))
"""


@pytest.fixture(autouse=True)
def services() -> None:
    require_services("postgres", "redis")


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
    status, body = probe(DATABASE_URL=database_url(), CELERY_BROKER_URL=TEST_REDIS_URL)
    assert (status, body["status"]) == (200, "ok")
    assert connection.vendor == "postgresql"
