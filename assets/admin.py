"""Read-only admin for assets: they are what discovery saw, and change only through it."""

from django.contrib import admin

from assets.models import Asset
from identities.admin import ReadOnlyAdminMixin


@admin.register(Asset)
class AssetAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "kind", "platform", "first_seen", "last_seen", "gone_at")
    list_select_related = ("platform",)
    list_filter = ("kind",)
    search_fields = ("name", "=external_id")
    ordering = ("-id",)
    show_full_result_count = False
