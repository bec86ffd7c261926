"""App config: registers the identity handlers and follows their jobs."""

from django.apps import AppConfig


class IdentitiesConfig(AppConfig):
    name = "identities"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from identities import handlers, receivers  # noqa: F401 - registration side effects
