"""The one Redis client per process for what workers share beyond the broker: rate-limit
buckets and attempt metrics (settings.REDIS_URL; None when there is no Redis)."""

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

import redis
from django.conf import settings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_clients: dict[tuple[str, int], "redis.Redis[bytes]"] = {}


def client() -> "redis.Redis[bytes] | None":
    """A client for settings.REDIS_URL, made once per process (and again after a fork)."""
    url = settings.REDIS_URL
    if not url:
        return None
    key = (url, os.getpid())
    with _lock:
        if key not in _clients:
            # Short timeouts: a job must not hang on its rate limiter or its metrics.
            _clients[key] = redis.Redis.from_url(
                url, socket_connect_timeout=2, socket_timeout=2, health_check_interval=30
            )
        return _clients[key]


@contextlib.contextmanager
def batch(failure: str) -> "Iterator[redis.client.Pipeline[bytes] | None]":
    """A pipeline whose commands go to Redis in one round trip when the block ends; None
    when there is no Redis. A round trip that fails is logged as ``failure``, never raised:
    what goes through here (metrics, delivery markers) must never fail a job."""
    shared = client()
    if shared is None:
        yield None
        return
    pipe = shared.pipeline(transaction=False)
    yield pipe
    try:
        pipe.execute()
    except redis.RedisError as exc:
        log.warning(failure, extra={"error": type(exc).__name__})
