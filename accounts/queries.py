"""Read side of Settings > Users: every user with their role and how they sign in."""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model

from accounts.models import UserRole
from accounts.roles import Role

# Users of AccessHive are people, a few dozen at most; a cap instead of paging keeps the
# page bounded should a directory ever create thousands.
USER_LIMIT = 200

NO_ROLE_LABEL = "No role — can't see anything"
SUPERUSER_LABEL = "Admin (superuser)"


@dataclass(frozen=True)
class UserRow:
    pk: int
    username: str
    name: str
    email: str
    role: str
    role_label: str
    is_superuser: bool
    is_active: bool
    last_login: datetime | None
    sign_in: str


@dataclass(frozen=True)
class UserPage:
    users: list[UserRow]
    limit: int
    truncated: bool


def role_label(role: str, *, superuser: bool = False) -> str:
    if superuser:
        return SUPERUSER_LABEL
    return Role(role).label if role else NO_ROLE_LABEL


def list_users() -> UserPage:
    """The first USER_LIMIT users by username, with their roles, in two queries."""
    limit = USER_LIMIT
    users = list(
        get_user_model()
        .objects.order_by("username")
        .only(
            "username",
            "first_name",
            "last_name",
            "email",
            "password",
            "is_superuser",
            "is_active",
            "last_login",
        )[: limit + 1]
    )
    shown = users[:limit]
    roles = dict(
        UserRole.objects.filter(user_id__in=[user.pk for user in shown]).values_list(
            "user_id", "role"
        )
    )
    rows = [
        UserRow(
            pk=user.pk,
            username=user.get_username(),
            name=user.get_full_name(),
            email=user.email,
            role=roles.get(user.pk, ""),
            role_label=role_label(roles.get(user.pk, ""), superuser=user.is_superuser),
            is_superuser=user.is_superuser,
            is_active=user.is_active,
            last_login=user.last_login,
            # A user made by SAML sign-in has no usable password: that is their only way in.
            sign_in="password" if user.has_usable_password() else "SAML",
        )
        for user in shown
    ]
    return UserPage(users=rows, limit=limit, truncated=len(users) > limit)
