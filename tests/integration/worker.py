"""Starts a real Celery worker (prefork) and beat as subprocesses against the test database."""

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connection

from tests.settings import TEST_REDIS_URL

ROOT = Path(__file__).resolve().parents[2]

# Small limits so retry and time-limit tests take seconds; the tests read them back.
FAST_JOB_ENV = {
    "ACCESSHIVE_JOB_MAX_RETRIES": "5",
    "ACCESSHIVE_JOB_BACKOFF_BASE": "1",
    "ACCESSHIVE_JOB_BACKOFF_MAX": "2",
    "ACCESSHIVE_JOB_TIMEOUT": "2",
    "ACCESSHIVE_JOB_HARD_TIMEOUT_GRACE": "2",
    "ACCESSHIVE_JOB_SWEEP_GRACE": "2",
    "ACCESSHIVE_JOB_SWEEP_INTERVAL": "1",
}


def database_url() -> str:
    db = connection.settings_dict
    user, host, port = db["USER"] or "postgres", db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


class CeleryProcess:
    def __init__(self, kind: str, env: dict[str, str] | None = None, name: str = "") -> None:
        self.kind = kind
        # The worker's node name; a restarted worker may take its predecessor's, as a
        # supervisor restarting the same container does.
        self.name = name or f"test-{uuid.uuid4().hex[:8]}@%h"
        self.var_dir = tempfile.mkdtemp(prefix=f"accesshive-{kind}-")
        self.log_path = Path(self.var_dir) / f"{kind}.log"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "accesshive.settings",
            "DJANGO_SECRET_KEY": "tests-only-secret-key",
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": TEST_REDIS_URL,
            "TEST_REDIS_URL": TEST_REDIS_URL,
            "ACCESSHIVE_VAR_DIR": self.var_dir,
            "PYTHONPATH": str(ROOT),
            "ACCESSHIVE_VAULT_KEYS": ",".join(settings.VAULT_EMBEDDED_KEYS),
            **FAST_JOB_ENV,
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "CeleryProcess":
        """Start it; a worker is waited for until it is ready."""
        self.launch()
        if self.kind == "worker":
            self.wait_ready()
        return self

    def launch(self) -> "CeleryProcess":
        """Start it without waiting for it to be ready."""
        celery = [sys.executable, "-m", "celery", "-A", "accesshive"]
        if self.kind == "worker":
            args = [
                *celery,
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "2",
                "-I",
                "tests.integration.handlers",
                "-n",
                self.name,
                "-l",
                "info",
                "--without-mingle",
                "--without-gossip",
            ]
        else:
            args = [*celery, "beat", "-l", "info", "--schedule", f"{self.var_dir}/beat-schedule"]
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        wait_for(lambda: b"ready." in self.log_path.read_bytes(), timeout, "worker ready", self)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole worker: main process and pool children, no goodbyes."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, process: CeleryProcess | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    detail = "\n--- process output ---\n" + process.output()[-4000:] if process else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
