"""Giving users of AccessHive their role, and the rules that keep someone able to manage roles."""

from typing import Any

from axes.models import AccessAttempt
from axes.utils import reset
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from accounts.backends import forget_cached_role
from accounts.models import ApiToken, UserRole
from accounts.roles import Role
from trail.services import known_username, record


class RoleChangeRefusedError(ValueError):
    """The role change would break a rule (a superuser's role, the last admin)."""


def role_of(user: AbstractBaseUser) -> str:
    """The user's role key, "admin" for a superuser, "" for none."""
    if getattr(user, "is_superuser", False):
        return Role.ADMIN.value
    return UserRole.objects.filter(user_id=user.pk).values_list("role", flat=True).first() or ""


def set_role(user: AbstractBaseUser, role: str, *, actor: Any) -> bool:
    """Give ``user`` the role (a Role value); returns whether it changed."""
    with transaction.atomic():
        role = Role(role).value
        previous = UserRole.objects.filter(user_id=user.pk).values_list("role", flat=True).first()
        if previous == role:
            return False
        UserRole.objects.update_or_create(user_id=user.pk, defaults={"role": role})
        forget_cached_role(user)
        record(
            "user.role_changed",
            actor=actor,
            target=user,
            target_label=user.get_username(),
            role=role,
            previous=previous or "",
        )
        return True


def change_role(user: AbstractBaseUser, role: str, *, actor: Any) -> bool:
    """An admin gives ``user`` a role, or none (""), within the rules; returns whether it
    changed. Raises RoleChangeRefusedError for a superuser, or for the last admin's demotion."""
    with transaction.atomic():
        role = Role(role).value if role else ""
        name = user.get_username()
        if getattr(user, "is_superuser", False):
            raise RoleChangeRefusedError(
                f"{name} is a superuser, an admin by Django's superuser flag; their role cannot be "
                "changed here"
            )
        if role != Role.ADMIN and not other_admins_exist(user):
            raise RoleChangeRefusedError(
                f"{name} is the last admin; nobody could manage roles any more. Make someone else "
                "an admin first"
            )
        if role:
            return set_role(user, role, actor=actor)
        return remove_role(user, actor=actor)


def other_admins_exist(user: AbstractBaseUser) -> bool:
    """Whether an active admin other than ``user`` remains; only asks when ``user`` is one.

    The admin role rows stay locked until the caller's transaction ends, so two admins
    demoting each other at once cannot both succeed.
    """
    admins = set(
        UserRole.objects.select_for_update(of=("self",))
        .filter(role=Role.ADMIN, user__is_active=True)
        .values_list("user_id", flat=True)
    )
    if user.pk not in admins:
        return True
    superusers = get_user_model().objects.filter(is_superuser=True, is_active=True)
    return bool(admins - {user.pk}) or superusers.exclude(pk=user.pk).exists()


def remove_role(user: AbstractBaseUser, *, actor: Any) -> bool:
    """Take ``user``'s role away, so they can see nothing; returns whether they had one."""
    with transaction.atomic():
        previous = UserRole.objects.filter(user_id=user.pk).values_list("role", flat=True).first()
        if previous is None:
            return False
        UserRole.objects.filter(user_id=user.pk).delete()
        forget_cached_role(user)
        record(
            "user.role_changed",
            actor=actor,
            target=user,
            target_label=user.get_username(),
            role="",
            previous=previous,
        )
        return True


def unlock(attempt: AccessAttempt, *, actor: Any) -> None:
    """Let a locked-out username sign in again from that address, on the trail."""
    with transaction.atomic():
        reset(ip=attempt.ip_address, username=attempt.username)
        known = known_username({"username": attempt.username or ""})
        record(
            "user.unlocked",
            actor=actor,
            target_label=known,
            username=known,
            address=attempt.ip_address,
        )


def revoke_api_token(token: ApiToken, *, actor: Any) -> bool:
    """Refuse the token from now on; False if it was revoked already."""
    with transaction.atomic():
        revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if revoked:
            record(
                "api_token.revoked",
                actor=actor,
                target=token,
                target_label=f"{token.name} ({token.prefix}…) of {token.user.get_username()}",
            )
        return bool(revoked)


def revoke_tokens_of(user: AbstractBaseUser) -> int:
    """Revoke every API token of ``user`` still in use (kept, listed as revoked); returns how
    many were revoked."""
    return ApiToken.objects.filter(user_id=user.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def deactivate_user(user: AbstractBaseUser, *, actor: Any, reason: str = "") -> dict[str, Any]:
    """Turn a user of AccessHive off: inactive (no sign-in, password or SSO), every open
    session ended, API tokens revoked, role removed. Returns what changed; running it again
    changes nothing and records nothing.

    Sessions end because the session's stored auth hash comes from the password: a new
    unusable password makes every session of the user fail its check on its next request,
    whatever the session store."""
    with transaction.atomic():
        model = get_user_model()
        locked = model.objects.select_for_update().get(pk=user.pk)
        tokens = revoke_tokens_of(locked)
        was_active = locked.is_active
        if was_active:
            locked.is_active = False
            locked.set_unusable_password()
            locked.save(update_fields=["is_active", "password"])
        had_role = remove_role(locked, actor=actor)
        forget_cached_role(user)
        outcome = {"deactivated": was_active, "tokens_revoked": tokens, "role_removed": had_role}
        if was_active or tokens:
            record(
                "user.deactivated",
                actor=actor,
                target=locked,
                target_label=locked.get_username(),
                reason=reason,
                **outcome,
            )
        return outcome
