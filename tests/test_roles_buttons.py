"""Each role sees the buttons and links of what it may do, and no others.

The server refuses the rest anyway (tests/test_roles_access.py); this is what a person sees:
for each page every role may read, which action forms and links are on it.
"""

import pytest
from django.urls import reverse

from tests.roles_support import (
    ADMIN,
    ADMINS,
    OPERATOR,
    OPERATORS,
    READERS,
    VIEWER,
    World,
    client_as,
    make_world,
)


@pytest.fixture
def world(db: None) -> World:
    return make_world()


def post_form(route: str, *args: object) -> str:
    return f'method="post" action="{reverse(route, args=args)}"'


def link(route: str, *args: object) -> str:
    return f'href="{reverse(route, args=args)}"'


# (page, its argument in the world, what marks the control, the control's route and argument,
# the roles that see it)
CONTROLS = [
    ("jobs:detail", "job", post_form, "jobs:retry", "job", OPERATORS),
    ("jobs:detail", "pending_job", post_form, "jobs:cancel", "pending_job", OPERATORS),
    ("identities:list", None, link, "identities:choose-type", None, ADMINS),
    (
        "identities:detail",
        "free_credential",
        post_form,
        "pam:check-out",
        "free_credential",
        OPERATORS,
    ),
    ("identities:platform-list", None, link, "identities:platform-create", None, ADMINS),
    ("identities:platform-list", None, link, "identities:platform-edit", "platform", ADMINS),
    ("identities:provider-list", None, link, "identities:provider-create", None, ADMINS),
    ("directory:source-list", None, link, "directory:source-create", "source_kind", ADMINS),
    ("directory:source-detail", "source", post_form, "directory:source-sync", "source", OPERATORS),
    ("directory:source-detail", "source", link, "directory:source-edit", "source", ADMINS),
    ("directory:source-detail", "source", link, "directory:rule-edit", "source", ADMINS),
    ("assets:platform", "platform", post_form, "assets:discover", "platform", OPERATORS),
    ("audit:platform", "platform", post_form, "audit:ingest", "platform", OPERATORS),
    ("audit:platform", "platform", post_form, "audit:platform", "platform", ADMINS),
    ("policies:list", None, link, "policies:create", None, ADMINS),
    ("policies:violations", None, post_form, "policies:approve", "violation", OPERATORS),
    ("policies:violations", None, post_form, "policies:dismiss", "violation", OPERATORS),
    # The navigation, on any page.
    ("jobs:list", None, link, "imports:upload", None, ADMINS),
    ("jobs:list", None, link, "pam:my-sessions", None, OPERATORS),
    ("jobs:list", None, link, "trail:list", None, READERS),
    ("jobs:list", None, link, "accounts:users", None, ADMINS),
    ("jobs:list", None, link, "sso:settings", None, ADMINS),
]


@pytest.mark.parametrize("role", [VIEWER, OPERATOR, ADMIN])
@pytest.mark.parametrize(
    ("page", "page_arg", "mark", "control", "control_arg", "seen_by"),
    CONTROLS,
    ids=[f"{control} on {page}" for page, _, _, control, _, _ in CONTROLS],
)
def test_a_control_shows_only_to_the_roles_that_may_use_it(
    world, role, page, page_arg, mark, control, control_arg, seen_by
) -> None:
    page_args = [world.ids[page_arg]] if page_arg else []
    response = client_as(world, role).get(reverse(page, args=page_args))
    assert response.status_code == 200
    control_args = [world.ids[control_arg]] if control_arg else []
    shown = mark(control, *control_args) in response.content.decode()
    assert shown == (role in seen_by), f"{control} {'shown' if shown else 'hidden'} to {role}"
