"""Integration tests: this process and the workers it starts share the same job settings,
as web and worker processes of one deployment do (a message carries its type's time limits)."""

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from sandbox import google_directory
from tests.conftest import require_services
from tests.integration.worker import FAST_JOB_ENV
from tests.settings import TEST_REDIS_URL


@pytest.fixture(autouse=True)
def fast_job_settings(settings: Any) -> None:
    settings.JOB_TIMEOUT = int(FAST_JOB_ENV["ACCESSHIVE_JOB_TIMEOUT"])
    settings.JOB_HARD_TIMEOUT_GRACE = int(FAST_JOB_ENV["ACCESSHIVE_JOB_HARD_TIMEOUT_GRACE"])
    settings.JOB_HARD_TIMEOUT = settings.JOB_TIMEOUT + settings.JOB_HARD_TIMEOUT_GRACE
    settings.JOB_BACKOFF_BASE = int(FAST_JOB_ENV["ACCESSHIVE_JOB_BACKOFF_BASE"])
    settings.JOB_BACKOFF_MAX = int(FAST_JOB_ENV["ACCESSHIVE_JOB_BACKOFF_MAX"])
    settings.JOB_SWEEP_GRACE = int(FAST_JOB_ENV["ACCESSHIVE_JOB_SWEEP_GRACE"])


@pytest.fixture
def broker() -> Iterator["redis.Redis[bytes]"]:
    """The test broker's Redis database, empty before and after the test."""
    require_services("postgres", "redis")
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    """The Google Directory sandbox for example.com (a module may define its own)."""
    server = google_directory.start(domains=["example.com"])
    yield server
    server.shutdown()
