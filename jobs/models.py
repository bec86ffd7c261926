"""Job, JobAttempt and JobEvent: the record of truth for every background job."""

import uuid

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils import timezone


class JobType(models.TextChoices):
    CREATE_DOMAIN_USER = "create_domain_user", "Create domain user"
    PROVISION_SSO_USER = "provision_sso_user", "Provision identity provider user"
    CREDENTIAL_ROTATION = "credential_rotation", "Credential rotation"
    DIRECTORY_SYNC = "directory_sync", "Directory sync"
    AUDIT_INGESTION = "audit_ingestion", "Audit ingestion"
    ASSET_DISCOVERY = "asset_discovery", "Asset discovery"
    BULK_IMPORT = "bulk_import", "Bulk import"
    JML_AUTOMATION = "jml_automation", "Joiner/Mover/Leaver automation"
    REMEDIATION = "remediation", "Remediation"


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    RETRYING = "retrying", "Retrying"
    # Held back before its first (or next) attempt: until other jobs complete, or until a
    # domain app releases it (jobs.dependencies). No message is in the broker meanwhile.
    WAITING = "waiting", "Waiting"


ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.RETRYING, JobStatus.WAITING)


class Trigger(models.TextChoices):
    USER = "user", "User"
    SCHEDULE = "schedule", "Schedule"
    EVENT = "event", "Directory event"
    SYSTEM = "system", "System"
    JOB = "job", "Another job"


class Job(models.Model):
    job_type = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)

    # What the job acts on (an identity, a directory source, ...), without the engine
    # importing the domain app that owns it; the label keeps the list page join-free.
    subject_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject_id = models.CharField(max_length=64, blank=True)
    subject_label = models.CharField(max_length=255, blank=True)

    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.USER)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trigger_label = models.CharField(max_length=255, blank=True)
    params = models.JSONField(default=dict, blank=True)

    result = models.JSONField(null=True, blank=True)
    error_class = models.CharField(max_length=255, blank=True)
    error_message = models.TextField(blank=True)
    error_traceback = models.TextField(blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    # Delivery bookkeeping: the id of the one Celery message allowed to run this job, and
    # how many retries Celery counted on it (its request.retries). A message with another id
    # or count is a stale duplicate and is ignored.
    celery_task_id = models.UUIDField(default=uuid.uuid4)
    retries = models.PositiveIntegerField(default=0)
    attempt_count = models.PositiveIntegerField(default=0)
    attempt_started_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(default=timezone.now)
    # Why a waiting job waits ("waiting for #123", "waiting for check-in of session #5").
    waiting_reason = models.CharField(max_length=255, blank=True)
    # Enqueued with prerequisites (JobDependency): only such a job's claim looks them up.
    has_prerequisites = models.BooleanField(default=False)
    # Some job waits for this one (set when it is linked, under this row's lock): only such a
    # job's completion looks its dependents up.
    has_dependents = models.BooleanField(default=False)

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("retry_job", "Can retry failed jobs"),
            ("cancel_job", "Can cancel pending or retrying jobs"),
        ]
        indexes = [
            models.Index(fields=["status", "-id"], name="job_status_newest"),
            models.Index(fields=["job_type", "-id"], name="job_type_newest"),
            models.Index(fields=["job_type", "status", "-id"], name="job_type_status_newest"),
            models.Index(
                fields=["status", "dispatched_at"],
                name="job_active_dispatch",
                condition=Q(status__in=["pending", "running", "retrying"]),
            ),
            models.Index(fields=["subject_type", "subject_id", "-id"], name="job_subject_newest"),
            # Finished jobs by when they finished: the dashboard's last-24-hours charts and
            # retention's oldest-first pruning both read a range of it per status.
            models.Index(
                fields=["status", "completed_at"],
                name="job_status_finished",
                condition=Q(completed_at__isnull=False),
            ),
            # The jobs list's "cancelled" filter (lifecycle.CANCELLED_ERROR_CLASS), newest first.
            models.Index(
                fields=["-id"],
                name="job_cancelled_newest",
                condition=Q(status="failed", error_class="Cancelled"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type_label} #{self.pk} ({self.status})"

    @property
    def type_label(self) -> str:
        try:
            return JobType(self.job_type).label
        except ValueError:
            return self.job_type

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.completed_at:
            return (self.completed_at - self.started_at).total_seconds()
        return None

    @property
    def triggered_by_label(self) -> str:
        if self.trigger == Trigger.USER and self.triggered_by_id:
            return self.trigger_label or f"user #{self.triggered_by_id}"
        return self.trigger_label or self.get_trigger_display()

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class AttemptOutcome(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    TIMED_OUT = "timed_out", "Timed out"
    LOST = "lost", "Worker lost"
    IGNORED = "ignored", "Ignored"


class JobAttempt(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    retries = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=255, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(
        max_length=16, choices=AttemptOutcome.choices, default=AttemptOutcome.RUNNING
    )
    error_class = models.CharField(max_length=255, blank=True)
    error_message = models.TextField(blank=True)
    error_traceback = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="job_attempt_number_unique")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of job #{self.job_id}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def wait_before_next_seconds(self) -> float | None:
        if self.next_attempt_at and self.finished_at:
            return (self.next_attempt_at - self.finished_at).total_seconds()
        return None


class JobEvent(models.Model):
    """The job's history beyond its attempts: retries and cancels by people, sweeper
    recoveries."""

    class Kind(models.TextChoices):
        RETRIED = "retried", "Retried by an admin"
        CANCELLED = "cancelled", "Cancelled before its next attempt"
        RESENT = "resent", "Message re-sent by the sweeper"
        RECOVERED = "recovered", "Recovered from a lost worker"
        HELD = "held", "Held back"
        RELEASED = "released", "Released"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} on job #{self.job_id}"


class JobDependency(models.Model):
    """``job`` waits for ``prerequisite`` to complete; if it fails for good, ``job`` is not run.

    A Retry of the prerequisite that completes releases the job (jobs.dependencies).
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="prerequisite_links")
    prerequisite = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="dependent_links")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "prerequisite"], name="job_dependency_unique")
        ]

    def __str__(self) -> str:
        return f"job #{self.job_id} after #{self.prerequisite_id}"


class JobStatusCount(models.Model):
    """Per-type, per-status job counts, kept in step with every status change.

    The dashboard reads these instead of counting a table of millions of rows per request.
    """

    job_type = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=JobStatus.choices)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job_type", "status"], name="job_count_type_status")
        ]

    def __str__(self) -> str:
        return f"{self.job_type}/{self.status}: {self.count}"
