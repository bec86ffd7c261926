"""Integration tests: this process and the workers it starts share the same job settings,
as web and worker processes of one deployment do (a message carries its type's time limits)."""

from typing import Any

import pytest

from tests.integration.worker import FAST_JOB_ENV


@pytest.fixture(autouse=True)
def fast_job_settings(settings: Any) -> None:
    settings.JOB_TIMEOUT = int(FAST_JOB_ENV["ACCESSHIVE_JOB_TIMEOUT"])
    settings.JOB_HARD_TIMEOUT_GRACE = int(FAST_JOB_ENV["ACCESSHIVE_JOB_HARD_TIMEOUT_GRACE"])
    settings.JOB_HARD_TIMEOUT = settings.JOB_TIMEOUT + settings.JOB_HARD_TIMEOUT_GRACE
    settings.JOB_BACKOFF_BASE = int(FAST_JOB_ENV["ACCESSHIVE_JOB_BACKOFF_BASE"])
    settings.JOB_BACKOFF_MAX = int(FAST_JOB_ENV["ACCESSHIVE_JOB_BACKOFF_MAX"])
    settings.JOB_SWEEP_GRACE = int(FAST_JOB_ENV["ACCESSHIVE_JOB_SWEEP_GRACE"])
