"""App config for directory sync and joiner/mover/leaver automation: registers its handlers."""

from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "directory"
    verbose_name = "Directory"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from directory import handlers, tasks  # noqa: F401 - registration side effects
