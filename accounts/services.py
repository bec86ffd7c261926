"""Giving users of AccessHive their role."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from accounts.backends import forget_cached_role
from accounts.models import UserRole
from accounts.roles import Role
from trail.services import record


def role_of(user: AbstractBaseUser) -> str:
    """The user's role key, "admin" for a superuser, "" for none."""
    if getattr(user, "is_superuser", False):
        return Role.ADMIN.value
    return UserRole.objects.filter(user_id=user.pk).values_list("role", flat=True).first() or ""


@transaction.atomic
def set_role(user: AbstractBaseUser, role: str, *, actor: Any) -> bool:
    """Give ``user`` the role (a Role value); returns whether it changed."""
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
