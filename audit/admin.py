"""Admin for audit ingestion: settings editable, checkpoints and events read-only (events are
Google's record; checkpoints move only as runs store what they read)."""

from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator

from audit.models import AuditCheckpoint, AuditEvent, AuditSettings
from identities.admin import ReadOnlyAdminMixin


class CappedCountPaginator(Paginator):  # type: ignore[type-arg]
    """Counts at most 10,001 rows: the changelist's COUNT(*) over a million events would cost
    more than the page it heads."""

    CAP = 10_001

    @cached_property
    def count(self) -> int:
        rows: Any = self.object_list
        return len(rows[: self.CAP].values_list("pk", flat=True))


@admin.register(AuditSettings)
class AuditSettingsAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("platform", "enabled", "interval_minutes", "applications", "last_enqueued_at")
    list_select_related = ("platform",)
    readonly_fields = ("platform", "last_enqueued_at", "catching_up", "updated_at")


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("platform", "application", "position", "updated_at")
    list_select_related = ("platform",)
    ordering = ("platform__name", "application")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("occurred_at", "platform", "application", "event_name", "actor_email")
    list_select_related = ("platform",)
    list_filter = ("application", "malformed")
    search_fields = ("=actor_email", "=event_name")
    ordering = ("-occurred_at", "-id")
    show_full_result_count = False
    paginator = CappedCountPaginator
    exclude = ("raw",)
