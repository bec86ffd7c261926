"""The Celery application: configured from Django settings (CELERY_* names only)."""

import logging.config
import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging
from django.core.signals import setting_changed

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "accesshive.settings")


# Read by Celery under its Django name (celery.fixups.django), so passed on unchanged.
AS_NAMED = frozenset({"CELERY_DB_REUSE_MAX"})


class CelerySettings:
    """Django's CELERY_* settings as Celery's own names (CELERY_BROKER_URL -> broker_url), and
    nothing else. Celery's config (``celery inspect conf``, Flower's Config tab) then holds
    no other setting (REDIS_URL, DATABASE_URL and their passwords), and Celery masks the
    password of broker_url, which it does not recognise under the CELERY_ namespace.

    Celery asks for its settings on every message it sends, so the names are listed once
    and again only after a setting changed (tests' override_settings)."""

    def __init__(self) -> None:
        self._cached: dict[str, str] | None = None
        setting_changed.connect(self._forget, weak=False)

    def _forget(self, **kwargs: Any) -> None:
        self._cached = None

    def _names(self) -> dict[str, str]:
        from django.conf import settings

        if self._cached is None:
            self._cached = {
                name if name in AS_NAMED else name.removeprefix("CELERY_").lower(): name
                for name in dir(settings)
                if name.startswith("CELERY_")
            }
        return self._cached

    def __dir__(self) -> list[str]:
        return list(self._names())

    def __getattr__(self, key: str) -> Any:
        from django.conf import settings

        name = self._names().get(key)
        if name is None:
            raise AttributeError(key)
        return getattr(settings, name)


app = Celery("accesshive")
app.config_from_object(CelerySettings())
app.autodiscover_tasks()

# The worker's heartbeat file (manage.py check_worker); connected here, in every worker.
import ops.worker  # noqa: E402, F401


@setup_logging.connect
def use_django_logging(loglevel: Any = None, **kwargs: Any) -> None:
    """Workers log like the web: settings.LOGGING's one-line formats, job context and
    redaction, instead of Celery's own handlers. The worker's -l still sets the level."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)
