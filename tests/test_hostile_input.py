"""Every route of the URLconf, fed what an attacker or a careless script would send.

For each route of the roles table (which must name every route, see test_roles_access) and
each role, a first well-formed request records which query or form parameters the view reads;
then each hostile value goes into all of those and a few every list reads at once, and into
each parameter read on its own, and each path value is made out-of-range or hostile in turn.
JSON endpoints also get deep, odd-shaped bodies. Nothing may answer 5xx, and no page may carry
the script probe unescaped. A new route or a new parameter is covered without editing this file.
"""

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.http import QueryDict
from django.test import Client
from django.urls import NoReverseMatch, reverse

from tests.roles_support import ADMIN, ANONYMOUS, OPERATOR, VIEWER, World, make_world
from tests.test_roles_access import TABLE, Route

ROLES_TRIED = (ANONYMOUS, VIEWER, OPERATOR, ADMIN)
PROBE = "<script>alert('hostile-probe')</script>"
HOSTILE_VALUES = {
    "unicode digits": "²³",
    "arabic-indic digits": "١٢٣",
    "NUL": "ab\x00cd",
    "10^30": "1" + "0" * 30,
    "negative": "-1",
    "far past": "0001-01-01T00:00:00",
    "far future": "9999-12-31T23:59:59-23:59",
    "past the calendar": "99999-01-01",
    "cursor past bigint": "99999999999999999999_1",
    "100 KB": "A" * 100_000,
    "script": PROBE,
}
# Parameters most lists and forms read, sent even where the probe request did not read them
# (a view may read one only after another has passed).
COMMON_PARAMETERS = ("before", "status", "type", "platform", "q", "next", "since", "until")
# Read by middleware on every POST, not by views.
IGNORED_PARAMETERS = {"csrfmiddlewaretoken"}
DEEP = 10_000
JSON_BODIES = {
    "nested lists": "[" * DEEP + "]" * DEEP,
    "nested objects": '{"a":' * DEEP + "1" + "}" * DEEP,
    "null": "null",
    "array": "[1, 2, 3]",
    "empty object": "{}",
    "string": json.dumps(PROBE),
    "NUL in a string": json.dumps({"name": "a\x00b"}),
    "lone surrogate": '{"name": "\\ud800"}',
    "not JSON": "{",
}
FIGURES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_figures() -> Iterator[None]:
    yield
    print(
        f"\nhostile input: {FIGURES['requests']} requests, {FIGURES['payloads']} distinct "
        f"(route, role, parameter(s), value) payloads, {FIGURES['5xx']} answered 5xx, "
        f"{FIGURES['reflected']} reflected the script unescaped"
    )


@pytest.fixture
def world(db: None) -> World:
    return make_world()


@contextmanager
def recording_reads() -> Iterator[set[str]]:
    """The keys looked up in any QueryDict (request.GET, request.POST) meanwhile."""
    read: set[str] = set()
    patched: dict[str, Callable[..., Any]] = {}
    for name in ("get", "__getitem__", "__contains__", "getlist"):
        original = getattr(QueryDict, name)

        def recorder(self: QueryDict, key: Any, *args: Any, _o: Any = original) -> Any:
            if isinstance(key, str):
                read.add(key)
            return _o(self, key, *args)

        patched[name] = original
        setattr(QueryDict, name, recorder)
    try:
        yield read
    finally:
        for name, original in patched.items():
            setattr(QueryDict, name, original)


def client_for(world: World, role: str) -> Client:
    client = Client(raise_request_exception=False)
    if role != ANONYMOUS:
        client.force_login(world.users[role])
    return client


def send(client: Client, route: Route, url: str, data: dict[str, Any]) -> Any:
    FIGURES["requests"] += 1
    if route.method == "GET":
        return client.get(url, data)
    return client.post(url, data)


def problems(route: Route, what: str, response: Any) -> list[str]:
    found = []
    if response.status_code >= 500:
        FIGURES["5xx"] += 1
        found.append(f"{route} {what}: {response.status_code}")
    content_type = response.get("Content-Type", "")
    body = b"" if response.streaming else response.content
    if "html" in content_type and PROBE.encode() in body:
        FIGURES["reflected"] += 1
        found.append(f"{route} {what}: the script probe came back unescaped")
    return found


def path_variants(route: Route, world: World) -> Iterator[tuple[str, str]]:
    """(description, url) with each path value in turn replaced by a hostile one."""
    for index, arg in enumerate(route.args):
        args = [world.ids[name] for name in route.args]
        original = args[index]
        for label, value in HOSTILE_VALUES.items():
            if isinstance(original, int) and not value.isascii():
                continue
            args[index] = value
            try:
                yield f"path {arg}={label}", reverse(route.name, args=args)
            except NoReverseMatch:
                continue  # the converter refuses it before any view runs: a 404


@pytest.mark.parametrize("role", ROLES_TRIED)
@pytest.mark.parametrize("route", TABLE, ids=str)
def test_hostile_parameters_never_break_a_page(world: World, route: Route, role: str) -> None:
    client = client_for(world, role)
    url = route.url(world)
    base = route.data(world) if route.data else {}
    with recording_reads() as read:
        found = problems(route, "well-formed", send(client, route, url, dict(base)))
    read -= IGNORED_PARAMETERS
    everything = sorted(read | set(COMMON_PARAMETERS) | set(base))
    for label, value in HOSTILE_VALUES.items():
        # Every parameter at once reaches each field of a form; one at a time reaches what a
        # view reads only after the others passed.
        FIGURES["payloads"] += 1
        response = send(client, route, url, {**base, **dict.fromkeys(everything, value)})
        found += problems(route, f"every parameter={label}", response)
        for parameter in sorted(read):
            FIGURES["payloads"] += 1
            response = send(client, route, url, {**base, parameter: value})
            found += problems(route, f"{parameter}={label}", response)
    for what, hostile_url in path_variants(route, world):
        FIGURES["payloads"] += 1
        found += problems(route, what, send(client, route, hostile_url, dict(base)))
    assert not found, "\n".join(found[:20])


JSON_ROUTES = [route for route in TABLE if route.is_api and route.method == "POST"]


@pytest.mark.parametrize("role", ROLES_TRIED)
@pytest.mark.parametrize("route", JSON_ROUTES, ids=str)
def test_hostile_json_bodies_never_break_an_endpoint(world: World, route: Route, role: str) -> None:
    client = client_for(world, role)
    url = route.url(world)
    found = []
    for label, body in JSON_BODIES.items():
        FIGURES["payloads"] += 1
        FIGURES["requests"] += 1
        response = client.post(url, body, content_type="application/json")
        found += problems(route, f"JSON {label}", response)
        json_reply = "json" in response.get("Content-Type", "")
        if 400 <= response.status_code < 500 and not json_reply:
            found.append(f"{route} JSON {label}: a {response.status_code} not in JSON")
    assert not found, "\n".join(found[:20])
