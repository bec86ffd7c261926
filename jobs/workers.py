"""Which workers are alive: each worker's event loop refreshes a key in Redis on every
heartbeat (ops.worker), and the engine reads them to recover the jobs of one that died.

A key names the worker and holds when its running instance started: a worker restarted under
the same name (a supervisor restarting its container) is a new instance, and whatever the
dead instance held (attempts it ran, messages it had taken) is judged lost all the same."""

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
# This process's start: in a worker's main process (which announces it, and marks the
# messages it takes), earlier than any attempt or message of this instance.
STARTED = time.time()

_state = {"redis_failed": False}


def announce_alive(hostname: str) -> None:
    client = shared_redis.client()
    if client is None:
        return
    try:
        pipe = client.pipeline(transaction=False)
        pipe.set(KEY_PREFIX + hostname, repr(STARTED), ex=settings.WORKER_LOST_AFTER)
        # Back after Redis was out of reach: other workers' keys may have lapsed meanwhile.
        pipe.set(EPOCH_KEY, repr(time.time()), nx=not _state["redis_failed"])
        pipe.execute()
        _state["redis_failed"] = False
    except redis.RedisError as exc:
        _state["redis_failed"] = True
        log.warning("jobs.workers.heartbeat_failed", extra={"error": type(exc).__name__})


def holder(hostname: str) -> str:
    """How a message taken by this worker instance is marked (jobs.delivery)."""
    return f"{hostname} {STARTED!r}"


def live_instances(names: set[str]) -> dict[str, float] | None:
    """Which of these workers beat within WORKER_LOST_AFTER, each with when its beating
    instance started; None when that cannot be told (no Redis, or its keys are younger than
    WORKER_LOST_AFTER: just flushed or restarted)."""
    client = shared_redis.client()
    if client is None:
        return None
    epoch = client.get(EPOCH_KEY)
    if epoch is None or time.time() - float(epoch) < settings.WORKER_LOST_AFTER:
        return None
    ordered = sorted(names)
    found = client.mget([KEY_PREFIX + name for name in ordered]) if ordered else []
    return {name: started_at(value) for name, value in zip(ordered, found, strict=True) if value}


def started_at(value: bytes) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0  # a key written before keys held a start: an instance of unknown age


def live_workers(names: set[str]) -> set[str] | None:
    """Which of these workers beat within WORKER_LOST_AFTER (see live_instances)."""
    alive = live_instances(names)
    return None if alive is None else set(alive)


def holds(alive: dict[str, float], marker: str) -> bool:
    """Whether the message marked ``marker`` (a holder()) is with an instance still alive."""
    name, _, started = marker.partition(" ")
    if name not in alive:
        return False
    try:
        return not started or float(started) == alive[name]
    except ValueError:
        return True
