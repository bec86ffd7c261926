"""Users of each role and one object of every kind a route takes, for the role tests."""

from dataclasses import dataclass

from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import set_role
from assets.models import Asset, AssetKind
from audit.models import AuditEvent
from directory import services as directory_services
from directory.models import DirectoryEvent, DirectoryUser, IdentitySource, SyncRun
from imports.models import ImportBatch
from jobs.models import JobStatus
from pam import services as pam_services
from policies.models import Action, Policy, PolicyKind, Violation
from tests import factories

ANONYMOUS, NO_ROLE, VIEWER, OPERATOR, ADMIN = "anonymous", "no role", "viewer", "operator", "admin"
ROLES = (ANONYMOUS, NO_ROLE, VIEWER, OPERATOR, ADMIN)
PUBLIC = frozenset(ROLES)
READERS = frozenset({VIEWER, OPERATOR, ADMIN})
OPERATORS = frozenset({OPERATOR, ADMIN})
ADMINS = frozenset({ADMIN})


@dataclass(frozen=True)
class World:
    users: dict[str, User]
    ids: dict[str, int | str]


def role_user(username: str, role: str | None) -> User:
    user = factories.make_user(username)
    if role:
        set_role(user, role, actor=None)
    return user


def make_world() -> World:
    """A user of each role, and one object of every kind a route takes."""
    users = {
        NO_ROLE: role_user("nobody", None),
        VIEWER: role_user("vera", VIEWER),
        OPERATOR: role_user("otto", OPERATOR),
        ADMIN: role_user("ada", ADMIN),
    }
    platform = factories.make_platform("Acme")
    credential = factories.make_external_credential(platform, username="ops-bot")
    free_credential = factories.make_external_credential(platform, username="backup-bot")
    session = pam_services.check_out(credential, actor=users[OPERATOR], reason="table test")
    source = directory_services.create_source(
        name="Corp AD",
        kind=IdentitySource.Kind.LDAP,
        ldap_url="ldap://127.0.0.1:1",
        ldap_bind_dn="cn=reader",
        ldap_base_dn="dc=example,dc=com",
    )
    directory_user = DirectoryUser.objects.create(
        source=source, external_id="e-1", ref="uid=ada", username="ada", email="ada@example.com"
    )
    policy = Policy.objects.create(
        platform=platform, kind=PolicyKind.NO_2SV, action=Action.SUSPEND_USER
    )
    now = timezone.now()
    ids: dict[str, int | str] = {
        "job": factories.make_job(status=JobStatus.FAILED).pk,
        "pending_job": factories.make_job(status=JobStatus.PENDING).pk,
        "user": users[VIEWER].pk,
        "identity": factories.make_identity(platform=platform).pk,
        "identity_type": "api_key",
        "platform": platform.pk,
        "provider": factories.make_identity_provider().pk,
        "credential": credential.pk,
        "free_credential": free_credential.pk,
        "session": session.pk,
        "batch": ImportBatch.objects.create(filename="x.csv", created_by=users[ADMIN]).pk,
        "audit_event": AuditEvent.objects.create(
            platform=platform,
            application="login",
            occurred_at=now,
            unique_qualifier="1",
            event_name="login_success",
            actor_email="ada@example.com",
        ).pk,
        "asset": Asset.objects.create(
            platform=platform, kind=AssetKind.USER, external_id="1", name="ada@example.com"
        ).pk,
        "source_kind": "ldap",
        "source": source.pk,
        "run": SyncRun.objects.create(source=source).pk,
        "directory_event": DirectoryEvent.objects.create(
            source=source, user=directory_user, kind="joiner", label="ada@example.com"
        ).pk,
        "policy": policy.pk,
        "lockout": AccessAttempt.objects.create(
            username="mallory",
            ip_address="10.0.0.66",
            user_agent="",
            http_accept="",
            path_info="/login/",
            get_data="",
            post_data="",
            failures_since_start=50,
        ).pk,
        "api_token": ApiToken.issue(users[VIEWER], "table")[0].pk,
        "violation": Violation.objects.create(
            policy=policy, subject_kind="user", subject_id="1", subject_label="ada@example.com"
        ).pk,
    }
    return World(users=users, ids=ids)


def client_as(world: World, role: str, *, enforce_csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=enforce_csrf)
    if role != ANONYMOUS:
        client.force_login(world.users[role])
    return client
