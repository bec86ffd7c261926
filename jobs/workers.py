"""Which workers are alive: each worker's event loop refreshes a key in Redis on every
heartbeat (ops.worker), and the engine reads them to recover the jobs of one that died."""

import logging
import time

import redis
from django.conf import settings

from jobs import shared_redis

log = logging.getLogger(__name__)

KEY_PREFIX = "accesshive:worker:"
# When the workers' keys started being written (again): after a Redis flush or restart there
# is a moment when no key exists yet, and no worker may be judged dead from that.
EPOCH_KEY = "accesshive:workers:epoch"

_state = {"redis_failed": False}


def announce_alive(hostname: str) -> None:
    client = shared_redis.client()
    if client is None:
        return
    try:
        pipe = client.pipeline(transaction=False)
        pipe.set(KEY_PREFIX + hostname, "1", ex=settings.WORKER_LOST_AFTER)
        # Back after Redis was out of reach: other workers' keys may have lapsed meanwhile.
        pipe.set(EPOCH_KEY, repr(time.time()), nx=not _state["redis_failed"])
        pipe.execute()
        _state["redis_failed"] = False
    except redis.RedisError as exc:
        _state["redis_failed"] = True
        log.warning("jobs.workers.heartbeat_failed", extra={"error": type(exc).__name__})


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
    found = client.mget([KEY_PREFIX + name for name in ordered]) if ordered else []
    return {name for name, value in zip(ordered, found, strict=True) if value is not None}
