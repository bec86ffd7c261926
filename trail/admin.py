"""Read-only admin for the audit trail: entries are only ever appended, by trail.services."""

from django.contrib import admin

from audit.admin import CappedCountPaginator
from identities.admin import ReadOnlyAdminMixin
from trail.models import TrailEntry


@admin.register(TrailEntry)
class TrailEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("occurred_at", "actor_name", "action", "target_label", "source", "source_ip")
    list_filter = ("source",)
    search_fields = ("=actor_name", "=action")
    ordering = ("-id",)
    show_full_result_count = False
    paginator = CappedCountPaginator
