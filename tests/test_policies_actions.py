"""The remediation job's actions over real HTTP against the sandbox (suspend a user, revoke an
OAuth grant, rotate a credential through PAM's rotation job, remove from a group, deactivate
the SSO user in scim2-server), its re-check, and that running it again changes nothing new."""

import datetime as dt
from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken
from identities.handlers.common import scim_client
from identities.models import Identity
from identities.services import create_identity_provider
from jobs.models import Job, JobStatus, JobType, Trigger
from policies import handlers
from policies.models import Action, Mode, PolicyKind, Violation, ViolationStatus
from policies.services import approve_violation, evaluate_policy
from sandbox import google_directory, scim
from tests import factories
from tests.inline import deliver
from tests.policies_support import discover, make_policy
from trail.models import TrailEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    server = google_directory.start(domains=["example.com"])
    yield server
    server.shutdown()


@pytest.fixture
def platform(gws):
    return factories.make_sandbox_platform(gws)


@pytest.fixture
def ada(gws) -> str:
    [user_id] = gws.directory.seed_users(
        [{"primaryEmail": "ada@example.com", "isEnrolledIn2Sv": False}]
    )
    return str(user_id)


def remediation_of(violation: Violation) -> Job:
    assert violation.remediation_job is not None
    return violation.remediation_job


def only_violation(policy) -> Violation:
    [violation] = Violation.objects.filter(policy=policy)
    return violation


def test_suspend_user_automatically_and_idempotently(gws, platform, ada) -> None:
    policy = make_policy(
        platform, PolicyKind.NO_2SV, action=Action.SUSPEND_USER, mode=Mode.AUTOMATIC
    )
    discover(platform)
    assert evaluate_policy(policy, trigger=Trigger.JOB)["remediations"] == 1
    violation = only_violation(policy)
    assert violation.status == ViolationStatus.REMEDIATING
    job = deliver(remediation_of(violation))
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert gws.directory.get(ada)["suspended"] is True
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.REMEDIATED
    assert violation.outcome == "suspended user ada@example.com in Google Workspace"
    assert (job.result or {})["outcome"] == violation.outcome

    # A second run of the same job (a late duplicate) changes nothing.
    again = handlers.run(job)
    assert (again or {})["resumed"] is True
    # The snapshot still shows the user active: evaluation neither reopens nor remediates.
    assert evaluate_policy(policy, trigger=Trigger.JOB) == {
        "opened": 0,
        "closed": 0,
        "remediations": 0,
    }
    # The next discovery sees the suspension, and the violation closes, keeping its status.
    discover(platform)
    assert evaluate_policy(policy, trigger=Trigger.JOB)["closed"] == 1
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.REMEDIATED
    assert violation.closed_at is not None


def test_suspending_an_already_suspended_user_is_fine(gws, platform, ada) -> None:
    policy = make_policy(platform, PolicyKind.NO_2SV, action=Action.SUSPEND_USER)
    discover(platform)
    evaluate_policy(policy, trigger=Trigger.JOB)
    violation = only_violation(policy)
    gws.directory.update(ada, {"suspended": True})  # by hand, after the snapshot
    job = deliver(approve_violation(violation, actor=None))
    assert job.status == JobStatus.COMPLETED, job.error_message
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.REMEDIATED
    assert violation.outcome == "user ada@example.com was already suspended"


def test_remediation_rechecks_and_closes_when_no_longer_holding(gws, platform, ada) -> None:
    policy = make_policy(platform, PolicyKind.NO_2SV, action=Action.SUSPEND_USER)
    discover(platform)
    evaluate_policy(policy, trigger=Trigger.JOB)
    violation = only_violation(policy)
    job = approve_violation(violation, actor=None)
    gws.directory.update(ada, {"suspended": True})
    discover(platform)  # the snapshot no longer shows it; no evaluation yet
    job = deliver(job)
    assert (job.result or {})["outcome"] == "no longer holds"
    violation.refresh_from_db()
    assert (violation.status, violation.outcome) == (ViolationStatus.CLOSED, "no longer holds")
    assert violation.closed_at is not None


def test_revoke_oauth_token(gws, platform, ada) -> None:
    gws.assets.add_token("ada@example.com", "1-mailer.apps", "Mailer")
    gws.assets._tokens[ada]["1-mailer.apps"]["scopes"] = ["https://mail.google.com/"]
    policy = make_policy(
        platform, PolicyKind.BROAD_OAUTH_APP, action=Action.REVOKE_TOKEN, mode=Mode.AUTOMATIC
    )
    discover(platform)
    evaluate_policy(policy, trigger=Trigger.JOB)
    violation = only_violation(policy)
    job = deliver(remediation_of(violation))
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert gws.assets._tokens[ada] == {}
    violation.refresh_from_db()
    assert violation.outcome.startswith("revoked the grant Mailer")
    # Revoking again through the connector is "already gone", not an error.
    violation.status = ViolationStatus.REMEDIATING
    assert handlers.revoke_token(violation, job).startswith("the grant Mailer")
    discover(platform)
    assert evaluate_policy(policy, trigger=Trigger.JOB)["closed"] == 1


def test_rotate_credential_through_pam_rotation(gws, platform) -> None:
    identity = factories.make_managed_credential(platform)
    Identity.objects.filter(pk=identity.pk).update(
        created_at=timezone.now() - dt.timedelta(days=40)
    )
    policy = make_policy(
        platform,
        PolicyKind.STALE_CREDENTIAL,
        parameters={"days": 30},
        action=Action.ROTATE_CREDENTIAL,
        mode=Mode.AUTOMATIC,
    )
    before = gws.password_of(identity.gws_user_id)
    evaluate_policy(policy, trigger=Trigger.JOB)
    violation = only_violation(policy)
    job = deliver(remediation_of(violation))
    assert job.status == JobStatus.COMPLETED, job.error_message
    [rotation] = Job.objects.filter(job_type=JobType.CREDENTIAL_ROTATION)
    # A second run finds the rotation it started instead of starting another.
    violation.status = ViolationStatus.REMEDIATING
    handlers.rotate_credential(violation, job)
    assert Job.objects.filter(job_type=JobType.CREDENTIAL_ROTATION).count() == 1
    assert deliver(rotation).status == JobStatus.COMPLETED
    assert gws.password_of(identity.gws_user_id) != before
    assert evaluate_policy(policy, trigger=Trigger.JOB)["closed"] == 1


def test_remove_admin_from_privileged_group(gws, platform) -> None:
    [ada] = gws.directory.seed_users([{"primaryEmail": "ada@example.com", "isAdmin": True}])
    group = gws.groups.insert({"email": "super-admins@example.com", "name": "Super admins"})
    gws.groups.insert_member(group["id"], {"email": "ada@example.com"})
    policy = make_policy(
        platform,
        PolicyKind.ADMIN_OUTSIDE_GROUP,
        parameters={
            "allowed_group": "break-glass@example.com",
            "privileged_group": "super-admins@example.com",
        },
        action=Action.REMOVE_FROM_GROUP,
        mode=Mode.AUTOMATIC,
    )
    discover(platform)
    evaluate_policy(policy, trigger=Trigger.JOB)
    violation = only_violation(policy)
    assert violation.subject_id == ada
    job = deliver(remediation_of(violation))
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert gws.groups._members[group["id"]] == {}
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.REMEDIATED
    assert violation.outcome == ("removed user ada@example.com from group super-admins@example.com")
    # Removing again is "not a member", not an error.
    violation.status = ViolationStatus.REMEDIATING
    assert handlers.remove_from_group(violation, job) == (
        "user ada@example.com was not a member of super-admins@example.com"
    )


@pytest.fixture
def idp() -> Iterator[scim.ScimSandbox]:
    server = scim.start()
    yield server
    server.shutdown()


def test_deactivate_sso_user(gws, platform, ada, idp) -> None:
    platform.identity_provider = create_identity_provider(
        name="Sandbox IdP", scim_base_url=idp.base_url, token=idp.bearer_token
    )
    platform.save()
    with scim_client(platform.identity_provider, platform) as client:
        sso = client.create_user("ada@example.com", "Ada", "Lovelace", "ada@example.com", "x1")
    factories.make_identity(
        platform=platform, login="ada@example.com", gws_user_id=ada, idp_user_id=sso.id
    )
    policy = make_policy(
        platform, PolicyKind.NO_2SV, action=Action.DEACTIVATE_SSO_USER, mode=Mode.AUTOMATIC
    )
    discover(platform)
    evaluate_policy(policy, trigger=Trigger.JOB)
    violation = only_violation(policy)
    job = deliver(remediation_of(violation))
    assert job.status == JobStatus.COMPLETED, job.error_message
    [user] = idp.users()
    assert (user["id"], user["active"]) == (sso.id, False)
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.REMEDIATED
    assert violation.outcome == "deactivated SSO user ada@example.com"
    # Already inactive is success, not a second change.
    violation.status = ViolationStatus.REMEDIATING
    assert handlers.deactivate_sso_user(violation, job) == (
        "SSO user ada@example.com was already inactive"
    )


def test_a_remediation_that_fails_for_good_shows_remediation_failed_and_retries(
    gws, platform, ada, client
) -> None:
    policy = make_policy(
        platform, PolicyKind.NO_2SV, action=Action.SUSPEND_USER, mode=Mode.AUTOMATIC
    )
    discover(platform)
    evaluate_policy(policy, trigger=Trigger.JOB)
    violation = only_violation(policy)
    gws.faults.add("users.update", status=403, reason="forbidden", message="Not Authorized")
    job = deliver(remediation_of(violation))

    assert job.status == JobStatus.FAILED
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.REMEDIATION_FAILED
    assert "Not Authorized" in violation.outcome
    decider = factories.make_user(
        "decider", perms=("policies.view_violation", "policies.decide_violation")
    )
    client.force_login(decider)
    page = client.get(reverse("policies:violations")).content.decode()
    assert "Remediation failed" in page
    assert reverse("policies:retry", args=[violation.pk]) in page
    assert reverse("policies:dismiss", args=[violation.pk]) in page  # or accept it as it is
    assert 'hx-trigger="every 3s"' not in page  # nothing is remediating

    response = client.post(reverse("policies:retry", args=[violation.pk]))
    assert response.status_code == 302
    violation.refresh_from_db()
    assert (violation.status, violation.outcome) == (ViolationStatus.REMEDIATING, "")
    page = client.get(reverse("policies:violations")).content.decode()
    assert 'hx-trigger="every 3s"' in page  # refreshes itself while it remediates
    fragment = client.get(reverse("policies:violations"), HTTP_HX_REQUEST="true")
    assert fragment.content.decode().lstrip().startswith('<div id="violations-live"')

    assert deliver(job).status == JobStatus.COMPLETED
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.REMEDIATED
    assert gws.directory.get(ada)["suspended"] is True
    assert TrailEntry.objects.filter(action="job.retried").count() == 1


def test_a_failed_remediation_is_retried_over_the_api(gws, platform, ada) -> None:
    policy = make_policy(
        platform, PolicyKind.NO_2SV, action=Action.SUSPEND_USER, mode=Mode.AUTOMATIC
    )
    discover(platform)
    evaluate_policy(policy, trigger=Trigger.JOB)
    violation = only_violation(policy)
    gws.faults.add("users.update", status=403, reason="forbidden", message="Not Authorized")
    deliver(remediation_of(violation))
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.REMEDIATION_FAILED
    viewer = factories.make_user("viewer", perms=("policies.view_violation",))
    decider = factories.make_user(
        "decider", perms=("policies.view_violation", "policies.decide_violation")
    )
    url = f"/api/v1/violations/{violation.pk}/retry/"

    _, raw = ApiToken.issue(viewer, "script")
    assert Client().post(url, HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 403
    _, raw = ApiToken.issue(decider, "script")
    response = Client().post(url, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    assert response.json()["status"] == ViolationStatus.REMEDIATING
    assert remediation_of(violation).status == JobStatus.PENDING
    # Retrying what is no longer failed is refused with the reason.
    again = Client().post(url, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert again.status_code == 409
    assert "not failed" in again.json()["detail"]
