"""provision_sso_user through the SCIM client over HTTP against scim2-server."""

from collections.abc import Iterator

import pytest

from identities.models import Identity, IdentityStatus, IdentityType, Platform
from identities.services import (
    IdentityInput,
    create_identity,
    create_identity_provider,
    create_platform,
    set_scim_token,
)
from jobs.models import AttemptOutcome, Job, JobStatus, JobType
from sandbox import scim
from tests.inline import deliver

pytestmark = pytest.mark.django_db


@pytest.fixture
def idp() -> Iterator[scim.ScimSandbox]:
    server = scim.start()
    yield server
    server.shutdown()


@pytest.fixture
def platform(idp: scim.ScimSandbox) -> Platform:
    provider = create_identity_provider(
        name="Sandbox IdP", scim_base_url=idp.base_url, token=idp.bearer_token
    )
    return create_platform(name="GitHub", kind=Platform.Kind.GITHUB, identity_provider=provider)


def human(platform: Platform, login: str = "ada@example.com") -> Identity:
    return create_identity(
        IdentityInput(
            identity_type=IdentityType.HUMAN_INTERACTIVE,
            platform=platform,
            display_name="Ada Lovelace",
            login=login,
            given_name="Ada",
            family_name="Lovelace",
        ),
        actor=None,
    )


def sso_job(identity: Identity) -> Job:
    return Job.objects.get(subject_id=str(identity.pk), job_type=JobType.PROVISION_SSO_USER)


def test_provisions_the_scim_user(idp, platform) -> None:
    identity = human(platform)
    job = deliver(sso_job(identity))

    assert job.status == JobStatus.COMPLETED
    (user,) = idp.users()
    identity.refresh_from_db()
    assert user["userName"] == "ada@example.com"
    assert user["externalId"] == str(identity.pk)
    assert user["active"] is True
    assert identity.idp_user_id == user["id"]
    # A human on a platform that is not Google Workspace gets only the SSO user.
    assert identity.status == IdentityStatus.PROVISIONED


def test_transient_error_then_success(idp, platform) -> None:
    idp.faults.add(method="POST", path="/Users", status=503, detail="IdP is restarting")
    job = deliver(sso_job(human(platform)))
    assert job.status == JobStatus.RETRYING
    assert "IdP is restarting" in job.error_message

    job = deliver(job)
    assert job.status == JobStatus.COMPLETED
    assert [a.outcome for a in job.attempts.all()] == [
        AttemptOutcome.FAILED,
        AttemptOutcome.SUCCEEDED,
    ]
    assert len(idp.users()) == 1


def test_lost_answer_then_retry_makes_exactly_one_user(idp, platform) -> None:
    idp.faults.add(method="POST", path="/Users", mode=scim.SILENT_SUCCESS_THEN_409)
    job = deliver(sso_job(human(platform)))
    assert job.status == JobStatus.RETRYING

    job = deliver(job)
    assert job.status == JobStatus.COMPLETED
    (user,) = idp.users()
    assert (job.result or {})["idp_user_id"] == user["id"]


def test_permanent_error_quotes_the_idp(idp, platform) -> None:
    idp.faults.add(
        method="POST", path="/Users", status=400, detail="userName must be an email address"
    )
    identity = human(platform)
    job = deliver(sso_job(identity))

    assert job.status == JobStatus.FAILED
    assert job.attempt_count == 1
    assert "ada@example.com" in job.error_message
    assert "userName must be an email address" in job.error_message
    identity.refresh_from_db()
    assert identity.status == IdentityStatus.FAILED
    assert idp.users() == []


def test_wrong_token_is_permanent_and_says_so(idp, platform) -> None:
    assert platform.identity_provider is not None
    set_scim_token(platform.identity_provider, "not-the-token")
    job = deliver(sso_job(human(platform)))
    assert job.status == JobStatus.FAILED
    assert "401" in job.error_message
    assert "not-the-token" not in job.error_message + job.error_traceback
