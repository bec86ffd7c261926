"""AccessHive project package: settings, the Celery app and URL wiring."""

from accesshive.celery import app as celery_app

__all__ = ["celery_app"]
