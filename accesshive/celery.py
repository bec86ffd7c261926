"""The Celery application: configured from Django settings (CELERY_* names only)."""

import functools
import logging.config
import os
from typing import Any

from celery import Celery
from celery.app.amqp import AMQP, task_message
from celery.signals import setup_logging
from django.core.signals import setting_changed
from django.dispatch import receiver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "accesshive.settings")


# Read by Celery under its Django name (celery.fixups.django), so passed on unchanged.
AS_NAMED = frozenset({"CELERY_DB_REUSE_MAX"})


@functools.cache
def celery_names() -> dict[str, str]:
    """Celery's name -> the Django setting's, read once: Celery looks its settings up on
    every message sent and run, and ``dir(settings)`` costs more than the rest of a send."""
    from django.conf import settings

    return {
        name if name in AS_NAMED else name.removeprefix("CELERY_").lower(): name
        for name in dir(settings)
        if name.startswith("CELERY_")
    }


@receiver(setting_changed)
def forget_celery_names(setting: str, **kwargs: Any) -> None:
    if setting.startswith("CELERY_"):  # override_settings may add or remove one
        celery_names.cache_clear()


class CelerySettings:
    """Django's CELERY_* settings as Celery's own names (CELERY_BROKER_URL -> broker_url), and
    nothing else. Celery's config (``celery inspect conf``, Flower's Config tab) then holds
    no other setting (REDIS_URL, DATABASE_URL and their passwords), and Celery masks the
    password of broker_url, which it does not recognise under the CELERY_ namespace."""

    def __dir__(self) -> list[str]:
        return list(celery_names())

    def __getattr__(self, key: str) -> Any:
        from django.conf import settings

        name = celery_names().get(key)
        if name is None:
            raise AttributeError(key)
        return getattr(settings, name)


class ShadowedAMQP(AMQP):
    """The task-sent event names a message by its shadow name, as the worker's events do
    (task-received onwards): Flower shows a queued job's type too, not only the one task's
    name (jobs.services.task_name). Celery puts the task's own name there."""

    def as_task_v2(self, *args: Any, **kwargs: Any) -> task_message:
        message = super().as_task_v2(*args, **kwargs)
        shadow = message.headers.get("shadow")
        if shadow and message.sent_event is not None:
            message.sent_event["name"] = shadow
        return message


app = Celery("accesshive", amqp=ShadowedAMQP)
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
