"""A 10,000-row CSV import on a real worker that is killed with SIGKILL halfway: a new worker
finishes it, and every identity, vault secret and provisioning job exists exactly once."""

from collections import Counter

import pytest
import redis
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile

from identities.models import Identity, IdentityStatus, IdentityType
from imports import services
from imports.models import ImportBatch, ImportStatus
from jobs.models import AttemptOutcome, Job, JobAttempt, JobType
from tests import factories
from tests.integration.test_ops_support import OpsWorker
from tests.integration.worker import wait_for
from vault.models import EncryptedSecret

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HUMANS = 2_000
API_KEYS = 8_000
ROWS = HUMANS + API_KEYS
REDELIVER_SOON = {"CELERY_VISIBILITY_TIMEOUT": "5"}


def csv_file(platform: str) -> bytes:
    lines = ["type,platform,given_name,family_name,email,name,api_key"]
    for n in range(ROWS):
        if n % 5 == 0:  # one human interactive row in five
            lines.append(f"human_interactive,{platform},Given{n},Family{n},u{n}@example.com,,")
        else:
            lines.append(f"api_key,{platform},,,,key-{n},secret-value-{n}")
    return ("\n".join(lines) + "\n").encode()


def test_a_worker_killed_mid_import_leaves_each_identity_and_job_exactly_once(
    broker: "redis.Redis[bytes]",
) -> None:
    platform = factories.make_platform("Workspace")
    admin = factories.make_identity_admin()
    batch = services.start_import(
        SimpleUploadedFile("people.csv", csv_file(platform.name)),
        filename="people.csv",
        dry_run=False,
        actor=admin,
    )
    assert batch.rows_total == ROWS

    # Only the import's queue is consumed: the provisioning jobs it enqueues stay queued (and
    # with no beat, no sweeper re-sends them). The killed worker's message comes back from
    # Redis after the visibility timeout, made short here.
    first = OpsWorker(queues=["bulk"], env=REDELIVER_SOON).start()
    try:
        wait_for(
            lambda: ImportBatch.objects.get(pk=batch.pk).rows_done >= ROWS // 3,
            120,
            "a third of the rows imported",
            first,
        )
        first.kill()
    finally:
        first.stop()
    at_kill = ImportBatch.objects.get(pk=batch.pk)
    assert at_kill.status == ImportStatus.RUNNING
    assert at_kill.rows_done < ROWS

    second = OpsWorker(queues=["bulk"], env=REDELIVER_SOON).start()
    try:
        wait_for(
            lambda: ImportBatch.objects.get(pk=batch.pk).status == ImportStatus.COMPLETED,
            300,
            "the import to complete",
            second,
        )
    finally:
        second.stop()

    batch.refresh_from_db()
    assert (batch.rows_done, batch.created, batch.skipped, batch.failed) == (ROWS, ROWS, 0, 0)
    # The import's job whose worker was killed has a lost attempt (its message redelivered),
    # and later jobs finished the file.
    import_jobs = Job.objects.filter(job_type=JobType.BULK_IMPORT)
    lost = JobAttempt.objects.filter(job__in=import_jobs, outcome=AttemptOutcome.LOST)
    assert lost.exists()

    identities = Identity.objects.filter(platform=platform)
    assert identities.count() == ROWS
    humans = identities.filter(identity_type=IdentityType.HUMAN_INTERACTIVE)
    assert set(humans.values_list("login", flat=True)) == {
        f"u{n}@example.com" for n in range(0, ROWS, 5)
    }
    keys = identities.filter(identity_type=IdentityType.API_KEY)
    assert keys.count() == API_KEYS
    assert set(keys.values_list("status", flat=True)) == {IdentityStatus.PROVISIONED}
    # One vault secret per key, written once (version 1), and none for a rolled-back row.
    secrets = EncryptedSecret.objects.filter(path__startswith="identities/")
    assert Counter(secrets.values_list("version", flat=True)) == {1: API_KEYS}
    assert set(secrets.values_list("path", flat=True)) == {
        f"identities/{pk}/credential" for pk in keys.values_list("pk", flat=True)
    }

    # Each human interactive identity has exactly its two provisioning jobs.
    per_identity = Counter(
        Job.objects.filter(
            subject_type=ContentType.objects.get_for_model(Identity),
        ).values_list("subject_id", "job_type")
    )
    assert set(per_identity.values()) == {1}
    assert {int(subject_id) for subject_id, _ in per_identity} == set(
        humans.values_list("pk", flat=True)
    )
    assert Counter(job_type for _, job_type in per_identity) == {
        JobType.CREATE_DOMAIN_USER: HUMANS,
        JobType.PROVISION_SSO_USER: HUMANS,
    }
