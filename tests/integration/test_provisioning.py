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
