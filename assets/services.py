"""Asset discovery's domain operations: start a run, record what a listing saw, mark gone
what a complete listing no longer has."""

import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from assets.models import Asset, AssetKind, TokenListingProgress
from connectors.google_assets import RemoteAsset
from identities.models import Platform
from jobs.models import ACTIVE_STATUSES, Job, JobType, Trigger
from jobs.services import enqueue
from trail.services import record

JOB_TYPE = JobType.ASSET_DISCOVERY
# Assets are compared and written this many at a time: one SELECT, a few writes per chunk.
CHUNK = 500


@dataclass
class KindCounts:
    """One kind's run: how many the listing had, and what changed here because of it."""

    seen: int = 0
    new: int = 0
    changed: int = 0
    returned: int = 0
    gone: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def fingerprint(remote: RemoteAsset) -> str:
    content = json.dumps({"name": remote.name, "attributes": remote.attributes}, sort_keys=True)
    return hashlib.sha256(content.encode()).hexdigest()


def _discovery_jobs(platform: Platform) -> Any:
    return Job.objects.filter(
        job_type=JOB_TYPE,
        subject_type=ContentType.objects.get_for_model(Platform),
        subject_id=str(platform.pk),
    )


def active_discovery(platform: Platform) -> Job | None:
    job: Job | None = (
        _discovery_jobs(platform).filter(status__in=ACTIVE_STATUSES).order_by("-id").first()
    )
    return job


def list_discovery_jobs(platform: Platform, *, limit: int = 10) -> list[Job]:
    return list(
        _discovery_jobs(platform).defer("params", "error_traceback").order_by("-id")[:limit]
    )


def discover_now(platform: Platform, *, actor: Any) -> tuple[Job, bool]:
    """Start a discovery run, unless one is on its way: (the job, whether it is new)."""
    with transaction.atomic():
        # Locks the platform row so two clicks at once start one run.
        Platform.objects.select_for_update().filter(pk=platform.pk).first()
        running = active_discovery(platform)
        if running is not None:
            return running, False
        job = enqueue(JOB_TYPE, subject=platform, triggered_by=actor, trigger=Trigger.USER)
        record("assets.discovery_started", actor=actor, target=platform, job=job.pk)
        return job, True


def record_seen(
    platform: Platform, kind: str, remote: list[RemoteAsset], seen_at: dt.datetime
) -> KindCounts:
    """Record one chunk of a listing: new assets created, changed ones updated, returning
    ones no longer gone, and every one of them seen at ``seen_at``."""
    counts = KindCounts(seen=len(remote))
    by_id = {item.external_id: item for item in remote}
    existing = {
        asset.external_id: asset
        for asset in Asset.objects.filter(
            platform=platform, kind=kind, external_id__in=list(by_id)
        ).only("id", "external_id", "fingerprint", "gone_at")
    }
    created: list[Asset] = []
    changed: list[Asset] = []
    returned: list[Asset] = []
    unchanged: list[int] = []
    for external_id, item in by_id.items():
        digest = fingerprint(item)
        asset = existing.get(external_id)
        if asset is None:
            created.append(
                Asset(
                    platform=platform,
                    kind=kind,
                    external_id=external_id,
                    name=item.name[:500],
                    attributes=item.attributes,
                    fingerprint=digest,
                    first_seen=seen_at,
                    last_seen=seen_at,
                    changed_at=seen_at,
                )
            )
            continue
        counts.returned += asset.gone_at is not None
        if asset.fingerprint != digest:
            asset.name = item.name[:500]
            asset.attributes = item.attributes
            asset.fingerprint = digest
            asset.changed_at = seen_at
            changed.append(asset)
        elif asset.gone_at is not None:
            returned.append(asset)
        else:
            unchanged.append(asset.pk)
            continue
        asset.gone_at = None
        asset.last_seen = seen_at
    with transaction.atomic():
        Asset.objects.bulk_create(created, ignore_conflicts=True)
        fields = ["name", "attributes", "fingerprint", "changed_at", "gone_at", "last_seen"]
        Asset.objects.bulk_update(changed, fields)
        # Only the fields loaded: writing a deferred one would read it back first, row by row.
        Asset.objects.bulk_update(returned, ["gone_at", "last_seen"])
        Asset.objects.filter(pk__in=unchanged).update(last_seen=seen_at)
    counts.new = len(created)
    counts.changed = len(changed)
    return counts


def mark_gone(platform: Platform, kind: str, seen_at: dt.datetime) -> int:
    """After a complete listing: every asset of the kind it did not have is gone from now."""
    return Asset.objects.filter(
        platform=platform, kind=kind, gone_at__isnull=True, last_seen__lt=seen_at
    ).update(gone_at=timezone.now())


def sync_kind(
    platform: Platform, kind: str, listing: Iterable[RemoteAsset], seen_at: dt.datetime
) -> KindCounts:
    """Record a whole listing chunk by chunk, then mark gone what it lacked. An error while
    listing leaves nothing marked gone: a listing cut short proves nothing is missing."""
    total = KindCounts()
    items = iter(listing)
    while chunk := list(itertools.islice(items, CHUNK)):
        counts = record_seen(platform, kind, chunk, seen_at)
        total.seen += counts.seen
        total.new += counts.new
        total.changed += counts.changed
        total.returned += counts.returned
    total.gone = mark_gone(platform, kind, seen_at)
    return total


def get_token_progress(job: Job, *, seen_at: dt.datetime) -> TokenListingProgress:
    """The job's token-listing progress; a new one starts at ``seen_at``."""
    progress, _ = TokenListingProgress.objects.get_or_create(
        job=job, defaults={"seen_at": seen_at, "counts": KindCounts().as_dict()}
    )
    return progress


def record_token_page(
    platform: Platform,
    progress: TokenListingProgress,
    tokens: list[RemoteAsset],
    *,
    through: str,
    users: int,
) -> None:
    """Record the tokens of one page of users and move the job's progress past them, in one
    transaction: a retry never lists these users again."""
    with transaction.atomic():
        counts = record_seen(platform, AssetKind.OAUTH_TOKEN, tokens, progress.seen_at)
        total = {key: progress.counts.get(key, 0) + value for key, value in asdict(counts).items()}
        TokenListingProgress.objects.filter(pk=progress.pk).update(
            done_through=through,
            users_done=progress.users_done + users,
            counts=total,
            updated_at=timezone.now(),
        )
        progress.done_through, progress.users_done, progress.counts = (
            through,
            progress.users_done + users,
            total,
        )


def finish_tokens(platform: Platform, progress: TokenListingProgress) -> KindCounts:
    """Every user's tokens are recorded: mark gone the ones no page had, and forget the
    progress."""
    counts = KindCounts(**{key: int(value) for key, value in progress.counts.items()})
    counts.gone = mark_gone(platform, AssetKind.OAUTH_TOKEN, progress.seen_at)
    TokenListingProgress.objects.filter(pk=progress.pk).delete()
    return counts
