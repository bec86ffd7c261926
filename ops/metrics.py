"""/metrics in Prometheus's text format: job counts, attempts, durations, queues, waiting.

Sources, each the cheapest honest one: jobs by type and status from the maintained counters
(never a COUNT over the job table); attempts, their duration histogram and rate-limit pacing
from the counters workers keep in Redis (jobs.metrics), so every worker on every host adds to
one set; queue depth from the broker; the oldest pending job from one index lookup.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import redis
from django.conf import settings
from django.utils import timezone

from jobs import metrics, routing, shared_redis
from jobs.models import Job, JobStatus, JobStatusCount

log = logging.getLogger(__name__)

# kombu's Redis transport keeps a queue's messages of priority n > 0 in "<queue>\x06\x16<n>".
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)

Sample = tuple[dict[str, str], float]


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        suffix = name
        if "__name__" in labels:
            labels = dict(labels)
            suffix = labels.pop("__name__")
        label_text = ",".join(f'{key}="{escape(str(val))}"' for key, val in labels.items())
        lines.append(
            f"{suffix}{{{label_text}}} {number(value)}"
            if label_text
            else f"{suffix} {number(value)}"
        )
    return lines


def job_counts() -> list[Sample]:
    rows = JobStatusCount.objects.order_by("job_type", "status").values_list(
        "job_type", "status", "count"
    )
    return [({"job_type": job_type, "status": status}, count) for job_type, status, count in rows]


def oldest_pending_age() -> float:
    # (status, -id) index: the lowest pending id is the oldest pending job.
    created = (
        Job.objects.filter(status=JobStatus.PENDING)
        .order_by("id")
        .values_list("created_at", flat=True)
        .first()
    )
    return max(0.0, (timezone.now() - created).total_seconds()) if created else 0.0


def queue_depths() -> list[Sample]:
    """Messages waiting in each queue (not those a worker holds for a countdown)."""
    names = routing.queue_names()
    if settings.BROKER_IS_FILESYSTEM:
        folder = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]))
        counts: dict[str, int] = defaultdict(int)
        for path in folder.glob("*.msg"):
            counts[path.name.rsplit(".", 2)[-2]] += 1
        return [({"queue": name}, counts[name]) for name in names]
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return []
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.llen(name)
            for step in _PRIORITY_STEPS:
                pipe.llen(f"{name}{_PRIORITY_SEP}{step}")
        lengths = pipe.execute()
        pipe.hlen("unacked")
        (unacked,) = pipe.execute()
    finally:
        client.close()
    per_queue = len(_PRIORITY_STEPS) + 1
    samples = [
        ({"queue": name}, sum(lengths[i * per_queue : (i + 1) * per_queue]))
        for i, name in enumerate(names)
    ]
    return [*samples, ({"__name__": "accesshive_broker_unacked_messages"}, unacked)]


def recorded() -> tuple[dict[tuple[str, ...], float], bool]:
    """The counters workers keep in Redis, and whether Redis answered (False: none kept)."""
    if shared_redis.client() is None:
        return {}, False
    try:
        return metrics.read(), True
    except redis.RedisError as exc:
        log.warning("ops.metrics.redis_unavailable", extra={"error": type(exc).__name__})
        return {}, False


def histogram(values: dict[tuple[str, ...], float]) -> list[Sample]:
    """Cumulative buckets, sum and count per job type from the per-bucket increments."""
    name = "accesshive_job_attempt_duration_seconds"
    types = sorted({key[1] for key in values if key[0] == "duration_count"})
    samples: list[Sample] = []
    for job_type in types:
        running = 0.0
        for bound in [*(f"{b:g}" for b in metrics.DURATION_BUCKETS), "+Inf"]:
            running += values.get(("duration_bucket", job_type, bound), 0.0)
            samples.append(
                ({"__name__": f"{name}_bucket", "job_type": job_type, "le": bound}, running)
            )
        samples.append(
            (
                {"__name__": f"{name}_sum", "job_type": job_type},
                values.get(("duration_sum", job_type), 0.0),
            )
        )
        samples.append(
            (
                {"__name__": f"{name}_count", "job_type": job_type},
                values.get(("duration_count", job_type), 0.0),
            )
        )
    return samples


def exposition() -> str:
    values, redis_up = recorded()
    depth = queue_depths()
    lines = [
        *family(
            "accesshive_jobs",
            "gauge",
            "Jobs by type and status (the maintained per-status counters).",
            job_counts(),
        ),
        *family(
            "accesshive_job_attempts_total",
            "counter",
            "Attempts finished, by job type and outcome (succeeded, failed, timed_out, lost).",
            (
                ({"job_type": key[1], "outcome": key[2]}, value)
                for key, value in sorted(values.items())
                if key[0] == "attempts"
            ),
        ),
        *family(
            "accesshive_job_attempt_duration_seconds",
            "histogram",
            "Duration of finished attempts, seconds, by job type.",
            histogram(values),
        ),
        *family(
            "accesshive_job_rate_limit_waits_total",
            "counter",
            "Times a job waited for its platform's rate limit: in the attempt (waited) or back "
            "in its queue (deferred).",
            (
                ({"job_type": key[1], "how": key[2]}, value)
                for key, value in sorted(values.items())
                if key[0] == "paced"
            ),
        ),
        *family(
            "accesshive_queue_depth",
            "gauge",
            "Messages waiting in each broker queue.",
            (sample for sample in depth if "__name__" not in sample[0]),
        ),
        *family(
            "accesshive_broker_unacked_messages",
            "gauge",
            "Messages workers hold unacknowledged: running, or held for a retry's countdown.",
            ((labels, value) for labels, value in depth if "__name__" in labels),
        ),
        *family(
            "accesshive_oldest_pending_job_age_seconds",
            "gauge",
            "Age of the oldest job still pending (0 when none is).",
            [({}, oldest_pending_age())],
        ),
        *family(
            "accesshive_metrics_redis_up",
            "gauge",
            "1 when the Redis holding attempt counters answered; without it those are missing.",
            [({}, 1.0 if redis_up else 0.0)],
        ),
    ]
    return "\n".join(lines) + "\n"
