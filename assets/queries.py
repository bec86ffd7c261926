"""Read side of the asset inventory: filter parsing, keyset pages newest first, one asset."""

from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet

from assets.models import Asset, AssetKind
from identities.models import Platform
from web.inputs import SingleLineCharField
from web.pages import InvalidFilterError, QueryForm, choice_parameter, id_parameter, parse_id_cursor

STATES = (("present", "Present"), ("gone", "Gone"))


@dataclass(frozen=True)
class AssetFilters:
    """The filters of the asset list; empty (or None) means "any"."""

    platform: Platform | None = None
    kind: str = ""
    state: str = ""
    name: str = ""

    def as_query(self) -> dict[str, str]:
        query = {
            "platform": str(self.platform.pk) if self.platform else "",
            "kind": self.kind,
            "state": self.state,
            "q": self.name,
        }
        return {key: value for key, value in query.items() if value}

    @property
    def active(self) -> bool:
        return bool(self.as_query())


@dataclass(frozen=True)
class AssetPage:
    assets: list[Asset]
    before: int | None
    next_before: int | None


class AssetFilterForm(QueryForm):
    platform = id_parameter("platform", "platform")
    kind = choice_parameter("kind", AssetKind.values, "asset kind")
    state = choice_parameter("state", dict(STATES), "state")
    q = SingleLineCharField(required=False, max_length=200, label="q")


def parse_filters(params: Mapping[str, str]) -> AssetFilters:
    """Read platform (an id), kind, state (present or gone) and q (part of the name)."""
    values = AssetFilterForm.parse(params)
    platform = None
    if values["platform"] is not None:
        platform = Platform.objects.filter(pk=values["platform"]).first()
        if platform is None:
            raise InvalidFilterError(
                "platform", f"There is no platform with id {values['platform']}"
            )
    return AssetFilters(
        platform=platform, kind=values["kind"], state=values["state"], name=values["q"]
    )


def parse_before(params: Mapping[str, str]) -> int | None:
    return parse_id_cursor(params, "asset")


def filtered_assets(filters: AssetFilters) -> QuerySet[Asset]:
    assets = Asset.objects.all()
    if filters.platform is not None:
        assets = assets.filter(platform=filters.platform)
    if filters.kind:
        assets = assets.filter(kind=filters.kind)
    if filters.state == "present":
        assets = assets.filter(gone_at__isnull=True)
    elif filters.state == "gone":
        assets = assets.filter(gone_at__isnull=False)
    if filters.name:
        # A substring of the name, any case: assets number in the thousands per platform, so
        # this filters rows the other filters' index found rather than needing its own index.
        assets = assets.filter(name__icontains=filters.name)
    return assets


def list_assets(
    filters: AssetFilters,
    *,
    before: int | None = None,
    size: int | None = None,
    with_attributes: bool = False,
) -> AssetPage:
    """The page of assets older than ``before`` (newest first), keyset on the id."""
    size = size or int(settings.ASSET_PAGE_SIZE)
    assets = filtered_assets(filters).select_related("platform").order_by("-id")
    if not with_attributes:
        assets = assets.defer("attributes")
    if before is not None:
        assets = assets.filter(id__lt=before)
    rows = list(assets[: size + 1])
    next_before = rows[size - 1].pk if len(rows) > size else None
    return AssetPage(assets=rows[:size], before=before, next_before=next_before)


def get_asset(asset_id: int) -> Asset | None:
    return Asset.objects.select_related("platform").filter(pk=asset_id).first()


def list_platforms() -> list[Platform]:
    return list(Platform.objects.filter(kind=Platform.Kind.GOOGLE_WORKSPACE).order_by("name"))


def list_org_unit_paths(platform: Platform) -> set[str] | None:
    """The org unit paths asset discovery last found on ``platform`` (lower-cased, "/"
    included); None when it never listed any, so nothing can be checked against them."""
    paths = set(
        Asset.objects.filter(
            platform=platform, kind=AssetKind.ORG_UNIT, gone_at__isnull=True
        ).values_list("name", flat=True)
    )
    if not paths:
        return None
    return {path.lower() for path in paths} | {"/"}
