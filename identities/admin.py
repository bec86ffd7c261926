"""Read-only admin for platforms, identity providers and identities: vault references shown,
secrets never; every change goes through the pages, which validate and write to the vault."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from identities.models import Identity, IdentityProvider, Platform


class ReadOnlyAdminMixin:
    """Rows written by identities.services only. The admin's plain model forms skip the
    checks of the pages' forms (a Google Workspace platform needs its domain, admin and key)
    and cannot store a secret in the vault; an identity's status follows its jobs, and
    deleting one here would leave its Google user, SSO user and vault secret behind."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def stored(ref: str) -> str:
    return "stored" if ref else "not stored"


@admin.register(IdentityProvider)
class IdentityProviderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "scim_base_url", "token", "created_at")
    search_fields = ("name",)
    ordering = ("name",)
    fields = ("name", "scim_base_url", "token", "token_ref", "edit", "created_at")
    readonly_fields = fields

    @admin.display(description="SCIM token")
    def token(self, provider: IdentityProvider) -> str:
        return stored(provider.token_ref)

    @admin.display(description="Change")
    def edit(self, provider: IdentityProvider) -> str:
        url = reverse("identities:provider-edit", args=[provider.pk])
        return format_html('<a href="{}">{}</a>', url, "on the identity provider's page")


@admin.register(Platform)
class PlatformAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "kind", "primary_domain", "identity_provider", "key", "created_at")
    list_filter = ("kind",)
    list_select_related = ("identity_provider",)
    search_fields = ("name", "primary_domain")
    ordering = ("name",)
    fields = (
        "name",
        "kind",
        "identity_provider",
        "primary_domain",
        "customer_id",
        "admin_email",
        "api_endpoint",
        "key",
        "service_account_key_ref",
        "edit",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="Service-account key")
    def key(self, platform: Platform) -> str:
        return stored(platform.service_account_key_ref)

    @admin.display(description="Change")
    def edit(self, platform: Platform) -> str:
        url = reverse("identities:platform-edit", args=[platform.pk])
        return format_html('<a href="{}">{}</a>', url, "on the platform's page")


@admin.register(Identity)
class IdentityAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "id",
        "login",
        "display_name",
        "identity_type",
        "platform",
        "status",
        "created_at",
        "created_by",
    )
    list_filter = ("status", "identity_type", "platform")
    list_select_related = ("platform", "created_by")
    search_fields = ("login", "display_name")
    ordering = ("-id",)
    # Counting a large table for "N of M selected" on every page view is too slow.
    show_full_result_count = False
    fields = (
        "identity_type",
        "platform",
        "display_name",
        "login",
        "given_name",
        "family_name",
        "org_unit_path",
        "status",
        "gws_user_id",
        "idp_user_id",
        "secret_ref",
        "created_by",
        "created_at",
        "updated_at",
        "page",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Identity]:
        return super().get_queryset(request).select_related("platform", "created_by")

    @admin.display(description="Page")
    def page(self, identity: Identity) -> str:
        url = reverse("identities:detail", args=[identity.pk])
        return format_html('<a href="{}">{}</a>', url, "the identity's page, with its jobs")
