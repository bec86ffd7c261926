"""Read side of Settings > Users: every user with their role and how they sign in."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import ApiToken, UserRole
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


def list_lockouts() -> list[AccessAttempt]:
    """Username and address pairs that django-axes refuses now (failures at the limit within
    the cooling-off time), newest first."""
    since = timezone.now() - get_cool_off()
    return list(
        AccessAttempt.objects.filter(
            failures_since_start__gte=settings.AXES_FAILURE_LIMIT, attempt_time__gte=since
        )
        .only("username", "ip_address", "failures_since_start", "attempt_time")
        .order_by("-attempt_time")[:USER_LIMIT]
    )


def get_lockout(attempt_id: int) -> AccessAttempt | None:
    return AccessAttempt.objects.filter(pk=attempt_id).first()


def list_api_tokens(user: Any, *, everyone: bool) -> list[ApiToken]:
    """The user's API tokens, or everyone's (admins), newest first; never the secret."""
    tokens = ApiToken.objects.select_related("user").order_by("-created_at", "-id")
    if not everyone:
        tokens = tokens.filter(user=user)
    return list(tokens[:USER_LIMIT])


def get_api_token(token_id: int) -> ApiToken | None:
    return ApiToken.objects.select_related("user").filter(pk=token_id).first()
