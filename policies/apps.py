"""App config for policies: registers the remediation handler and the evaluation receiver."""

from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    name = "policies"
    verbose_name = "Policies"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from policies import handlers, receivers  # noqa: F401 - registers remediation, receiver
