"""PAM's domain operations: check out, check in, reveal, expire, record a rotation by hand.

Each is atomic and takes the acting user as a keyword-only argument. A refusal raises a
PamError whose message says why and what to do, and changes nothing.
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from identities.models import Identity, IdentityStatus, IdentityType
from jobs import dependencies
from jobs.models import ACTIVE_STATUSES, Job, JobStatus, JobType, Trigger
from jobs.services import enqueue
from pam.models import (
    CHECKOUT_TYPES,
    MAX_REASON_LENGTH,
    AccessSession,
    CredentialState,
    EndReason,
    RevealEvent,
)
from trail.services import record
from vault.backends import get_vault
from vault.base import SecretRef

log = logging.getLogger(__name__)

CHECK_IN_ANY_PERMISSION = "pam.check_in_any_session"
# The beat checks in at most this many expired sessions per run; the next run takes the rest.
EXPIRE_BATCH = 500


class PamError(ValueError):
    """A refused request; the message is shown to the user as it is."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AlreadyCheckedOut(PamError):
    """The credential has an open session (or its rotation is still running)."""

    status = 409


class SessionNotActive(PamError):
    """The session was checked in, or has expired."""

    status = 409


class NotAllowed(PamError):
    """The actor is neither the session's holder nor allowed to act for others."""

    status = 403


def max_session_minutes() -> int:
    raw = settings.PAM_MAX_SESSION_MINUTES
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ImproperlyConfigured(f"PAM_MAX_SESSION_MINUTES must be a whole number >= 1: {raw!r}")
    return raw


def checkout_types_label() -> str:
    return " and ".join(IdentityType(key).label for key in CHECKOUT_TYPES)


def secret_path(identity: Identity) -> str:
    """Where the credential's current password lives in the vault."""
    if identity.identity_type == IdentityType.SHARED_CREDENTIAL_MANAGED:
        return identity.password_path
    return identity.vault_path


def get_active_rotation(identity: Identity) -> Job | None:
    """The credential_rotation job still on its way for this identity, if any."""
    return (
        Job.objects.filter(
            subject_type=ContentType.objects.get_for_model(Identity),
            subject_id=str(identity.pk),
            job_type=JobType.CREDENTIAL_ROTATION,
            status__in=ACTIVE_STATUSES,
        )
        .only("pk", "status")
        .order_by("-id")
        .first()
    )


def describe(session: AccessSession) -> str:
    return f"session #{session.pk} of {session.identity.login}"


# --- check-out ------------------------------------------------------------------------------


def check_out(
    identity: Identity, *, actor: Any, reason: str, minutes: int | None = None
) -> AccessSession:
    """Open a session on a shared credential for ``actor``, for at most the configured
    maximum; one open session per credential."""
    reason = (reason or "").strip()
    if not reason:
        raise PamError("A reason is required to check out a credential.")
    if len(reason) > MAX_REASON_LENGTH:
        raise PamError(f"The reason is at most {MAX_REASON_LENGTH} characters.")
    if identity.identity_type not in CHECKOUT_TYPES:
        raise PamError(
            f"{identity.login} is a {identity.get_identity_type_display()}, which has no "
            f"check-out: only {checkout_types_label()} credentials can be checked out."
        )
    limit = max_session_minutes()
    if minutes is None:
        minutes = limit
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= limit:
        raise PamError(f"A session lasts from 1 to {limit} minutes; {minutes!r} is not allowed.")
    with transaction.atomic():
        # Locking the credential's row makes concurrent check-outs of it take turns, so the
        # second one sees the first one's session instead of tripping the constraint.
        locked = Identity.objects.select_for_update().filter(pk=identity.pk).first()
        if locked is None:
            raise PamError(f"Identity #{identity.pk} no longer exists.")
        if locked.status != IdentityStatus.PROVISIONED:
            raise PamError(
                f"{locked.login} is not provisioned yet ({locked.get_status_display()}): "
                "it can be checked out once its provisioning job has completed."
            )
        refuse_if_checked_out(locked)
        if locked.identity_type == IdentityType.SHARED_CREDENTIAL_MANAGED:
            rotation = get_active_rotation(locked)
            if rotation is not None:
                raise AlreadyCheckedOut(
                    f"{locked.login}'s password is being rotated after its last session "
                    f"(job #{rotation.pk}, {rotation.get_status_display().lower()}); check it "
                    "out once that job has completed."
                )
        now = timezone.now()
        try:
            with transaction.atomic():
                session = AccessSession.objects.create(
                    identity=locked,
                    holder=actor,
                    reason=reason,
                    started_at=now,
                    expires_at=now + timedelta(minutes=minutes),
                )
        except IntegrityError:
            # Only reachable if something skipped the row lock; the constraint still holds.
            raise AlreadyCheckedOut(f"{locked.login} is already checked out.") from None
        record(
            "credential.checked_out",
            actor=actor,
            target=locked,
            session=session.pk,
            reason=reason,
            expires=session.expires_at,
        )
    log.info(
        "pam.session.checked_out",
        extra={"session_id": session.pk, "identity_id": locked.pk, "holder_id": actor.pk},
    )
    return session


def refuse_if_checked_out(identity: Identity) -> None:
    current = (
        AccessSession.objects.filter(identity=identity, ended_at__isnull=True)
        .select_related("holder")
        .first()
    )
    if current is None:
        return
    holder, until = current.holder.get_username(), f"{current.expires_at:%Y-%m-%d %H:%M} UTC"
    if current.expires_at <= timezone.now():
        raise AlreadyCheckedOut(
            f"{identity.login}'s session by {holder} expired at {until} and is being checked "
            "in automatically; try again in a minute."
        )
    raise AlreadyCheckedOut(f"{identity.login} is already checked out by {holder} until {until}.")


# --- check-in and expiry --------------------------------------------------------------------


def check_in(
    session: AccessSession, *, actor: Any, reason: str = EndReason.CHECKED_IN
) -> AccessSession:
    """End a session, by its holder or by an admin; the password the holder saw is rotated
    (managed credentials) or marked as due for rotation by hand (external ones)."""
    if reason not in EndReason.values:
        raise PamError(f"Unknown end reason {reason!r}; one of {', '.join(EndReason.values)}.")
    with transaction.atomic():
        locked = (
            AccessSession.objects.select_for_update()
            .select_related("identity", "holder")
            .filter(pk=session.pk)
            .first()
        )
        if locked is None:
            raise SessionNotActive(f"Session #{session.pk} does not exist.")
        if locked.ended_at is not None:
            raise SessionNotActive(
                f"{describe(locked)} was already {locked.get_end_reason_display().lower()} at "
                f"{locked.ended_at:%Y-%m-%d %H:%M} UTC."
            )
        if locked.holder_id != actor.pk and not actor.has_perm(CHECK_IN_ANY_PERMISSION):
            raise NotAllowed(
                f"{describe(locked)} is held by {locked.holder.get_username()}; only they or "
                "an admin can check it in."
            )
        end_session(locked, actor=actor, reason=reason, now=timezone.now())
    return locked


def expire_sessions(now: datetime | None = None) -> int:
    """Check in every open session past its expiry (the beat calls this); returns how many.

    One transaction per session, so one that fails does not hold back the others.
    """
    now = now or timezone.now()
    due = list(
        AccessSession.objects.filter(ended_at__isnull=True, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:EXPIRE_BATCH]
    )
    ended = 0
    for session_id in due:
        with transaction.atomic():
            # skip_locked: a session locked right now is being checked in by hand.
            session = (
                AccessSession.objects.select_for_update(skip_locked=True)
                .select_related("identity", "holder")
                .filter(pk=session_id, ended_at__isnull=True, expires_at__lte=now)
                .first()
            )
            if session is None:
                continue
            end_session(session, actor=None, reason=EndReason.EXPIRED, now=now)
            ended += 1
    return ended


def end_session(session: AccessSession, *, actor: Any, reason: str, now: datetime) -> None:
    """Close a locked, open session and deal with the password its holder may have seen."""
    identity = session.identity
    session.ended_at, session.ended_by, session.end_reason = now, actor, reason
    fields = ["ended_at", "ended_by", "end_reason"]
    if identity.identity_type == IdentityType.SHARED_CREDENTIAL_MANAGED:
        session.rotation_job = release_waiting_rotation(identity, session) or enqueue(
            JobType.CREDENTIAL_ROTATION,
            subject=identity,
            params={"session_id": session.pk},
            triggered_by=actor,
            trigger=Trigger.USER if actor is not None else Trigger.SCHEDULE,
            trigger_label="" if actor is not None else "session expiry",
        )
        fields.append("rotation_job")
    else:
        mark_rotation_due(identity, session, now)
    session.save(update_fields=fields)
    holder = session.holder.get_username()
    record(
        "credential.checked_in",
        actor=actor,
        target=identity,
        session=session.pk,
        holder=holder,
        reason=reason,
        # An admin (or a JML rule's run-as user) ending someone else's session.
        for_someone_else=actor is not None and actor.pk != session.holder_id,
        rotation_job=session.rotation_job_id,
    )
    log.info(
        "pam.session.ended",
        extra={
            "session_id": session.pk,
            "identity_id": identity.pk,
            "end_reason": reason,
            "ended_by_id": getattr(actor, "pk", None),
            "rotation_job_id": session.rotation_job_id,
        },
    )


def release_waiting_rotation(identity: Identity, session: AccessSession) -> Job | None:
    """A rotation that has not run yet (waiting for this check-in, or pending) replaces the
    password this session saw once it runs: release it rather than start a second one.

    Its row is locked, so a worker claiming it right now either has already put it to wait
    (and it is released here) or claims it after this check-in commits (and runs it)."""
    rotation = (
        Job.objects.select_for_update()
        .filter(
            subject_type=ContentType.objects.get_for_model(Identity),
            subject_id=str(identity.pk),
            job_type=JobType.CREDENTIAL_ROTATION,
            status__in=(JobStatus.WAITING, JobStatus.PENDING, JobStatus.RETRYING),
        )
        .order_by("-id")
        .first()
    )
    if rotation is None:
        return None
    if rotation.status == JobStatus.WAITING:
        dependencies.release(rotation.pk, message=f"{describe(session)} was checked in")
    return rotation


def mark_rotation_due(identity: Identity, session: AccessSession, now: datetime) -> None:
    """An external credential's password was seen and we cannot change it: flag it for a
    person, keeping the earliest date it became due."""
    state, _ = CredentialState.objects.select_for_update().get_or_create(identity=identity)
    if state.rotation_due_since is None:
        state.rotation_due_since = now
    state.rotation_due_session = session
    state.save(update_fields=["rotation_due_since", "rotation_due_session"])


# --- reveal ---------------------------------------------------------------------------------


@sensitive_variables("password")
def reveal_password(session: AccessSession, *, actor: Any) -> str:
    """The credential's current password from the vault, for the holder of an active session;
    every reveal is recorded. The password is returned, never stored."""
    now = timezone.now()
    with transaction.atomic():
        # The lock orders a reveal and a check-in of the same session: never both at once.
        locked = (
            AccessSession.objects.select_for_update()
            .select_related("identity", "holder")
            .filter(pk=session.pk)
            .first()
        )
        if locked is None:
            raise SessionNotActive(f"Session #{session.pk} does not exist.")
        if locked.holder_id != actor.pk:
            raise NotAllowed(
                f"{describe(locked)} is held by {locked.holder.get_username()}; only the holder "
                "can reveal its password."
            )
        if locked.ended_at is not None:
            raise SessionNotActive(
                f"{describe(locked)} was {locked.get_end_reason_display().lower()} at "
                f"{locked.ended_at:%Y-%m-%d %H:%M} UTC; check the credential out again to see "
                "its password."
            )
        if not locked.active_at(now):
            raise SessionNotActive(
                f"{describe(locked)} expired at {locked.expires_at:%Y-%m-%d %H:%M} UTC; check "
                "the credential out again to see its password."
            )
        RevealEvent.objects.create(session=locked, user=actor, at=now)
        # Read inside the transaction: if the vault fails, no reveal is recorded either.
        password = get_vault().read(secret_path(locked.identity))["password"]
        record("credential.revealed", actor=actor, target=locked.identity, session=locked.pk)
    log.info(
        "pam.session.revealed",
        extra={"session_id": locked.pk, "identity_id": locked.identity_id, "user_id": actor.pk},
    )
    return password


# --- external credentials: rotation by hand -------------------------------------------------


@sensitive_variables("password", "data")
def record_manual_rotation(identity: Identity, *, actor: Any, password: str) -> SecretRef:
    """Store the password a person set by hand on an external credential as its new vault
    version, and clear its "rotation due" mark."""
    if identity.identity_type != IdentityType.SHARED_CREDENTIAL_EXTERNAL:
        raise PamError(
            f"{identity.login} is a {identity.get_identity_type_display()}: only external "
            "shared credentials are rotated by hand."
        )
    if not password:
        raise PamError("Enter the new password that was set on the external system.")
    with transaction.atomic():
        locked = Identity.objects.select_for_update().filter(pk=identity.pk).first()
        if locked is None:
            raise PamError(f"Identity #{identity.pk} no longer exists.")
        if AccessSession.objects.filter(identity=locked, ended_at__isnull=True).exists():
            raise AlreadyCheckedOut(
                f"{locked.login} is checked out; check it in before recording a new password."
            )
        vault = get_vault()
        version = vault.current_version(locked.vault_path)
        data = vault.read(locked.vault_path) if version else {}
        ref = vault.write(locked.vault_path, {**data, "password": password}, cas=version or 0)
        now = timezone.now()
        Identity.objects.filter(pk=locked.pk).update(secret_ref=str(ref), updated_at=now)
        CredentialState.objects.update_or_create(
            identity=locked,
            defaults={
                "rotation_due_since": None,
                "rotation_due_session": None,
                "rotated_by_hand_at": now,
                "rotated_by_hand_by": actor,
            },
        )
        record(
            "credential.rotated_by_hand",
            actor=actor,
            target=locked,
            vault_version=ref.version,
        )
    log.info(
        "pam.credential.rotated_by_hand",
        extra={"identity_id": identity.pk, "secret_ref": str(ref), "actor_id": actor.pk},
    )
    return ref
