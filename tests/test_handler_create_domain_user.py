"""create_domain_user through google-api-python-client over HTTP against the sandbox."""

from collections.abc import Iterator

import pytest

from identities.models import Identity, IdentityStatus, IdentityType, Platform
from identities.services import IdentityInput, create_identity, create_platform
from jobs.models import AttemptOutcome, Job, JobStatus
from jobs.services import retry_job
from sandbox import google_directory
from tests.inline import deliver
from vault.backends import get_vault

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    server = google_directory.start(domains=["example.com"])
    yield server
    server.shutdown()


@pytest.fixture
def platform(gws: google_directory.GoogleDirectorySandbox) -> Platform:
    return create_platform(
        name="Sandbox Workspace",
        kind=Platform.Kind.GOOGLE_WORKSPACE,
        primary_domain="example.com",
        admin_email="admin@example.com",
        api_endpoint=gws.base_url,
        service_account_key=gws.issue_key(),
    )


def managed_identity(platform: Platform, login: str = "shared-ops@example.com") -> Identity:
    return create_identity(
        IdentityInput(
            identity_type=IdentityType.SHARED_CREDENTIAL_MANAGED,
            platform=platform,
            display_name="Ops shared",
            login=login,
            given_name="Ops",
            family_name="Shared",
        ),
        actor=None,
    )


def only_job(identity: Identity) -> Job:
    (job,) = Job.objects.filter(subject_id=str(identity.pk))
    return job


def vault_password(identity: Identity) -> str:
    return get_vault().read(identity.password_path)["password"]


def test_creates_the_user_with_the_vaults_password(gws, platform) -> None:
    identity = managed_identity(platform)
    job = deliver(only_job(identity))

    assert job.status == JobStatus.COMPLETED
    identity.refresh_from_db()
    (user,) = gws.users()
    assert user["primaryEmail"] == "shared-ops@example.com"
    assert identity.gws_user_id == user["id"]
    assert identity.status == IdentityStatus.PROVISIONED
    assert gws.password_of(user["id"]) == vault_password(identity)
    assert (job.result or {})["password_ref"] == f"vault:{identity.password_path}#1"
    assert vault_password(identity) not in str(job.result)


def test_transient_error_then_success(gws, platform) -> None:
    gws.faults.add("users.insert", status=503, reason="backendError", message="Backend Error")
    identity = managed_identity(platform)
    job = deliver(only_job(identity))
    assert job.status == JobStatus.RETRYING
    assert "503" in job.error_message
    assert "Backend Error" in job.error_message
    identity.refresh_from_db()
    assert identity.status == IdentityStatus.PROVISIONING

    job = deliver(job)
    assert job.status == JobStatus.COMPLETED
    assert [a.outcome for a in job.attempts.all()] == [
        AttemptOutcome.FAILED,
        AttemptOutcome.SUCCEEDED,
    ]
    assert len(gws.users()) == 1


def test_rate_limit_403_is_retried(gws, platform) -> None:
    gws.faults.add("users.insert", status=403, reason="userRateLimitExceeded")
    job = deliver(only_job(managed_identity(platform)))
    assert job.status == JobStatus.RETRYING


def test_409_after_a_silent_success_adopts_the_one_user(gws, platform) -> None:
    gws.faults.add("users.insert", mode=google_directory.SILENT_SUCCESS_THEN_409)
    identity = managed_identity(platform)
    job = deliver(only_job(identity))
    assert job.status == JobStatus.RETRYING  # the answer was "lost" (503)

    job = deliver(job)
    assert job.status == JobStatus.COMPLETED
    assert (job.result or {})["adopted"] is True
    (user,) = gws.users()
    identity.refresh_from_db()
    assert identity.gws_user_id == user["id"]
    # The password Google holds is still the one in the vault.
    assert gws.password_of(user["id"]) == vault_password(identity)


def test_409_for_a_user_we_did_not_create_is_a_clear_conflict(gws, platform) -> None:
    first = managed_identity(platform, "taken@example.com")
    deliver(only_job(first))
    # Someone deletes our record of it; a new identity for the same address must not adopt it.
    Job.objects.filter(subject_id=str(first.pk)).delete()
    Identity.objects.filter(pk=first.pk).delete()
    second = managed_identity(platform, "taken@example.com")
    job = deliver(only_job(second))

    assert job.status == JobStatus.FAILED
    assert job.attempt_count == 1
    assert "already has a user taken@example.com that AccessHive did not create" in (
        job.error_message
    )
    assert len(gws.users()) == 1


def test_permanent_error_quotes_google(gws, platform) -> None:
    gws.faults.add(
        "users.insert", status=400, reason="invalid", message="Invalid Input: primary_user_email"
    )
    identity = managed_identity(platform)
    job = deliver(only_job(identity))

    assert job.status == JobStatus.FAILED
    assert job.attempt_count == 1
    assert "shared-ops@example.com" in job.error_message
    assert "Invalid Input: primary_user_email" in job.error_message
    identity.refresh_from_db()
    assert identity.status == IdentityStatus.FAILED
    assert gws.users() == []


def test_forbidden_403_is_permanent(gws, platform) -> None:
    gws.faults.add("users.insert", status=403, reason="forbidden", message="Not Authorized")
    job = deliver(only_job(managed_identity(platform)))
    assert job.status == JobStatus.FAILED
    assert "Not Authorized" in job.error_message


def test_an_admins_retry_after_a_failure_provisions_the_identity(gws, platform, admin_user) -> None:
    gws.faults.add("users.insert", status=400, reason="invalid", message="Invalid Input: orgUnit")
    identity = managed_identity(platform)
    job = deliver(only_job(identity))
    identity.refresh_from_db()
    assert identity.status == IdentityStatus.FAILED

    assert retry_job(job, actor=admin_user)
    identity.refresh_from_db()
    assert identity.status == IdentityStatus.PROVISIONING

    job = deliver(job)
    identity.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert identity.status == IdentityStatus.PROVISIONED
