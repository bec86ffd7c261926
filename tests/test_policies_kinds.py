"""Each built-in policy kind detects its risky state and clears when the state is gone, over
snapshots that asset discovery reads from the sandbox with the real Google client."""

import datetime as dt
from collections.abc import Iterator

import pytest
from django.utils import timezone

from directory.models import DirectoryGroup, DirectoryMembership, DirectoryUser, IdentitySource
from identities.models import Identity, IdentityType, Platform
from jobs.models import Trigger
from policies.models import PolicyKind, Violation, ViolationStatus
from policies.services import evaluate_policy
from sandbox import google_directory
from tests import factories
from tests.policies_support import discover, make_policy

pytestmark = pytest.mark.django_db


@pytest.fixture
def gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    server = google_directory.start(domains=["example.com"])
    yield server
    server.shutdown()


@pytest.fixture
def platform(gws: google_directory.GoogleDirectorySandbox) -> Platform:
    return factories.make_sandbox_platform(gws)


@pytest.fixture
def users(gws: google_directory.GoogleDirectorySandbox) -> dict[str, str]:
    ids = gws.directory.seed_users(
        [
            {"primaryEmail": "ada@example.com", "isEnrolledIn2Sv": False},
            {"primaryEmail": "bob@example.com", "isEnrolledIn2Sv": True},
        ]
    )
    return dict(zip(("ada", "bob"), ids, strict=True))


def live(policy) -> list[Violation]:
    return list(Violation.objects.filter(policy=policy, closed_at__isnull=True))


def test_no_2sv_detects_and_clears(gws, platform, users) -> None:
    policy = make_policy(platform, PolicyKind.NO_2SV)
    discover(platform)
    assert evaluate_policy(policy, trigger=Trigger.USER)["opened"] == 1
    [violation] = live(policy)
    assert (violation.subject_kind, violation.subject_id) == ("gws_user", users["ada"])
    assert violation.subject_label == "ada@example.com"
    assert violation.evidence["isEnrolledIn2Sv"] is False
    # The same state evaluated again opens nothing new.
    assert evaluate_policy(policy, trigger=Trigger.USER) == {
        "opened": 0,
        "closed": 0,
        "remediations": 0,
    }

    gws.directory.update(users["ada"], {"suspended": True})
    discover(platform)
    assert evaluate_policy(policy, trigger=Trigger.USER)["closed"] == 1
    violation.refresh_from_db()
    assert violation.status == ViolationStatus.CLOSED
    assert violation.closed_at is not None
    assert live(policy) == []


def test_broad_oauth_app_detects_allow_list_and_clears(gws, platform, users) -> None:
    gws.assets.add_token("ada@example.com", "1-mailer.apps", "Mailer")
    gws.assets.add_token("bob@example.com", "2-slack.apps", "Slack")
    gws.assets.add_token("bob@example.com", "3-narrow.apps", "Narrow")
    scopes = {
        "1-mailer.apps": ["https://mail.google.com/"],
        "2-slack.apps": ["https://www.googleapis.com/auth/drive"],
        "3-narrow.apps": ["openid", "email"],
    }
    for user_tokens in gws.assets._tokens.values():
        for client_id, token in user_tokens.items():
            token["scopes"] = scopes[client_id]
    policy = make_policy(
        platform,
        PolicyKind.BROAD_OAUTH_APP,
        parameters={"allowed_clients": ["2-slack.apps"]},
    )
    discover(platform)
    evaluate_policy(policy, trigger=Trigger.USER)
    [violation] = live(policy)
    assert violation.subject_id == f"{users['ada']}:1-mailer.apps"
    assert violation.evidence["broad_scopes"] == ["https://mail.google.com/"]

    gws.assets.remove_token("ada@example.com", "1-mailer.apps")
    discover(platform)
    assert evaluate_policy(policy, trigger=Trigger.USER)["closed"] == 1
    assert live(policy) == []


def test_leaver_still_active_detects_and_clears(gws, platform, users) -> None:
    identity = factories.make_identity(
        platform=platform, login="ada@example.com", gws_user_id=users["ada"]
    )
    source = IdentitySource.objects.create(
        name="HR", kind=IdentitySource.Kind.LDAP, platform=platform
    )
    person = DirectoryUser.objects.create(
        source=source, external_id="e1", ref="uid=ada", username="ada", identity=identity
    )
    policy = make_policy(platform, PolicyKind.LEAVER_ACTIVE)
    discover(platform)
    evaluate_policy(policy, trigger=Trigger.USER)
    assert live(policy) == []  # still employed

    person.disabled = True
    person.save()
    evaluate_policy(policy, trigger=Trigger.USER)
    [violation] = live(policy)
    assert violation.subject_id == users["ada"]
    assert violation.evidence["source_state"] == "disabled"

    gws.directory.update(users["ada"], {"suspended": True})
    discover(platform)
    evaluate_policy(policy, trigger=Trigger.USER)
    assert live(policy) == []


def test_stale_credential_detects_and_clears(gws, platform) -> None:
    identity = factories.make_managed_credential(platform)
    other = factories.make_identity(
        platform=platform, identity_type=IdentityType.SHARED_CREDENTIAL_EXTERNAL
    )
    policy = make_policy(platform, PolicyKind.STALE_CREDENTIAL, parameters={"days": 30})
    evaluate_policy(policy, trigger=Trigger.USER)
    assert live(policy) == []  # created just now

    old = timezone.now() - dt.timedelta(days=40)
    Identity.objects.filter(pk__in=[identity.pk, other.pk]).update(created_at=old)
    evaluate_policy(policy, trigger=Trigger.USER)
    [violation] = live(policy)
    assert violation.subject_id == str(identity.pk)
    assert violation.evidence["never_rotated"] is True
    # Clearing (a completed rotation) is covered by the rotate action's test.


def test_admin_outside_allowed_group_detects_and_clears(gws, platform) -> None:
    ada, _bob, _cy = gws.directory.seed_users(
        [
            {"primaryEmail": "ada@example.com", "isAdmin": True},
            {"primaryEmail": "bob@example.com", "isAdmin": True},
            {"primaryEmail": "cy@example.com", "isAdmin": False},
        ]
    )
    source = IdentitySource.objects.create(
        name="HR", kind=IdentitySource.Kind.LDAP, platform=platform
    )
    group = DirectoryGroup.objects.create(
        source=source, external_id="g1", ref="cn=admins", name="IT admins", email="it@example.com"
    )
    people = {
        name: DirectoryUser.objects.create(
            source=source,
            external_id=name,
            ref=f"uid={name}",
            username=name,
            email=f"{name}@example.com",
        )
        for name in ("ada", "bob")
    }
    DirectoryMembership.objects.create(source=source, group=group, user=people["bob"])
    policy = make_policy(
        platform, PolicyKind.ADMIN_OUTSIDE_GROUP, parameters={"allowed_group": "IT@example.com"}
    )
    discover(platform)
    assert evaluate_policy(policy, trigger=Trigger.USER)["opened"] == 1
    [violation] = live(policy)  # bob is in the group, cy is no admin
    assert (violation.subject_kind, violation.subject_id) == ("gws_user", ada)
    assert violation.subject_label == "ada@example.com"
    assert violation.evidence == {"isAdmin": True, "allowed_group": "IT@example.com"}

    DirectoryMembership.objects.create(source=source, group=group, user=people["ada"])
    assert evaluate_policy(policy, trigger=Trigger.USER)["closed"] == 1
    assert live(policy) == []
