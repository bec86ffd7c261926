"""Admin views of the directory models, read-mostly: the pages and services are the way to
change sources and rules (the bind password only ever goes through the service)."""

from django.contrib import admin

from directory.models import DirectoryEvent, DirectoryUser, IdentitySource, JmlRule, SyncRun


@admin.register(IdentitySource)
class IdentitySourceAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "kind", "enabled", "sync_interval_minutes", "last_synced_at"]
    readonly_fields = ["ldap_password_ref", "running_run", "last_run", "generation"]


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "source", "status", "started_at", "users_read", "joiners", "movers"]
    list_filter = ["status"]
    raw_id_fields = ["job"]


@admin.register(DirectoryUser)
class DirectoryUserAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["username", "email", "source", "disabled", "deleted", "department"]
    search_fields = ["username", "email"]
    raw_id_fields = ["identity"]
    show_full_result_count = False


@admin.register(DirectoryEvent)
class DirectoryEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "kind", "label", "source", "status", "created_at"]
    list_filter = ["kind", "status"]
    raw_id_fields = ["user", "job", "run"]
    show_full_result_count = False


@admin.register(JmlRule)
class JmlRuleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["source", "platform", "dry_run", "on_joiner", "on_mover", "on_leaver"]
