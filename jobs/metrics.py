"""Attempt counters and durations, kept in Redis so every worker on every host adds to the
same numbers, which /metrics reads (ops.metrics). Without Redis nothing is recorded."""

import logging
from collections.abc import Sequence

import redis

from jobs import shared_redis

log = logging.getLogger(__name__)

KEY = "accesshive:metrics"
# Upper bounds of the attempt duration histogram, seconds: from a quick API call to the
# default time limit (120 s) and beyond.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_SEP = "|"


def bucket_label(seconds: float) -> str:
    """The smallest bucket a duration falls in; /metrics adds them up into Prometheus's
    cumulative buckets, so recording costs one increment."""
    return next((f"{bound:g}" for bound in DURATION_BUCKETS if seconds <= bound), "+Inf")


# record_attempt in one command: the attempt's counter, its duration's bucket, sum and count
# when it has a duration (ARGV[2] not empty), and the keys given after the hash deleted.
_RECORD_ATTEMPT = """
redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[6])
if ARGV[2] ~= '' then
    redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
    redis.call('HINCRBYFLOAT', KEYS[1], ARGV[3], ARGV[4])
    redis.call('HINCRBY', KEYS[1], ARGV[5], 1)
end
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
"""


def record_attempt(
    job_type: str,
    outcome: str,
    seconds: float | None = None,
    *,
    count: int = 1,
    also_delete: Sequence[str] = (),
) -> None:
    """Count finished attempts, and the duration of one when it has one (lost ones do not).
    ``also_delete``: keys removed in the same round trip (the runner's delivery marker)."""
    client = shared_redis.client()
    if client is None:
        return
    duration = (
        [
            _SEP.join(("duration_bucket", job_type, bucket_label(seconds))),
            _SEP.join(("duration_sum", job_type)),
            repr(seconds),
            _SEP.join(("duration_count", job_type)),
        ]
        if seconds is not None
        else ["", "", "0", ""]
    )
    try:
        # Loaded again by itself into a Redis that restarted or flushed its scripts.
        client.register_script(_RECORD_ATTEMPT)(
            keys=[KEY, *also_delete],
            args=[_SEP.join(("attempts", job_type, outcome)), *duration, count],
        )
    except redis.RedisError as exc:
        # Metrics must never fail a job; a Redis that is down shows up in /healthz instead.
        log.warning("jobs.metrics.unrecorded", extra={"error": type(exc).__name__})


def record_pacing(job_type: str, how: str, seconds: float) -> None:
    """A job waited for its rate limit in the attempt ("waited") or went back to its queue
    ("deferred"): count it and the seconds it cost."""
    client = shared_redis.client()
    if client is None:
        return
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(KEY, _SEP.join(("paced", job_type, how)), 1)
    pipe.hincrbyfloat(KEY, _SEP.join(("paced_seconds", job_type, how)), seconds)
    try:
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("jobs.metrics.unrecorded", extra={"error": type(exc).__name__})


def read() -> dict[tuple[str, ...], float]:
    """Everything recorded so far, keyed by (family, labels...)."""
    client = shared_redis.client()
    if client is None:
        return {}
    raw = client.hgetall(KEY)
    return {tuple(key.decode().split(_SEP)): float(value) for key, value in raw.items()}
