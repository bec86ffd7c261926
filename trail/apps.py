"""App config for the admin audit trail."""

from django.apps import AppConfig


class TrailConfig(AppConfig):
    name = "trail"
    verbose_name = "Admin audit trail"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from trail import signals

        signals.connect()
