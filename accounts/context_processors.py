"""Puts the signed-in user's role label in every template (shown in the header)."""

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from accounts.roles import Role
from accounts.services import role_of


def user_role(request: HttpRequest) -> dict[str, object]:
    def label() -> str:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return ""
        role = role_of(user)
        return str(Role(role).label) if role else "no role"

    return {"user_role": SimpleLazyObject(label)}
