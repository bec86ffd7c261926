"""Celery reads Django's CELERY_* settings under its own names, and sees a setting changed by a
test (or added) at once, though the names are worked out only once."""

from django.test import override_settings

from accesshive.celery import CelerySettings, app


def test_celery_names_follow_the_django_settings() -> None:
    conf = CelerySettings()
    assert "task_default_queue" in dir(conf)
    with override_settings(CELERY_TASK_DEFAULT_QUEUE="elsewhere", CELERY_NEW_OPTION=7):
        assert conf.task_default_queue == "elsewhere"
        assert conf.new_option == 7
        assert "new_option" in dir(conf)
    assert "new_option" not in dir(conf)
    assert conf.task_default_queue == app.conf.task_default_queue


def test_only_celery_settings_are_seen() -> None:
    assert not hasattr(CelerySettings(), "redis_url")
    assert not hasattr(CelerySettings(), "database_url")
