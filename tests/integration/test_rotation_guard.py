"""A real worker never rotates a password while a session on the credential is open: the race
where a session opens between a rotation's enqueue and its run."""

import threading
from collections.abc import Iterator

import pytest
import redis
from django.db import connection, transaction

from identities.models import Identity
from jobs.models import Job, JobStatus, JobType, Trigger
from jobs.services import enqueue
from pam import services
from sandbox import google_directory
from tests import factories
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


def enqueue_rotation_slowly(
    identity: Identity, enqueued: threading.Event, opened: threading.Event
) -> None:
    """A remediation enqueues a rotation; its transaction commits only after the session
    below has opened (check_out cannot see the uncommitted job, so it does not refuse)."""
    try:
        with transaction.atomic():
            enqueue(
                JobType.CREDENTIAL_ROTATION,
                subject=identity,
                params={"remediation_job_id": 1},
                trigger=Trigger.JOB,
                trigger_label="remediation job 1",
            )
            enqueued.set()
            assert opened.wait(10)
    finally:
        connection.close()


@pytest.fixture
def identity(gws: google_directory.GoogleDirectorySandbox) -> Identity:
    """Made (its Google user created in this process) before the worker starts, so the worker
    cannot take the creation's message first."""
    return factories.make_managed_credential(factories.make_sandbox_platform(gws))


def test_a_session_opened_between_enqueue_and_run_holds_the_rotation_until_check_in(
    identity, worker, gws
) -> None:
    holder = factories.make_pam_user("holder")
    enqueued, opened = threading.Event(), threading.Event()
    remediation = threading.Thread(
        target=enqueue_rotation_slowly, args=(identity, enqueued, opened)
    )
    remediation.start()
    assert enqueued.wait(10)
    assert not Job.objects.filter(job_type=JobType.CREDENTIAL_ROTATION).exists()  # uncommitted

    session = services.check_out(identity, actor=holder, reason="incident")
    revealed = services.reveal_password(session, actor=holder)
    opened.set()
    remediation.join(10)

    job = Job.objects.get(job_type=JobType.CREDENTIAL_ROTATION)
    wait_for(
        lambda: Job.objects.filter(pk=job.pk, status=JobStatus.WAITING).exists(),
        30,
        "the rotation to wait",
        worker,
    )
    job.refresh_from_db()
    assert job.attempt_count == 0
    assert job.waiting_reason.startswith(f"waiting for check-in of session #{session.pk}")
    assert gws.password_of(identity.gws_user_id) == revealed  # still the one the holder saw

    ended = services.check_in(session, actor=holder)
    assert ended.rotation_job_id == job.pk
    wait_for(
        lambda: Job.objects.filter(pk=job.pk, status=JobStatus.COMPLETED).exists(),
        30,
        "the rotation to complete",
        worker,
    )
    current = get_vault().read(identity.password_path)["password"]
    assert gws.password_of(identity.gws_user_id) == current != revealed
    assert Job.objects.filter(job_type=JobType.CREDENTIAL_ROTATION).count() == 1
