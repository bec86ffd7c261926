"""Read side of the identity pages and API: filter parsing, keyset pages, one identity."""

from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.http import Http404

from identities.models import Identity, IdentityProvider, IdentityStatus, IdentityType, Platform
from vault.backends import get_vault
from vault.base import SecretRef
from vault.errors import VaultError
from web.pages import InvalidFilterError, QueryForm, choice_parameter, id_parameter, parse_id_cursor

# Identities whose provisioning jobs are still on their way; their pages refresh themselves.
ACTIVE_STATUSES = frozenset({IdentityStatus.PENDING, IdentityStatus.PROVISIONING})


@dataclass(frozen=True)
class IdentityFilters:
    """The filters of the identities list; empty (or None) means "any"."""

    status: str = ""
    identity_type: str = ""
    platform: Platform | None = None

    def as_query(self) -> dict[str, str]:
        """The filters as URL query parameters, leaving out the empty ones."""
        query = {
            "status": self.status,
            "type": self.identity_type,
            "platform": str(self.platform.pk) if self.platform else "",
        }
        return {key: value for key, value in query.items() if value}

    @property
    def active(self) -> bool:
        return bool(self.status or self.identity_type or self.platform)


@dataclass(frozen=True)
class IdentityPage:
    """One keyset page of the identities list, newest first."""

    identities: list[Identity]
    before: int | None
    next_before: int | None

    @property
    def has_active(self) -> bool:
        return any(is_active(identity) for identity in self.identities)


def is_active(identity: Identity) -> bool:
    return identity.status in ACTIVE_STATUSES


def page_size() -> int:
    return int(settings.IDENTITY_PAGE_SIZE)


class IdentityFilterForm(QueryForm):
    status = choice_parameter("status", IdentityStatus.values, "identity status")
    type = choice_parameter("type", IdentityType.values, "identity type")
    platform = id_parameter("platform", "platform")


def parse_filters(params: Mapping[str, str]) -> IdentityFilters:
    """Read ``status``, ``type`` and ``platform`` (an id) from a query string; bad values raise."""
    values = IdentityFilterForm.parse(params)
    platform = None
    if values["platform"] is not None:
        platform = get_platform(values["platform"])
        if platform is None:
            raise InvalidFilterError(
                "platform", f"There is no platform with id {values['platform']}"
            )
    return IdentityFilters(status=values["status"], identity_type=values["type"], platform=platform)


def parse_before(params: Mapping[str, str]) -> int | None:
    return parse_id_cursor(params, "identity")


def filtered_identities(filters: IdentityFilters) -> QuerySet[Identity]:
    identities = Identity.objects.all()
    if filters.status:
        identities = identities.filter(status=filters.status)
    if filters.identity_type:
        identities = identities.filter(identity_type=filters.identity_type)
    if filters.platform is not None:
        identities = identities.filter(platform=filters.platform)
    return identities


def list_identities(
    filters: IdentityFilters, *, before: int | None = None, size: int | None = None
) -> IdentityPage:
    """The page of identities older than ``before`` (newest first).

    Keyset paging on the primary key, like the jobs list: page 10,000 costs what page 1 does,
    and one extra row tells whether there is a next page.
    """
    size = size or page_size()
    identities = (
        filtered_identities(filters).select_related("platform", "created_by").order_by("-id")
    )
    if before is not None:
        identities = identities.filter(id__lt=before)
    rows = list(identities[: size + 1])
    next_before = rows[size - 1].pk if len(rows) > size else None
    return IdentityPage(identities=rows[:size], before=before, next_before=next_before)


def get_identity(identity_id: int) -> Identity | None:
    return (
        Identity.objects.select_related("platform__identity_provider", "created_by")
        .filter(pk=identity_id)
        .first()
    )


def list_platforms() -> list[Platform]:
    return list(Platform.objects.select_related("identity_provider").order_by("name"))


def get_platform(platform_id: int) -> Platform | None:
    return Platform.objects.filter(pk=platform_id).first()


def list_identity_providers() -> list[IdentityProvider]:
    return list(IdentityProvider.objects.order_by("name"))


def get_identity_provider(provider_id: int) -> IdentityProvider | None:
    return IdentityProvider.objects.filter(pk=provider_id).first()


def get_google_workspace_platform_or_404(platform_id: int) -> Platform:
    """For the pages that act on one Google Workspace platform (audit, assets)."""
    platform = Platform.objects.filter(pk=platform_id).first()
    if platform is None or not platform.is_google_workspace:
        raise Http404("No such Google Workspace platform")
    return platform


def get_credential_ref(identity: Identity) -> str | None:
    """Where the identity's credential is in the vault, as a reference (never the secret): the
    stored one for a credential typed in, the generated password's current version for a
    managed shared credential (its jobs write it). "" when the vault cannot say now."""
    if identity.identity_type != IdentityType.SHARED_CREDENTIAL_MANAGED:
        return identity.secret_ref or None
    try:
        version = get_vault().current_version(identity.password_path)
    except VaultError:
        return ""
    return str(SecretRef(identity.password_path, version)) if version else None


# The table's name is ours.
_EXISTING_LOGINS = (
    "SELECT k.platform_id, k.login "  # noqa: S608
    "FROM unnest(%s::bigint[], %s::text[]) AS k(platform_id, login) "
    f"JOIN {Identity._meta.db_table} AS i "
    "ON i.platform_id = k.platform_id AND i.login = k.login"
)


def existing_logins(keys: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """Those of the (platform id, login) pairs that are identities already, in one query (on
    PostgreSQL as two arrays, which cost less to send than a parameter per login)."""
    if not keys:
        return set()
    if connection.vendor != "postgresql":
        found = Identity.objects.filter(
            platform_id__in={platform for platform, _ in keys},
            login__in={login for _, login in keys},
        ).values_list("platform_id", "login")
        return set(found) & keys
    with connection.cursor() as cursor:
        cursor.execute(_EXISTING_LOGINS, [[p for p, _ in keys], [login for _, login in keys]])
        return {(platform, login) for platform, login in cursor.fetchall()}
