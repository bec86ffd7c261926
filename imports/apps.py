"""App config for CSV bulk imports."""

from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = "Bulk imports"
    default_auto_field = "django.db.models.BigAutoField"
