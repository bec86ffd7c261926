"""Retention on the real PostgreSQL: what pruning deletes, what it keeps, the counters it keeps
right, and the schedules (ours and Celery's result cleanup) beat runs."""

from datetime import timedelta
from io import StringIO

import pytest
from celery.beat import PersistentScheduler
from celery.schedules import crontab
from django.core.management import call_command
from django.db.models import Count
from django.utils import timezone
from django_celery_results.models import TaskResult

from accesshive.celery import app
from jobs import retention
from jobs.models import Job, JobAttempt, JobEvent, JobStatus, JobStatusCount, JobType
from tests import factories
from tests.conftest import require_services

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def postgres() -> None:
    require_services("postgres")  # SKIP LOCKED and the partial index are PostgreSQL's


def finished(
    status: str, days_ago: float, job_type: str = JobType.DIRECTORY_SYNC, attempts: int = 1
) -> Job:
    at = timezone.now() - timedelta(days=days_ago)
    created_at = at - timedelta(minutes=1)
    job = factories.make_job(
        status=status, job_type=job_type, attempts=attempts, created_at=created_at
    )
    Job.objects.filter(pk=job.pk).update(completed_at=at)
    return job


def counters_match_the_table() -> None:
    actual = {
        (row["job_type"], row["status"]): row["n"]
        for row in Job.objects.values("job_type", "status").annotate(n=Count("pk")).order_by()
    }
    kept = {(c.job_type, c.status): c.count for c in JobStatusCount.objects.all() if c.count}
    assert kept == actual


def test_prune_deletes_what_is_past_retention_and_keeps_the_rest() -> None:
    old_completed = [
        finished(JobStatus.COMPLETED, 31, job_type=JobType.DIRECTORY_SYNC, attempts=2),
        finished(JobStatus.COMPLETED, 45, job_type=JobType.BULK_IMPORT),
        finished(JobStatus.COMPLETED, 400, job_type=JobType.DIRECTORY_SYNC),
    ]
    old_failed = [finished(JobStatus.FAILED, 91, job_type=JobType.REMEDIATION, attempts=3)]
    factories.make_event(old_failed[0], JobEvent.Kind.RETRIED, message="tried by hand")
    keep = [
        finished(JobStatus.COMPLETED, 29, job_type=JobType.DIRECTORY_SYNC),
        finished(JobStatus.FAILED, 31, job_type=JobType.DIRECTORY_SYNC),  # failed: 90 days
        finished(JobStatus.FAILED, 89, job_type=JobType.REMEDIATION),
    ]
    long_ago = timezone.now() - timedelta(days=200)
    active = [  # never finished, however old: never pruned
        factories.make_job(status=status, created_at=long_ago)
        for status in (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.RETRYING)
    ]
    doomed = [job.pk for job in old_completed + old_failed]

    result = retention.prune(batch_size=2)  # small batches: the loop must carry on

    assert result.deleted == {JobStatus.COMPLETED: 3, JobStatus.FAILED: 1}
    remaining = set(Job.objects.values_list("pk", flat=True))
    assert remaining == {job.pk for job in keep + active}
    assert not JobAttempt.objects.filter(job_id__in=doomed).exists()
    assert not JobEvent.objects.filter(job_id__in=doomed).exists()
    assert JobAttempt.objects.filter(job_id__in=[j.pk for j in keep + active]).exists()
    counters_match_the_table()
    assert retention.prune().total == 0  # nothing left to do


def test_dry_run_counts_and_deletes_nothing() -> None:
    finished(JobStatus.COMPLETED, 40)
    finished(JobStatus.FAILED, 100)
    finished(JobStatus.FAILED, 40)
    out = StringIO()
    call_command("prune_jobs", "--dry-run", stdout=out)
    assert "completed: would delete 1" in out.getvalue()
    assert "failed: would delete 1" in out.getvalue()
    assert Job.objects.count() == 3

    call_command("prune_jobs", stdout=out)
    assert "completed: deleted 1" in out.getvalue()
    assert Job.objects.count() == 1
    counters_match_the_table()


def test_retention_days_come_from_settings(settings) -> None:
    settings.JOB_RETENTION_DAYS = 7
    settings.FAILED_JOB_RETENTION_DAYS = 14
    gone = finished(JobStatus.COMPLETED, 8)
    kept = finished(JobStatus.FAILED, 8)
    retention.prune()
    assert not Job.objects.filter(pk=gone.pk).exists()
    assert Job.objects.filter(pk=kept.pk).exists()


def test_a_job_retried_meanwhile_is_not_deleted() -> None:
    """The batch is re-checked under its row locks: a failed job an admin has just retried
    is pending again, and must stay."""
    job = finished(JobStatus.FAILED, 100)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.PENDING)  # as reset_for_retry does
    assert retention.delete_batch(JobStatus.FAILED, timezone.now(), 10) == 0
    assert Job.objects.filter(pk=job.pk).exists()


def test_beat_prunes_daily_and_cleans_up_celery_results(tmp_path) -> None:
    entry = app.conf.beat_schedule["jobs-prune"]
    assert entry["task"] == "jobs.prune"
    assert isinstance(entry["schedule"], crontab)
    assert entry["schedule"].remaining_estimate(timezone.now()) <= timedelta(days=1)
    # Celery's beat adds its own daily result cleanup because the django-db backend cannot
    # expire rows by itself; check that it really does with our settings.
    assert app.conf.result_expires == 7 * 24 * 3600
    # Celery's own scheduler, plus a heartbeat per tick (ops.beat).
    assert app.conf.beat_scheduler == "ops.beat:HeartbeatScheduler"
    scheduler = PersistentScheduler(app, schedule_filename=str(tmp_path / "beat"), lazy=True)
    scheduler.setup_schedule()
    try:
        cleanup = scheduler.schedule["celery.backend_cleanup"]
        tasks = {entry.task for entry in scheduler.schedule.values()}
    finally:
        scheduler.close()
    assert cleanup.task == "celery.backend_cleanup"
    assert cleanup.schedule == crontab(minute="0", hour="4")
    assert {"jobs.sweep", "jobs.prune"} <= tasks


def test_celery_result_cleanup_deletes_expired_results() -> None:
    old = TaskResult.objects.create(task_id="old", status="SUCCESS")
    new = TaskResult.objects.create(task_id="new", status="SUCCESS")
    TaskResult.objects.filter(pk=old.pk).update(date_done=timezone.now() - timedelta(days=8))
    app.tasks["celery.backend_cleanup"]()
    assert list(TaskResult.objects.values_list("task_id", flat=True)) == [new.task_id]
