"""credential_rotation through google-api-python-client over HTTP against the sandbox: success,
crashes between any two steps followed by the redelivery, permanent and transient errors, and
no password in the job's input, result, error or logs."""

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.utils import timezone

from identities.handlers.common import google_workspace_client
from identities.models import Identity, IdentityType
from jobs import lifecycle, runner
from jobs.errors import JobError, TransientError
from jobs.models import AttemptOutcome, Job, JobStatus, JobType
from jobs.services import enqueue, retry_job
from pam import handlers, services
from pam.models import AccessSession
from sandbox import google_directory
from tests import factories
from tests.inline import deliver
from vault.backends import get_vault
from vault.backends.embedded import associated_data
from vault.crypto import KeyRing
from vault.models import EncryptedSecret

pytestmark = pytest.mark.django_db


@pytest.fixture
def gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    server = google_directory.start(domains=["example.com"])
    yield server
    server.shutdown()


@pytest.fixture
def identity(gws) -> Identity:
    return factories.make_managed_credential(factories.make_sandbox_platform(gws))


@pytest.fixture
def holder():
    return factories.make_pam_user("holder")


def rotation_job(identity: Identity, holder) -> Job:
    """Check the credential out and in: the job that must replace the password seen."""
    session = services.check_out(identity, actor=holder, reason="maintenance")
    ended = services.check_in(session, actor=holder)
    assert ended.rotation_job is not None
    return ended.rotation_job


def current_password(identity: Identity) -> str:
    return get_vault().read(identity.password_path)["password"]


def platform_password(
    gws: google_directory.GoogleDirectorySandbox, identity: Identity
) -> str | None:
    return gws.password_of(identity.gws_user_id)


def current_versions(identity: Identity) -> list[int]:
    return [v.version for v in get_vault().list_versions(identity.password_path)]


def readable_pending(identity: Identity) -> list[int]:
    versions = get_vault().list_versions(handlers.pending_path(identity))
    return [v.version for v in versions if v.readable]


def vault_holds(identity: Identity, password: str | None) -> bool:
    """The password is the current one, or a pending one that is still kept."""
    held = [current_password(identity)]
    vault = get_vault()
    path = handlers.pending_path(identity)
    held += [vault.read(path, version)["password"] for version in readable_pending(identity)]
    return password in held


def every_password_ever_staged(identity: Identity) -> set[str]:
    """Pending passwords, deleted ones included: the vault refuses to read those, so they are
    opened here with the embedded backend's own key ring."""
    keyring = KeyRing.from_lines(django_settings.VAULT_EMBEDDED_KEYS)
    found = set()
    for row in EncryptedSecret.objects.filter(path=handlers.pending_path(identity)):
        aad = associated_data(row.path, row.version)
        plaintext = keyring.open(row.key_id, bytes(row.ciphertext), aad, label=str(row))
        found.add(json.loads(plaintext)["password"])
    return found


def crashed_attempt(job: Job) -> None:
    """A worker claims the job, as the real one would, and then dies: the test runs the steps
    this attempt got through, and nothing records its end."""
    job.refresh_from_db()
    attempt = lifecycle.start_attempt(
        job.pk, task_id=str(job.celery_task_id), retries=job.retries, worker="doomed"
    )
    assert attempt is not None


def redeliver(job: Job) -> Job:
    """Celery re-sends the message of a job whose worker died (retry_on_worker_lost): one
    more retry counted on the same task id; the engine marks the lost attempt."""
    job.refresh_from_db()
    with contextlib.suppress(JobError):
        runner.execute(
            job.pk,
            task_id=str(job.celery_task_id),
            retries=job.retries + 1,
            max_retries=django_settings.JOB_MAX_RETRIES,
            worker="survivor",
        )
    job.refresh_from_db()
    return job


# --- success --------------------------------------------------------------------------------


def test_rotation_sets_a_new_password_on_the_platform_and_in_the_vault(
    gws, identity, holder
) -> None:
    initial = current_password(identity)
    assert platform_password(gws, identity) == initial

    job = deliver(rotation_job(identity, holder))

    assert job.status == JobStatus.COMPLETED, job.error_message
    new = current_password(identity)
    assert new != initial
    assert platform_password(gws, identity) == new
    assert len(new) == 24
    assert current_versions(identity) == [1, 2]
    assert readable_pending(identity) == []
    assert job.result == {
        "password_ref": f"vault:{identity.password_path}#2",
        "previous_ref": f"vault:{identity.password_path}#1",
        "pending_ref": f"vault:{handlers.pending_path(identity)}#1",
        "resumed": False,
        "gws_user_id": identity.gws_user_id,
    }
    # Once rotated, the credential can be checked out again, and shows the new password.
    session = services.check_out(identity, actor=holder, reason="next")
    assert services.reveal_password(session, actor=holder) == new


def test_a_second_rotation_stages_again_after_the_first_cleaned_up(gws, identity, holder) -> None:
    first = deliver(rotation_job(identity, holder))
    second = deliver(rotation_job(identity, holder))

    assert first.status == second.status == JobStatus.COMPLETED
    assert current_versions(identity) == [1, 2, 3]
    assert platform_password(gws, identity) == current_password(identity)
    assert (second.result or {})["pending_ref"] == f"vault:{handlers.pending_path(identity)}#2"
    assert readable_pending(identity) == []


def test_the_expiry_check_in_rotation_runs_too(gws, identity, holder) -> None:
    initial = current_password(identity)
    services.check_out(identity, actor=holder, reason="maintenance", minutes=1)
    services.expire_sessions(timezone.now() + timedelta(minutes=2))
    session = AccessSession.objects.get(identity=identity)
    assert session.rotation_job is not None

    job = deliver(session.rotation_job)

    assert job.status == JobStatus.COMPLETED
    assert platform_password(gws, identity) == current_password(identity) != initial


@pytest.mark.parametrize("length", [12, 40, 100])  # 12 and 100: the documented bounds
def test_password_length_follows_the_setting(gws, identity, holder, settings, length) -> None:
    settings.PAM_PASSWORD_LENGTH = length
    job = deliver(rotation_job(identity, holder))
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert len(current_password(identity)) == length


@pytest.mark.parametrize(
    ("length", "error"),
    [
        (8, "PAM_PASSWORD_LENGTH is 8; set it between 12 and 100"),
        (101, "PAM_PASSWORD_LENGTH is 101; set it between 12 and 100"),
        ("24", "PAM_PASSWORD_LENGTH must be a whole number, not '24'"),
        (True, "PAM_PASSWORD_LENGTH must be a whole number, not True"),
    ],
)
def test_a_bad_password_length_setting_fails_before_anything_changes(
    gws, identity, holder, settings, length, error
) -> None:
    settings.PAM_PASSWORD_LENGTH = length
    job = deliver(rotation_job(identity, holder))
    assert job.status == JobStatus.FAILED
    assert error in job.error_message
    assert current_versions(identity) == [1]
    assert get_vault().list_versions(handlers.pending_path(identity)) == []


@pytest.mark.parametrize(
    ("gws_user_id", "password", "missing"),
    [
        ("", True, "has no Google Workspace user yet"),
        ("100000000000000000009", False, "has no password in the vault (vault:{path})"),
    ],
)
def test_a_credential_not_created_yet_fails_naming_the_job_to_wait_for(
    gws, gws_user_id, password, missing
) -> None:
    identity = factories.make_identity(
        platform=factories.make_sandbox_platform(gws),
        identity_type=IdentityType.SHARED_CREDENTIAL_MANAGED,
        login="shared-new@example.com",
        gws_user_id=gws_user_id,
    )
    if password:
        get_vault().write(identity.password_path, {"password": "Initial-Pa55word-7f3a"}, cas=0)

    job = deliver(enqueue(JobType.CREDENTIAL_ROTATION, subject=identity))

    assert job.status == JobStatus.FAILED
    assert missing.format(path=identity.password_path) in job.error_message
    assert "its create_domain_user job must complete before it can be rotated" in job.error_message
    assert get_vault().list_versions(handlers.pending_path(identity)) == []


# --- crashes between steps, then the redelivery ---------------------------------------------


def test_crash_after_the_vault_write_before_the_platform_call(gws, identity, holder) -> None:
    initial = current_password(identity)
    job = rotation_job(identity, holder)

    crashed_attempt(job)
    pending = handlers.stage_pending(identity, job)  # (a), then the worker dies

    assert platform_password(gws, identity) == initial
    assert vault_holds(identity, platform_password(gws, identity))
    assert current_versions(identity) == [1]

    job = redeliver(job)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert [a.outcome for a in job.attempts.all()] == [
        AttemptOutcome.LOST,
        AttemptOutcome.SUCCEEDED,
    ]
    # The retry finished the staged password instead of making another one.
    assert current_password(identity) == pending.password
    assert platform_password(gws, identity) == pending.password
    assert current_versions(identity) == [1, 2]
    assert [v.version for v in get_vault().list_versions(pending.ref.path)] == [1]
    assert readable_pending(identity) == []
    assert (job.result or {})["resumed"] is True


@pytest.mark.django_db(transaction=True)
def test_an_attempt_staging_at_the_same_moment_as_another_finishes_the_others(
    identity, holder
) -> None:
    """Two attempts stage at once: the vault's check-and-set refuses the second write, and that
    attempt carries on with the password the first staged (not a second one, not an error)."""
    job = rotation_job(identity, holder)
    path = handlers.pending_path(identity)
    staged = threading.Event()

    def first_attempt() -> None:
        try:
            with transaction.atomic():
                data = {"password": "F1rst-Attempts-Pa55word", handlers.JOB_KEY: str(job.pk)}
                get_vault().write(path, data, cas=0)
                staged.set()
                # Commit only once the other attempt waits on this row: its write then fails.
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    with connection.cursor() as cursor:
                        cursor.execute(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                        )
                        if cursor.fetchone()[0]:
                            break
                    time.sleep(0.05)
        finally:
            connection.close()

    thread = threading.Thread(target=first_attempt)
    thread.start()
    assert staged.wait(30)
    pending = handlers.stage_pending(identity, job)
    thread.join(30)

    assert pending.password == "F1rst-Attempts-Pa55word"
    assert not pending.fresh  # not staged by this attempt: a refusal must not drop it
    assert pending.ref.version == 1
    assert [v.version for v in get_vault().list_versions(path)] == [1]


def test_crash_after_the_platform_call_before_the_vault_moves(gws, identity, holder) -> None:
    initial = current_password(identity)
    job = rotation_job(identity, holder)

    crashed_attempt(job)
    pending = handlers.stage_pending(identity, job)  # (a)
    client = google_workspace_client(identity.platform)
    handlers.push_to_platform(identity, pending, client)  # (b), then the worker dies

    # The platform now has a password the vault's current version does not: the vault still
    # holds it, as the pending version.
    assert platform_password(gws, identity) == pending.password != initial
    assert current_password(identity) == initial
    assert vault_holds(identity, platform_password(gws, identity))

    job = redeliver(job)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert current_password(identity) == pending.password
    assert platform_password(gws, identity) == pending.password
    assert current_versions(identity) == [1, 2]
    assert readable_pending(identity) == []


def test_crash_after_the_vault_moved_before_cleaning_up(gws, identity, holder) -> None:
    job = rotation_job(identity, holder)

    crashed_attempt(job)
    start = handlers.read_current(identity)
    pending = handlers.stage_pending(identity, job)
    handlers.push_to_platform(identity, pending, google_workspace_client(identity.platform))
    handlers.promote(identity, pending, start, job)  # (c), then the worker dies
    assert vault_holds(identity, platform_password(gws, identity))
    updates = gws.calls().count("users.update")

    job = redeliver(job)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert current_versions(identity) == [1, 2]  # not a third
    assert current_password(identity) == platform_password(gws, identity) == pending.password
    assert readable_pending(identity) == []
    assert gws.calls().count("users.update") == updates  # nothing left to set
    assert (job.result or {})["previous_ref"] is None


def test_a_password_written_meanwhile_is_kept_and_the_retry_finishes_on_top_of_it(
    gws, identity, holder
) -> None:
    """The promotion is a check-and-set on the version the attempt started from: a version
    written to the credential meanwhile (by a person, or another job) is not overwritten;
    the attempt is retried and the retry builds on that version."""
    job = rotation_job(identity, holder)
    crashed_attempt(job)
    start = handlers.read_current(identity)
    pending = handlers.stage_pending(identity, job)
    handlers.push_to_platform(identity, pending, google_workspace_client(identity.platform))
    get_vault().write(identity.password_path, {"password": "Set-Meanwhile-Pa55", "note": "kept"})

    moved = (
        rf"vault:{identity.password_path} moved from version 1 to 2 during the rotation; the "
        rf"retry finishes it with the same pending password \(vault:{pending.ref.path}#1\)"
    )
    with pytest.raises(TransientError, match=moved):
        handlers.promote(identity, pending, start, job)
    assert current_versions(identity) == [1, 2]
    assert current_password(identity) == "Set-Meanwhile-Pa55"

    job = redeliver(job)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert current_versions(identity) == [1, 2, 3]
    assert current_password(identity) == platform_password(gws, identity) == pending.password
    assert get_vault().read(identity.password_path)["note"] == "kept"


def test_crash_after_every_step_before_the_outcome_was_recorded(gws, identity, holder) -> None:
    job = rotation_job(identity, holder)

    crashed_attempt(job)
    start = handlers.read_current(identity)
    pending = handlers.stage_pending(identity, job)
    handlers.push_to_platform(identity, pending, google_workspace_client(identity.platform))
    handlers.promote(identity, pending, start, job)
    handlers.finish(pending)  # (d), then the worker dies before the job is marked completed
    updates = gws.calls().count("users.update")

    job = redeliver(job)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert job.result == {
        "password_ref": f"vault:{identity.password_path}#2",
        "resumed": True,
        "note": "already rotated",
    }
    assert current_versions(identity) == [1, 2]
    assert current_password(identity) == platform_password(gws, identity) == pending.password
    assert gws.calls().count("users.update") == updates


# --- errors ---------------------------------------------------------------------------------


def test_permanent_error_leaves_the_current_version_and_says_what_to_do(
    gws, identity, holder
) -> None:
    initial = current_password(identity)
    gws.faults.add("users.update", status=403, reason="forbidden")
    job = deliver(rotation_job(identity, holder))

    assert job.status == JobStatus.FAILED
    assert job.attempt_count == 1
    assert current_versions(identity) == [1]
    assert current_password(identity) == initial == platform_password(gws, identity)
    # The platform never had the staged password, so it is not kept.
    assert readable_pending(identity) == []
    message = job.error_message
    assert message.startswith("Could not rotate the password of shared-ops@example.com: ")
    assert "403 Not Authorized to access this resource/api. Nothing was changed: " in message
    assert "deleted or renamed" not in message  # that hint is for a 404
    assert f"the vault's current password (vault:{identity.password_path}#1)" in message
    # The admin learns that the password someone saw in a session is still the live one.
    session = job.params["session_id"]
    assert f"which the holder of session #{session} could reveal, still works" in message
    assert "domain-wide delegation" in message
    assert "then retry this job" in message
    assert "reset it by hand in the Google Admin console" in message

    # Doing what it says: once the cause is gone, the admin's retry rotates.
    assert retry_job(job, actor=factories.make_pam_admin())
    job = deliver(job)
    assert job.status == JobStatus.COMPLETED
    assert current_versions(identity) == [1, 2]
    assert platform_password(gws, identity) == current_password(identity) != initial


def test_a_user_gone_from_google_is_a_permanent_error_naming_the_cause(
    gws, identity, holder
) -> None:
    gws.faults.add("users.update", status=404, reason="notFound")
    job = deliver(rotation_job(identity, holder))

    assert job.status == JobStatus.FAILED
    assert "404 Resource Not Found: userKey" in job.error_message
    assert "deleted or renamed outside AccessHive" in job.error_message
    assert current_versions(identity) == [1]


def remediation_rotation(identity: Identity) -> Job:
    """The rotation a remediation job starts: no check-in, so no session behind it."""
    return enqueue(
        JobType.CREDENTIAL_ROTATION,
        subject=identity,
        params={"remediation_job_id": 1},
        trigger="job",
        trigger_label="remediation job 1",
    )


def test_a_refused_remediation_rotation_names_no_session(gws, identity) -> None:
    """A rotation no check-in started has no session whose holder saw the password."""
    gws.faults.add("users.update", status=403, reason="forbidden")
    job = deliver(remediation_rotation(identity))

    assert job.status == JobStatus.FAILED
    assert (
        "403 Not Authorized to access this resource/api. Nothing was changed: the vault's "
        f"current password (vault:{identity.password_path}#1) still works. Fix the cause"
    ) in job.error_message
    assert "session" not in job.error_message


def test_a_user_re_created_at_the_same_address_is_not_given_the_password(
    gws, identity, holder
) -> None:
    """The credential's Google user is the one it was created as, found by its immutable id:
    if that user is deleted and someone else gets its address, the rotation fails and leaves
    the newcomer's password alone."""
    client = google_workspace_client(identity.platform)
    assert client.delete_user(identity.gws_user_id)
    newcomer = client.insert_user(identity.login, "New", "Comer", "Newcomers-Own-Pa55")
    initial = current_password(identity)

    job = deliver(rotation_job(identity, holder))

    assert job.status == JobStatus.FAILED
    assert "404 Resource Not Found: userKey" in job.error_message
    assert gws.password_of(newcomer.id) == "Newcomers-Own-Pa55"
    assert current_password(identity) == initial


def test_permanent_error_after_a_crash_keeps_the_pending_password(gws, identity, holder) -> None:
    """The crashed attempt may have set the pending password on the platform: a later
    permanent refusal must not drop the only other copy of it."""
    job = rotation_job(identity, holder)
    crashed_attempt(job)
    pending = handlers.stage_pending(identity, job)
    handlers.push_to_platform(identity, pending, google_workspace_client(identity.platform))
    gws.faults.add("users.update", status=403, reason="forbidden")

    job = redeliver(job)

    assert job.status == JobStatus.FAILED
    assert "An earlier attempt may already have set the pending password" in job.error_message
    assert readable_pending(identity) == [pending.ref.version]
    assert vault_holds(identity, platform_password(gws, identity))
    assert current_versions(identity) == [1]

    assert retry_job(job, actor=factories.make_pam_admin())
    job = deliver(job)
    assert job.status == JobStatus.COMPLETED
    assert current_password(identity) == platform_password(gws, identity) == pending.password
    assert current_versions(identity) == [1, 2]


def test_transient_error_then_success_reuses_the_pending_password(gws, identity, holder) -> None:
    initial = current_password(identity)
    gws.faults.add("users.update", status=503, reason="backendError")
    job = deliver(rotation_job(identity, holder))

    assert job.status == JobStatus.RETRYING
    assert "503" in job.error_message
    assert current_password(identity) == initial == platform_password(gws, identity)
    assert readable_pending(identity) == [1]

    job = deliver(job)

    assert job.status == JobStatus.COMPLETED
    assert [a.outcome for a in job.attempts.all()] == [
        AttemptOutcome.FAILED,
        AttemptOutcome.SUCCEEDED,
    ]
    assert current_versions(identity) == [1, 2]
    assert [v.version for v in get_vault().list_versions(handlers.pending_path(identity))] == [1]
    assert platform_password(gws, identity) == current_password(identity) != initial


def test_rate_limited_update_is_retried(gws, identity, holder) -> None:
    gws.faults.add("users.update", status=403, reason="userRateLimitExceeded")
    job = deliver(rotation_job(identity, holder))
    assert job.status == JobStatus.RETRYING
    assert deliver(job).status == JobStatus.COMPLETED


def test_an_external_credential_is_never_rotated_by_a_job(gws, identity) -> None:
    external = factories.make_external_credential(identity.platform)
    job = deliver(enqueue(JobType.CREDENTIAL_ROTATION, subject=external))
    assert job.status == JobStatus.FAILED
    assert "AccessHive rotates only managed shared credentials" in job.error_message
    assert get_vault().current_version(external.vault_path) == 1


# --- no password anywhere in the job --------------------------------------------------------


def test_no_password_in_the_jobs_input_result_error_or_logs(gws, identity, holder, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    passwords = {current_password(identity)}

    gws.faults.add("users.update", status=503, reason="backendError")
    done = deliver(deliver(rotation_job(identity, holder)))  # a transient error, then success
    passwords.add(current_password(identity))
    gws.faults.add("users.update", status=403, reason="forbidden")
    failed = deliver(rotation_job(identity, holder))  # a permanent error
    gws.faults.add("users.update", status=400, reason="invalid", message="Invalid Password")
    failed_again = deliver(rotation_job(identity, holder))
    passwords |= every_password_ever_staged(identity)

    assert done.status == JobStatus.COMPLETED
    assert failed.status == failed_again.status == JobStatus.FAILED
    jobs = list(Job.objects.filter(job_type=JobType.CREDENTIAL_ROTATION))
    recorded = [
        repr((job.params, job.result, job.error_message, job.error_traceback)) for job in jobs
    ]
    recorded += [
        repr((a.error_class, a.error_message, a.error_traceback))
        for job in jobs
        for a in job.attempts.all()
    ]
    recorded += [caplog.text] + [repr(record.__dict__) for record in caplog.records]
    assert "pam.rotation.completed" in caplog.text
    assert len(passwords) == 4  # initial, rotated, and the two dropped after refusals
    for password in passwords:
        assert all(password not in text for text in recorded)


# --- never while a session is open ----------------------------------------------------------


def test_a_retried_rotation_waits_for_the_check_in_of_a_session_opened_meanwhile(
    gws, identity, holder
) -> None:
    gws.faults.add("users.update", status=403, reason="forbidden")
    job = deliver(rotation_job(identity, holder))
    assert job.status == JobStatus.FAILED
    # While the rotation is failed, someone checks the credential out and reveals it.
    other = factories.make_pam_user("other")
    session = services.check_out(identity, actor=other, reason="incident")
    revealed = services.reveal_password(session, actor=other)

    assert retry_job(job, actor=factories.make_pam_admin())
    job = deliver(job)

    assert job.status == JobStatus.WAITING
    assert job.waiting_reason.startswith(f"waiting for check-in of session #{session.pk} by other")
    assert platform_password(gws, identity) == current_password(identity) == revealed
    assert [e.kind for e in job.events.all()][-1] == "held"

    ended = services.check_in(session, actor=other)
    assert ended.rotation_job == job  # released, not a second rotation
    job = deliver(job)
    assert job.status == JobStatus.COMPLETED
    assert platform_password(gws, identity) == current_password(identity) != revealed
    assert Job.objects.filter(job_type=JobType.CREDENTIAL_ROTATION).count() == 1


def test_a_remediation_rotation_waits_while_the_credential_is_checked_out(
    gws, identity, holder
) -> None:
    session = services.check_out(identity, actor=holder, reason="maintenance")
    revealed = services.reveal_password(session, actor=holder)
    job = deliver(remediation_rotation(identity))
    assert job.status == JobStatus.WAITING
    assert platform_password(gws, identity) == revealed

    services.check_in(session, actor=holder)
    assert deliver(job).status == JobStatus.COMPLETED
    assert platform_password(gws, identity) == current_password(identity) != revealed
