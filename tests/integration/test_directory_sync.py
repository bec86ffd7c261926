"""Directory sync on a real prefork worker and Redis: a joiner in slapd becomes, with no
test code in between, a provisioned identity with its Google Workspace and SSO users; and
two syncs of one source sent at once leave one run and one clear refusal."""

from collections.abc import Iterator

import pytest
import redis
from django.contrib.auth.models import User

from accounts.models import ApiToken, UserRole
from accounts.roles import Role
from accounts.services import set_role
from directory import services
from directory.models import DirectoryEvent, EventKind, SyncRun
from identities.models import Identity, IdentityStatus
from jobs.models import Job, JobStatus, JobType
from jobs.services import enqueue
from sandbox import google_directory, scim
from tests.conftest import require_services
from tests.directory_support import (
    gws_platform,
    gws_source,
    ldap_source,
    running_gws,
    running_idp,
    running_slapd,
)
from tests.integration.worker import CeleryProcess, wait_for
from tests.settings import TEST_REDIS_URL
from tests.slapd import BASE_DN, Slapd
from trail.models import TrailEntry

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker() -> Iterator[CeleryProcess]:
    require_services("postgres", "redis")
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    # A sync takes longer than the 2 s the lifecycle tests give an attempt.
    process = CeleryProcess("worker", env={"ACCESSHIVE_JOB_TIMEOUT": "60"}).start()
    yield process
    process.stop()


@pytest.fixture
def slapd() -> Iterator[Slapd]:
    yield from running_slapd()


@pytest.fixture
def gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    yield from running_gws()


@pytest.fixture
def idp() -> Iterator[scim.ScimSandbox]:
    yield from running_idp()


def finished(job: Job, worker: CeleryProcess, timeout: float = 60) -> Job:
    wait_for(
        lambda: Job.objects.filter(
            pk=job.pk, status__in=[JobStatus.COMPLETED, JobStatus.FAILED]
        ).exists(),
        timeout,
        f"job #{job.pk} to finish",
        worker,
    )
    job.refresh_from_db()
    return job


def test_a_joiner_is_provisioned_by_the_worker_end_to_end(worker, slapd, gws, idp) -> None:
    for n in range(10):
        slapd.add_person(f"staff{n}")
    source = ldap_source(slapd)
    services.save_rule(source, platform=gws_platform(gws, idp), dry_run=False)
    baseline = finished(services.request_sync(source, actor=None), worker)
    assert baseline.status == JobStatus.COMPLETED, baseline.error_message

    slapd.add_person("grace", given="Grace", family="Hopper")
    job = finished(services.request_sync(source, actor=None), worker)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert (job.result or {})["joiners"] == 1
    wait_for(
        lambda: Identity.objects.filter(
            login="grace@example.com", status=IdentityStatus.PROVISIONED
        ).exists(),
        60,
        "the joiner's identity to be provisioned",
        worker,
    )
    event = DirectoryEvent.objects.get(kind=EventKind.JOINER)
    assert event.job is not None
    assert finished(event.job, worker).status == JobStatus.COMPLETED
    assert [u["primaryEmail"] for u in gws.users()] == ["grace@example.com"]
    assert idp.user("grace@example.com") is not None


def test_two_syncs_sent_at_once_one_runs_one_is_refused(worker, gws) -> None:
    gws.seed(users=[{"primaryEmail": f"user{n}@example.com"} for n in range(30)])
    source = gws_source(gws_platform(gws), page_size=5)
    # Each page stalls, so the first sync still holds the source when the second starts.
    gws.faults.add("users.list", delay_seconds=0.5, times=6)
    # Straight through enqueue, twice: "Sync now" would refuse the second one.
    jobs = [
        enqueue(JobType.DIRECTORY_SYNC, subject=source, params={"source_id": source.pk})
        for _ in range(2)
    ]

    outcomes = sorted((finished(job, worker) for job in jobs), key=lambda job: job.status)

    assert [job.status for job in outcomes] == [JobStatus.COMPLETED, JobStatus.FAILED]
    assert "already being synced" in outcomes[1].error_message
    assert SyncRun.objects.filter(source=source, status=SyncRun.Status.COMMITTED).count() == 1


def test_a_leaver_is_turned_off_in_accesshive_too_by_the_worker(worker, slapd, gws, idp) -> None:
    for n in range(10):
        slapd.add_person(f"staff{n}")
    slapd.add_person("grace", given="Grace", family="Hopper")
    source = ldap_source(slapd)
    services.save_rule(source, platform=gws_platform(gws, idp), dry_run=False)
    baseline = finished(services.request_sync(source, actor=None), worker)
    assert baseline.status == JobStatus.COMPLETED, baseline.error_message
    # Grace signs in to AccessHive with her work address and has an API token.
    account = User.objects.create_user("grace@example.com", "grace@example.com")
    set_role(account, Role.OPERATOR, actor=None)
    ApiToken.issue(account, "laptop")

    slapd.modify(f"uid=grace,ou=Research,ou=Staff,{BASE_DN}", userAccountControl=514)
    job = finished(services.request_sync(source, actor=None), worker)
    assert (job.result or {})["leavers"] == 1
    event = DirectoryEvent.objects.get(kind=EventKind.LEAVER)
    assert event.job is not None
    assert finished(event.job, worker).status == JobStatus.COMPLETED

    account.refresh_from_db()
    assert not account.is_active
    assert not ApiToken.objects.filter(user=account, revoked_at__isnull=True).exists()
    assert ApiToken.objects.filter(user=account).exists()  # revoked and kept, not deleted
    assert not UserRole.objects.filter(user=account).exists()
    assert TrailEntry.objects.filter(action="user.deactivated", target_label=account.username)
