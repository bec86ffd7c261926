"""Grants each user the permissions of their role (see accounts.roles)."""

import re
from typing import Any

from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from accounts.roles import ROLE_PERMISSIONS

_CACHE = "_accesshive_role"
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def cached_role(user: AbstractBaseUser | AnonymousUser) -> str:
    """The user's role key ("" for none), read once per user object, i.e. once a request."""
    if user.is_anonymous:
        return ""
    if not hasattr(user, _CACHE):
        from accounts.models import UserRole

        rows = UserRole.objects.filter(user_id=user.pk).values_list("role", flat=True)
        setattr(user, _CACHE, rows.first() or "")
    return str(getattr(user, _CACHE))


def forget_cached_role(user: AbstractBaseUser) -> None:
    if hasattr(user, _CACHE):
        delattr(user, _CACHE)


class RoleBackend(BaseBackend):
    """Answers permission checks only; signing in is left to the other backends."""

    def get_all_permissions(
        self, user_obj: AbstractBaseUser | AnonymousUser, obj: Any = None
    ) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        return set(ROLE_PERMISSIONS.get(cached_role(user_obj), frozenset()))

    def has_perm(
        self, user_obj: AbstractBaseUser | AnonymousUser, perm: str, obj: Any = None
    ) -> bool:
        return perm in self.get_all_permissions(user_obj, obj)


def lockout_username(request: Any, credentials: dict[str, Any] | None) -> str | None:
    """The typed user name as django-axes keys lockouts by (AXES_USERNAME_CALLABLE): cut to
    what its column holds, without characters PostgreSQL cannot store, so no guess, however
    long or odd, turns a failed sign-in into an error."""
    source = credentials if credentials else getattr(request, "POST", {})
    raw = source.get("username")
    if raw is None:
        return None
    return _UNSTORABLE.sub("", str(raw))[:255]
