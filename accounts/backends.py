"""Grants each user the permissions of their role (see accounts.roles)."""

from typing import Any

from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from accounts.roles import ROLE_PERMISSIONS

_CACHE = "_accesshive_role_permissions"


class RoleBackend(BaseBackend):
    """Answers permission checks only; signing in is left to the other backends."""

    def get_all_permissions(
        self, user_obj: AbstractBaseUser | AnonymousUser, obj: Any = None
    ) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, _CACHE):
            from accounts.models import UserRole

            role = UserRole.objects.filter(user_id=user_obj.pk).values_list("role", flat=True)
            perms = ROLE_PERMISSIONS.get(role.first() or "", frozenset())
            setattr(user_obj, _CACHE, set(perms))
        return set(getattr(user_obj, _CACHE))

    def has_perm(
        self, user_obj: AbstractBaseUser | AnonymousUser, perm: str, obj: Any = None
    ) -> bool:
        return perm in self.get_all_permissions(user_obj, obj)


def forget_cached_role(user: AbstractBaseUser) -> None:
    if hasattr(user, _CACHE):
        delattr(user, _CACHE)
