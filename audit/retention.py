"""Audit retention: events that happened longer ago than settings.AUDIT_RETENTION_DAYS go, in
short batches, oldest first, so the table never holds a long lock."""

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent

log = logging.getLogger(__name__)


def cutoff(now: dt.datetime | None = None) -> dt.datetime:
    return (now or timezone.now()) - dt.timedelta(days=settings.AUDIT_RETENTION_DAYS)


def prune(*, now: dt.datetime | None = None, batch_size: int | None = None) -> int:
    """Delete every event older than the cut-off; returns how many went."""
    before = cutoff(now)
    batch_size = batch_size or settings.AUDIT_PRUNE_BATCH
    deleted = 0
    while True:
        with transaction.atomic():
            # The oldest end of the (-occurred_at, -id) index, one batch at a time.
            ids = list(
                AuditEvent.objects.filter(occurred_at__lt=before)
                .order_by("occurred_at", "id")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                break
            # Nothing refers to an event, so this is one DELETE with no rows loaded.
            count, _ = AuditEvent.objects.filter(pk__in=ids).delete()
            deleted += count
        if len(ids) < batch_size:
            break
    if deleted:
        log.info("audit.pruned", extra={"deleted": deleted, "before": before.isoformat()})
    return deleted
