"""The assets JSON API (/api/v1/assets/): list and detail, over session or bearer-token auth,
with the asset page's filters and keyset paging."""

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from assets import queries
from assets.models import Asset
from jobs.api import endpoint, error
from web.pages import InvalidFilterError

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


@endpoint("GET", VIEW_PERMISSION)
def asset_list(request: HttpRequest) -> HttpResponse:
    try:
        filters = queries.parse_filters(request.GET)
        before = queries.parse_before(request.GET)
    except InvalidFilterError as exc:
        return error(400, exc.message, parameter=exc.parameter)
    page = queries.list_assets(filters, before=before, with_attributes=True)
    next_url = None
    if page.next_before:
        query = urlencode({**filters.as_query(), "before": str(page.next_before)})
        next_url = request.build_absolute_uri(f"{reverse('assets:api-list')}?{query}")
    return JsonResponse(
        {"results": [asset_data(request, asset) for asset in page.assets], "next": next_url}
    )


@endpoint("GET", VIEW_PERMISSION)
def asset_detail(request: HttpRequest, asset_id: int) -> HttpResponse:
    asset = queries.get_asset(asset_id)
    if asset is None:
        return error(404, f"no asset with id {asset_id}")
    return JsonResponse(asset_data(request, asset))
