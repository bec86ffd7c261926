"""Admin for policies and (read-mostly) violations."""

from django.contrib import admin

from policies.models import Policy, Violation


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "kind", "platform", "action", "mode", "enabled"]
    list_filter = ["kind", "action", "mode", "enabled"]


@admin.register(Violation)
class ViolationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "policy", "subject_label", "status", "opened_at", "closed_at"]
    list_filter = ["status"]
    raw_id_fields = ["policy", "remediation_job", "decided_by"]
    readonly_fields = ["evidence", "outcome", "decision", "decided_by", "decided_at"]
