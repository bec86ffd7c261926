"""Read-only admin for imports: counts and status; the upload itself is never shown."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from imports.models import ImportBatch


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Written by imports.services only; the page shows progress and the report."""

    list_display = (
        "id",
        "filename",
        "status",
        "dry_run",
        "rows_total",
        "created",
        "skipped",
        "failed",
        "created_by",
        "created_at",
    )
    list_filter = ("status", "dry_run")
    list_select_related = ("created_by",)
    search_fields = ("filename", "sha256")
    ordering = ("-id",)
    show_full_result_count = False
    fields = (
        "filename",
        "size_bytes",
        "sha256",
        "dry_run",
        "status",
        "rows_total",
        "rows_done",
        "created",
        "skipped",
        "failed",
        "last_row",
        "error_message",
        "job",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
        "upload_deleted_at",
        "page",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Page")
    def page(self, batch: ImportBatch) -> str:
        url = reverse("imports:detail", args=[batch.pk])
        return format_html('<a href="{}">{}</a>', url, "the import's page, with its report")
