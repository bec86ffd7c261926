"""App config for what pages and the API share (it owns the API's idempotency records)."""

from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "web"
    verbose_name = "Web and API"
    default_auto_field = "django.db.models.BigAutoField"
