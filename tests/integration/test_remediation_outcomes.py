"""A remediation that fails for good on a real worker leaves its violation visibly failed, with
the error and a Retry; the Retry, once the cause is fixed, remediates it."""

from collections.abc import Iterator

import pytest
import redis

from assets import services as asset_services
from jobs.models import Job, JobStatus
from policies.models import Action, Mode, PolicyKind, Violation, ViolationStatus
from policies.services import retry_remediation
from tests import factories
from tests.conftest import require_services
from tests.integration.worker import CeleryProcess, wait_for
from tests.policies_support import make_policy
from tests.settings import TEST_REDIS_URL

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker() -> Iterator[CeleryProcess]:
    require_services("postgres", "redis")
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    process = CeleryProcess("worker", env={"ACCESSHIVE_JOB_TIMEOUT": "30"}).start()
    yield process
    process.stop()


def violation_in(status: str, worker: CeleryProcess) -> Violation:
    wait_for(lambda: Violation.objects.filter(status=status).exists(), 60, status, worker)
    return Violation.objects.get()


def test_a_failed_remediation_is_shown_failed_and_a_retry_remediates(worker, gws) -> None:
    platform = factories.make_sandbox_platform(gws)
    [ada] = gws.directory.seed_users(
        [{"primaryEmail": "ada@example.com", "isEnrolledIn2Sv": False}]
    )
    make_policy(platform, PolicyKind.NO_2SV, action=Action.SUSPEND_USER, mode=Mode.AUTOMATIC)
    gws.faults.add(
        "users.update", status=403, reason="forbidden", message="Not Authorized", times=None
    )

    # Discovery, then (after it commits) evaluation and the automatic remediation: all the
    # worker's doing.
    asset_services.discover_now(platform, actor=None)
    violation = violation_in(ViolationStatus.REMEDIATION_FAILED, worker)

    job = violation.remediation_job
    assert job is not None
    assert job.status == JobStatus.FAILED
    assert "Not Authorized" in violation.outcome
    assert gws.directory.get(ada)["suspended"] is False

    gws.faults.clear()
    retry_remediation(violation, actor=factories.make_user("decider"))
    assert Violation.objects.get().status == ViolationStatus.REMEDIATING
    violation = violation_in(ViolationStatus.REMEDIATED, worker)
    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED
    assert gws.directory.get(ada)["suspended"] is True
    assert violation.outcome == "suspended user ada@example.com in Google Workspace"
