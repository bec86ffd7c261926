"""App config for audit ingestion: registers the audit_ingestion handler."""

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit log"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit import audit_ingestion  # noqa: F401 - registers audit_ingestion
