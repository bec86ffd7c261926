"""Access sessions through pam.services: check-out, check-in, expiry, one holder per credential
(also under a race), reveals that are recorded and refused outside a session, and every
refusal of the issue's "Bad input" list changing nothing."""

import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from identities.models import Identity, IdentityStatus, IdentityType
from jobs.models import Job, JobStatus, JobType, Trigger
from jobs.services import enqueue
from pam import services, tasks
from pam.models import AccessSession, CredentialState, EndReason, RevealEvent
from pam.services import AlreadyCheckedOut, NotAllowed, PamError, SessionNotActive
from tests import factories
from tests.conftest import require_services
from trail.models import TrailEntry
from vault.backends import get_vault
from vault.base import SecretRef

pytestmark = pytest.mark.django_db

MANAGED_PASSWORD = "Initial-Pa55word-7f3a"


@pytest.fixture
def holder():
    return factories.make_pam_user("holder")


@pytest.fixture
def other():
    return factories.make_pam_user("other")


@pytest.fixture
def admin():
    return factories.make_pam_admin()


@pytest.fixture
def platform():
    return factories.make_platform("Workspace")


@pytest.fixture
def managed(platform) -> Identity:
    """A provisioned managed shared credential with its password in the vault (no Google
    user: these tests never run its rotation)."""
    identity = factories.make_identity(
        platform=platform,
        identity_type=IdentityType.SHARED_CREDENTIAL_MANAGED,
        login="shared-ops@example.com",
        gws_user_id="100000000000000000001",
    )
    get_vault().write(identity.password_path, {"password": MANAGED_PASSWORD}, cas=0)
    return identity


@pytest.fixture
def external(platform) -> Identity:
    return factories.make_external_credential(platform)


def state_counts() -> tuple[int, int, int, int, int]:
    """What a refusal must leave as it found it."""
    return (
        AccessSession.objects.count(),
        AccessSession.objects.filter(ended_at__isnull=True).count(),
        RevealEvent.objects.count(),
        Job.objects.filter(job_type=JobType.CREDENTIAL_ROTATION).count(),
        CredentialState.objects.filter(rotation_due_since__isnull=False).count(),
    )


# --- check-out ------------------------------------------------------------------------------


def test_check_out_lasts_the_maximum_by_default(managed, holder, settings) -> None:
    settings.PAM_MAX_SESSION_MINUTES = 45
    session = services.check_out(managed, actor=holder, reason="  quarterly audit  ")

    assert session.holder == holder
    assert session.identity == managed
    assert session.reason == "quarterly audit"
    assert session.expires_at - session.started_at == timedelta(minutes=45)
    assert session.ended_at is None
    assert session.is_active


def test_the_maximum_defaults_to_60_minutes(managed, holder) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    assert session.expires_at - session.started_at == timedelta(minutes=60)


def test_a_maximum_of_one_minute_is_allowed(managed, holder, settings) -> None:
    settings.PAM_MAX_SESSION_MINUTES = 1
    session = services.check_out(managed, actor=holder, reason="audit")
    assert session.expires_at - session.started_at == timedelta(minutes=1)


@pytest.mark.parametrize("maximum", [0, True, "60", 1.5])
def test_a_bad_maximum_is_a_configuration_error(managed, holder, settings, maximum) -> None:
    settings.PAM_MAX_SESSION_MINUTES = maximum
    with pytest.raises(
        ImproperlyConfigured,
        match=re.escape(f"PAM_MAX_SESSION_MINUTES must be a whole number >= 1: {maximum!r}"),
    ):
        services.check_out(managed, actor=holder, reason="audit")
    assert state_counts() == (0, 0, 0, 0, 0)


def test_check_out_for_less_than_the_maximum(external, holder) -> None:
    session = services.check_out(external, actor=holder, reason="rotate keys", minutes=5)
    assert session.expires_at - session.started_at == timedelta(minutes=5)


@pytest.mark.parametrize("minutes", [0, -1, 61, True, "10"])
def test_minutes_outside_the_limit_are_refused(managed, holder, minutes) -> None:
    with pytest.raises(PamError, match="from 1 to 60 minutes"):
        services.check_out(managed, actor=holder, reason="audit", minutes=minutes)
    assert state_counts() == (0, 0, 0, 0, 0)


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_a_reason_is_required(managed, holder, reason) -> None:
    with pytest.raises(PamError, match="reason is required"):
        services.check_out(managed, actor=holder, reason=reason)
    assert state_counts() == (0, 0, 0, 0, 0)


def test_a_reason_takes_up_to_500_characters(managed, external, holder) -> None:
    with pytest.raises(PamError, match=r"^The reason is at most 500 characters\.$"):
        services.check_out(managed, actor=holder, reason="x" * 501)
    assert state_counts() == (0, 0, 0, 0, 0)
    assert services.check_out(external, actor=holder, reason="x" * 500).reason == "x" * 500


def test_a_credential_deleted_meanwhile_is_refused_naming_it(platform, holder) -> None:
    identity = factories.make_external_credential(platform)
    Identity.objects.filter(pk=identity.pk).delete()
    with pytest.raises(PamError, match=rf"^Identity #{identity.pk} no longer exists\.$"):
        services.check_out(identity, actor=holder, reason="audit")
    assert state_counts() == (0, 0, 0, 0, 0)


@pytest.mark.parametrize(
    "identity_type",
    [
        IdentityType.HUMAN_INTERACTIVE,
        IdentityType.SERVICE_ACCOUNT,
        IdentityType.API_KEY,
        IdentityType.OAUTH_CLIENT,
    ],
)
def test_types_without_a_session_concept_are_refused(platform, holder, identity_type) -> None:
    identity = factories.make_identity(platform=platform, identity_type=identity_type)
    with pytest.raises(PamError) as refused:
        services.check_out(identity, actor=holder, reason="audit")
    message = refused.value.message
    assert f"is a {IdentityType(identity_type).label}, which has no check-out" in message
    assert (
        "only Shared Credential - managed and Shared Credential - external credentials" in message
    )
    assert state_counts() == (0, 0, 0, 0, 0)


def test_a_credential_still_being_provisioned_is_refused(platform, holder) -> None:
    identity = factories.make_identity(
        platform=platform,
        identity_type=IdentityType.SHARED_CREDENTIAL_MANAGED,
        status=IdentityStatus.PROVISIONING,
    )
    with pytest.raises(PamError, match="not provisioned yet"):
        services.check_out(identity, actor=holder, reason="audit")
    assert state_counts() == (0, 0, 0, 0, 0)


# --- one active session ---------------------------------------------------------------------


def test_a_checked_out_credential_is_refused_naming_its_holder(managed, holder, other) -> None:
    first = services.check_out(managed, actor=holder, reason="audit")
    before = state_counts()

    with pytest.raises(AlreadyCheckedOut, match="already checked out by holder until"):
        services.check_out(managed, actor=other, reason="me too")
    with pytest.raises(AlreadyCheckedOut):
        services.check_out(managed, actor=holder, reason="a second one for me")

    assert state_counts() == before
    assert list(AccessSession.objects.filter(ended_at__isnull=True)) == [first]


def test_an_expired_session_not_yet_checked_in_still_blocks(external, holder, other) -> None:
    session = services.check_out(external, actor=holder, reason="audit")
    past = timezone.now() - timedelta(minutes=1)
    AccessSession.objects.filter(pk=session.pk).update(
        started_at=past - timedelta(minutes=60), expires_at=past
    )
    with pytest.raises(AlreadyCheckedOut, match=r"expired at .* being checked in automatically"):
        services.check_out(external, actor=other, reason="audit")


def test_the_database_allows_one_open_session_per_credential(external, holder, other) -> None:
    now = timezone.now()
    fields = {"identity": external, "reason": "x", "expires_at": now + timedelta(minutes=5)}
    AccessSession.objects.create(holder=holder, **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        AccessSession.objects.create(holder=other, **fields)
    # Ended sessions do not count.
    AccessSession.objects.filter(identity=external).update(
        ended_at=now, end_reason=EndReason.CHECKED_IN
    )
    AccessSession.objects.create(holder=other, **fields)
    assert AccessSession.objects.count() == 2


def test_after_check_in_an_external_credential_can_be_checked_out_again(
    external, holder, other
) -> None:
    first = services.check_out(external, actor=holder, reason="audit")
    services.check_in(first, actor=holder)
    second = services.check_out(external, actor=other, reason="next")
    assert second.holder == other


def test_a_managed_credential_waits_for_its_rotation(managed, holder, other) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    ended = services.check_in(session, actor=holder)
    assert ended.rotation_job is not None
    before = state_counts()

    with pytest.raises(AlreadyCheckedOut, match=rf"being rotated .*job #{ended.rotation_job.pk}"):
        services.check_out(managed, actor=other, reason="next")
    assert state_counts() == before


@pytest.mark.django_db(transaction=True)
def test_concurrent_check_outs_make_exactly_one_session(platform) -> None:
    require_services("postgres")
    identity = factories.make_identity(
        platform=platform, identity_type=IdentityType.SHARED_CREDENTIAL_EXTERNAL
    )
    users = [factories.make_pam_user(f"racer{n}") for n in range(8)]
    barrier = threading.Barrier(len(users))

    def check_out(user) -> str:
        try:
            barrier.wait(timeout=10)
            services.check_out(identity, actor=user, reason="race")
            return "won"
        except AlreadyCheckedOut:
            return "refused"
        finally:
            connection.close()

    with ThreadPoolExecutor(len(users)) as pool:
        results = list(pool.map(check_out, users))

    assert results.count("won") == 1
    assert results.count("refused") == len(users) - 1
    assert AccessSession.objects.filter(identity=identity, ended_at__isnull=True).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_inserts_past_the_service_hit_the_constraint(platform) -> None:
    """Even writers that skip the service's row lock cannot open two sessions."""
    require_services("postgres")
    identity = factories.make_identity(
        platform=platform, identity_type=IdentityType.SHARED_CREDENTIAL_EXTERNAL
    )
    users = [factories.make_pam_user(f"writer{n}") for n in range(6)]
    barrier = threading.Barrier(len(users))
    expires_at = timezone.now() + timedelta(minutes=5)

    def insert(user) -> str:
        try:
            barrier.wait(timeout=10)
            AccessSession.objects.create(
                identity=identity, holder=user, reason="race", expires_at=expires_at
            )
            return "inserted"
        except IntegrityError:
            return "refused"
        finally:
            connection.close()

    with ThreadPoolExecutor(len(users)) as pool:
        results = list(pool.map(insert, users))

    assert results.count("inserted") == 1
    assert AccessSession.objects.filter(identity=identity).count() == 1


# --- check-in -------------------------------------------------------------------------------


def test_check_in_by_the_holder_starts_the_rotation(managed, holder) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    ended = services.check_in(session, actor=holder)

    ended.refresh_from_db()
    assert ended.ended_at is not None
    assert ended.ended_by == holder
    assert ended.end_reason == EndReason.CHECKED_IN
    job = ended.rotation_job
    assert job is not None
    assert job.job_type == JobType.CREDENTIAL_ROTATION
    assert job.status == JobStatus.PENDING
    assert job.subject_id == str(managed.pk)
    assert job.triggered_by == holder
    assert job.trigger == Trigger.USER
    assert job.triggered_by_label == "holder"
    assert job.params == {"session_id": session.pk}
    assert not CredentialState.objects.exists()


def test_an_admin_checks_in_someone_elses_session(managed, holder, admin) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    ended = services.check_in(session, actor=admin)
    assert ended.ended_by == admin
    assert ended.rotation_job is not None
    assert ended.rotation_job.triggered_by == admin


def test_someone_elses_session_is_refused_to_a_non_admin(managed, holder, other) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    before = state_counts()

    with pytest.raises(NotAllowed, match="held by holder; only they or an admin"):
        services.check_in(session, actor=other)

    assert state_counts() == before
    session.refresh_from_db()
    assert session.ended_at is None


def test_checking_in_twice_is_refused(managed, holder) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    services.check_in(session, actor=holder)
    before = state_counts()
    with pytest.raises(SessionNotActive, match="was already checked in at"):
        services.check_in(session, actor=holder)
    assert state_counts() == before


def test_external_check_in_marks_rotation_due_and_makes_no_job(external, holder) -> None:
    first = services.check_out(external, actor=holder, reason="audit")
    services.check_in(first, actor=holder)

    state = CredentialState.objects.get(identity=external)
    assert state.rotation_due
    assert state.rotation_due_session_id == first.pk
    assert not Job.objects.filter(job_type=JobType.CREDENTIAL_ROTATION).exists()
    first.refresh_from_db()
    assert first.rotation_job is None

    # Still due after a second session: the date it first became due is kept.
    since = state.rotation_due_since
    second = services.check_out(external, actor=holder, reason="again")
    services.check_in(second, actor=holder)
    state.refresh_from_db()
    assert state.rotation_due_since == since
    assert state.rotation_due_session_id == second.pk


def test_a_check_in_starts_its_own_credentials_rotation_not_anothers(
    managed, platform, holder, other
) -> None:
    another = factories.make_identity(
        platform=platform,
        identity_type=IdentityType.SHARED_CREDENTIAL_MANAGED,
        login="shared-db@example.com",
        gws_user_id="100000000000000000002",
    )
    get_vault().write(another.password_path, {"password": MANAGED_PASSWORD}, cas=0)
    theirs = services.check_in(
        services.check_out(another, actor=other, reason="db"), actor=other
    ).rotation_job
    assert theirs is not None  # pending: no worker runs it here

    ours = services.check_in(
        services.check_out(managed, actor=holder, reason="ops"), actor=holder
    ).rotation_job

    assert ours is not None
    assert ours.pk != theirs.pk
    assert ours.subject_id == str(managed.pk)
    assert Job.objects.get(pk=theirs.pk).subject_id == str(another.pk)


def test_another_job_on_the_credential_is_not_taken_for_its_rotation(managed, holder) -> None:
    """Another kind of job on the same credential neither blocks its check-out nor is taken
    (or released) for the rotation that replaces the password seen."""
    remediation = enqueue(JobType.REMEDIATION, subject=managed, trigger_label="remediation")

    ended = services.check_in(services.check_out(managed, actor=holder, reason="ops"), actor=holder)

    assert ended.rotation_job is not None
    assert ended.rotation_job.job_type == JobType.CREDENTIAL_ROTATION
    assert ended.rotation_job.subject_id == str(managed.pk)
    remediation.refresh_from_db()
    assert remediation.status == JobStatus.PENDING


def test_sessions_are_on_the_trail_naming_whose_session_and_its_rotation(
    managed, external, holder, admin
) -> None:
    """What an audit reads: who checked out which credential, why and until when; who
    ended whose session, why, and the rotation that replaces the password seen."""
    by_admin = services.check_in(
        services.check_out(managed, actor=holder, reason="audit"), actor=admin
    )
    by_holder = services.check_in(
        services.check_out(external, actor=holder, reason="audit"), actor=holder
    )

    check_outs = TrailEntry.objects.filter(action="credential.checked_out").order_by("id")
    assert [(e.actor, e.target_type, e.target_id, e.detail) for e in check_outs] == [
        (
            holder,
            "identities.identity",
            str(identity.pk),
            {
                "session": session.pk,
                "reason": "audit",
                "expires": DjangoJSONEncoder().default(session.expires_at),
            },
        )
        for session, identity in ((by_admin, managed), (by_holder, external))
    ]
    entries = TrailEntry.objects.filter(action="credential.checked_in").order_by("id")
    assert [(e.actor, e.target_type, e.target_id, e.detail) for e in entries] == [
        (
            admin,
            "identities.identity",
            str(managed.pk),
            {
                "session": by_admin.pk,
                "holder": "holder",
                "reason": "checked_in",
                "for_someone_else": True,
                "rotation_job": by_admin.rotation_job_id,
            },
        ),
        (
            holder,
            "identities.identity",
            str(external.pk),
            {
                "session": by_holder.pk,
                "holder": "holder",
                "reason": "checked_in",
                "for_someone_else": False,
                "rotation_job": None,
            },
        ),
    ]
    assert by_admin.rotation_job_id is not None


# --- expiry ---------------------------------------------------------------------------------


def test_expired_sessions_are_checked_in_by_the_beat(managed, external, holder, other) -> None:
    short = services.check_out(external, actor=holder, reason="short", minutes=5)
    long = services.check_out(managed, actor=other, reason="long", minutes=60)
    later = timezone.now() + timedelta(minutes=10)

    assert services.expire_sessions(timezone.now()) == 0
    assert services.expire_sessions(later) == 1

    short.refresh_from_db()
    long.refresh_from_db()
    assert short.end_reason == EndReason.EXPIRED
    assert short.ended_at == later
    assert short.ended_by is None
    assert long.ended_at is None
    assert CredentialState.objects.get(identity=external).rotation_due

    assert services.expire_sessions(later + timedelta(hours=1)) == 1
    long.refresh_from_db()
    assert long.end_reason == EndReason.EXPIRED
    job = long.rotation_job
    assert job is not None
    assert job.trigger == Trigger.SCHEDULE
    assert job.triggered_by is None
    assert job.triggered_by_label == "session expiry"
    # Nothing left to do: a second run changes nothing.
    assert services.expire_sessions(later + timedelta(hours=2)) == 0
    assert Job.objects.filter(job_type=JobType.CREDENTIAL_ROTATION).count() == 1


def test_a_run_fills_its_batch_with_open_sessions_only(
    managed, external, holder, other, monkeypatch
) -> None:
    # A session checked in long ago expires first, but is no longer open: it must not take
    # a place in the batch (with many of them, open ones would never be reached).
    checked_in = services.check_out(external, actor=holder, reason="done", minutes=1)
    services.check_in(checked_in, actor=holder)
    first = services.check_out(external, actor=holder, reason="first", minutes=5)
    second = services.check_out(managed, actor=other, reason="second", minutes=10)
    monkeypatch.setattr(services, "EXPIRE_BATCH", 2)

    assert services.expire_sessions(timezone.now() + timedelta(hours=1)) == 2

    for session in (first, second):
        session.refresh_from_db()
        assert session.end_reason == EndReason.EXPIRED
    checked_in.refresh_from_db()
    assert checked_in.end_reason == EndReason.CHECKED_IN


def test_a_session_checked_in_while_the_beat_runs_stays_checked_in(
    managed, external, platform, holder, other, admin, monkeypatch
) -> None:
    """The beat lists the expired sessions first and locks each one after: a session its
    holder checks in in between keeps that check-in (not "expired", no second trail entry),
    and the sessions listed after it are still ended in the same run."""
    third = factories.make_external_credential(platform, username="ops-bot-2")
    first = services.check_out(external, actor=holder, reason="first", minutes=5)
    second = services.check_out(managed, actor=other, reason="second", minutes=10)
    last = services.check_out(third, actor=admin, reason="last", minutes=15)
    end_session = services.end_session

    def end_session_as_the_second_holder_checks_in(session, **kwargs) -> None:
        if session.pk == first.pk:
            services.check_in(second, actor=other)
        end_session(session, **kwargs)

    monkeypatch.setattr(services, "end_session", end_session_as_the_second_holder_checks_in)

    assert services.expire_sessions(timezone.now() + timedelta(hours=1)) == 2

    for session in (first, second, last):
        session.refresh_from_db()
    assert first.end_reason == last.end_reason == EndReason.EXPIRED
    assert second.end_reason == EndReason.CHECKED_IN
    assert second.ended_by == other
    check_ins = TrailEntry.objects.filter(action="credential.checked_in", target_id=str(managed.pk))
    assert [entry.actor for entry in check_ins] == [other]


def test_the_beat_task_runs_the_expiry(external, holder) -> None:
    session = services.check_out(external, actor=holder, reason="audit", minutes=1)
    AccessSession.objects.filter(pk=session.pk).update(
        started_at=timezone.now() - timedelta(minutes=2),
        expires_at=timezone.now() - timedelta(minutes=1),
    )
    assert tasks.expire_sessions.name == "pam.expire_sessions"
    assert tasks.expire_sessions() == 1
    session.refresh_from_db()
    assert session.end_reason == EndReason.EXPIRED


def test_an_expired_session_cannot_be_checked_in_again(external, holder) -> None:
    session = services.check_out(external, actor=holder, reason="audit", minutes=1)
    services.expire_sessions(timezone.now() + timedelta(minutes=2))
    with pytest.raises(SessionNotActive, match="was already expired at"):
        services.check_in(session, actor=holder)


# --- reveal ---------------------------------------------------------------------------------


def test_reveal_returns_the_vaults_current_password_and_is_recorded(managed, holder) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    assert services.reveal_password(session, actor=holder) == MANAGED_PASSWORD

    get_vault().write(managed.password_path, {"password": "Newer-Pa55word-19ab"})
    assert services.reveal_password(session, actor=holder) == "Newer-Pa55word-19ab"

    events = list(RevealEvent.objects.filter(session=session))
    assert [event.user for event in events] == [holder, holder]
    assert all(session.started_at <= event.at <= timezone.now() for event in events)


def test_reveal_of_an_external_credential(external, holder) -> None:
    session = services.check_out(external, actor=holder, reason="audit")
    assert services.reveal_password(session, actor=holder) == factories.EXTERNAL_PASSWORD
    assert RevealEvent.objects.filter(session=session, user=holder).count() == 1


def test_reveal_by_someone_other_than_the_holder_is_refused(managed, holder, admin) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    # Not even an admin: checking others in is theirs, seeing the password is not.
    with pytest.raises(NotAllowed, match="only the holder can reveal"):
        services.reveal_password(session, actor=admin)
    assert not RevealEvent.objects.exists()


def test_reveal_after_check_in_is_refused(managed, holder) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    services.check_in(session, actor=holder)
    before = state_counts()
    with pytest.raises(SessionNotActive, match=r"was checked in at .* check the credential out"):
        services.reveal_password(session, actor=holder)
    assert state_counts() == before


def test_reveal_after_expiry_is_refused_even_before_the_beat(managed, holder) -> None:
    session = services.check_out(managed, actor=holder, reason="audit")
    past = timezone.now() - timedelta(seconds=1)
    AccessSession.objects.filter(pk=session.pk).update(
        started_at=past - timedelta(minutes=60), expires_at=past
    )
    with pytest.raises(SessionNotActive, match="expired at"):
        services.reveal_password(session, actor=holder)
    assert not RevealEvent.objects.exists()


def test_no_password_in_the_logs(managed, holder, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    session = services.check_out(managed, actor=holder, reason="audit")
    services.reveal_password(session, actor=holder)
    services.check_in(session, actor=holder)
    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert "pam.session.revealed" in caplog.text
    assert MANAGED_PASSWORD not in logged


# --- rotation by hand (external) ------------------------------------------------------------


def test_recording_a_rotation_by_hand_clears_the_mark(external, holder, admin) -> None:
    session = services.check_out(external, actor=holder, reason="audit")
    services.check_in(session, actor=holder)

    ref = services.record_manual_rotation(external, actor=admin, password="Hand-Set-Pa55-42")

    assert ref == SecretRef(external.vault_path, 2)
    assert get_vault().read(external.vault_path) == {
        "username": "ops-bot",
        "password": "Hand-Set-Pa55-42",
    }
    external.refresh_from_db()
    assert external.secret_ref == str(ref)
    state = CredentialState.objects.get(identity=external)
    assert not state.rotation_due
    assert state.rotated_by_hand_by == admin
    later = services.check_out(external, actor=holder, reason="next")
    assert services.reveal_password(later, actor=holder) == "Hand-Set-Pa55-42"


def test_rotation_by_hand_is_refused_while_checked_out_and_for_managed(
    external, managed, holder, admin
) -> None:
    services.check_out(external, actor=holder, reason="audit")
    with pytest.raises(AlreadyCheckedOut, match="check it in before"):
        services.record_manual_rotation(external, actor=admin, password="x-Pa55-y")
    with pytest.raises(PamError, match="only external shared credentials"):
        services.record_manual_rotation(managed, actor=admin, password="x-Pa55-y")
    assert get_vault().current_version(external.vault_path) == 1
    assert get_vault().current_version(managed.password_path) == 1


def test_rotation_by_hand_without_a_password_is_refused_and_keeps_the_old_one(
    external, admin
) -> None:
    """An empty password stored as the credential's new version would lock everyone out."""
    with pytest.raises(PamError, match="Enter the new password"):
        services.record_manual_rotation(external, actor=admin, password="")
    assert get_vault().current_version(external.vault_path) == 1
    assert get_vault().read(external.vault_path)["password"] == factories.EXTERNAL_PASSWORD
    assert not TrailEntry.objects.filter(action="credential.rotated_by_hand").exists()
