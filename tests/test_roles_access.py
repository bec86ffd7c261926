"""Every URL and API endpoint, for anonymous / no role / viewer / operator / admin.

The table says which roles may use each route; a route missing from it fails the
completeness test, so a new page cannot ship without a decision about who may see it.
Allowed means "not refused": the answer may still be a 400 or 409 about the request itself.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.models import ApiToken
from tests.roles_support import (
    ADMIN,
    ADMINS,
    ANONYMOUS,
    OPERATOR,
    OPERATORS,
    PUBLIC,
    READERS,
    ROLES,
    VIEWER,
    World,
    client_as,
    make_world,
)


@pytest.fixture
def world(db: None) -> World:
    return make_world()


# Routes that are not pages of ours, or that answer to something other than a role.
NOT_IN_TABLE = {
    "admin": "Django's admin site: staff only, checked by test_the_django_admin_is_staff_only",
    "metrics": "Prometheus scrape target behind ACCESSHIVE_METRICS_TOKEN (tests/test_ops_metrics)",
}


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    allowed: frozenset[str]
    args: tuple[str, ...] = ()
    data: Callable[[World], dict[str, Any]] | None = None

    @property
    def is_api(self) -> bool:
        return self.name.split(":")[-1].startswith("api-")

    def url(self, world: World) -> str:
        if self.name == "root":
            return "/"
        return reverse(self.name, args=[world.ids[arg] for arg in self.args])

    def __str__(self) -> str:
        return f"{self.method} {self.name}"


def checkout_form(world: World) -> dict[str, Any]:
    return {"reason": "table test", "minutes": "30"}


TABLE = [
    Route("root", "GET", PUBLIC),
    # The API's document and docs page describe it to anyone; the API root is a 404 problem.
    Route("api:openapi-json", "GET", PUBLIC),
    Route("api:openapi-view", "GET", PUBLIC),
    Route("api:api-root", "GET", PUBLIC),
    Route("login", "GET", PUBLIC),
    Route("login", "POST", PUBLIC),
    Route("logout", "POST", PUBLIC),
    Route("healthz", "GET", PUBLIC),
    Route("favicon", "GET", PUBLIC),
    # Settings > Jobs
    Route("jobs:list", "GET", READERS),
    Route("jobs:charts", "GET", READERS),
    Route("jobs:detail", "GET", READERS, ("job",)),
    Route("jobs:retry", "POST", OPERATORS, ("job",)),
    Route("jobs:api-list", "GET", READERS),
    Route("jobs:api-detail", "GET", READERS, ("job",)),
    Route("jobs:api-retry", "POST", OPERATORS, ("job",)),
    Route("jobs:cancel", "POST", OPERATORS, ("job",)),
    Route("jobs:api-cancel", "POST", OPERATORS, ("job",)),
    Route("jobs:api-bulk-retry", "POST", OPERATORS, (), lambda world: {}),
    Route("jobs:api-bulk-cancel", "POST", OPERATORS, (), lambda world: {}),
    # Users and their roles
    Route("accounts:users", "GET", ADMINS),
    Route("accounts:set-role", "POST", ADMINS, ("user",), lambda world: {"role": "viewer"}),
    Route("accounts:unlock", "POST", ADMINS, ("lockout",)),
    # Anyone with a role holds their own API tokens; the table's token is the viewer's.
    Route("accounts:tokens", "GET", READERS),
    Route("accounts:revoke-token", "POST", READERS, ("api_token",)),
    # Identities and their settings
    Route("identities:list", "GET", READERS),
    Route("identities:detail", "GET", READERS, ("identity",)),
    Route("identities:choose-type", "GET", ADMINS),
    Route("identities:create", "GET", ADMINS, ("identity_type",)),
    Route("identities:create", "POST", ADMINS, ("identity_type",)),
    Route("identities:platform-list", "GET", READERS),
    Route("identities:platform-create", "GET", ADMINS),
    Route("identities:platform-create", "POST", ADMINS),
    Route("identities:platform-edit", "GET", ADMINS, ("platform",)),
    Route("identities:platform-edit", "POST", ADMINS, ("platform",)),
    Route("identities:provider-list", "GET", READERS),
    Route("identities:provider-create", "GET", ADMINS),
    Route("identities:provider-create", "POST", ADMINS),
    Route("identities:provider-edit", "GET", ADMINS, ("provider",)),
    Route("identities:provider-edit", "POST", ADMINS, ("provider",)),
    Route("identities:api-platforms", "POST", ADMINS),
    Route("identities:api-platform", "PUT", ADMINS, ("platform",)),
    Route("identities:api-providers", "POST", ADMINS),
    Route("identities:api-provider", "PUT", ADMINS, ("provider",)),
    Route("identities:api-list", "GET", READERS),
    Route("identities:api-list", "POST", ADMINS),
    Route("identities:api-detail", "GET", READERS, ("identity",)),
    # Access sessions: the session of the table belongs to the operator.
    Route("pam:my-sessions", "GET", OPERATORS),
    Route("pam:check-out", "GET", OPERATORS, ("free_credential",)),
    Route("pam:check-out", "POST", OPERATORS, ("free_credential",), checkout_form),
    Route("pam:check-in", "POST", OPERATORS, ("session",)),
    # Only the holder reveals; an admin may check anyone in but not read their password.
    Route("pam:reveal", "POST", frozenset({OPERATOR}), ("session",)),
    Route("pam:record-rotation", "GET", OPERATORS, ("credential",)),
    Route("pam:record-rotation", "POST", OPERATORS, ("credential",)),
    Route("pam:api-check-out", "POST", OPERATORS, ("free_credential",), checkout_form),
    Route("pam:api-check-in", "POST", OPERATORS, ("session",)),
    Route("pam:api-reveal", "POST", frozenset({OPERATOR}), ("session",)),
    # CSV import creates identities: admins.
    Route("imports:upload", "GET", ADMINS),
    Route("imports:upload", "POST", ADMINS),
    Route("imports:template", "GET", ADMINS),
    Route("imports:detail", "GET", ADMINS, ("batch",)),
    Route("imports:report", "GET", ADMINS, ("batch",)),
    Route("imports:api-list", "POST", ADMINS),
    Route("imports:api-detail", "GET", ADMINS, ("batch",)),
    Route("imports:api-report", "GET", ADMINS, ("batch",)),
    # Audit log ingestion
    Route("audit:list", "GET", READERS),
    Route("audit:detail", "GET", READERS, ("audit_event",)),
    Route("audit:platform-list", "GET", READERS),
    Route("audit:platform", "GET", READERS, ("platform",)),
    Route("audit:platform", "POST", ADMINS, ("platform",)),
    Route("audit:ingest", "POST", OPERATORS, ("platform",)),
    Route("audit:api-ingest", "POST", OPERATORS, ("platform",)),
    Route("audit:api-list", "GET", READERS),
    Route("audit:api-detail", "GET", READERS, ("audit_event",)),
    # Assets
    Route("assets:list", "GET", READERS),
    Route("assets:detail", "GET", READERS, ("asset",)),
    Route("assets:platform-list", "GET", READERS),
    Route("assets:platform", "GET", READERS, ("platform",)),
    Route("assets:discover", "POST", OPERATORS, ("platform",)),
    Route("assets:api-discover", "POST", OPERATORS, ("platform",)),
    Route("assets:api-list", "GET", READERS),
    Route("assets:api-detail", "GET", READERS, ("asset",)),
    # Directory sync and joiner/mover/leaver
    Route("directory:source-list", "GET", READERS),
    Route("directory:source-create", "GET", ADMINS, ("source_kind",)),
    Route("directory:source-create", "POST", ADMINS, ("source_kind",)),
    Route("directory:source-detail", "GET", READERS, ("source",)),
    Route("directory:source-edit", "GET", ADMINS, ("source",)),
    Route("directory:source-edit", "POST", ADMINS, ("source",)),
    Route("directory:source-sync", "POST", OPERATORS, ("source",)),
    Route("directory:rule-edit", "GET", ADMINS, ("source",)),
    Route("directory:rule-edit", "POST", ADMINS, ("source",)),
    Route("directory:run-detail", "GET", READERS, ("run",)),
    Route("directory:event-list", "GET", READERS),
    Route("directory:event-detail", "GET", READERS, ("directory_event",)),
    Route("directory:api-sources", "GET", READERS),
    Route("directory:api-source", "GET", READERS, ("source",)),
    Route("directory:api-sync", "POST", OPERATORS, ("source",)),
    Route("directory:api-sources", "POST", ADMINS),
    Route("directory:api-source", "PUT", ADMINS, ("source",)),
    Route("directory:api-rule", "PUT", ADMINS, ("source",)),
    Route("directory:api-events", "GET", READERS),
    # Admin audit trail
    Route("trail:list", "GET", READERS),
    Route("trail:api-list", "GET", READERS),
    # SAML single sign-on: the protocol endpoints are public, its settings are the admins'.
    Route("sso:metadata", "GET", PUBLIC),
    Route("sso:login", "GET", PUBLIC),
    Route("sso:acs", "POST", PUBLIC),
    Route("sso:sls", "GET", PUBLIC),
    Route("sso:logout", "POST", PUBLIC),
    Route("sso:settings", "GET", ADMINS),
    Route("sso:settings", "POST", ADMINS),
    # Policies and remediation
    Route("policies:list", "GET", READERS),
    Route("policies:create", "GET", ADMINS),
    Route("policies:create", "POST", ADMINS),
    Route("policies:edit", "GET", ADMINS, ("policy",)),
    Route("policies:edit", "POST", ADMINS, ("policy",)),
    Route("policies:api-policies", "POST", ADMINS),
    Route("policies:api-policy", "PUT", ADMINS, ("policy",)),
    Route("policies:violations", "GET", READERS),
    Route("policies:approve", "POST", OPERATORS, ("violation",)),
    Route("policies:dismiss", "POST", OPERATORS, ("violation",)),
    Route("policies:retry", "POST", OPERATORS, ("violation",)),
    Route("policies:api-list", "GET", READERS),
    Route("policies:api-approve", "POST", OPERATORS, ("violation",)),
    Route("policies:api-dismiss", "POST", OPERATORS, ("violation",)),
]


def route_names() -> set[str]:
    """Every named route of the project, namespaced ("jobs:list")."""
    names: set[str] = set()

    def walk(patterns: list[URLPattern | URLResolver], namespace: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                walk(pattern.url_patterns, inner)
            elif pattern.name:
                names.add(namespace + pattern.name)
            else:
                names.add(namespace + "root")

    walk(get_resolver().url_patterns, "")
    return names


def test_every_route_is_in_the_table() -> None:
    covered = {route.name for route in TABLE}
    exempt = {name for name in route_names() if name.split(":")[0] in NOT_IN_TABLE}
    missing = sorted(route_names() - covered - exempt)
    assert not missing, f"routes nobody decided the roles of (add them to TABLE): {missing}"
    stale = sorted(covered - route_names())
    assert not stale, f"TABLE names routes that no longer exist: {stale}"


def call(client: Client, route: Route, world: World, **extra: Any) -> Any:
    data = route.data(world) if route.data else {}
    if route.method == "GET":
        return client.get(route.url(world), **extra)
    if route.method == "PUT":
        return client.put(route.url(world), data, content_type="application/json", **extra)
    return client.post(route.url(world), data, **extra)


def refused(route: Route, role: str, response: Any) -> bool:
    if role == ANONYMOUS and route.is_api:
        return bool(response.status_code == 401)
    if role == ANONYMOUS:
        # login_required's redirect carries ?next=; signing out lands on the bare login page.
        location = response.get("Location", "")
        return bool(
            response.status_code == 302 and location.startswith(f"{reverse('login')}?next=")
        )
    return bool(response.status_code == 403)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", TABLE, ids=str)
def test_each_role_reaches_exactly_what_the_table_allows(world, route, role) -> None:
    response = call(client_as(world, role), route, world)
    if role in route.allowed:
        assert not refused(route, role, response), (
            f"{role} was refused {route}: {response.status_code}"
        )
        assert response.status_code < 500
    else:
        assert refused(route, role, response), (
            f"{role} reached {route}: {response.status_code} "
            f"{response.get('Location', '')} {response.content[:200]!r}"
        )


# The IdP's browser POST cannot carry our CSRF token; a signed assertion answering a request
# this browser made (tests/test_sso.py) is what protects it.
CSRF_EXEMPT = {"sso:acs"}
POSTS = [
    route for route in TABLE if route.method in ("POST", "PUT") and route.name not in CSRF_EXEMPT
]


@pytest.mark.parametrize("route", POSTS, ids=str)
def test_every_state_changing_request_needs_the_csrf_token(world, route) -> None:
    role = next(role for role in (OPERATOR, ADMIN, ANONYMOUS) if role in route.allowed)
    response = call(client_as(world, role, enforce_csrf=True), route, world)
    assert response.status_code == 403, f"{route} as {role} without CSRF: {response.status_code}"


@pytest.mark.parametrize("route", [route for route in TABLE if route.is_api], ids=str)
def test_a_bearer_token_carries_its_users_role(world, route) -> None:
    """Tokens skip CSRF (browsers never send them on their own), never the role check."""
    for role in (VIEWER, OPERATOR, ADMIN):
        _, raw = ApiToken.issue(world.users[role], "table")
        response = call(Client(), route, world, HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert (response.status_code == 403) == (role not in route.allowed), (role, response)


def test_the_django_admin_is_staff_only(world) -> None:
    response = client_as(world, ADMIN).get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
