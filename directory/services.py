"""Directory domain operations: create and change identity sources (the bind password goes to
the vault only), start a sync by hand or by schedule, and edit a source's rule."""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from directory.models import IdentitySource, JmlRule
from jobs.models import ACTIVE_STATUSES, Job, JobType, Trigger
from jobs.services import enqueue
from trail.services import changed_fields, record
from vault.backends import get_vault
from web.destinations import describe_moves

log = logging.getLogger(__name__)


class SyncAlreadyQueued(ValueError):
    """A sync of the source is already pending or running; its job is attached."""

    def __init__(self, message: str, job: Job) -> None:
        super().__init__(message)
        self.job = job


def set_bind_password(source: IdentitySource, password: str) -> None:
    """Store an LDAP source's bind password in the vault (a new version replaces the old)."""
    ref = get_vault().write(source.password_path, {"password": password})
    IdentitySource.objects.filter(pk=source.pk).update(ldap_password_ref=str(ref))
    source.ldap_password_ref = str(ref)


@transaction.atomic
def create_source(*, bind_password: str = "", actor: Any = None, **fields: Any) -> IdentitySource:
    source = IdentitySource.objects.create(**fields)
    if bind_password:
        set_bind_password(source, bind_password)
    record(
        "source.created",
        actor=actor,
        target=source,
        kind=source.kind,
        bind_password_stored=bool(bind_password),
    )
    log.info("directory.source.created", extra={"source_id": source.pk, "kind": source.kind})
    return source


@transaction.atomic
def update_source(
    source: IdentitySource, *, bind_password: str = "", actor: Any = None, **fields: Any
) -> IdentitySource:
    """Change a source's settings; an empty password keeps the stored one."""
    stored = IdentitySource.objects.get(pk=source.pk)
    changed = changed_fields(stored, fields)
    interval_changed = (
        "sync_interval_minutes" in fields
        and fields["sync_interval_minutes"] != source.sync_interval_minutes
    )
    for name, value in fields.items():
        setattr(source, name, value)
    if interval_changed:
        source.next_sync_at = None  # due now; then every new interval
    source.save()
    if bind_password:
        set_bind_password(source, bind_password)
    if changed or bind_password:
        record(
            "source.changed",
            actor=actor,
            target=source,
            changed=changed,
            **describe_moves(stored, fields, ("ldap_url",)),
            bind_password_replaced=bool(bind_password),
        )
    return source


def get_active_sync(source: IdentitySource) -> Job | None:
    """The directory_sync job still on its way for this source, if any."""
    return (
        Job.objects.filter(
            subject_type=ContentType.objects.get_for_model(IdentitySource),
            subject_id=str(source.pk),
            job_type=JobType.DIRECTORY_SYNC,
            status__in=ACTIVE_STATUSES,
        )
        .only("pk", "status")
        .order_by("-id")
        .first()
    )


def request_sync(
    source: IdentitySource,
    *,
    actor: Any,
    force: bool = False,
    trigger: str = Trigger.USER,
    trigger_label: str = "",
) -> Job:
    """Queue a directory_sync of the source, unless one is already pending or running.

    ``force`` overrides the safety brake for this one sync (a person asked for it).
    """
    with transaction.atomic():
        # The row lock makes two presses of "Sync now" take turns: the second sees the first.
        IdentitySource.objects.select_for_update().filter(pk=source.pk).first()
        active = get_active_sync(source)
        if active is not None:
            raise SyncAlreadyQueued(
                f"A sync of {source.name} is already {active.get_status_display().lower()} "
                f"(job #{active.pk}); one sync per source at a time.",
                active,
            )
        params: dict[str, Any] = {"source_id": source.pk}
        if force:
            params["force"] = True
        job = enqueue(
            JobType.DIRECTORY_SYNC,
            subject=source,
            params=params,
            triggered_by=actor,
            trigger=trigger,
            trigger_label=trigger_label,
        )
        # A person's "Sync now"; the schedule's syncs are on the jobs page.
        if trigger == Trigger.USER:
            record("directory.sync_started", actor=actor, target=source, job=job.pk, force=force)
        return job


def enqueue_due_syncs(now: datetime | None = None) -> int:
    """Queue a sync for every enabled source whose schedule says it is due (the beat calls
    this every minute); returns how many were queued."""
    now = now or timezone.now()
    queued = 0
    due = IdentitySource.objects.filter(enabled=True, sync_interval_minutes__gt=0).exclude(
        next_sync_at__gt=now
    )
    for source in due.only("pk", "name", "sync_interval_minutes", "next_sync_at"):
        next_at = now + timedelta(minutes=source.sync_interval_minutes)
        with transaction.atomic():
            # Conditional on the value read: a second beat (or a slow one) queues nothing.
            claimed = IdentitySource.objects.filter(
                pk=source.pk, next_sync_at=source.next_sync_at
            ).update(next_sync_at=next_at)
            if not claimed:
                continue
            try:
                request_sync(
                    source,
                    actor=None,
                    trigger=Trigger.SCHEDULE,
                    trigger_label=f"every {source.sync_interval_minutes} min",
                )
            except SyncAlreadyQueued:
                continue  # the running one counts as this slot's sync
            queued += 1
    return queued


@transaction.atomic
def save_rule(source: IdentitySource, *, actor: Any = None, **fields: Any) -> JmlRule:
    stored = JmlRule.objects.filter(source=source).first()
    changed = changed_fields(stored, fields) if stored is not None else list(fields)
    rule, created = JmlRule.objects.update_or_create(source=source, defaults=fields)
    if changed:
        # On the source, whose page shows the rule; dry_run said outright, as it is the
        # switch between recording what would be done and doing it.
        record(
            "jml_rule.changed",
            actor=actor,
            target=source,
            created=created,
            changed=changed,
            dry_run=rule.dry_run,
        )
    log.info(
        "directory.rule.saved",
        extra={"source_id": source.pk, "actor_id": getattr(actor, "pk", None)},
    )
    return rule
