"""Asset discovery's OAuth-token listing, cut short by its time limit on a real worker, goes on
from the last page of users it recorded instead of from the first user."""

from collections.abc import Iterator

import pytest
import redis

from assets import services
from assets.models import Asset, AssetKind, TokenListingProgress
from jobs.models import AttemptOutcome, JobStatus
from tests import factories
from tests.conftest import require_services
from tests.integration.worker import CeleryProcess, wait_for
from tests.settings import TEST_REDIS_URL

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

USERS, PAGE, LIMIT = 24, 4, 3
WORKER_ENV = {
    "ACCESSHIVE_JOB_TIMEOUTS": f"asset_discovery={LIMIT}",
    "ACCESSHIVE_ASSETS_TOKEN_USER_PAGE": str(PAGE),
    "ACCESSHIVE_RATE_LIMITS": "google_workspace=1000/1000",
}


@pytest.fixture
def worker(settings) -> Iterator[CeleryProcess]:
    require_services("postgres", "redis")
    # The message carries its type's time limit from the enqueuing process: the same here.
    settings.JOB_TIMEOUTS = {**settings.JOB_TIMEOUTS, "asset_discovery": LIMIT}
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    process = CeleryProcess("worker", WORKER_ENV).start()
    yield process
    process.stop()


def test_a_timed_out_token_listing_resumes_after_the_last_recorded_page(worker, gws) -> None:
    platform = factories.make_sandbox_platform(gws)
    emails = [f"person{n:02d}@example.com" for n in range(USERS)]
    gws.directory.seed_users([{"primaryEmail": email} for email in emails])
    for email in emails:
        gws.assets.add_token(email, f"client-{email[:8]}", "Slack")
    # Every tokens.list answer takes 0.25 s: 6 s for all users, twice the time limit.
    gws.faults.add("tokens.list", delay_seconds=0.25, times=None)

    job, _ = services.discover_now(platform, actor=None)
    wait_for(
        lambda: job.__class__.objects.filter(
            pk=job.pk, status__in=[JobStatus.COMPLETED, JobStatus.FAILED]
        ).exists(),
        90,
        "the discovery to finish",
        worker,
    )
    job.refresh_from_db()

    assert job.status == JobStatus.COMPLETED, job.error_message
    outcomes = [attempt.outcome for attempt in job.attempts.all()]
    assert outcomes[0] == AttemptOutcome.TIMED_OUT
    assert outcomes[-1] == AttemptOutcome.SUCCEEDED
    timeouts = outcomes.count(AttemptOutcome.TIMED_OUT)
    # Only the page in progress when an attempt was cut short is listed again.
    assert USERS <= gws.calls().count("tokens.list") <= USERS + timeouts * PAGE
    assert (job.result or {})["tokens_resumed_after_users"] > 0
    tokens = Asset.objects.filter(platform=platform, kind=AssetKind.OAUTH_TOKEN)
    assert tokens.count() == USERS
    assert not tokens.filter(gone_at__isnull=False).exists()
    assert (job.result or {})["kinds"]["oauth_token"]["new"] == USERS
    assert not TokenListingProgress.objects.exists()
