"""The violation lifecycle without the network: approval and dismissal (recorded), one
remediation however often or concurrently evaluation runs, evaluation after a completed
discovery, and the pages' and API's auth, permissions and CSRF."""

import datetime as dt
import threading

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken
from assets.models import Asset, AssetKind
from audit.models import AuditEvent
from directory.models import IdentitySource
from identities.models import Platform
from jobs.models import Job, JobStatus, JobType, Trigger
from jobs.services import enqueue
from policies import receivers
from policies.models import Action, Decision, Mode, Policy, PolicyKind, Violation, ViolationStatus
from policies.services import (
    DecisionRefused,
    approve_violation,
    dismiss_violation,
    evaluate_policy,
)
from tests import factories
from tests.conftest import require_services
from tests.policies_support import make_policy

pytestmark = pytest.mark.django_db

DECIDER_PERMS = ("policies.view_violation", "policies.decide_violation", "policies.view_policy")


def user_asset(platform: Platform, user_id: str, email: str, *, two_sv: bool = False) -> Asset:
    """A user as asset discovery records it (the snapshot the evaluators read)."""
    return Asset.objects.create(
        platform=platform,
        kind=AssetKind.USER,
        external_id=user_id,
        name=email,
        attributes={"primaryEmail": email, "suspended": False, "isEnrolledIn2Sv": two_sv},
        fingerprint=user_id,
    )


@pytest.fixture
def platform() -> Platform:
    return factories.make_platform("Workspace")


@pytest.fixture
def violation(platform: Platform) -> Violation:
    user_asset(platform, "u1", "ada@example.com")
    policy = make_policy(platform, PolicyKind.NO_2SV, action=Action.SUSPEND_USER)
    evaluate_policy(policy, trigger=Trigger.USER)
    return Violation.objects.get(policy=policy)


def remediations() -> int:
    return Job.objects.filter(job_type=JobType.REMEDIATION).count()


def test_needs_approval_waits_then_approve_enqueues_one_remediation(violation) -> None:
    assert violation.status == ViolationStatus.OPEN
    assert remediations() == 0
    admin = factories.make_user("admin", perms=DECIDER_PERMS)
    job = approve_violation(violation, actor=admin)
    violation.refresh_from_db()
    assert (violation.status, violation.remediation_job_id) == (ViolationStatus.REMEDIATING, job.pk)
    assert (violation.decision, violation.decided_by) == (Decision.APPROVED, admin)
    assert violation.decided_at is not None
    assert job.params == {"violation_id": violation.pk, "action": "suspend_user"}
    with pytest.raises(DecisionRefused):
        approve_violation(violation, actor=admin)
    with pytest.raises(DecisionRefused):
        dismiss_violation(violation, actor=admin)
    assert remediations() == 1


def test_dismiss_records_and_is_not_reopened(violation, platform) -> None:
    admin = factories.make_user("admin", perms=DECIDER_PERMS)
    dismiss_violation(violation, actor=admin)
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.DISMISSED
    assert (violation.decision, violation.decided_by) == (Decision.DISMISSED, admin)
    # Still found: the dismissal stands, nothing new opens.
    assert evaluate_policy(violation.policy, trigger=Trigger.USER)["opened"] == 0
    # Gone: the dismissed violation closes; if it comes back, a new one opens.
    Asset.objects.filter(external_id="u1").update(
        attributes={"primaryEmail": "ada@example.com", "isEnrolledIn2Sv": True}
    )
    evaluate_policy(violation.policy, trigger=Trigger.USER)
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.DISMISSED
    assert violation.closed_at is not None
    Asset.objects.filter(external_id="u1").update(
        attributes={"primaryEmail": "ada@example.com", "isEnrolledIn2Sv": False}
    )
    assert evaluate_policy(violation.policy, trigger=Trigger.USER)["opened"] == 1


def test_notify_only_never_remediates(platform) -> None:
    user_asset(platform, "u1", "ada@example.com")
    policy = make_policy(platform, PolicyKind.NO_2SV, mode=Mode.AUTOMATIC)
    evaluate_policy(policy, trigger=Trigger.USER)
    violation = Violation.objects.get(policy=policy)
    with pytest.raises(DecisionRefused):
        approve_violation(violation, actor=None)
    assert remediations() == 0


def test_evaluating_twice_remediates_once(platform) -> None:
    user_asset(platform, "u1", "ada@example.com")
    policy = make_policy(
        platform, PolicyKind.NO_2SV, action=Action.SUSPEND_USER, mode=Mode.AUTOMATIC
    )
    evaluate_policy(policy, trigger=Trigger.JOB)
    evaluate_policy(policy, trigger=Trigger.JOB)
    assert Violation.objects.filter(policy=policy).count() == 1
    assert remediations() == 1


@pytest.mark.django_db(transaction=True)
def test_two_racing_evaluations_remediate_once() -> None:
    require_services("postgres", "redis")
    platform = factories.make_platform("Raced")
    for number in range(20):
        user_asset(platform, f"u{number}", f"user{number}@example.com")
    policy = make_policy(
        platform, PolicyKind.NO_2SV, action=Action.SUSPEND_USER, mode=Mode.AUTOMATIC
    )
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def evaluate() -> None:
        try:
            barrier.wait()
            evaluate_policy(Policy.objects.get(pk=policy.pk), trigger=Trigger.JOB)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Violation.objects.filter(policy=policy).count() == 20
    assert remediations() == 20
    jobs = set(Violation.objects.values_list("remediation_job", flat=True))
    assert len(jobs) == 20
    assert None not in jobs


def test_completed_discovery_evaluates_the_platform_after_commit(
    platform, django_capture_on_commit_callbacks
) -> None:
    user_asset(platform, "u1", "ada@example.com")
    policy = make_policy(platform, PolicyKind.NO_2SV)
    make_policy(platform, PolicyKind.BROAD_OAUTH_APP, enabled=False)
    job = enqueue(JobType.ASSET_DISCOVERY, subject=platform)  # its message never leaves
    with django_capture_on_commit_callbacks(execute=True):
        receivers.evaluate_after_snapshot(
            None,
            job_id=job.pk,
            job_type=JobType.ASSET_DISCOVERY,
            subject_type_id=job.subject_type_id,
            subject_id=job.subject_id,
            to_status=JobStatus.COMPLETED,
        )
        assert not Violation.objects.exists()  # not before the commit
    assert Violation.objects.filter(policy=policy).count() == 1
    # A failed run does not evaluate.
    Violation.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        receivers.evaluate_after_snapshot(
            None,
            job_id=job.pk,
            job_type=JobType.ASSET_DISCOVERY,
            subject_type_id=job.subject_type_id,
            subject_id=job.subject_id,
            to_status=JobStatus.FAILED,
        )
    assert not Violation.objects.exists()


# --- pages and API ---------------------------------------------------------------------------


def test_pages_need_login_and_permission(client: Client, violation) -> None:
    for name in ("policies:list", "policies:violations", "policies:create"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert "/login/" in response["Location"]
    client.force_login(factories.make_user("nobody"))
    assert client.get(reverse("policies:violations")).status_code == 403
    assert client.post(reverse("policies:approve", args=[violation.pk])).status_code == 403


def test_violation_page_lists_filters_and_approves_with_csrf(violation) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(factories.make_user("admin", perms=DECIDER_PERMS))
    page = browser.get(reverse("policies:violations"), {"status": "open"})
    assert page.status_code == 200
    assert b"ada@example.com" in page.content
    assert (
        b"ada@example.com"
        not in browser.get(reverse("policies:violations"), {"status": "closed"}).content
    )
    assert browser.get(reverse("policies:violations"), {"status": "bogus"}).status_code == 400
    url = reverse("policies:approve", args=[violation.pk])
    assert browser.post(url).status_code == 403  # no CSRF token
    token = page.context["csrf_token"]
    assert browser.post(url, {"csrfmiddlewaretoken": str(token)}).status_code == 302
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.REMEDIATING


def test_policy_create_and_edit(client: Client, platform) -> None:
    client.force_login(
        factories.make_user(
            "admin", perms=("policies.view_policy", "policies.add_policy", "policies.change_policy")
        )
    )
    data = {
        "name": "OAuth apps",
        "kind": PolicyKind.BROAD_OAUTH_APP,
        "platform": platform.pk,
        "action": Action.SUSPEND_USER,
        "mode": Mode.AUTOMATIC,
        "enabled": "on",
        "allowed_clients": "1-slack.apps\n",
    }
    response = client.post(reverse("policies:create"), data)
    assert response.status_code == 200  # suspend does not fit an OAuth grant
    data["action"] = Action.REVOKE_TOKEN
    assert client.post(reverse("policies:create"), data).status_code == 302
    policy = Policy.objects.get()
    assert policy.parameters == {"broad_scopes": [], "allowed_clients": ["1-slack.apps"]}
    data.update(kind=PolicyKind.STALE_CREDENTIAL, action=Action.NOTIFY, days="7")
    assert client.post(reverse("policies:edit", args=[policy.pk]), data).status_code == 302
    policy.refresh_from_db()
    assert policy.parameters == {"days": 7}
    assert b"OAuth apps" in client.get(reverse("policies:list")).content


def test_admin_outside_group_form_needs_its_groups(client: Client, platform) -> None:
    client.force_login(
        factories.make_user("admin", perms=("policies.view_policy", "policies.add_policy"))
    )
    data = {
        "name": "Admins",
        "kind": PolicyKind.ADMIN_OUTSIDE_GROUP,
        "platform": platform.pk,
        "action": Action.REVOKE_TOKEN,
        "mode": Mode.NEEDS_APPROVAL,
        "enabled": "on",
        "allowed_group": "it@example.com",
    }
    assert client.post(reverse("policies:create"), data).status_code == 200  # no token here
    data["action"] = Action.REMOVE_FROM_GROUP
    assert client.post(reverse("policies:create"), data).status_code == 200  # which group?
    data["privileged_group"] = " super-admins@example.com "
    assert client.post(reverse("policies:create"), data).status_code == 302
    assert Policy.objects.get().parameters == {
        "allowed_group": "it@example.com",
        "privileged_group": "super-admins@example.com",
    }


def test_api_lists_approves_and_dismisses(client: Client, violation, platform) -> None:
    url = reverse("policies:api-list")
    assert client.get(url).status_code == 401
    admin = factories.make_user("admin", perms=DECIDER_PERMS)
    _, raw = ApiToken.issue(admin, "tests")
    bearer = {"Authorization": f"Bearer {raw}"}
    body = client.get(url, {"status": "open"}, headers=bearer).json()
    assert [row["id"] for row in body["results"]] == [violation.pk]
    assert body["results"][0]["evidence"]["isEnrolledIn2Sv"] is False

    viewer = factories.make_user("viewer", perms=("policies.view_violation",))
    _, viewer_raw = ApiToken.issue(viewer, "tests")
    approve = reverse("policies:api-approve", args=[violation.pk])
    refused = client.post(approve, headers={"Authorization": f"Bearer {viewer_raw}"})
    assert refused.status_code == 403

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin)
    assert browser.post(approve).status_code == 403  # session auth needs CSRF

    answer = client.post(approve, headers=bearer)
    assert answer.status_code == 200
    assert answer.json()["status"] == "remediating"
    assert client.post(approve, headers=bearer).status_code == 409

    user_asset(platform, "u2", "bob@example.com")
    evaluate_policy(violation.policy, trigger=Trigger.USER)
    other = Violation.objects.get(subject_id="u2")
    dismissed = client.post(reverse("policies:api-dismiss", args=[other.pk]), headers=bearer)
    assert dismissed.json()["decision"] == "dismissed"
    assert dismissed.json()["decided_by"] == "admin"
    assert (
        client.post(reverse("policies:api-dismiss", args=[999999]), headers=bearer).status_code
        == 404
    )


def test_a_sync_of_a_source_without_platform_feeds_leaver_policies(platform) -> None:
    source = IdentitySource.objects.create(name="LDAP", kind=IdentitySource.Kind.LDAP)
    make_policy(platform, PolicyKind.LEAVER_ACTIVE)
    make_policy(factories.make_platform("Other"), PolicyKind.NO_2SV)
    subject_type = ContentType.objects.get_for_model(IdentitySource)
    assert receivers.platforms_of(subject_type.pk, str(source.pk)) == [platform.pk]
    linked = IdentitySource.objects.create(name="GWS", kind="google_workspace", platform=platform)
    assert receivers.platforms_of(subject_type.pk, str(linked.pk)) == [platform.pk]


def test_inactive_account_detects_and_clears(platform) -> None:
    old = "2020-01-01T00:00:00.000Z"
    for user_id, email in (("u1", "ada@example.com"), ("u2", "bob@example.com")):
        asset = user_asset(platform, user_id, email, two_sv=True)
        asset.attributes["creationTime"] = old
        asset.save()
    newcomer = user_asset(platform, "u3", "cy@example.com", two_sv=True)
    newcomer.attributes["creationTime"] = timezone.now().isoformat()
    newcomer.save()
    policy = make_policy(platform, PolicyKind.INACTIVE_ACCOUNT, parameters={"days": 30})

    def login(email: str, days_ago: int) -> None:
        AuditEvent.objects.create(
            platform=platform,
            application="login",
            occurred_at=timezone.now() - dt.timedelta(days=days_ago),
            unique_qualifier=f"{email}-{days_ago}",
            event_name="login_success",
            actor_email=email,
        )

    login("Ada@example.com", 3)
    login("bob@example.com", 45)
    evaluate_policy(policy, trigger=Trigger.USER)
    [violation] = Violation.objects.filter(policy=policy)
    assert violation.subject_id == "u2"
    assert violation.evidence["last_login"] is not None

    login("bob@example.com", 1)
    assert evaluate_policy(policy, trigger=Trigger.USER)["closed"] == 1
    assert not Violation.objects.filter(policy=policy, closed_at__isnull=True).exists()


def test_a_violation_whose_remediation_failed_can_be_dismissed(violation) -> None:
    admin = factories.make_user("admin", perms=DECIDER_PERMS)
    job = approve_violation(violation, actor=admin)
    Violation.objects.filter(pk=violation.pk).update(
        status=ViolationStatus.REMEDIATION_FAILED, outcome="403 Forbidden"
    )
    dismiss_violation(violation, actor=admin)
    violation.refresh_from_db()
    assert (violation.status, violation.decision) == (ViolationStatus.DISMISSED, Decision.DISMISSED)
    assert violation.remediation_job_id == job.pk
    with pytest.raises(DecisionRefused, match="neither open nor failed"):
        dismiss_violation(violation, actor=admin)
