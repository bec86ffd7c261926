"""Every URL and API endpoint, for anonymous / no role / viewer / operator / admin.

The table says which roles may use each route and what exactly each of them gets; a route
missing from it fails the completeness test, so a new page cannot ship without a decision
about who may see it. A role not allowed is refused (anonymous: 401 from the API, else a 302
to the login page; anyone else: 403).

To add a row: ``Route(name, method, allowed, args, data, answer=...)``
- ``args`` name objects of the world (tests/roles_support.py ``make_world``; add one there if
  your route takes a new kind of object); ``data`` builds the POST body (JSON for API routes).
- ``answer`` is what every allowed role gets: the status code (200 a page, 201 created, 202
  accepted, ...) or ``Found("app:page", *args)`` for a 302 to that page. Give a POST the data
  that makes it succeed, so the row proves the allowed role really does the thing; a 400 or
  404 row says, in a comment, why that is the right answer.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.models import ApiToken
from identities.models import Platform
from tests import factories
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
class Found:
    """A 302 to the named page; ``args`` name objects of the world, as Route.args do."""

    name: str
    args: tuple[str, ...] = ()

    def __init__(self, name: str, *args: str) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "args", args)


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    allowed: frozenset[str]
    args: tuple[str, ...] = ()
    data: Callable[[World], dict[str, Any]] | None = None
    # What every allowed role gets: a status code, or Found(...) for a 302 to a named page.
    answer: int | Found | None = None
    # Where one allowed role gets another answer than the rest, and the comment says why.
    by_role: dict[str, int | Found] = field(default_factory=dict)

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


def checkout_json(world: World) -> dict[str, Any]:
    return {"reason": "table test", "minutes": 30}


def new_api_key(world: World) -> dict[str, Any]:
    platform = Platform.objects.get(pk=world.ids["platform"])
    return {"type": "api_key", **factories.identity_form_data("api_key", platform, "k3y")}


TABLE = [
    Route("root", "GET", PUBLIC, answer=Found("jobs:list")),
    Route("login", "GET", PUBLIC, answer=200),
    # Forms posted empty answer 200: the form again, with its errors.
    Route("login", "POST", PUBLIC, answer=200),
    Route("logout", "POST", PUBLIC, answer=Found("login")),
    Route("healthz", "GET", PUBLIC, answer=200),
    # A permanent redirect to the SVG icon in the static files.
    Route("favicon", "GET", PUBLIC, answer=301),
    # The API's document and docs page describe it to anyone; the API root is a 404 problem.
    Route("api:openapi-json", "GET", PUBLIC, answer=200),
    Route("api:openapi-view", "GET", PUBLIC, answer=200),
    Route("api:api-root", "GET", PUBLIC, answer=404),
    # Settings > Jobs
    Route("jobs:list", "GET", READERS, answer=200),
    Route("jobs:charts", "GET", READERS, answer=200),
    Route("jobs:detail", "GET", READERS, ("job",), answer=200),
    Route("jobs:retry", "POST", OPERATORS, ("job",), answer=Found("jobs:detail", "job")),
    Route("jobs:api-list", "GET", READERS, answer=200),
    Route("jobs:api-detail", "GET", READERS, ("job",), answer=200),
    Route("jobs:api-retry", "POST", OPERATORS, ("job",), answer=202),
    Route(
        "jobs:cancel",
        "POST",
        OPERATORS,
        ("pending_job",),
        answer=Found("jobs:detail", "pending_job"),
    ),
    Route("jobs:api-cancel", "POST", OPERATORS, ("pending_job",), answer=200),
    # With no filter and the default limit: every failed (or cancellable) job, one trail entry.
    Route("jobs:api-bulk-retry", "POST", OPERATORS, (), lambda world: {}, answer=200),
    Route("jobs:api-bulk-cancel", "POST", OPERATORS, (), lambda world: {}, answer=200),
    # Users and their roles
    Route("accounts:users", "GET", ADMINS, answer=200),
    Route(
        "accounts:set-role",
        "POST",
        ADMINS,
        ("user",),
        lambda world: {"role": "viewer"},
        answer=Found("accounts:users"),
    ),
    Route("accounts:unlock", "POST", ADMINS, ("lockout",), answer=Found("accounts:users")),
    # Anyone with a role holds their own API tokens; the table's token is the viewer's.
    Route("accounts:tokens", "GET", READERS, answer=200),
    # The table's token is the viewer's: the admin may revoke anyone's, another operator's is
    # not found for them.
    Route(
        "accounts:revoke-token",
        "POST",
        READERS,
        ("api_token",),
        answer=Found("accounts:tokens"),
        by_role={OPERATOR: 404},
    ),
    Route("accounts:api-tokens", "GET", READERS, answer=200),
    # As the page: the viewer's token, which another operator does not find.
    Route(
        "accounts:api-revoke-token",
        "POST",
        READERS,
        ("api_token",),
        answer=200,
        by_role={OPERATOR: 404},
    ),
    Route("accounts:api-lockouts", "GET", ADMINS, answer=200),
    Route("accounts:api-unlock", "POST", ADMINS, ("lockout",), answer=204),
    # Identities and their settings
    Route("identities:list", "GET", READERS, answer=200),
    Route("identities:detail", "GET", READERS, ("identity",), answer=200),
    Route("identities:choose-type", "GET", ADMINS, answer=200),
    Route("identities:create", "GET", ADMINS, ("identity_type",), answer=200),
    Route("identities:create", "POST", ADMINS, ("identity_type",), answer=200),
    Route("identities:platform-list", "GET", READERS, answer=200),
    Route("identities:platform-create", "GET", ADMINS, answer=200),
    Route("identities:platform-create", "POST", ADMINS, answer=200),
    Route("identities:platform-edit", "GET", ADMINS, ("platform",), answer=200),
    Route("identities:platform-edit", "POST", ADMINS, ("platform",), answer=200),
    Route("identities:provider-list", "GET", READERS, answer=200),
    Route("identities:provider-create", "GET", ADMINS, answer=200),
    Route("identities:provider-create", "POST", ADMINS, answer=200),
    Route("identities:provider-edit", "GET", ADMINS, ("provider",), answer=200),
    Route("identities:provider-edit", "POST", ADMINS, ("provider",), answer=200),
    # Empty bodies: 400 problems naming the missing fields (the page forms' own rules).
    Route("identities:api-platforms", "POST", ADMINS, answer=400),
    Route("identities:api-platform", "PUT", ADMINS, ("platform",), answer=400),
    Route("identities:api-providers", "POST", ADMINS, answer=400),
    Route("identities:api-provider", "PUT", ADMINS, ("provider",), answer=400),
    Route("identities:api-list", "GET", READERS, answer=200),
    Route("identities:api-list", "POST", ADMINS, (), new_api_key, answer=201),
    Route("identities:api-detail", "GET", READERS, ("identity",), answer=200),
    # Access sessions: the session of the table belongs to the operator.
    Route("pam:my-sessions", "GET", OPERATORS, answer=200),
    Route("pam:check-out", "GET", OPERATORS, ("free_credential",), answer=200),
    Route(
        "pam:check-out",
        "POST",
        OPERATORS,
        ("free_credential",),
        checkout_form,
        answer=Found("identities:detail", "free_credential"),
    ),
    Route("pam:check-in", "POST", OPERATORS, ("session",), answer=Found("pam:my-sessions")),
    # Only the holder reveals; an admin may check anyone in but not read their password.
    Route("pam:reveal", "POST", frozenset({OPERATOR}), ("session",), answer=200),
    Route("pam:record-rotation", "GET", OPERATORS, ("credential",), answer=200),
    # An empty form: 400 with the form again, naming the missing password fields.
    Route("pam:record-rotation", "POST", OPERATORS, ("credential",), answer=400),
    Route("pam:api-check-out", "POST", OPERATORS, ("free_credential",), checkout_json, answer=201),
    Route("pam:api-check-in", "POST", OPERATORS, ("session",), answer=200),
    Route("pam:api-reveal", "POST", frozenset({OPERATOR}), ("session",), answer=200),
    # CSV import creates identities: admins.
    Route("imports:upload", "GET", ADMINS, answer=200),
    # No file: 400 with the upload form again, naming the file field.
    Route("imports:upload", "POST", ADMINS, answer=400),
    Route("imports:template", "GET", ADMINS, answer=200),
    Route("imports:detail", "GET", ADMINS, ("batch",), answer=200),
    Route("imports:report", "GET", ADMINS, ("batch",), answer=200),
    # No multipart file (the table posts JSON): 400 naming the "file" field.
    Route("imports:api-list", "POST", ADMINS, answer=400),
    Route("imports:api-detail", "GET", ADMINS, ("batch",), answer=200),
    Route("imports:api-report", "GET", ADMINS, ("batch",), answer=200),
    # Audit log ingestion
    Route("audit:list", "GET", READERS, answer=200),
    Route("audit:detail", "GET", READERS, ("audit_event",), answer=200),
    Route("audit:platform-list", "GET", READERS, answer=200),
    Route("audit:platform", "GET", READERS, ("platform",), answer=200),
    # An empty settings form: 400 with the form again.
    Route("audit:platform", "POST", ADMINS, ("platform",), answer=400),
    Route(
        "audit:ingest", "POST", OPERATORS, ("platform",), answer=Found("audit:platform", "platform")
    ),
    Route("audit:api-ingest", "POST", OPERATORS, ("platform",), answer=202),
    Route("audit:api-list", "GET", READERS, answer=200),
    Route("audit:api-detail", "GET", READERS, ("audit_event",), answer=200),
    # Assets
    Route("assets:list", "GET", READERS, answer=200),
    Route("assets:detail", "GET", READERS, ("asset",), answer=200),
    Route("assets:platform-list", "GET", READERS, answer=200),
    Route("assets:platform", "GET", READERS, ("platform",), answer=200),
    Route(
        "assets:discover",
        "POST",
        OPERATORS,
        ("platform",),
        answer=Found("assets:platform", "platform"),
    ),
    Route("assets:api-discover", "POST", OPERATORS, ("platform",), answer=202),
    Route("assets:api-list", "GET", READERS, answer=200),
    Route("assets:api-detail", "GET", READERS, ("asset",), answer=200),
    # Directory sync and joiner/mover/leaver
    Route("directory:source-list", "GET", READERS, answer=200),
    Route("directory:source-create", "GET", ADMINS, ("source_kind",), answer=200),
    Route("directory:source-create", "POST", ADMINS, ("source_kind",), answer=200),
    Route("directory:source-detail", "GET", READERS, ("source",), answer=200),
    Route("directory:source-edit", "GET", ADMINS, ("source",), answer=200),
    Route("directory:source-edit", "POST", ADMINS, ("source",), answer=200),
    Route(
        "directory:source-sync",
        "POST",
        OPERATORS,
        ("source",),
        answer=Found("directory:source-detail", "source"),
    ),
    Route("directory:rule-edit", "GET", ADMINS, ("source",), answer=200),
    Route("directory:rule-edit", "POST", ADMINS, ("source",), answer=200),
    Route("directory:run-detail", "GET", READERS, ("run",), answer=200),
    Route("directory:event-list", "GET", READERS, answer=200),
    Route("directory:event-detail", "GET", READERS, ("directory_event",), answer=200),
    Route("directory:api-sources", "GET", READERS, answer=200),
    Route("directory:api-source", "GET", READERS, ("source",), answer=200),
    Route("directory:api-sync", "POST", OPERATORS, ("source",), answer=202),
    # Empty bodies: 400 problems naming the missing fields.
    Route("directory:api-sources", "POST", ADMINS, answer=400),
    Route("directory:api-source", "PUT", ADMINS, ("source",), answer=400),
    Route("directory:api-rule", "PUT", ADMINS, ("source",), answer=400),
    Route("directory:api-events", "GET", READERS, answer=200),
    # Admin audit trail
    Route("trail:list", "GET", READERS, answer=200),
    Route("trail:api-list", "GET", READERS, answer=200),
    # SAML single sign-on: the protocol endpoints are public, its settings are the admins'.
    Route("sso:metadata", "GET", PUBLIC, answer=200),
    # SSO is not configured in this world: its sign-in endpoints answer 404 (a page saying
    # so), and single logout without a SAML message is a 400; tests/test_sso*.py configure it.
    Route("sso:login", "GET", PUBLIC, answer=404),
    Route("sso:acs", "POST", PUBLIC, answer=404),
    Route("sso:sls", "GET", PUBLIC, answer=400),
    Route("sso:logout", "POST", PUBLIC, answer=Found("login")),
    Route("sso:settings", "GET", ADMINS, answer=200),
    # An empty settings form: 400 with the form again.
    Route("sso:settings", "POST", ADMINS, answer=400),
    # Policies and remediation
    Route("policies:list", "GET", READERS, answer=200),
    Route("policies:create", "GET", ADMINS, answer=200),
    Route("policies:create", "POST", ADMINS, answer=200),
    Route("policies:edit", "GET", ADMINS, ("policy",), answer=200),
    Route("policies:edit", "POST", ADMINS, ("policy",), answer=200),
    # Empty bodies: 400 problems naming the missing fields.
    Route("policies:api-policies", "POST", ADMINS, answer=400),
    Route("policies:api-policy", "PUT", ADMINS, ("policy",), answer=400),
    Route("policies:violations", "GET", READERS, answer=200),
    Route(
        "policies:approve", "POST", OPERATORS, ("violation",), answer=Found("policies:violations")
    ),
    Route(
        "policies:dismiss", "POST", OPERATORS, ("violation",), answer=Found("policies:violations")
    ),
    Route("policies:retry", "POST", OPERATORS, ("violation",), answer=Found("policies:violations")),
    Route("policies:api-list", "GET", READERS, answer=200),
    Route("policies:api-approve", "POST", OPERATORS, ("violation",), answer=200),
    Route("policies:api-dismiss", "POST", OPERATORS, ("violation",), answer=200),
    # The world's violation is open, not "remediation failed": a 409 problem saying so.
    Route("policies:api-retry", "POST", OPERATORS, ("violation",), answer=409),
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
        return client.put(route.url(world), json.dumps(data), "application/json", **extra)
    if route.is_api:
        return client.post(route.url(world), json.dumps(data), "application/json", **extra)
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


def answer_of(response: Any) -> int | str:
    """The status code, or for a redirect the path it leads to."""
    if response.status_code == 302:
        return str(urlsplit(response["Location"]).path)
    return int(response.status_code)


def expected(answer: int | Found, world: World) -> int | str:
    if isinstance(answer, int):
        return answer
    return reverse(answer.name, args=[world.ids[arg] for arg in answer.args])


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", TABLE, ids=str)
def test_each_role_reaches_exactly_what_the_table_allows(world, route, role) -> None:
    response = call(client_as(world, role), route, world)
    if role in route.allowed:
        assert route.answer is not None, f"give {route} its answer= (see the module docstring)"
        wanted = route.by_role.get(role, route.answer)
        assert answer_of(response) == expected(wanted, world), (
            f"{role} got {response.status_code} {response.get('Location', '')} from {route} "
            f"{response.content[:200]!r}"
        )
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
