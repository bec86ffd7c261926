"""The one Redis client per process for what workers share beyond the broker: rate-limit
buckets and attempt metrics (settings.REDIS_URL; None when there is no Redis)."""

import os
import threading

import redis
from django.conf import settings

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
