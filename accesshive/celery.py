"""The Celery application: configured from Django settings (CELERY_* names)."""

import logging.config
import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "accesshive.settings")

app = Celery("accesshive")
app.config_from_object("django.conf:settings", namespace="CELERY")
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
