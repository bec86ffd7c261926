"""Worker liveness, told three ways: the event loop touches a heartbeat file (it stops when the
loop is stuck or the broker is gone); a thread in every pool process touches a second file
after a round trip to the database and the broker (it stops when the pool cannot reach
them); and the event loop refreshes a key in Redis naming the worker, which the sweeper reads
to recover the jobs of a worker that died. Connected by accesshive/celery.py."""

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import redis
from celery.signals import (
    celeryd_after_setup,
    heartbeat_sent,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)
from django.conf import settings

from jobs import shared_redis

log = logging.getLogger(__name__)

WORKER_KEY_PREFIX = "accesshive:worker:"
# When the workers' keys started being written (again): after a Redis flush or restart there
# is a moment when no key exists yet, and no worker may be judged dead from that.
EPOCH_KEY = "accesshive:workers:epoch"
POOL_CHECK_INTERVAL = 2.0

_node = {"hostname": "", "redis_failed": False}


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
    announce_alive()


def announce_alive() -> None:
    client = shared_redis.client()
    if client is None or not _node["hostname"]:
        return
    try:
        pipe = client.pipeline(transaction=False)
        pipe.set(WORKER_KEY_PREFIX + str(_node["hostname"]), "1", ex=settings.WORKER_LOST_AFTER)
        # Back after Redis was out of reach: other workers' keys may have lapsed meanwhile.
        pipe.set(EPOCH_KEY, repr(time.time()), nx=not _node["redis_failed"])
        pipe.execute()
        _node["redis_failed"] = False
    except redis.RedisError as exc:
        _node["redis_failed"] = True
        log.warning("ops.worker.heartbeat_failed", extra={"error": type(exc).__name__})


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


def live_workers(names: set[str]) -> set[str] | None:
    """Which of these workers beat within WORKER_LOST_AFTER; None when that cannot be told
    (no Redis, or its keys are younger than WORKER_LOST_AFTER: just flushed or restarted)."""
    client = shared_redis.client()
    if client is None:
        return None
    epoch = client.get(EPOCH_KEY)
    if epoch is None or time.time() - float(epoch) < settings.WORKER_LOST_AFTER:
        return None
    ordered = sorted(names)
    found = client.mget([WORKER_KEY_PREFIX + name for name in ordered]) if ordered else []
    return {name for name, value in zip(ordered, found, strict=True) if value is not None}
