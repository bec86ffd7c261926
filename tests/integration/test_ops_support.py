"""What the ops integration tests share (no tests here): a worker started with chosen queues
and extra handler modules, and handlers that log planted secrets on purpose."""

import logging
import subprocess
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import redis

from jobs.errors import RateLimited
from jobs.models import Job
from jobs.registry import register
from tests.integration.worker import ROOT, CeleryProcess, wait_for
from tests.settings import TEST_REDIS_URL

PLANTED = "planted-Secret-9f3a"  # must never show up in a log line

handler_log = logging.getLogger("tests.integration.ops_handler")
connector_log = logging.getLogger("connectors.fake_system")


@register("test_ops_log")
def log_with_secrets(job: Job) -> dict[str, Any]:
    """Logs from the handler and from a connector-named logger, with secrets in `extra` and in
    the message text, as careless code would."""
    handler_log.info(
        "handler.step", extra={"password": PLANTED, "api_token": PLANTED, "user": "ada"}
    )
    connector_log.warning("connector.call password=%s", PLANTED, extra={"status": 503})
    handler_log.info("handler.nested", extra={"request": {"headers": {"Authorization": PLANTED}}})
    return {"logged": 3}


@register("test_ops_paced_once")
def paced_once(job: Job) -> dict[str, Any]:
    """Finds its rate limit taken on its first run only (counted in Redis, per job)."""
    runs = redis.Redis.from_url(TEST_REDIS_URL).incr(f"paced:{job.pk}")
    if runs == 1:
        raise RateLimited("Rate limit of test:1 is taken for the next 0.1 s", retry_after=0.1)
    return {"runs": runs}


class OpsWorker(CeleryProcess):
    """A prefork worker consuming ``queues`` (all of them when empty), importing the test
    handlers and this module's."""

    def __init__(
        self, queues: Sequence[str] = (), env: dict[str, str] | None = None, concurrency: int = 2
    ) -> None:
        super().__init__("worker", env)
        self.queues = list(queues)
        self.concurrency = concurrency

    def start(self) -> "OpsWorker":
        args = [
            *(sys.executable, "-m", "celery", "-A", "accesshive", "worker"),
            *("--pool", "prefork", "--concurrency", str(self.concurrency)),
            *("-I", "tests.integration.handlers,tests.integration.test_ops_support"),
            *("-n", f"ops-{uuid.uuid4().hex[:8]}@%h", "-l", "info"),
            *("--without-mingle", "--without-gossip"),
        ]
        if self.queues:
            args += ["-Q", ",".join(self.queues)]
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: b"ready." in self.log_path.read_bytes(), 30, "worker ready", self)
        return self
