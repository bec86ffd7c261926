"""App config for privileged access sessions: registers the credential_rotation handler."""

from django.apps import AppConfig


class PamConfig(AppConfig):
    name = "pam"
    verbose_name = "Privileged access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pam import handlers  # noqa: F401 - registers credential_rotation
