"""Retention: finished jobs older than their status's limit go, with their attempts and events,
in small batches, keeping the per-status counters right."""

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job, JobStatus

log = logging.getLogger(__name__)


@dataclass
class PruneResult:
    """Jobs deleted (or, on a dry run, that would be) per status, and the cut-offs used."""

    cutoffs: dict[str, datetime]
    deleted: Counter[str] = field(default_factory=Counter)
    dry_run: bool = False

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def cutoffs(now: datetime | None = None) -> dict[str, datetime]:
    """Finished before these moments, a job of that status is old enough to go."""
    now = now or timezone.now()
    return {
        JobStatus.COMPLETED: now - timedelta(days=settings.JOB_RETENTION_DAYS),
        JobStatus.FAILED: now - timedelta(days=settings.FAILED_JOB_RETENTION_DAYS),
    }


def prune(
    *, now: datetime | None = None, dry_run: bool = False, batch_size: int | None = None
) -> PruneResult:
    """Delete completed and failed jobs past retention; active jobs are never touched."""
    result = PruneResult(cutoffs=cutoffs(now), dry_run=dry_run)
    batch_size = batch_size or settings.JOB_PRUNE_BATCH
    for status, cutoff in result.cutoffs.items():
        if dry_run:
            result.deleted[status] = expired(status, cutoff).count()
            continue
        while deleted := delete_batch(status, cutoff, batch_size):
            result.deleted[status] += deleted
            if deleted < batch_size:
                break
    if result.total and not dry_run:
        log.info("jobs.pruned", extra={status: n for status, n in result.deleted.items()})
    return result


def expired(status: str, cutoff: datetime) -> QuerySet[Job]:
    # Walks the (status, completed_at) index from the oldest end.
    return Job.objects.filter(status=status, completed_at__lt=cutoff)


def delete_batch(status: str, cutoff: datetime, batch_size: int) -> int:
    """One short transaction: lock up to ``batch_size`` expired jobs, delete them (attempts and
    events cascade), take them off the counters. Rows locked by someone else (an admin's retry
    of a failed job) are skipped; re-checked under the lock, a row that moved is left alone."""
    with transaction.atomic():
        rows = list(
            expired(status, cutoff)
            .select_for_update(skip_locked=True)
            .order_by("completed_at")
            .values_list("pk", "job_type")[:batch_size]
        )
        if not rows:
            return 0
        # only("pk"): the collector need not load tracebacks and results just to delete them.
        Job.objects.filter(pk__in=[pk for pk, _ in rows]).only("pk").delete()
        for job_type, count in sorted(Counter(job_type for _, job_type in rows).items()):
            lifecycle.shift_counts(job_type, {status: -count})
    return len(rows)
