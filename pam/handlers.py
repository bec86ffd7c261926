"""credential_rotation: a new password for a managed shared credential, set in Google Workspace
and made the vault's current version, without losing a password whatever fails and whenever.

The steps, each safe to repeat:

(a) stage: write a new password to the pending path ``identities/<id>/password-pending``, or
    reuse the pending one an earlier attempt left there;
(b) push: set it on the platform (users.update; setting the same password twice is harmless);
(c) promote: write it to ``identity.password_path`` with check-and-set against the version
    read when the attempt started, unless that path already holds it;
(d) finish: delete the pending version.

Any pending password is the one to finish, whichever job staged it: once (a) has run, the
platform may hold it, so dropping it could lose the only copy. The one exception is a
permanent refusal at (b) of a password this very attempt staged: the platform never had it.
The job id is stored beside the password (pending and current) only so a retry can tell that
its own earlier attempt already finished. Input, result, errors and logs carry vault
references, never the password.
"""

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from connectors.google_workspace import GoogleWorkspaceClient
from identities.handlers.common import google_workspace_client, load_identity
from identities.models import Identity, IdentityType
from identities.passwords import generate_password
from jobs.dependencies import register_gate
from jobs.errors import PermanentError, TransientError
from jobs.models import Job
from jobs.registry import register
from pam.models import AccessSession
from vault.backends import get_vault
from vault.base import SecretRef
from vault.errors import SecretNotFound, VaultConflict

log = logging.getLogger(__name__)

# Google Workspace takes 8 to 100 characters; below 12 is not a strong shared password.
MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH = 12, 100
JOB_KEY = "rotation_job"


def pending_path(identity: Identity) -> str:
    return f"identities/{identity.pk}/password-pending"


def password_length() -> int:
    length = settings.PAM_PASSWORD_LENGTH
    if isinstance(length, bool) or not isinstance(length, int):
        raise PermanentError(f"PAM_PASSWORD_LENGTH must be a whole number, not {length!r}")
    if not MIN_PASSWORD_LENGTH <= length <= MAX_PASSWORD_LENGTH:
        raise PermanentError(
            f"PAM_PASSWORD_LENGTH is {length}; set it between {MIN_PASSWORD_LENGTH} and "
            f"{MAX_PASSWORD_LENGTH} (Google Workspace's limit), then retry this job"
        )
    return length


def new_password() -> str:
    """Random letters, digits and symbols, at least one of each (identities.passwords)."""
    return generate_password(password_length())


@dataclass(frozen=True)
class Current:
    """The credential's current vault version as an attempt found it."""

    ref: SecretRef
    data: dict[str, str] = field(repr=False)

    @property
    def finished_by(self) -> str:
        return self.data.get(JOB_KEY, "")

    def holds(self, pending: "Pending") -> bool:
        return secrets.compare_digest(self.data.get("password", ""), pending.password)


@dataclass(frozen=True)
class Pending:
    """A staged password: in the vault, perhaps already on the platform."""

    ref: SecretRef
    password: str = field(repr=False)
    # Staged by this attempt: a permanent refusal at (b) proves the platform never had it.
    fresh: bool = False


def read_current(identity: Identity) -> Current:
    vault = get_vault()
    version = vault.current_version(identity.password_path)
    if version is None:
        raise PermanentError(
            f"{identity.login} has no password in the vault (vault:{identity.password_path}); "
            "its create_domain_user job must complete before it can be rotated"
        )
    ref = SecretRef(identity.password_path, version)
    return Current(ref, vault.read(ref.path, ref.version))


def read_pending(identity: Identity) -> Pending | None:
    vault = get_vault()
    path = pending_path(identity)
    version = vault.current_version(path)
    if version is None:
        return None
    try:
        data = vault.read(path, version)
    except SecretNotFound:  # deleted: the last rotation finished, or was dropped
        return None
    return Pending(SecretRef(path, version), data["password"])


@sensitive_variables("password")
def stage_pending(identity: Identity, job: Job) -> Pending:
    """Step (a), when read_pending() found none: stage a new pending password (or, if a
    concurrent attempt staged one first, finish that one)."""
    vault = get_vault()
    path = pending_path(identity)
    password = new_password()
    try:
        # cas names the (deleted) last version, so only one attempt can stage at a time.
        ref = vault.write(
            path, {"password": password, JOB_KEY: str(job.pk)}, cas=vault.current_version(path) or 0
        )
    except VaultConflict:
        existing = read_pending(identity)
        if existing is None:
            raise TransientError(
                f"vault:{path} changed while this rotation staged a new password; retrying"
            ) from None
        return existing
    log.info("pam.rotation.staged", extra={"job_id": job.pk, "secret_ref": str(ref)})
    return Pending(ref, password, fresh=True)


def user_key(identity: Identity) -> str:
    # Google's immutable id survives a rename of the address.
    return identity.gws_user_id or identity.login


def push_to_platform(identity: Identity, pending: Pending, client: GoogleWorkspaceClient) -> None:
    """Step (b): set the pending password on the platform."""
    client.update_user(user_key(identity), password=pending.password)
    log.info(
        "pam.rotation.pushed",
        extra={"identity_id": identity.pk, "secret_ref": str(pending.ref)},
    )


def promote(identity: Identity, pending: Pending, start: Current, job: Job) -> SecretRef:
    """Step (c): make the pending password the current version, exactly once."""
    current = read_current(identity)
    if current.holds(pending):  # an earlier attempt got this far
        return current.ref
    vault = get_vault()
    data = {**start.data, "password": pending.password, JOB_KEY: str(job.pk)}
    try:
        ref = vault.write(identity.password_path, data, cas=start.ref.version)
    except VaultConflict:
        current = read_current(identity)
        if current.holds(pending):  # a concurrent attempt of this rotation finished it
            return current.ref
        raise TransientError(
            f"vault:{identity.password_path} moved from version {start.ref.version} to "
            f"{current.ref.version} during the rotation; the retry finishes it with the same "
            f"pending password ({pending.ref})"
        ) from None
    log.info("pam.rotation.promoted", extra={"job_id": job.pk, "secret_ref": str(ref)})
    return ref


def finish(pending: Pending) -> None:
    """Step (d): the pending version is no longer needed."""
    get_vault().delete(pending.ref.path, version=pending.ref.version)


def check_rotatable(identity: Identity) -> None:
    if identity.identity_type != IdentityType.SHARED_CREDENTIAL_MANAGED:
        raise PermanentError(
            f"{identity.login} is a {identity.get_identity_type_display()}: AccessHive rotates "
            "only managed shared credentials"
        )
    if not identity.gws_user_id:
        raise PermanentError(
            f"{identity.login} has no Google Workspace user yet; its create_domain_user job "
            "must complete before it can be rotated"
        )


def platform_refused(
    identity: Identity, job: Job, start: Current, pending: Pending, exc: PermanentError
) -> PermanentError:
    """The job's error when the platform refuses the new password: what happened, what still
    works, and what an admin should do."""
    session = job.params.get("session_id") if isinstance(job.params, dict) else None
    seen = f", which the holder of session #{session} could reveal," if session else ""
    hint = (
        " The user may have been deleted or renamed outside AccessHive."
        if " 404 " in f" {exc} "
        else ""
    )
    if pending.fresh:
        state = (
            f"Nothing was changed: the vault's current password ({start.ref}){seen} still works."
        )
    else:
        state = (
            f"An earlier attempt may already have set the pending password ({pending.ref}) in "
            f"Google Workspace; it is kept in the vault so it is not lost, and the current "
            f"version ({start.ref}) is unchanged."
        )
    return PermanentError(
        f"Could not rotate the password of {identity.login}: {exc}.{hint} {state} Fix the "
        "cause (the service account's domain-wide delegation and admin role, or the user "
        f"{identity.login} in Google Workspace), then retry this "
        "job. If the password cannot wait, reset it by hand in the Google Admin console now, "
        "and still retry this job once the cause is fixed, so the vault and Google Workspace "
        "hold the same password again."
    )


@register_gate("credential_rotation")
def wait_for_check_in(job: Job) -> str | None:
    """A rotation (new, retried, or a remediation's) never runs while a session on its
    credential is open: the holder may be using the password it would replace. It waits, and
    the session's check-in releases it (pam.services.end_session).

    Called when a worker claims the job. The credential's row lock orders this look with
    check_out, which refuses while a rotation is running: whichever commits second sees the
    other."""
    identity = Identity.objects.select_for_update().filter(pk=job.subject_id or 0).first()
    if identity is None:
        return None  # the handler fails it, naming what is gone
    session = (
        AccessSession.objects.filter(identity=identity, ended_at__isnull=True)
        .select_related("holder")
        .first()
    )
    if session is None:
        return None
    return (
        f"waiting for check-in of session #{session.pk} by {session.holder.get_username()} "
        f"(expires {session.expires_at:%Y-%m-%d %H:%M} UTC)"
    )


@register("credential_rotation")
def run(job: Job) -> dict[str, Any]:
    identity = load_identity(job)
    check_rotatable(identity)
    # Configuration problems (no key, not Google Workspace) fail here, before any vault write.
    client = google_workspace_client(identity.platform)
    start = read_current(identity)
    pending = read_pending(identity)
    if pending is None and start.finished_by == str(job.pk):
        # An earlier attempt of this job finished every step but was lost before reporting.
        return {"password_ref": str(start.ref), "resumed": True, "note": "already rotated"}
    resumed = pending is not None
    if pending is None:
        pending = stage_pending(identity, job)
    already_current = start.holds(pending)
    if not already_current:
        try:
            push_to_platform(identity, pending, client)
        except PermanentError as exc:
            if pending.fresh:
                finish(pending)
            raise platform_refused(identity, job, start, pending, exc) from exc
    ref = promote(identity, pending, start, job)
    finish(pending)
    log.info("pam.rotation.completed", extra={"job_id": job.pk, "secret_ref": str(ref)})
    return {
        "password_ref": str(ref),
        "previous_ref": None if already_current else str(start.ref),
        "pending_ref": str(pending.ref),
        "resumed": resumed,
        "gws_user_id": identity.gws_user_id,
    }
