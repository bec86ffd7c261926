"""Puts the signed-in user's role label in every template (shown in the header)."""

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from accounts.backends import cached_role
from accounts.roles import Role


def user_role(request: HttpRequest) -> dict[str, object]:
    def label() -> str:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return ""
        if user.is_superuser:
            return str(Role.ADMIN.label)
        # The role the permission checks of this request read: no second query.
        role = cached_role(user)
        return str(Role(role).label) if role else "no role"

    return {"user_role": SimpleLazyObject(label)}
