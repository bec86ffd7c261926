"""Joiner, mover and leaver actions for one directory event, as its source's rule says.

Every step reads the current state first and acts only if it differs, so running an event's
job again does nothing new; in dry-run mode the same reads happen and the step records what
it would have done instead of doing it.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q, QuerySet

from accounts.services import deactivate_user
from connectors.google_workspace import GoogleWorkspaceClient
from connectors.scim import ScimClient
from directory.models import DirectoryEvent, DirectoryUser, EventKind, JmlRule
from directory.rules import NAME_FIELDS, ORG_UNIT_FIELD, login_for
from directory.sources import platform_client
from identities.handlers.common import scim_client
from identities.models import Identity, IdentityStatus, IdentityType
from identities.services import DuplicateIdentityError, IdentityInput, create_identity
from jobs.errors import JobError, PermanentError, TransientError
from pam import services as pam_services
from pam.models import AccessSession

log = logging.getLogger(__name__)


@dataclass
class Steps:
    """What one run of an event's actions did (or, dry, would do): one entry per step."""

    dry_run: bool
    entries: list[dict[str, str]] = field(default_factory=list)

    def add(self, action: str, result: str) -> None:
        self.entries.append({"action": action, "result": result})

    def act(self, action: str) -> bool:
        """Record a step that needs a change; True if the caller should make it now."""
        if self.dry_run:
            self.add(action, "would do (dry run)")
            return False
        return True


def run_event(event_id: int) -> dict[str, Any]:
    event = DirectoryEvent.objects.select_related("user", "source").filter(pk=event_id).first()
    if event is None:
        raise PermanentError(f"Directory event #{event_id} no longer exists")
    # The rule as it is now: an admin may have changed it since the event was recorded.
    rule = (
        JmlRule.objects.select_related("platform__identity_provider", "run_as")
        .filter(source_id=event.source_id)
        .first()
    )
    if rule is None or not rule.acts_on(event.kind):
        DirectoryEvent.objects.filter(pk=event.pk).update(status=DirectoryEvent.Status.SKIPPED)
        return {"event": event.pk, "kind": event.kind, "skipped": "no rule acts on this event"}
    steps = Steps(dry_run=rule.dry_run)
    try:
        ACTIONS[event.kind](Context(event, rule, steps))
    except JobError as exc:
        steps.add("stopped", str(exc))
        status = (
            DirectoryEvent.Status.FAILED
            if isinstance(exc, PermanentError)
            else DirectoryEvent.Status.PENDING
        )
        DirectoryEvent.objects.filter(pk=event.pk).update(
            status=status, **{"dry_run_outcome" if rule.dry_run else "outcome": steps.entries}
        )
        raise
    if rule.dry_run:
        DirectoryEvent.objects.filter(pk=event.pk).update(
            status=DirectoryEvent.Status.DRY_RUN, dry_run_outcome=steps.entries
        )
    else:
        DirectoryEvent.objects.filter(pk=event.pk).update(
            status=DirectoryEvent.Status.DONE, outcome=steps.entries
        )
    return {
        "event": event.pk,
        "kind": event.kind,
        "user": event.label,
        "dry_run": rule.dry_run,
        "steps": steps.entries,
    }


class Context:
    """The event, its rule and user, and the clients built on first use."""

    def __init__(self, event: DirectoryEvent, rule: JmlRule, steps: Steps) -> None:
        self.event, self.rule, self.steps = event, rule, steps
        self.user: DirectoryUser = event.user
        self.platform = rule.platform
        self.login = login_for(rule, self.user.email, self.user.username)
        self._gws: GoogleWorkspaceClient | None = None
        self._scim: ScimClient | None = None

    @property
    def gws(self) -> GoogleWorkspaceClient:
        if self._gws is None:
            self._gws = platform_client(self.platform, paced=True)
        return self._gws

    @property
    def scim(self) -> ScimClient:
        if self._scim is None:
            self._scim = scim_client(self.platform.identity_provider, self.platform)
        return self._scim

    def identity(self) -> Identity | None:
        """The identity made for this user on the rule's platform, found by link or login."""
        identity = self.user.identity
        if identity is not None and identity.platform_id == self.platform.pk:
            return identity
        identity = Identity.objects.filter(platform=self.platform, login=self.login).first()
        if identity is not None:
            DirectoryUser.objects.filter(pk=self.user.pk).update(identity=identity)
        return identity


def joiner(ctx: Context) -> None:
    user, steps = ctx.user, ctx.steps
    action = f"create Human Interactive identity {ctx.login} on {ctx.platform.name}"
    existing = ctx.identity()
    if existing is not None:
        steps.add(action, f"already there: identity #{existing.pk} ({existing.status})")
        return
    if not ctx.login or "@" not in ctx.login:
        raise PermanentError(
            f"Directory user {user.username} has no email address, so no login can be made "
            "for it; set its email in the directory, or a login domain on the rule"
        )
    if not steps.act(action):
        return
    display = user.display_name or f"{user.given_name} {user.family_name}".strip() or ctx.login
    try:
        with transaction.atomic():
            identity = create_identity(
                IdentityInput(
                    identity_type=IdentityType.HUMAN_INTERACTIVE,
                    platform=ctx.platform,
                    display_name=display[:200],
                    login=ctx.login,
                    given_name=user.given_name[:100],
                    family_name=user.family_name[:100],
                    org_unit_path=user.org_unit if ctx.platform.is_google_workspace else "",
                ),
                actor=None,
            )
            DirectoryUser.objects.filter(pk=user.pk).update(identity=identity)
    except DuplicateIdentityError:
        # Another run of this event (or a person) got there first: the same outcome.
        identity = Identity.objects.get(platform=ctx.platform, login=ctx.login)
        DirectoryUser.objects.filter(pk=user.pk).update(identity=identity)
        steps.add(action, f"already there: identity #{identity.pk}")
        return
    steps.add(action, f"created identity #{identity.pk}; its provisioning jobs are queued")


def mover(ctx: Context) -> None:
    changes, steps = ctx.event.changes or {}, ctx.steps
    user = ctx.user
    names = [name for name in NAME_FIELDS if name in changes]
    org_unit = ORG_UNIT_FIELD in changes
    identity = ctx.identity()
    if identity is not None and identity.status in (
        IdentityStatus.PENDING,
        IdentityStatus.PROVISIONING,
    ):
        # Its Google and SSO users may not exist yet; try again once they do.
        raise TransientError(
            f"Identity {identity.login} is still being provisioned; the mover waits for it"
        )
    if identity is not None and not steps.dry_run and (names or org_unit):
        fields: dict[str, str] = {}
        if org_unit and ctx.platform.is_google_workspace:
            fields["org_unit_path"] = user.org_unit
        if names:
            fields.update(given_name=user.given_name[:100], family_name=user.family_name[:100])
        Identity.objects.filter(pk=identity.pk).update(**fields)
    if ctx.platform.is_google_workspace and (names or org_unit):
        update_gws_user(ctx, names=bool(names), org_unit=org_unit)
    if names and ctx.platform.identity_provider_id:
        update_sso_user(ctx)
    groups = changes.get("groups") or {}
    if ctx.rule.sync_groups and ctx.platform.is_google_workspace:
        for group in groups.get("added", []):
            change_membership(ctx, group, add=True)
        for group in groups.get("removed", []):
            change_membership(ctx, group, add=False)
    if not steps.entries:
        steps.add("record the change", "nothing to carry to the platform")


def update_gws_user(ctx: Context, *, names: bool, org_unit: bool) -> None:
    user, steps = ctx.user, ctx.steps
    action = f"update Google Workspace user {ctx.login}"
    current = ctx.gws.get_user(ctx.login)
    if current is None:
        steps.add(action, "skipped: no such user on the platform")
        return
    wanted: dict[str, str] = {}
    if org_unit and (user.org_unit or "/") != current.org_unit_path:
        wanted["org_unit_path"] = user.org_unit or "/"
    if names and user.given_name and user.given_name != current.given_name:
        wanted["given_name"] = user.given_name
    if names and user.family_name and user.family_name != current.family_name:
        wanted["family_name"] = user.family_name
    if not wanted:
        steps.add(action, "already up to date")
        return
    action += " (" + ", ".join(f"{k} → {v}" for k, v in wanted.items()) + ")"
    if steps.act(action):
        ctx.gws.update_user(current.id, **wanted)  # type: ignore[arg-type]
        steps.add(action, "updated")


def update_sso_user(ctx: Context) -> None:
    user, steps = ctx.user, ctx.steps
    action = f"update SSO user {ctx.login} (names)"
    found = ctx.scim.find_user_by_username(ctx.login)
    if found is None:
        steps.add(action, "skipped: no such user at the identity provider")
        return
    given = user.given_name or found.given_name
    family = user.family_name or found.family_name
    if (given, family) == (found.given_name, found.family_name):
        steps.add(action, "already up to date")
        return
    if steps.act(action):
        ctx.scim.replace_user(
            found.id,
            found.user_name,
            given,
            family,
            found.email or ctx.login,
            found.external_id or "",
            found.active,
            version=found.version,
        )
        steps.add(action, "updated")


def change_membership(ctx: Context, group: dict[str, str], *, add: bool) -> None:
    steps, email = ctx.steps, (group.get("email") or "").lower()
    label = email or group.get("name") or group.get("id") or "?"
    action = f"{'add' if add else 'remove'} {ctx.login} {'to' if add else 'from'} group {label}"
    if not email:
        steps.add(action, "skipped: the directory group has no email to find it by")
        return
    if ctx.gws.get_group(email) is None:
        steps.add(action, "skipped: no such group on the platform")
        return
    if steps.dry_run:
        steps.add(action, "would do (dry run)")
        return
    if add:
        changed = ctx.gws.insert_member(email, ctx.login)
        steps.add(action, "added" if changed else "already a member")
    else:
        changed = ctx.gws.delete_member(email, ctx.login)
        steps.add(action, "removed" if changed else "was not a member")


def leaver(ctx: Context) -> None:
    steps = ctx.steps
    ctx.identity()  # links the identity for the pages, if there is one
    if ctx.platform.is_google_workspace:
        action = f"suspend Google Workspace user {ctx.login}"
        current = ctx.gws.get_user(ctx.login)
        if current is None:
            steps.add(action, "skipped: no such user on the platform")
        elif current.suspended:
            steps.add(action, "already suspended")
        elif steps.act(action):
            ctx.gws.update_user(current.id, suspended=True)
            steps.add(action, "suspended")
    if ctx.platform.identity_provider_id:
        action = f"deactivate SSO user {ctx.login} (SCIM active=false)"
        found = ctx.scim.find_user_by_username(ctx.login)
        if found is None:
            steps.add(action, "skipped: no such user at the identity provider")
        elif not found.active:
            steps.add(action, "already inactive")
        elif steps.act(action):
            ctx.scim.set_active(found.id, False, user_name=found.user_name)
            steps.add(action, "deactivated")
    end_pam_sessions(ctx)
    deactivate_accounts(ctx)


def leaver_accounts(ctx: Context) -> QuerySet[Any]:
    """AccessHive users who are this leaver: by the directory email or the platform login
    (an SSO user's user name and email are the address the IdP asserts), or user name."""
    user = ctx.user
    match = Q()
    for key in {key for key in (user.email, ctx.login) if key}:
        match |= Q(email__iexact=key) | Q(username__iexact=key)
    if user.username:
        match |= Q(username__iexact=user.username)
    return get_user_model().objects.filter(match).order_by("pk")


def deactivate_accounts(ctx: Context) -> None:
    """Turn the leaver's own AccessHive account off, after their PAM sessions are in."""
    steps = ctx.steps
    if not ctx.rule.deactivate_accounts:
        return
    accounts = list(leaver_accounts(ctx))
    if not accounts:
        steps.add(f"deactivate AccessHive user {ctx.login}", "skipped: no such AccessHive user")
        return
    for account in accounts:
        name = account.get_username()
        action = f"deactivate AccessHive user {name} (sessions ended, API tokens revoked)"
        if (
            not account.is_active
            and not account.api_tokens.filter(revoked_at__isnull=True).exists()
        ):
            steps.add(action, "already deactivated")
            continue
        if not steps.act(action):
            continue
        outcome = deactivate_user(
            account, actor=ctx.rule.run_as, reason=f"directory leaver {ctx.event.label}"
        )
        steps.add(action, f"deactivated; {outcome['tokens_revoked']} API token(s) revoked")


def end_pam_sessions(ctx: Context) -> None:
    """Check in every open session the leaver holds; check-in rotates a managed shared
    credential's password (pam enqueues credential_rotation)."""
    steps = ctx.steps
    accounts = leaver_accounts(ctx)
    sessions = list(
        AccessSession.objects.filter(holder__in=accounts, ended_at__isnull=True)
        .select_related("identity", "holder")
        .order_by("pk")
    )
    if not sessions:
        steps.add(f"end open PAM sessions of {ctx.login}", "none open")
        return
    for session in sessions:
        rotates = session.identity.identity_type == IdentityType.SHARED_CREDENTIAL_MANAGED
        action = f"check in PAM session #{session.pk} of {session.identity.login}" + (
            " (its password is rotated)" if rotates else " (marked for rotation by hand)"
        )
        if not steps.act(action):
            continue
        actor = ctx.rule.run_as or session.holder
        try:
            ended = pam_services.check_in(session, actor=actor)
        except pam_services.SessionNotActive:
            steps.add(action, "already ended")
            continue
        except pam_services.NotAllowed as exc:
            raise PermanentError(
                f"Cannot check in PAM session #{session.pk} as {actor.get_username()}: "
                f"{exc.message} Give the rule's run-as user that permission, or clear it."
            ) from None
        job = f"; credential_rotation job #{ended.rotation_job_id}" if ended.rotation_job_id else ""
        steps.add(action, "checked in" + job)


ACTIONS: dict[str, Callable[[Context], None]] = {
    EventKind.JOINER: joiner,
    EventKind.MOVER: mover,
    EventKind.LEAVER: leaver,
}
