"""Worker liveness, told three ways: the event loop touches a heartbeat file (it stops when the
loop is stuck or the broker is gone); a thread in every pool process touches a second file
after a round trip to the database and the broker (it stops when the pool cannot reach
them); and the event loop refreshes a key in Redis naming the worker, which the sweeper reads
to recover the jobs of a worker that died (jobs.workers). Connected by accesshive/celery.py."""

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from celery.signals import (
    celeryd_after_setup,
    heartbeat_sent,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)
from django.conf import settings

from jobs import workers

log = logging.getLogger(__name__)

POOL_CHECK_INTERVAL = 2.0

_node = {"hostname": ""}


def heartbeat_file() -> Path:
    return Path(settings.WORKER_HEARTBEAT_FILE)


def pool_heartbeat_file() -> Path:
    path = heartbeat_file()
    return path.with_name(path.name + ".pool")


def touch_file(path: Path) -> None:
    try:
        path.touch()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


@celeryd_after_setup.connect
def remember_hostname(sender: str, **kwargs: Any) -> None:
    _node["hostname"] = str(sender)


@worker_ready.connect
@heartbeat_sent.connect
def touch(**kwargs: Any) -> None:
    """Every 2 s while the consumer runs and is connected."""
    touch_file(heartbeat_file())
    if _node["hostname"]:
        workers.announce_alive(_node["hostname"])


@worker_shutdown.connect
def remove(**kwargs: Any) -> None:
    with contextlib.suppress(FileNotFoundError):
        heartbeat_file().unlink()
    with contextlib.suppress(FileNotFoundError):
        pool_heartbeat_file().unlink()


@worker_process_init.connect
def start_pool_heartbeat(**kwargs: Any) -> None:
    threading.Thread(target=pool_heartbeat, name="pool-heartbeat", daemon=True).start()


def pool_heartbeat() -> None:
    """In a pool process: touch the pool file after each good round trip to both."""
    from ops import health

    while True:
        try:
            health.check_database()
            health.check_broker()
        except Exception as exc:
            log.warning("ops.worker.pool_unhealthy", extra={"error": type(exc).__name__})
        else:
            touch_file(pool_heartbeat_file())
        time.sleep(POOL_CHECK_INTERVAL)


def heartbeat_age(path: Path | None = None) -> float | None:
    """Seconds since the last heartbeat; None when there is none."""
    try:
        return max(0.0, time.time() - os.stat(path or heartbeat_file()).st_mtime)
    except FileNotFoundError:
        return None
