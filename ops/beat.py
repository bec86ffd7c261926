"""Beat's liveness: its scheduler records a heartbeat on every tick (at least every
CELERY_BEAT_MAX_LOOP_INTERVAL seconds), in a file for `manage.py check_beat` in its container
and in Redis for /healthz on the web hosts."""

import logging
import time
from typing import Any

import redis
from celery.beat import PersistentScheduler
from django.conf import settings

from jobs import shared_redis
from ops.worker import heartbeat_age, touch_file

log = logging.getLogger(__name__)

KEY = "accesshive:beat:heartbeat"


class HeartbeatScheduler(PersistentScheduler):
    """Celery's default scheduler, plus a heartbeat per tick."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        beat()
        return float(super().tick(*args, **kwargs))


def beat() -> None:
    touch_file(settings.BEAT_HEARTBEAT_FILE)
    client = shared_redis.client()
    if client is None:
        return
    try:
        client.set(KEY, repr(time.time()))
    except redis.RedisError as exc:
        log.warning("ops.beat.heartbeat_failed", extra={"error": type(exc).__name__})


def beat_age() -> float | None:
    """Seconds since beat's last tick, from Redis when there is one, else from the file;
    None when beat never beat (or Redis was flushed since)."""
    client = shared_redis.client()
    if client is None:
        return heartbeat_age(settings.BEAT_HEARTBEAT_FILE)
    value = client.get(KEY)
    return max(0.0, time.time() - float(value)) if value is not None else None
