"""Read side of the PAM pages and API: one session, a user's sessions, an identity's panel."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, Max, QuerySet

from identities.models import Identity, IdentityType
from jobs.models import Job, JobType
from pam import services
from pam.models import CHECKOUT_TYPES, AccessSession, CredentialState
from web.inputs import InvalidInputError
from web.pages import parse_id_cursor

CHECK_OUT_PERMISSION = "pam.check_out_credential"
RECORD_ROTATION_PERMISSION = "pam.record_manual_rotation"
VIEW_IDENTITY_PERMISSION = "identities.view_identity"
HISTORY_LENGTH = 20


class InvalidPageError(InvalidInputError):
    """The ``before`` parameter is not a session id."""


def sessions_with_reveals() -> QuerySet[AccessSession]:
    return (
        AccessSession.objects.select_related("identity", "holder", "ended_by", "rotation_job")
        .annotate(reveal_count=Count("reveals"), last_reveal_at=Max("reveals__at"))
        .order_by("-id")
    )


def get_session(session_id: int) -> AccessSession | None:
    return (
        AccessSession.objects.select_related("identity", "holder", "ended_by")
        .filter(pk=session_id)
        .first()
    )


def get_identity(identity_id: int) -> Identity | None:
    return Identity.objects.select_related("platform").filter(pk=identity_id).first()


def page_size() -> int:
    return int(settings.PAM_SESSION_PAGE_SIZE)


def parse_before(params: Mapping[str, str]) -> int | None:
    try:
        return parse_id_cursor(params, "session")
    except InvalidInputError as exc:
        raise InvalidPageError(exc.parameter, exc.message) from None


@dataclass(frozen=True)
class SessionPage:
    """One keyset page of a user's sessions, newest first."""

    sessions: list[AccessSession]
    next_before: int | None


def list_my_sessions(user: Any, *, before: int | None = None) -> SessionPage:
    rows = sessions_with_reveals().filter(holder=user)
    if before is not None:
        rows = rows.filter(pk__lt=before)
    size = page_size()
    sessions = list(rows[: size + 1])
    next_before = sessions[size - 1].pk if len(sessions) > size else None
    return SessionPage(sessions[:size], next_before)


def get_latest_rotation(identity: Identity) -> Job | None:
    return (
        Job.objects.filter(
            subject_type=ContentType.objects.get_for_model(Identity),
            subject_id=str(identity.pk),
            job_type=JobType.CREDENTIAL_ROTATION,
        )
        .only("pk", "status", "error_message", "created_at", "completed_at")
        .order_by("-id")
        .first()
    )


@dataclass(frozen=True)
class IdentityPanel:
    """What the identity page shows about sessions on one credential, and what the viewing
    user may do there."""

    identity: Identity
    open_session: AccessSession | None
    history: list[AccessSession]
    state: CredentialState | None
    latest_rotation: Job | None
    is_managed: bool
    is_holder: bool
    can_check_out: bool
    can_check_in: bool
    can_reveal: bool
    can_record_rotation: bool
    max_minutes: int

    @property
    def rotation_due(self) -> bool:
        return self.state is not None and self.state.rotation_due


def get_identity_panel(identity: Identity, user: Any) -> IdentityPanel | None:
    """None for the types that have no sessions."""
    if identity.identity_type not in CHECKOUT_TYPES:
        return None
    history = list(sessions_with_reveals().filter(identity=identity)[:HISTORY_LENGTH])
    open_session = next((s for s in history if s.ended_at is None), None)
    is_managed = identity.identity_type == IdentityType.SHARED_CREDENTIAL_MANAGED
    is_holder = open_session is not None and open_session.holder_id == user.pk
    return IdentityPanel(
        identity=identity,
        open_session=open_session,
        history=history,
        state=CredentialState.objects.filter(identity=identity).first(),
        latest_rotation=get_latest_rotation(identity) if is_managed else None,
        is_managed=is_managed,
        is_holder=is_holder,
        can_check_out=open_session is None and user.has_perm(CHECK_OUT_PERMISSION),
        can_check_in=open_session is not None
        and (is_holder or user.has_perm(services.CHECK_IN_ANY_PERMISSION)),
        can_reveal=is_holder
        and open_session is not None
        and open_session.is_active
        and user.has_perm(CHECK_OUT_PERMISSION),
        can_record_rotation=not is_managed
        and open_session is None
        and user.has_perm(RECORD_ROTATION_PERMISSION),
        max_minutes=services.max_session_minutes(),
    )
