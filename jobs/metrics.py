"""Attempt counters and durations, kept in Redis so every worker on every host adds to the
same numbers, which /metrics reads (ops.metrics). Without Redis nothing is recorded."""

import redis

from jobs import shared_redis

KEY = "accesshive:metrics"
# Upper bounds of the attempt duration histogram, seconds: from a quick API call to the
# default time limit (120 s) and beyond.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_SEP = "|"


def bucket_label(seconds: float) -> str:
    """The smallest bucket a duration falls in; /metrics adds them up into Prometheus's
    cumulative buckets, so recording costs one increment."""
    return next((f"{bound:g}" for bound in DURATION_BUCKETS if seconds <= bound), "+Inf")


def record_attempt(
    job_type: str, outcome: str, seconds: float | None = None, *, count: int = 1
) -> None:
    """Count finished attempts, and the duration of one when it has one (lost ones do not)."""
    with shared_redis.batch("jobs.metrics.unrecorded") as pipe:
        if pipe is not None:
            count_attempt(pipe, job_type, outcome, seconds, count=count)


def count_attempt(
    pipe: "redis.client.Pipeline[bytes]",
    job_type: str,
    outcome: str,
    seconds: float | None = None,
    *,
    count: int = 1,
) -> None:
    """record_attempt's commands, added to a batch (shared_redis.batch) the caller sends."""
    pipe.hincrby(KEY, _SEP.join(("attempts", job_type, outcome)), count)
    if seconds is not None:
        pipe.hincrby(KEY, _SEP.join(("duration_bucket", job_type, bucket_label(seconds))), 1)
        pipe.hincrbyfloat(KEY, _SEP.join(("duration_sum", job_type)), seconds)
        pipe.hincrby(KEY, _SEP.join(("duration_count", job_type)), 1)


def record_pacing(job_type: str, how: str, seconds: float) -> None:
    """A job waited for its rate limit in the attempt ("waited") or went back to its queue
    ("deferred"): count it and the seconds it cost."""
    with shared_redis.batch("jobs.metrics.unrecorded") as pipe:
        if pipe is not None:
            pipe.hincrby(KEY, _SEP.join(("paced", job_type, how)), 1)
            pipe.hincrbyfloat(KEY, _SEP.join(("paced_seconds", job_type, how)), seconds)


def read() -> dict[tuple[str, ...], float]:
    """Everything recorded so far, keyed by (family, labels...)."""
    client = shared_redis.client()
    if client is None:
        return {}
    raw = client.hgetall(KEY)
    return {tuple(key.decode().split(_SEP)): float(value) for key, value in raw.items()}
