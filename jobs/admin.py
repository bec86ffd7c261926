"""Read-only admin for jobs, their attempts and history; status changes go through jobs.services."""

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from jobs import queries, serializers, services
from jobs.models import Job, JobAttempt, JobEvent, JobStatus


class ReadOnlyAdminMixin:
    """Rows written by the job engine only; editing or deleting one here would desync the
    lifecycle and the per-status counters."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class JobTypeFilter(admin.SimpleListFilter):
    """Job types from the registry, not a SELECT DISTINCT over millions of rows."""

    title = "type"
    parameter_name = "job_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return queries.list_job_types()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(job_type=value) if value else queryset


class JobAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    model = JobAttempt
    extra = 0
    can_delete = False
    fields = (
        "number",
        "worker",
        "started_at",
        "finished_at",
        "outcome",
        "error_class",
        "error_message",
        "next_attempt_at",
    )
    readonly_fields = fields
    ordering = ("number",)


class JobEventInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    model = JobEvent
    extra = 0
    can_delete = False
    fields = ("at", "kind", "actor", "message")
    readonly_fields = fields


def pretty(value: Any) -> str:
    return format_html(
        "<pre>{}</pre>", json.dumps(serializers.redact(value), indent=2, default=str)
    )


@admin.register(Job)
class JobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "id",
        "job_type",
        "status",
        "subject_label",
        "trigger_label",
        "created_at",
        "completed_at",
        "attempt_count",
    )
    list_filter = (JobTypeFilter, "status")
    ordering = ("-id",)
    # Counting a table of millions for "N of M selected" on every page view is too slow.
    show_full_result_count = False
    actions = ("retry_selected",)
    inlines = (JobAttemptInline, JobEventInline)
    fieldsets = (
        (None, {"fields": ("job_type", "status", "subject_type", "subject_id", "subject_label")}),
        ("Trigger", {"fields": ("trigger", "triggered_by", "trigger_label")}),
        ("Input and outcome", {"fields": ("input_params", "output_result")}),
        ("Error", {"fields": ("error_class", "error_message", "error_traceback")}),
        (
            "Timing",
            {"fields": ("created_at", "started_at", "completed_at", "next_attempt_at")},
        ),
        (
            "Delivery",
            {"fields": ("celery_task_id", "retries", "attempt_count", "dispatched_at")},
        ),
    )
    readonly_fields = ("input_params", "output_result")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        jobs = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "jobs_job_changelist":
            jobs = jobs.defer(*queries.HEAVY_COLUMNS)
        return jobs

    @admin.display(description="params")
    def input_params(self, job: Job) -> str:
        return pretty(job.params)

    @admin.display(description="result")
    def output_result(self, job: Job) -> str:
        return pretty(job.result)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.retry_job")

    @admin.action(description="Retry selected failed jobs", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        retried = sum(
            services.retry_job(job, actor=request.user)
            for job in queryset.filter(status=JobStatus.FAILED).defer(*queries.HEAVY_COLUMNS)
        )
        self.message_user(request, f"{retried} job(s) queued for retry.", messages.SUCCESS)


@admin.register(JobEvent)
class JobEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("at", "job_id", "kind", "actor", "message")
    list_filter = ("kind",)
    list_select_related = ("actor",)
    ordering = ("-id",)
    show_full_result_count = False
    raw_id_fields = ("job", "actor")
