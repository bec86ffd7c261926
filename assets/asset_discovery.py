"""asset_discovery: list everything a Google Workspace platform holds, kind by kind, record
what is new or changed, and mark gone what a complete listing no longer has."""

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.conf import settings
from django.utils import timezone

from assets import services
from assets.models import AssetKind, TokenListingProgress
from connectors.google_assets import GoogleAssetsClient, RemoteAsset
from identities.handlers.common import platform_pacer, read_secret
from identities.models import Platform
from jobs.errors import PermanentError
from jobs.models import Job
from jobs.registry import register


def load_platform(job: Job) -> Platform:
    platform = Platform.objects.filter(pk=job.subject_id or 0).first()
    if platform is None:
        raise PermanentError(f"Job {job.pk} names platform {job.subject_id!r}, which is gone")
    return platform


def assets_client(platform: Platform) -> GoogleAssetsClient:
    if not platform.is_google_workspace:
        raise PermanentError(
            f"Platform {platform.name} is not a Google Workspace platform; discovery reads "
            "Google Workspace only"
        )
    secret = read_secret(
        platform.service_account_key_ref, f"The service-account key of platform {platform.name}"
    )
    return GoogleAssetsClient(
        json.loads(secret["json"]),
        platform.admin_email,
        api_endpoint=platform.api_endpoint or None,
        label=f"platform {platform.name}",
        # The platform's one bucket, shared with every other Directory API call to it.
        before_call=platform_pacer(platform),
    )


def remembering(users: Iterable[RemoteAsset], into: list[tuple[str, str]]) -> Iterator[RemoteAsset]:
    """Pass the users through, keeping their ids and emails for the token listing after."""
    for user in users:
        into.append((user.external_id, user.name))
        yield user


def list_tokens(
    client: GoogleAssetsClient,
    platform: Platform,
    users: list[tuple[str, str]],
    progress: TokenListingProgress,
) -> services.KindCounts:
    """tokens.list is one call per user (Google has no customer-wide listing of grants), so
    it is what a large customer's time limit cuts short. Users go in id order, a page at a
    time, each page recorded with the job's progress: the retry starts after the last page
    recorded, never from the first user. (A user added meanwhile with an id below that point
    is listed by the next discovery.)"""
    size = settings.ASSETS_TOKEN_USER_PAGE
    todo = sorted(user for user in users if user[0] > progress.done_through)
    for start in range(0, len(todo), size):
        page = todo[start : start + size]
        tokens = [token for user_id, email in page for token in client.tokens(user_id, email)]
        services.record_token_page(platform, progress, tokens, through=page[-1][0], users=len(page))
    return services.finish_tokens(platform, progress)


@register("asset_discovery")
def run(job: Job) -> dict[str, Any]:
    platform = load_platform(job)
    client = assets_client(platform)
    seen_at = timezone.now()
    users: list[tuple[str, str]] = []
    # Called one after the other, so a kind is listed only once the one before is recorded.
    listings: list[tuple[str, Callable[[], Iterable[RemoteAsset]]]] = [
        (AssetKind.USER, lambda: remembering(client.users(), users)),
        (AssetKind.GROUP, client.groups),
        (AssetKind.ORG_UNIT, client.org_units),
        (AssetKind.DOMAIN, client.domains),
        (AssetKind.MOBILE_DEVICE, client.mobile_devices),
        (AssetKind.CHROMEOS_DEVICE, client.chromeos_devices),
    ]
    counts: dict[str, dict[str, int]] = {}
    for kind, listing in listings:
        counts[str(kind)] = services.sync_kind(platform, kind, listing(), seen_at).as_dict()
    progress = services.get_token_progress(job, seen_at=seen_at)
    resumed_after = progress.users_done
    counts[str(AssetKind.OAUTH_TOKEN)] = list_tokens(client, platform, users, progress).as_dict()
    return {
        "tokens_resumed_after_users": resumed_after,
        "platform": platform.name,
        "seen_at": seen_at.isoformat(),
        "kinds": counts,
        "totals": {
            name: sum(kind_counts[name] for kind_counts in counts.values())
            for name in ("seen", "new", "changed", "returned", "gone")
        },
    }
