"""Per-platform rate limits shared by every worker: token buckets in Redis, one Lua script.

A caller takes one token per outside call. A token that frees up within
settings.RATE_LIMIT_MAX_WAIT (half a second) is reserved and the caller sleeps until its moment;
a longer wait raises RateLimited with the caller's place in line, which the runner turns into
"back to the queue until then" without counting a retry. So a job waiting for its platform's
quota never holds a pool slot for long, and other platforms' jobs run meanwhile. Without Redis
(`make run`'s filesystem broker) each process keeps its own buckets, so
a worker with N pool processes may reach N times the rate.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings

from jobs import context, metrics, shared_redis
from jobs.errors import RateLimited, TransientError

log = logging.getLogger(__name__)

KEY_PREFIX = "accesshive:ratelimit:"

# KEYS[1]: the bucket, a hash {tokens, at}. ARGV: rate (tokens a second), burst, max_wait (s).
# Returns {granted, wait}. granted=1: a token is the caller's, to use `wait` seconds from now;
# the bucket may go below zero for such reservations, so the calls come out evenly spaced
# however many processes ask at once. granted=0: the wait would exceed max_wait; nothing was
# taken, and `wait` says when a token frees up. Redis's own clock is the one clock: workers on
# several hosts need not agree on the time. Floats go back as strings (Lua numbers would be
# truncated to integers on the way out).
BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens < 1 then
  wait = (1 - tokens) / rate
end
if wait > max_wait then
  -- Refused callers line up: each is told a later moment, 1/rate after the one before, so
  -- jobs put back in their queue come back one by one at the bucket's pace, not all at once.
  local queued = tonumber(redis.call('HGET', KEYS[1], 'queued_until')) or 0
  local slot = math.max(queued, now + wait)
  redis.call('HSET', KEYS[1], 'queued_until', tostring(slot + 1 / rate))
  local ttl = math.ceil((slot + 1 / rate - now) * 1000) + 1000
  if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  return {0, tostring(slot - now)}
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
local refill = math.ceil((burst - tokens) / rate * 1000) + 1000
if redis.call('PTTL', KEYS[1]) < refill then
  redis.call('PEXPIRE', KEYS[1], refill)
end
return {1, tostring(wait)}
"""


@dataclass(frozen=True)
class Limit:
    """A sustained rate in requests a second and the burst allowed above it."""

    rate: float
    burst: int


class _LocalBuckets:
    """The same bucket in this process's memory, for when there is no Redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, key: str, limit: Limit, max_wait: float) -> tuple[bool, float]:
        with self._lock:
            now = time.monotonic()
            tokens, at = self._state.get(key, (float(limit.burst), now))
            tokens = min(limit.burst, tokens + max(0.0, now - at) * limit.rate)
            wait = (1 - tokens) / limit.rate if tokens < 1 else 0.0
            if wait > max_wait:
                return False, wait
            self._state[key] = (tokens - 1, now)
            return True, wait


_local = _LocalBuckets()


def limit_for(
    kind: str, platform_id: object, *, rate: float | None = None, burst: int | None = None
) -> Limit | None:
    """The limit a platform's calls share; None when it has none.

    ``rate``/``burst`` are the platform's own, set on its page (its row); without them, the
    settings string's "kind:id" entry, else its kind's default. A rate of 0 means no limit.
    """
    spec: tuple[float, int] | None
    if rate is not None:
        spec = (rate, burst or max(1, round(rate)))
    else:
        spec = settings.RATE_LIMITS.get(f"{kind}:{platform_id}") or settings.RATE_LIMITS.get(kind)
    if not spec or spec[0] <= 0:
        return None
    return Limit(rate=float(spec[0]), burst=max(1, int(spec[1])))


def take(bucket: str, limit: Limit, max_wait: float) -> tuple[bool, float]:
    """One atomic try at the bucket: (granted, wait in seconds), as the script describes."""
    client = shared_redis.client()
    if client is None:
        return _local.take(bucket, limit, max_wait)
    try:
        granted, wait = client.register_script(BUCKET_SCRIPT)(
            keys=[KEY_PREFIX + bucket], args=[limit.rate, limit.burst, max_wait]
        )
    except redis.RedisError as exc:
        raise TransientError(
            f"The rate limiter for {bucket} is unreachable (Redis): {type(exc).__name__}"
        ) from exc
    return bool(int(granted)), float(wait)


def acquire(bucket: str, limit: Limit, *, max_wait: float | None = None) -> float:
    """Take one token, sleeping until it is due; returns the seconds slept.

    Raises RateLimited (having taken nothing) when the wait would be longer than max_wait
    (default settings.RATE_LIMIT_MAX_WAIT).
    """
    max_wait = settings.RATE_LIMIT_MAX_WAIT if max_wait is None else max_wait
    granted, wait = take(bucket, limit, max_wait)
    job_type = (context.current_attempt.get() or {}).get("job_type", "")
    if not granted:
        raise RateLimited(
            f"Rate limit of {bucket} ({limit.rate:g} requests/s) is taken for the next "
            f"{wait:.1f} s",
            retry_after=wait,
        )
    if wait > 0:
        metrics.record_pacing(job_type, "waited", wait)
        time.sleep(wait)
    return wait


def pacer(
    kind: str, platform_id: object, *, rate: float | None = None, burst: int | None = None
) -> Callable[[], None] | None:
    """A function to call before each request to this platform, or None if it has no limit."""
    limit = limit_for(kind, platform_id, rate=rate, burst=burst)
    if limit is None:
        return None
    bucket = f"{kind}:{platform_id}"

    def pace() -> None:
        acquire(bucket, limit)

    return pace
