"""schemathesis against a live server on PostgreSQL with a real worker: every operation of
the OpenAPI document, generated valid and invalid requests, as a viewer and as an admin; no
5xx, no answer that breaks the document (status, content type, schema, headers)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_django.live_server_helper import LiveServer

from accounts.models import ApiToken
from tests.conftest import require_services
from tests.integration.worker import CeleryProcess
from tests.roles_support import ADMIN, VIEWER, make_world

pytestmark = pytest.mark.integration

# Enough generated cases per operation to reach every parameter and body field, few enough
# for a CI run of a few minutes over both roles.
MAX_EXAMPLES = int(os.environ.get("ACCESSHIVE_FUZZ_EXAMPLES", "12"))
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "negative_data_rejection",
    )
)


@pytest.fixture
def worker(transactional_db: None) -> Any:
    require_services("postgres", "redis")
    process = CeleryProcess("worker").start()
    yield process
    process.stop()


def run_schemathesis(live_server: LiveServer, token: str, report: Path) -> dict[str, Any]:
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{live_server.url}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--seed",
        "15",
        "--generation-deterministic",
        "--suppress-health-check",
        "all",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    return {"code": result.returncode, "output": result.stdout + result.stderr}


@pytest.mark.parametrize("role", [VIEWER, ADMIN])
def test_no_server_error_and_no_answer_outside_the_document(
    live_server: LiveServer, worker: Any, role: str, tmp_path: Path, settings: Any
) -> None:
    # schemathesis sends invalid tokens on purpose; the lockout they would earn (a documented
    # 429, tested in tests/test_security.py) would answer everything after it.
    settings.AXES_FAILURE_LIMIT = 1_000_000
    world = make_world()
    _, token = ApiToken.issue(world.users[role], "schemathesis")
    outcome = run_schemathesis(live_server, token, tmp_path / "events.ndjson")
    summary = outcome["output"][-6000:]
    print(summary)
    assert outcome["code"] == 0, summary
    events = [json.loads(line) for line in (tmp_path / "events.ndjson").read_text().splitlines()]
    assert events, "schemathesis recorded nothing"
