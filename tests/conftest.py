"""Shared fixtures: service checks that skip loudly, or fail in CI."""

import os
from collections.abc import Iterator

import pytest

from tests import settings


def require_services(*names: str) -> None:
    """Skip (or, in CI, fail) a test whose real PostgreSQL or Redis is not reachable."""
    missing = []
    if "postgres" in names and not settings.POSTGRES_AVAILABLE:
        missing.append(f"PostgreSQL at {settings.TEST_DATABASE_URL}")
    if "redis" in names and not settings.REDIS_AVAILABLE:
        missing.append(f"Redis at {settings.TEST_REDIS_URL}")
    if not missing:
        return
    reason = (
        "needs "
        + " and ".join(missing)
        + " (start them, or set TEST_DATABASE_URL / TEST_REDIS_URL)"
    )
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI must run service tests, but this one {reason}")
    pytest.skip(reason)


@pytest.fixture
def services() -> None:
    require_services("postgres", "redis")


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    """Counters kept in Django's cache (the trail's refusals per address) start at zero."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def counter_rows_made_afresh() -> None:
    """Forget which job types this process made counter rows for: a test's rollback or flush
    takes rows made during it, and a stale memory would skip making them again."""
    from jobs import lifecycle

    lifecycle._types_with_counters.clear()


@pytest.fixture
def changes() -> Iterator[list[tuple[int, str, str]]]:
    """The status changes the engine announces to the apps that follow their jobs."""
    from jobs.signals import job_status_changed

    seen: list[tuple[int, str, str]] = []

    def follow(sender: object, *, job_id: int, from_status: str, to_status: str, **kw: object):
        seen.append((job_id, from_status, to_status))

    job_status_changed.connect(follow, weak=False)
    yield seen
    job_status_changed.disconnect(follow)
