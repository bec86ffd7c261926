"""A Human Interactive identity provisioned by a real worker: Google Workspace user and SSO
user, over HTTP to the sandbox servers, secrets through the vault."""

from collections.abc import Iterator

import pytest
import redis

from identities.models import Identity, IdentityStatus, IdentityType, Platform
from identities.services import (
    IdentityInput,
    create_identity,
    create_identity_provider,
    create_platform,
)
from jobs.models import AttemptOutcome, Job, JobStatus, JobType
from sandbox import google_directory, scim
from tests.conftest import require_services
from tests.integration.worker import CeleryProcess, wait_for
from tests.settings import TEST_REDIS_URL
from vault.backends import get_vault

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker() -> Iterator[CeleryProcess]:
    require_services("postgres", "redis")
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    process = CeleryProcess("worker").start()
    yield process
    process.stop()


@pytest.fixture
def gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    server = google_directory.start(domains=["example.com"], org_units=["/Engineering"])
    yield server
    server.shutdown()


@pytest.fixture
def idp() -> Iterator[scim.ScimSandbox]:
    server = scim.start()
    yield server
    server.shutdown()


@pytest.fixture
def platform(gws, idp) -> Platform:
    provider = create_identity_provider(
        name="Sandbox IdP", scim_base_url=idp.base_url, token=idp.bearer_token
    )
    return create_platform(
        name="Sandbox Workspace",
        kind=Platform.Kind.GOOGLE_WORKSPACE,
        identity_provider=provider,
        primary_domain="example.com",
        admin_email="admin@example.com",
        api_endpoint=gws.base_url,
        service_account_key=gws.issue_key(),
    )


def submit_human(platform: Platform) -> Identity:
    return create_identity(
        IdentityInput(
            identity_type=IdentityType.HUMAN_INTERACTIVE,
            platform=platform,
            display_name="Grace Hopper",
            login="grace@example.com",
            given_name="Grace",
            family_name="Hopper",
            org_unit_path="/Engineering",
        ),
        actor=None,
    )


def wait_until_settled(identity: Identity, worker: CeleryProcess) -> Identity:
    wait_for(
        lambda: Identity.objects.filter(
            pk=identity.pk, status__in=[IdentityStatus.PROVISIONED, IdentityStatus.FAILED]
        ).exists(),
        30,
        "the identity to settle",
        worker,
    )
    identity.refresh_from_db()
    return identity


def test_human_interactive_gets_a_workspace_user_and_an_sso_user(
    worker, gws, idp, platform
) -> None:
    identity = wait_until_settled(submit_human(platform), worker)

    assert identity.status == IdentityStatus.PROVISIONED
    jobs = {job.job_type: job for job in Job.objects.filter(subject_id=str(identity.pk))}
    assert set(jobs) == {JobType.CREATE_DOMAIN_USER, JobType.PROVISION_SSO_USER}
    assert all(job.status == JobStatus.COMPLETED for job in jobs.values())
    (gws_user,) = gws.users()
    assert gws_user["primaryEmail"] == "grace@example.com"
    assert gws_user["orgUnitPath"] == "/Engineering"
    assert gws.password_of(gws_user["id"]) == get_vault().read(identity.password_path)["password"]
    (sso_user,) = idp.users()
    assert sso_user["userName"] == "grace@example.com"
    assert identity.gws_user_id == gws_user["id"]
    assert identity.idp_user_id == sso_user["id"]


def test_a_transient_google_error_is_retried_to_completion(worker, gws, idp, platform) -> None:
    gws.faults.add("users.insert", status=503, reason="backendError", message="Backend Error")
    identity = wait_until_settled(submit_human(platform), worker)

    assert identity.status == IdentityStatus.PROVISIONED
    job = Job.objects.get(subject_id=str(identity.pk), job_type=JobType.CREATE_DOMAIN_USER)
    assert [a.outcome for a in job.attempts.all()] == [
        AttemptOutcome.FAILED,
        AttemptOutcome.SUCCEEDED,
    ]
    assert "Backend Error" in job.attempts.first().error_message  # type: ignore[union-attr]
    assert len(gws.users()) == 1


def test_sso_user_waits_for_the_google_user_and_is_not_run_when_it_fails(
    worker, gws, idp, platform, admin_user
) -> None:
    from jobs.services import retry_job

    gws.faults.add(
        "users.insert", status=403, reason="forbidden", message="Not Authorized", times=None
    )
    identity = wait_until_settled(submit_human(platform), worker)

    gws_job = Job.objects.get(subject_id=str(identity.pk), job_type=JobType.CREATE_DOMAIN_USER)
    sso_job = Job.objects.get(subject_id=str(identity.pk), job_type=JobType.PROVISION_SSO_USER)
    assert identity.status == IdentityStatus.FAILED
    assert gws_job.status == JobStatus.FAILED
    assert sso_job.status == JobStatus.FAILED
    assert sso_job.error_message.startswith(f"not run: #{gws_job.pk} failed: ")
    assert "Not Authorized" in sso_job.error_message
    assert sso_job.attempt_count == 0  # no worker ever ran it
    assert idp.users() == []

    gws.faults.clear()
    assert retry_job(gws_job, actor=admin_user)
    identity = wait_until_settled(identity, worker)

    assert identity.status == IdentityStatus.PROVISIONED
    gws_job.refresh_from_db()
    sso_job.refresh_from_db()
    assert gws_job.status == sso_job.status == JobStatus.COMPLETED
    assert sso_job.started_at >= gws_job.completed_at  # type: ignore[operator]
    (sso_user,) = idp.users()
    assert sso_user["userName"] == "grace@example.com"
    assert [e.kind for e in sso_job.events.all()] == ["released"]


def test_sso_job_shows_what_it_waits_for_until_the_google_user_exists(
    worker, gws, idp, platform
) -> None:
    gws.faults.add("users.insert", delay_seconds=0.5)
    identity = submit_human(platform)
    gws_job = Job.objects.get(subject_id=str(identity.pk), job_type=JobType.CREATE_DOMAIN_USER)
    sso_job = Job.objects.get(subject_id=str(identity.pk), job_type=JobType.PROVISION_SSO_USER)
    assert sso_job.status == JobStatus.WAITING
    assert sso_job.waiting_reason == f"waiting for #{gws_job.pk}"

    identity = wait_until_settled(identity, worker)
    assert identity.status == IdentityStatus.PROVISIONED
    sso_job.refresh_from_db()
    gws_job.refresh_from_db()
    assert sso_job.started_at >= gws_job.completed_at  # type: ignore[operator]
    assert sso_job.waiting_reason == ""
