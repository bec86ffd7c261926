"""App config for CSV bulk imports: registers the bulk_import handler and follows its jobs."""

from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = "Bulk imports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from imports import handlers, receivers  # noqa: F401 - registration side effects
