"""App config for privileged access sessions."""

from django.apps import AppConfig


class PamConfig(AppConfig):
    name = "pam"
    verbose_name = "Privileged access"
    default_auto_field = "django.db.models.BigAutoField"
