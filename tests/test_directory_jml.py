"""Joiner, mover and leaver end to end: change the LDAP directory (a real slapd), sync, run
the jml_automation jobs through the real runner, and see their effects in the sandbox Google
Workspace (over google-api-python-client) and in scim2-server (over SCIM)."""

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Permission, User
from django.http import HttpRequest
from django.urls import reverse

from accounts.models import ApiToken, UserRole
from accounts.roles import Role
from accounts.services import set_role
from directory import services
from directory.jml import run_event
from directory.models import DirectoryEvent, DirectoryUser, EventKind, IdentitySource
from identities.models import Identity, IdentityStatus, IdentityType, Platform
from identities.services import IdentityInput, create_identity
from jobs.models import Job, JobStatus, JobType
from pam import services as pam_services
from pam.models import AccessSession
from sandbox import google_directory, scim
from tests.directory_support import (
    gws_platform,
    ldap_source,
    result,
    running_gws,
    running_idp,
    running_slapd,
    sync,
)
from tests.inline import deliver
from tests.slapd import BASE_DN, Slapd, move
from trail.models import TrailEntry

pytestmark = pytest.mark.django_db

ENGINEERS = f"cn=engineers,ou=Groups,{BASE_DN}"


@pytest.fixture
def slapd() -> Iterator[Slapd]:
    yield from running_slapd()


@pytest.fixture
def gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    yield from running_gws()


@pytest.fixture
def idp() -> Iterator[scim.ScimSandbox]:
    yield from running_idp()


@pytest.fixture
def platform(gws, idp) -> Platform:
    return gws_platform(gws, idp)


@pytest.fixture
def source(slapd, gws, platform) -> IdentitySource:
    """Ten people synced once (the baseline), a rule acting on the sandbox platform, and the
    engineers group on both sides."""
    for n in range(10):
        slapd.add_person(f"staff{n}", given="Staff", family=str(n))
    slapd.add_group("engineers", [])
    gws.seed(groups=[{"email": "engineers@example.com", "name": "Engineers"}])
    source = ldap_source(slapd)
    assert sync(source).status == JobStatus.COMPLETED
    services.save_rule(source, platform=platform, dry_run=False)
    return source


def identity_jobs(identity: Identity) -> list[Job]:
    return list(
        Job.objects.filter(
            subject_id=str(identity.pk),
            job_type__in=[JobType.CREATE_DOMAIN_USER, JobType.PROVISION_SSO_USER],
        ).order_by("pk")
    )


def run_jobs(*jobs: Job | None) -> list[Job]:
    assert all(job is not None for job in jobs), "an event without a job"
    return [deliver(job) for job in jobs if job is not None]


def only_event(kind: str) -> DirectoryEvent:
    (event,) = DirectoryEvent.objects.filter(kind=kind)
    return event


def join_grace(slapd: Slapd, source: IdentitySource) -> Identity:
    """Grace joins Research; the sync's joiner job and her provisioning jobs all run."""
    slapd.add_person(
        "grace", given="Grace", family="Hopper", department="Research", title="Engineer"
    )
    assert result(sync(source))["joiners"] == 1
    event = only_event(EventKind.JOINER)
    assert event.job is not None
    (job,) = run_jobs(event.job)
    assert job.status == JobStatus.COMPLETED, job.error_message
    identity = Identity.objects.get(login="grace@example.com")
    provisioning = identity_jobs(identity)
    for done in run_jobs(*provisioning):
        assert done.status == JobStatus.COMPLETED, done.error_message
    identity.refresh_from_db()
    return identity


def test_a_joiner_gets_an_identity_a_workspace_user_and_an_sso_user(
    slapd, gws, idp, platform, source
) -> None:
    identity = join_grace(slapd, source)

    assert identity.identity_type == IdentityType.HUMAN_INTERACTIVE
    assert identity.platform == platform
    assert identity.status == IdentityStatus.PROVISIONED
    assert (identity.given_name, identity.family_name) == ("Grace", "Hopper")
    assert identity.org_unit_path == "/Staff/Research"
    (google_user,) = gws.users()
    assert google_user["primaryEmail"] == "grace@example.com"
    assert google_user["orgUnitPath"] == "/Staff/Research"
    assert idp.user("grace@example.com")["active"] is True
    event = only_event(EventKind.JOINER)
    assert event.status == DirectoryEvent.Status.DONE
    assert event.outcome[0]["result"].startswith(f"created identity #{identity.pk}")
    assert DirectoryUser.objects.get(username="grace").identity == identity
    assert any(
        "create a Human Interactive identity grace@example.com" in line
        for line in event.planned_actions
    )

    # Running the event's actions again changes nothing.
    again = run_event(event.pk)
    assert again["steps"][0]["result"].startswith("already there")
    assert Identity.objects.filter(login="grace@example.com").count() == 1
    assert len(identity_jobs(identity)) == 2


def test_a_mover_updates_workspace_sso_and_groups(slapd, gws, idp, source) -> None:
    join_grace(slapd, source)
    grace = f"uid=grace,ou=Research,ou=Staff,{BASE_DN}"
    slapd.modify(grace, sn="Hopper-Murray", department="Sales")
    grace = move(slapd, grace, "Sales")
    slapd.join(grace, ENGINEERS)

    outcome = result(sync(source))

    assert (outcome["joiners"], outcome["movers"], outcome["leavers"]) == (0, 1, 0)
    event = only_event(EventKind.MOVER)
    assert event.changes["org_unit"] == ["/Staff/Research", "/Staff/Sales"]
    assert event.changes["family_name"] == ["Hopper", "Hopper-Murray"]
    assert event.changes["department"] == ["Research", "Sales"]
    assert [g["email"] for g in event.changes["groups"]["added"]] == ["engineers@example.com"]
    (job,) = run_jobs(event.job)
    assert job.status == JobStatus.COMPLETED, job.error_message

    (google_user,) = gws.users()
    assert google_user["orgUnitPath"] == "/Staff/Sales"
    assert google_user["name"]["familyName"] == "Hopper-Murray"
    assert gws.groups.member_emails("engineers@example.com") == ["grace@example.com"]
    assert idp.user("grace@example.com")["name"]["familyName"] == "Hopper-Murray"
    identity = Identity.objects.get(login="grace@example.com")
    assert (identity.org_unit_path, identity.family_name) == ("/Staff/Sales", "Hopper-Murray")
    assert {step["result"] for step in result(job)["steps"]} == {"updated", "added"}

    # Idempotent: a second run finds everything in place.
    again = run_event(event.pk)
    assert {step["result"] for step in again["steps"]} == {"already up to date", "already a member"}

    # Leaving the group in the directory removes the membership in Google Workspace.
    slapd.leave(grace, ENGINEERS)
    assert result(sync(source))["movers"] == 1
    removal = DirectoryEvent.objects.filter(kind=EventKind.MOVER).first()
    assert removal is not None
    assert removal.pk != event.pk
    (job,) = run_jobs(removal.job)
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert gws.groups.member_emails("engineers@example.com") == []


def test_a_leaver_is_suspended_deactivated_and_their_pam_sessions_end(
    slapd, gws, idp, platform, source, client
) -> None:
    join_grace(slapd, source)
    # Grace also has an AccessHive account, and holds a managed shared credential right now.
    account = User.objects.create_user("grace", "grace@example.com", "pw")
    account.user_permissions.add(Permission.objects.get(codename="check_out_credential"))
    set_role(account, Role.OPERATOR, actor=None)
    _, raw_token = ApiToken.issue(account, "laptop")
    assert client.login(request=HttpRequest(), username="grace", password="pw")
    assert client.get(reverse("identities:list")).status_code == 200
    shared = create_identity(
        IdentityInput(
            identity_type=IdentityType.SHARED_CREDENTIAL_MANAGED,
            platform=platform,
            display_name="Ops shared",
            login="ops-shared@example.com",
            given_name="Ops",
            family_name="Shared",
        ),
        actor=None,
    )
    run_jobs(*identity_jobs(shared))
    shared.refresh_from_db()
    session = pam_services.check_out(shared, actor=account, reason="on call")
    # Active Directory's way to disable: userAccountControl 514 (bit 0x2 set).
    slapd.modify(f"uid=grace,ou=Research,ou=Staff,{BASE_DN}", userAccountControl=514)

    outcome = result(sync(source))

    assert (outcome["joiners"], outcome["movers"], outcome["leavers"]) == (0, 0, 1)
    event = only_event(EventKind.LEAVER)
    assert event.changes == {"state": ["active", "disabled"]}
    (job,) = run_jobs(event.job)
    assert job.status == JobStatus.COMPLETED, job.error_message

    grace_google = next(u for u in gws.users() if u["primaryEmail"] == "grace@example.com")
    assert grace_google["suspended"] is True
    assert idp.user("grace@example.com")["active"] is False
    session.refresh_from_db()
    assert session.ended_at is not None
    assert session.rotation_job is not None
    assert session.rotation_job.job_type == JobType.CREDENTIAL_ROTATION
    results = [step["result"] for step in result(job)["steps"]]
    assert results == [
        "suspended",
        "deactivated",
        f"checked in; credential_rotation job #{session.rotation_job_id}",
        "deactivated; 1 API token(s) revoked",
    ]
    assert DirectoryEvent.objects.get(pk=event.pk).status == DirectoryEvent.Status.DONE
    # Her own AccessHive account is off: no role, no token, and her open session is over.
    account.refresh_from_db()
    assert not account.is_active
    # Revoked, not deleted: Settings > API tokens still lists them, marked revoked.
    assert not ApiToken.objects.filter(user=account, revoked_at__isnull=True).exists()
    assert ApiToken.objects.filter(user=account).exists()
    assert not UserRole.objects.filter(user=account).exists()
    response = client.get(reverse("identities:list"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    api = client.get(reverse("identities:api-list"), HTTP_AUTHORIZATION=f"Bearer {raw_token}")
    assert api.status_code == 401
    (entry,) = TrailEntry.objects.filter(action="user.deactivated")
    assert entry.target_label == "grace"
    assert entry.detail["tokens_revoked"] == 1

    # Re-running the event's job does nothing new.
    rotations = Job.objects.filter(job_type=JobType.CREDENTIAL_ROTATION).count()
    again = run_event(event.pk)
    assert [step["result"] for step in again["steps"]] == [
        "already suspended",
        "already inactive",
        "none open",
        "already deactivated",
    ]
    assert TrailEntry.objects.filter(action="user.deactivated").count() == 1
    assert Job.objects.filter(job_type=JobType.CREDENTIAL_ROTATION).count() == rotations
    assert not AccessSession.objects.filter(ended_at__isnull=True).exists()


def test_dry_run_records_what_it_would_do_and_does_nothing(slapd, gws, idp, source) -> None:
    join_grace(slapd, source)
    account = User.objects.create_user("grace", "grace@example.com", "pw")
    ApiToken.issue(account, "laptop")
    services.save_rule(source, platform=source.rule.platform, dry_run=True)
    slapd.modify(f"uid=grace,ou=Research,ou=Staff,{BASE_DN}", userAccountControl=514)

    assert result(sync(source))["leavers"] == 1
    event = only_event(EventKind.LEAVER)
    assert all(line.startswith("Dry run: would ") for line in event.planned_actions)
    (job,) = run_jobs(event.job)
    assert job.status == JobStatus.COMPLETED, job.error_message

    event.refresh_from_db()
    assert event.status == DirectoryEvent.Status.DRY_RUN
    assert event.outcome == []
    assert event.dry_run_outcome == [
        {
            "action": "suspend Google Workspace user grace@example.com",
            "result": "would do (dry run)",
        },
        {
            "action": "deactivate SSO user grace@example.com (SCIM active=false)",
            "result": "would do (dry run)",
        },
        {"action": "end open PAM sessions of grace@example.com", "result": "none open"},
        {
            "action": "deactivate AccessHive user grace (sessions ended, API tokens revoked)",
            "result": "would do (dry run)",
        },
    ]
    account.refresh_from_db()
    assert account.is_active
    assert ApiToken.objects.filter(user=account, revoked_at__isnull=True).exists()
    (google_user,) = gws.users()
    assert google_user["suspended"] is False
    assert idp.user("grace@example.com")["active"] is True


def test_events_without_a_rule_for_their_kind_get_no_job(slapd, source) -> None:
    services.save_rule(source, platform=source.rule.platform, on_joiner=False)
    slapd.add_person("henry", given="Henry", family="Ford")

    assert result(sync(source))["joiners"] == 1
    event = only_event(EventKind.JOINER)
    assert event.status == DirectoryEvent.Status.SKIPPED
    assert event.job is None
    assert "does not act on joiners" in event.planned_actions[0]
    assert not Job.objects.filter(job_type=JobType.JML_AUTOMATION).exists()
