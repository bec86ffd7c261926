"""App config for asset discovery: registers the asset_discovery handler."""

from django.apps import AppConfig


class AssetsConfig(AppConfig):
    name = "assets"
    verbose_name = "Assets"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from assets import asset_discovery  # noqa: F401 - registers asset_discovery
