"""The sandbox's Reports API and the Reports connector over real HTTP: routes from the
discovery document, scopes, parameters, paging, filters, controls and faults."""

import datetime as dt
import http.client
import json
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from connectors.google_admin import GoogleAdminSession
from connectors.google_reports import APPLICATIONS, Activity, GoogleReportsClient
from jobs.errors import PermanentError, TransientError
from sandbox import google_directory, google_reports
from sandbox.google_keys import sign_rs256

AUDIT_SCOPE = "https://www.googleapis.com/auth/admin.reports.audit.readonly"
NOW = dt.datetime.now(dt.UTC)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def sandbox():
    server = google_directory.start(["example.com"])
    yield server
    server.shutdown()


@pytest.fixture
def key(sandbox) -> Any:
    return sandbox.issue_key()


@pytest.fixture
def client(sandbox, key) -> GoogleReportsClient:
    return GoogleReportsClient(
        key, "admin@example.com", api_endpoint=sandbox.base_url, timeout=5, label="platform P"
    )


def call(base_url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    payload = None if body is None else json.dumps(body)
    connection.request(method, path, payload, {"Content-Type": "application/json"})
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    return response.status, json.loads(raw) if raw else None


def everything(client: GoogleReportsClient, application: str, **kwargs: Any) -> list[Activity]:
    kwargs.setdefault("start", NOW - 3 * 60 * MINUTE)
    kwargs.setdefault("end", dt.datetime.now(dt.UTC))
    return [item for page in client.list_activities(application, **kwargs) for item in page]


def test_routes_and_scopes_come_from_the_discovery_documents() -> None:
    (route,) = google_reports.ROUTES
    assert route.name == "activities.list"
    assert route.path == (
        "admin/reports/v1/activity/users/{userKey}/applications/{applicationName}"
    )
    assert google_directory.REPORTS_SCOPES == google_reports.SCOPES
    assert google_reports.SCOPES <= google_directory.KNOWN_SCOPES
    assert {"admin", "login", "token", "drive"} <= set(APPLICATIONS)
    assert APPLICATIONS == google_reports.APPLICATIONS


def test_pages_newest_first_within_the_window(sandbox, client) -> None:
    sandbox.reports.log.generate(
        250, applications=["login"], start=NOW - 30 * MINUTE, end=NOW - MINUTE
    )
    pages = list(
        client.list_activities(
            "login", start=NOW - 20 * MINUTE, end=NOW - 10 * MINUTE, page_size=40
        )
    )
    items = [item for page in pages for item in page]
    assert len(pages) > 1
    assert all(len(page) == 40 for page in pages[:-1])
    times = [item.time for item in items]
    assert times == sorted(times, reverse=True)
    assert all(NOW - 20 * MINUTE <= t <= NOW - 10 * MINUTE for t in times)
    in_window = [
        a
        for a in sandbox.reports.log.all_published("login")
        if NOW - 20 * MINUTE <= dt.datetime.fromisoformat(a["id"]["time"]) <= NOW - 10 * MINUTE
    ]
    assert len(items) == len(in_window)
    assert len({item.unique_qualifier for item in items}) == len(items)


def test_a_generated_stream_looks_like_googles(sandbox, client) -> None:
    sandbox.reports.log.generate(600, start=NOW - 10 * MINUTE, end=NOW)
    names = {
        app: {e.name for a in everything(client, app) for e in a.events}
        for app in ("admin", "login", "token")
    }
    assert {"login_success", "login_failure", "logout"} <= names["login"]
    assert {"authorize", "activity"} <= names["token"]
    assert {"CHANGE_PASSWORD", "CREATE_USER"} <= names["admin"]
    activity = everything(client, "token")[0]
    assert activity.problems == ()
    assert activity.actor_email.endswith("@example.com")
    assert activity.ip_address
    assert activity.caller_type == "USER"


def test_filters_by_event_name_and_user(sandbox, key) -> None:
    log = sandbox.reports.log
    log.add(
        "login", log.activity("login", NOW - MINUTE, name="login_failure", actor="a@example.com")
    )
    log.add("login", log.activity("login", NOW - MINUTE, name="logout", actor="b@example.com"))
    session = GoogleAdminSession(
        key, "admin@example.com", scopes=[AUDIT_SCOPE], api_endpoint=sandbox.base_url
    )
    activities = session.service("admin", "reports_v1").activities()
    by_name = session.execute(
        activities.list(userKey="all", applicationName="login", eventName="login_failure"), "x"
    )
    assert [a["actor"]["email"] for a in by_name["items"]] == ["a@example.com"]
    by_user = session.execute(
        activities.list(userKey="b@example.com", applicationName="login"), "x"
    )
    assert [a["events"][0]["name"] for a in by_user["items"]] == ["logout"]


def test_a_token_without_the_reports_scope_is_refused(sandbox, key) -> None:
    session = GoogleAdminSession(
        key,
        "admin@example.com",
        scopes=["https://www.googleapis.com/auth/admin.directory.user.readonly"],
        api_endpoint=sandbox.base_url,
        access_hint="Grant the Reports scope",
    )
    activities = session.service("admin", "reports_v1").activities()
    with pytest.raises(PermanentError, match=r"403 .*insufficientPermissions.*Grant the Reports"):
        session.execute(activities.list(userKey="all", applicationName="login"), "the report")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("startTime=2030-01-01T00:00:00Z&endTime=2029-01-01T00:00:00Z", "Start time must be"),
        ("startTime=yesterday", "Invalid value for startTime"),
        ("maxResults=1001", "Values must be within the range: [1, 1000]"),
        ("pageToken=bm9wZQ", "pageToken"),
        ("sortOrder=ASC", "Unknown name"),
    ],
)
def test_bad_parameters_get_googles_400(sandbox, key, query, message) -> None:
    """Sent by hand: the client library would refuse some of these before sending."""
    now = int(time.time())
    claims = {
        "iss": key["client_email"],
        "scope": AUDIT_SCOPE,
        "aud": google_directory.GOOGLE_OAUTH_AUDIENCE,
        "sub": "admin@example.com",
        "iat": now,
        "exp": now + 3600,
    }
    form = urlencode(
        {"grant_type": google_directory.JWT_BEARER, "assertion": sign_rs256(key, claims)}
    )
    url = urlsplit(sandbox.base_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    connection.request(
        "POST", "/token", form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    access_token = json.loads(connection.getresponse().read())["access_token"]
    connection.close()
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    connection.request(
        "GET",
        f"/admin/reports/v1/activity/users/all/applications/login?{query}",
        headers={"Authorization": f"Bearer {access_token}"},
    )
    response = connection.getresponse()
    body = json.loads(response.read())
    assert response.status == 400
    assert message in body["error"]["message"]


def test_an_unknown_application_is_refused_before_any_call(client) -> None:
    with pytest.raises(ValueError, match="unknown Reports application"):
        everything(client, "nonsense")


def test_faults_apply_to_activities_list(sandbox, client) -> None:
    status, _ = call(
        sandbox.base_url,
        "POST",
        "/_sandbox/faults",
        [{"method": "activities.list", "status": 403, "reason": "userRateLimitExceeded"}],
    )
    assert status == 200
    with pytest.raises(TransientError, match="failed on the login activity report of platform P"):
        everything(client, "login")
    assert everything(client, "login") == []
    with pytest.raises(ValueError, match="unknown method"):
        sandbox.faults.add("activities.watch", status=500)


def test_controls_over_http(sandbox, client) -> None:
    status, body = call(
        sandbox.base_url,
        "POST",
        "/_sandbox/reports/generate",
        {"count": 200, "minutes": 30, "late_fraction": 0.1, "late_seconds": 7200},
    )
    assert status == 200
    assert sum(body["generated"].values()) == 200
    assert body["late"] == 20
    _, counts = call(sandbox.base_url, "GET", "/_sandbox/reports")
    assert sum(app["unpublished"] for app in counts["applications"].values()) == 20
    seen = sum(len(everything(client, app)) for app in ("admin", "login", "token"))
    assert seen == 180

    assert call(sandbox.base_url, "POST", "/_sandbox/reports/publish") == (200, {"published": 20})
    assert sum(len(everything(client, app)) for app in ("admin", "login", "token")) == 200

    status, _ = call(sandbox.base_url, "POST", "/_sandbox/reports/fail_after", {"pages": 0})
    assert status == 200
    with pytest.raises(TransientError, match="503"):
        everything(client, "login")

    assert call(sandbox.base_url, "DELETE", "/_sandbox/reports") == (204, None)
    assert everything(client, "login") == []
    assert call(sandbox.base_url, "POST", "/_sandbox/reports/generate", {"count": -1})[0] == 400
    assert call(sandbox.base_url, "POST", "/_sandbox/reports/nothing")[0] == 404


def test_parsing_keeps_what_is_usable_and_names_the_rest() -> None:
    raw = {
        "id": {"time": "2025-03-01T10:00:00.250Z", "applicationName": "drive"},
        "actor": {"email": "ADA@example.com"},
        "ipAddress": "999.1.1.1",
        "events": [
            {
                "name": "edit",
                "parameters": [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}],
            },
            {"parameters": "oops"},
        ],
    }
    activity = Activity.from_resource(raw, "login")
    assert activity.time == dt.datetime(2025, 3, 1, 10, 0, 0, 250_000, tzinfo=dt.UTC)
    assert activity.unique_qualifier.startswith("sha256:")
    assert activity.actor_email == "ada@example.com"
    assert activity.ip_address == ""
    assert activity.events[0].parameters == {"a": ["1", "2"]}
    assert activity.events[1].name == ""
    assert set(activity.problems) == {
        "id.uniqueQualifier is missing or not a number",
        "id.applicationName is 'drive'",
        "ipAddress is not an IP address: '999.1.1.1'",
        "events[1] has no name",
        "events[1].parameters is not a list",
    }
    assert activity.raw == raw
    assert Activity.from_resource(dict(raw, etag="other"), "login").unique_qualifier == (
        activity.unique_qualifier
    )
    assert not Activity.from_resource(["not", "an", "object"], "login").identifiable
    assert not Activity.from_resource({"id": {"time": "2025-03-01"}}, "login").identifiable
