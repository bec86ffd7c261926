"""ImportBatch (one uploaded CSV and its progress), its stored pieces and its row problems."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ImportStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


FINISHED_STATUSES = (ImportStatus.COMPLETED, ImportStatus.FAILED)


class ImportBatch(models.Model):
    """One uploaded CSV file: its counts, where processing has got to, and its current job.

    The file itself lives in ImportChunk rows until processing ends; then they are deleted,
    because the file holds credentials that belong in the vault only.
    """

    filename = models.CharField(max_length=255)
    size_bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(
        max_length=16, choices=ImportStatus.choices, default=ImportStatus.PENDING
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The job processing the file now; a long import hands over to a continuation job.
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    # In a dry run: the rows that would be created.
    created = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # The spreadsheet row number (header = 1) of the last row processed: where to resume.
    last_row = models.PositiveIntegerField(default=1)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    upload_deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "import"
        verbose_name_plural = "imports"

    def __str__(self) -> str:
        return f"Import #{self.pk} {self.filename}"

    @property
    def is_active(self) -> bool:
        return self.status not in FINISHED_STATUSES

    @property
    def percent_done(self) -> int:
        if not self.rows_total:
            return 100 if self.status == ImportStatus.COMPLETED else 0
        return min(100, self.rows_done * 100 // self.rows_total)


class ImportChunk(models.Model):
    """One piece (up to 1 MB) of an uploaded file, stored in the database so a worker on
    another host can stream it without a shared filesystem."""

    batch = models.ForeignKey(ImportBatch, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    # AES-256-GCM with the embedded vault's key ring (imports.services.seal_piece): the file
    # holds secret columns. Empty: a piece stored in plain text before encryption came.
    key_id = models.CharField(max_length=64, blank=True, default="")
    data = models.BinaryField()

    class Meta:
        ordering = ["batch", "number"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "number"], name="import_chunk_number_unique")
        ]

    def __str__(self) -> str:
        return f"piece {self.number} of import #{self.batch_id}"


class ImportLogin(models.Model):
    """Dry runs only: a login a row of the file would create, so a later row with the same
    login is found to be a duplicate, across chunks and continuation jobs, without holding
    every login in memory. Deleted with the upload; logins are not secrets."""

    batch = models.ForeignKey(ImportBatch, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=400)  # "<platform id>:<login>"
    row = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["batch", "key"], name="import_login_unique")]

    def __str__(self) -> str:
        return f"{self.key} (row {self.row} of import #{self.batch_id})"


class RowOutcome(models.TextChoices):
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class ImportProblem(models.Model):
    """Why one row was skipped or failed, naming the field; never a secret value."""

    batch = models.ForeignKey(ImportBatch, on_delete=models.CASCADE, related_name="problems")
    row = models.PositiveIntegerField()
    outcome = models.CharField(max_length=16, choices=RowOutcome.choices)
    field = models.CharField(max_length=64)
    message = models.TextField()
    # From the row's non-secret columns, so the report can be read without the file.
    identity_type = models.CharField(max_length=64, blank=True)
    platform = models.CharField(max_length=200, blank=True)
    login = models.CharField(max_length=320, blank=True)

    class Meta:
        ordering = ["batch", "row", "id"]
        indexes = [models.Index(fields=["batch", "row", "id"], name="import_problem_row")]

    def __str__(self) -> str:
        return self.text

    @property
    def text(self) -> str:
        """The problem as one line: ``row 17, email: Not on the platform's domain ….``"""
        return f"row {self.row}, {self.field}: {self.message}"
