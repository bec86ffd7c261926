"""The assets API (/api/v1/assets/): list and detail, with the asset page's filters and
keyset paging."""

from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest
from django.urls import reverse
from ninja import Query, Router, Schema, Status
from pydantic import Field

from assets import queries, services
from assets.models import Asset, AssetKind
from assets.views import DISCOVER_PERMISSION
from identities.queries import get_google_workspace_platform_or_404
from jobs.api import JobQueued, queued
from web.api.auth import allowed
from web.api.paging import BEFORE_DESCRIPTION, as_params, next_url
from web.api.problems import Problem, not_found
from web.api.schemas import Out
from web.api.types import Id, Line

VIEW_PERMISSION = "assets.view_asset"


def asset_data(request: HttpRequest, asset: Asset) -> dict[str, Any]:
    return {
        "id": asset.pk,
        "url": request.build_absolute_uri(reverse("assets:api-detail", args=[asset.pk])),
        "platform": {"id": asset.platform_id, "name": asset.platform.name},
        "kind": asset.kind,
        "kind_label": asset.get_kind_display(),
        "external_id": asset.external_id,
        "name": asset.name,
        "attributes": asset.attributes,
        "first_seen": asset.first_seen,
        "last_seen": asset.last_seen,
        "changed_at": asset.changed_at,
        "gone_at": asset.gone_at,
        "state": "gone" if asset.is_gone else "present",
    }


router = Router(tags=["assets"])
ERRORS: dict[int, Any] = {400: Problem, 401: Problem, 403: Problem}


class AssetPlatform(Out):
    id: int
    name: str


class AssetOut(Out):
    id: int
    url: str
    platform: AssetPlatform
    kind: AssetKind
    kind_label: str
    external_id: str
    name: str
    attributes: Any
    first_seen: datetime
    last_seen: datetime
    changed_at: datetime | None
    gone_at: datetime | None
    state: Literal["present", "gone"]


class AssetPage(Out):
    results: list[AssetOut]
    next: str | None


class AssetQuery(Schema):
    platform: Id | None = Field(None, description="A platform id")
    kind: AssetKind | None = None
    state: Literal["present", "gone"] | None = None
    q: Line | None = Field(None, max_length=200, description="Part of the name, any case")
    before: Id | None = Field(None, description=BEFORE_DESCRIPTION)


@router.get("assets/", response={200: AssetPage, **ERRORS}, auth=allowed(VIEW_PERMISSION))
def list_assets(request: HttpRequest, query: Query[AssetQuery]) -> dict[str, Any]:
    """Discovered assets newest first, filtered like the assets page."""
    filters = queries.parse_filters(as_params(query, "before"))
    page = queries.list_assets(filters, before=query.before, with_attributes=True)
    return {
        "results": [asset_data(request, asset) for asset in page.assets],
        "next": next_url(request, "assets:api-list", filters.as_query(), page.next_before),
    }


@router.get(
    "assets/{int:asset_id}/",
    response={200: AssetOut, 404: Problem, **ERRORS},
    auth=allowed(VIEW_PERMISSION),
)
def get_asset(request: HttpRequest, asset_id: Id) -> dict[str, Any]:
    """One asset with its attributes."""
    asset = queries.get_asset(asset_id)
    if asset is None:
        raise not_found("asset", asset_id)
    return asset_data(request, asset)


@router.post(
    "assets/platforms/{int:platform_id}/discover/",
    response={202: JobQueued, 404: Problem, **ERRORS},
    auth=allowed(VIEW_PERMISSION, DISCOVER_PERMISSION),
)
def discover_now(request: HttpRequest, platform_id: Id) -> Status[dict[str, Any]]:
    """Discover now: queue an asset discovery of a Google Workspace platform (or answer
    the one already on its way)."""
    platform = get_google_workspace_platform_or_404(platform_id)
    job, created = services.discover_now(platform, actor=request.user)
    return Status(202, queued(request, job, created))
