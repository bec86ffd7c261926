"""AuditSettings, AuditCheckpoint and AuditEvent: what to ingest per platform, how far it got,
and the events themselves, one row per event."""

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from identities.models import Platform


def default_applications() -> list[str]:
    return list(settings.AUDIT_DEFAULT_APPLICATIONS)


def default_interval() -> int:
    return int(settings.AUDIT_DEFAULT_INTERVAL_MINUTES)


def default_overlap() -> int:
    return int(settings.AUDIT_OVERLAP_MINUTES)


class AuditSettings(models.Model):
    """Which activity reports of a platform are ingested, and how often. Kept here, not on
    the platform: ingestion is this app's concern."""

    platform = models.OneToOneField(
        Platform, on_delete=models.CASCADE, related_name="audit_settings"
    )
    enabled = models.BooleanField(default=True)
    applications = models.JSONField(default=default_applications)
    interval_minutes = models.PositiveIntegerField(default=default_interval)
    # How far before its checkpoint each run starts reading again, for activities Google
    # publishes late; the daily late-arrival check (AuditLateCheck) says whether it is enough.
    overlap_minutes = models.PositiveIntegerField(default=default_overlap)
    last_enqueued_at = models.DateTimeField(null=True, blank=True)
    # Set by a run that stopped at its time budget before reaching "now", so the beat sends
    # the next run at its next tick instead of after a whole interval.
    catching_up = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "audit settings"
        permissions = [("ingest_auditevents", "Can start an audit-log ingestion now")]

    def __str__(self) -> str:
        return f"audit settings of {self.platform}"


class AuditCheckpoint(models.Model):
    """How far one application's report of one platform has been read: every activity with a
    time up to ``position`` that Google had published when it was read is stored. The next
    run starts an overlap window earlier, for activities Google publishes late."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="+")
    application = models.CharField(max_length=40)
    position = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "application"], name="audit_checkpoint_per_application"
            )
        ]

    def __str__(self) -> str:
        return f"{self.platform} {self.application} at {self.position}"


class AuditEvent(models.Model):
    """One event of a Google activity. An activity may hold several events; each is a row,
    so the event-name filter walks an index. Rows of one activity share occurred_at and
    unique_qualifier and differ in event_index."""

    # The platform index is the first column of two composite indexes; no separate one.
    platform = models.ForeignKey(
        Platform, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    application = models.CharField(max_length=40)
    occurred_at = models.DateTimeField()
    unique_qualifier = models.CharField(max_length=80)
    event_index = models.PositiveSmallIntegerField(default=0)
    event_name = models.CharField(max_length=200, blank=True)
    event_type = models.CharField(max_length=200, blank=True)
    actor_email = models.CharField(max_length=320, blank=True)
    actor_profile_id = models.CharField(max_length=64, blank=True)
    caller_type = models.CharField(max_length=32, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    # Something in Google's record was off; raw then holds {"problems": [...], "activity": …}.
    malformed = models.BooleanField(default=False)
    raw = models.JSONField(null=True, blank=True)
    ingested_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            # Google's id of an activity (its time and unique qualifier, per application),
            # and the event's place in it: reading an activity twice stores it once.
            models.UniqueConstraint(
                fields=[
                    "platform",
                    "application",
                    "occurred_at",
                    "unique_qualifier",
                    "event_index",
                ],
                name="audit_event_google_id",
            )
        ]
        indexes = [
            models.Index(fields=["-occurred_at", "-id"], name="audit_event_newest"),
            models.Index(fields=["platform", "-occurred_at", "-id"], name="audit_event_platform"),
            models.Index(fields=["application", "-occurred_at", "-id"], name="audit_event_app"),
            models.Index(fields=["event_name", "-occurred_at", "-id"], name="audit_event_name"),
            models.Index(fields=["actor_email", "-occurred_at", "-id"], name="audit_event_actor"),
        ]

    def __str__(self) -> str:
        return f"{self.application} {self.event_name or '?'} by {self.actor_email or '?'}"

    @property
    def problems(self) -> list[Any]:
        return list((self.raw or {}).get("problems") or [])


class AuditLateCheck(models.Model):
    """The daily late-arrival check of one application's report of one platform for one day:
    that day re-read once it is well behind the checkpoint; ``missed`` counts the events the
    runs with their overlap had not stored (now stored), published later than the overlap."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="+")
    application = models.CharField(max_length=40)
    day = models.DateField()
    read_to = models.DateTimeField()
    read = models.PositiveIntegerField(default=0)
    missed = models.PositiveIntegerField(default=0)
    overlap_minutes = models.PositiveIntegerField()
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day", "application"]
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "application", "day"], name="audit_late_check_per_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.platform} {self.application} {self.day}: {self.missed} missed"
