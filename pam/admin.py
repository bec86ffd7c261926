"""Read-only admin for access sessions, their reveals and credential states: every change
goes through pam.services, which keeps the one-session rule and starts the rotations."""

from django.contrib import admin

from identities.admin import ReadOnlyAdminMixin
from pam.models import AccessSession, CredentialState, RevealEvent


class RevealEventInline(ReadOnlyAdminMixin, admin.TabularInline):  # type: ignore[type-arg]
    model = RevealEvent
    extra = 0
    can_delete = False
    fields = ("user", "at")
    readonly_fields = fields


@admin.register(AccessSession)
class AccessSessionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "id",
        "identity",
        "holder",
        "started_at",
        "expires_at",
        "ended_at",
        "end_reason",
        "ended_by",
    )
    list_filter = ("end_reason",)
    list_select_related = ("identity", "holder", "ended_by")
    search_fields = ("identity__login", "holder__username", "reason")
    ordering = ("-id",)
    show_full_result_count = False
    fields = (
        "identity",
        "holder",
        "reason",
        "started_at",
        "expires_at",
        "ended_at",
        "ended_by",
        "end_reason",
        "rotation_job",
    )
    readonly_fields = fields
    inlines = [RevealEventInline]


@admin.register(CredentialState)
class CredentialStateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("identity", "rotation_due_since", "rotated_by_hand_at", "rotated_by_hand_by")
    list_select_related = ("identity", "rotated_by_hand_by")
    fields = (
        "identity",
        "rotation_due_since",
        "rotation_due_session",
        "rotated_by_hand_at",
        "rotated_by_hand_by",
    )
    readonly_fields = fields
