"""Worker liveness: the worker touches a heartbeat file from its event loop; check_worker
reads its age. Connected by accesshive/celery.py, so it runs in the worker's main process."""

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from celery.signals import heartbeat_sent, worker_ready, worker_shutdown
from django.conf import settings


def heartbeat_file() -> Path:
    return Path(settings.WORKER_HEARTBEAT_FILE)


@worker_ready.connect
@heartbeat_sent.connect
def touch(**kwargs: Any) -> None:
    """Every 2 s while the consumer runs and is connected; it stops when the loop is stuck or
    the broker is gone, which is what a liveness check should notice."""
    path = heartbeat_file()
    try:
        path.touch()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


@worker_shutdown.connect
def remove(**kwargs: Any) -> None:
    with contextlib.suppress(FileNotFoundError):
        heartbeat_file().unlink()


def heartbeat_age(path: Path | None = None) -> float | None:
    """Seconds since the last heartbeat; None when there is none."""
    try:
        return max(0.0, time.time() - os.stat(path or heartbeat_file()).st_mtime)
    except FileNotFoundError:
        return None
