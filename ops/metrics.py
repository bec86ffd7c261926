"""/metrics in Prometheus's text format (prometheus_client, one collector read at scrape
time): job counts, attempts, durations, queues, waiting, and the degraded state /healthz shows.

Sources, each the cheapest honest one: jobs by type and status from the maintained counters
(never a COUNT over the job table); attempts, their duration histogram and rate-limit pacing
from the counters workers keep in Redis (jobs.metrics), so every worker on every host adds to
one set; queue depth from the broker; the oldest pending and due jobs from index lookups.
"""

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import redis
from django.conf import settings
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from jobs import metrics, routing, shared_redis
from jobs.models import Job, JobStatus, JobStatusCount
from ops import health

log = logging.getLogger(__name__)

# kombu's Redis transport keeps a queue's messages of priority n > 0 in "<queue>\x06\x16<n>".
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
DEGRADATIONS = ("jobs", "beat")

Sample = tuple[dict[str, str], float]


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


def histogram(values: dict[tuple[str, ...], float]) -> HistogramMetricFamily:
    """Cumulative buckets and sum per job type from the per-bucket increments."""
    family = HistogramMetricFamily(
        "accesshive_job_attempt_duration_seconds",
        "Duration of finished attempts, seconds, by job type.",
        labels=["job_type"],
    )
    for job_type in sorted({key[1] for key in values if key[0] == "duration_count"}):
        running = 0.0
        buckets = []
        for bound in [*(f"{b:g}" for b in metrics.DURATION_BUCKETS), "+Inf"]:
            running += values.get(("duration_bucket", job_type, bound), 0.0)
            buckets.append((bound, running))
        family.add_metric([job_type], buckets, values.get(("duration_sum", job_type), 0.0))
    return family


def gauge(
    name: str, help_text: str, samples: Iterable[Sample], labels: Sequence[str] = ()
) -> Metric:
    family = GaugeMetricFamily(name, help_text, labels=list(labels))
    for sample_labels, value in samples:
        family.add_metric([sample_labels[key] for key in labels], value)
    return family


def counter(name: str, help_text: str, samples: Iterable[Sample], labels: Sequence[str]) -> Metric:
    family = CounterMetricFamily(name, help_text, labels=list(labels))
    for sample_labels, value in samples:
        family.add_metric([sample_labels[key] for key in labels], value)
    return family


class JobsCollector(Collector):
    """Everything /metrics shows, read at scrape time from the database, the broker and the
    counters in Redis: nothing lives in the web process, so any gunicorn worker answers
    alike."""

    def collect(self) -> Iterator[Metric]:
        values, redis_up = recorded()
        depth = queue_depths()
        yield gauge(
            "accesshive_jobs",
            "Jobs by type and status (the maintained per-status counters).",
            job_counts(),
            ("job_type", "status"),
        )
        yield counter(
            "accesshive_job_attempts",
            "Attempts finished, by job type and outcome (succeeded, failed, timed_out, lost).",
            (
                ({"job_type": key[1], "outcome": key[2]}, value)
                for key, value in sorted(values.items())
                if key[0] == "attempts"
            ),
            ("job_type", "outcome"),
        )
        yield histogram(values)
        yield counter(
            "accesshive_job_rate_limit_waits",
            "Times a job waited for its platform's rate limit: in the attempt (waited) or back "
            "in its queue (deferred).",
            (
                ({"job_type": key[1], "how": key[2]}, value)
                for key, value in sorted(values.items())
                if key[0] == "paced"
            ),
            ("job_type", "how"),
        )
        yield gauge(
            "accesshive_queue_depth",
            "Messages waiting in each broker queue.",
            (sample for sample in depth if "__name__" not in sample[0]),
            ("queue",),
        )
        yield gauge(
            "accesshive_broker_unacked_messages",
            "Messages workers hold unacknowledged: running, or held for a retry's countdown.",
            ((labels, value) for labels, value in depth if "__name__" in labels),
        )
        yield gauge(
            "accesshive_oldest_pending_job_age_seconds",
            "Age of the oldest job still pending (0 when none is).",
            [({}, oldest_pending_age())],
        )
        yield gauge(
            "accesshive_oldest_due_job_age_seconds",
            "How long the longest-waiting due job (pending, or retrying past its retry time) "
            "has waited for a worker.",
            [({}, health.oldest_due_job_age())],
        )
        reasons = health.degradations()
        yield gauge(
            "accesshive_degraded",
            "1 when /healthz calls the system degraded for this reason (jobs: a due job waited "
            "longer than ACCESSHIVE_HEALTH_MAX_JOB_DELAY; beat: its heartbeat is stale).",
            [({"reason": reason}, 1.0 if reason in reasons else 0.0) for reason in DEGRADATIONS],
            ("reason",),
        )
        yield gauge(
            "accesshive_metrics_redis_up",
            "1 when the Redis holding attempt counters answered; without it those are missing.",
            [({}, 1.0 if redis_up else 0.0)],
        )


def exposition() -> bytes:
    """The Prometheus text format. With PROMETHEUS_MULTIPROC_DIR set (gunicorn with several
    workers), metrics any process records itself are merged in from that directory too."""
    registry = CollectorRegistry()
    registry.register(JobsCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
