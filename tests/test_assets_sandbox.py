"""The sandbox's asset inventory over real HTTP: routes from the discovery document, scopes,
org unit scopes of listing, device paging, tokens per user, controls."""

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from connectors.google_admin import GoogleAdminSession
from connectors.google_assets import ASSET_SCOPES, GoogleAssetsClient
from jobs.errors import PermanentError
from sandbox import google_assets, google_directory


@pytest.fixture
def sandbox():
    server = google_directory.start(["example.com"])
    yield server
    server.shutdown()


@pytest.fixture
def session(sandbox) -> GoogleAdminSession:
    return GoogleAdminSession(
        sandbox.issue_key(), "admin@example.com", scopes=ASSET_SCOPES, api_endpoint=sandbox.base_url
    )


def control(base_url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    connection.request(method, path, None if body is None else json.dumps(body))
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    return response.status, json.loads(raw) if raw else None


def test_routes_are_the_discovery_documents() -> None:
    directory = google_directory.DISCOVERY["resources"]
    for route in google_assets.ROUTES:
        resource, method = route.name.split(".")
        spec = directory[resource]["methods"][method]
        assert route.path == google_directory.DISCOVERY["servicePath"] + spec["path"]
        assert route.http_method == spec["httpMethod"]
        assert route.scopes & set(ASSET_SCOPES)
    assert set(ASSET_SCOPES) <= google_directory.KNOWN_SCOPES


def test_org_units_by_type(sandbox, session) -> None:
    for path in ("/Engineering", "/Engineering/Platform", "/Sales"):
        sandbox.assets.add_org_unit(path)
    units = session.service("admin", "directory_v1").orgunits()

    def paths(**params: Any) -> list[str]:
        answer = session.execute(units.list(customerId="my_customer", **params), "org units")
        return [unit["orgUnitPath"] for unit in answer["organizationUnits"]]

    assert paths() == ["/Engineering", "/Sales"]
    assert paths(type="all") == ["/Engineering", "/Engineering/Platform", "/Sales"]
    assert paths(orgUnitPath="/Engineering", type="allIncludingParent") == [
        "/Engineering",
        "/Engineering/Platform",
    ]
    with pytest.raises(PermanentError, match="400"):
        session.execute(units.list(customerId="C0someone"), "org units")


def test_devices_page_and_tokens_belong_to_users(sandbox) -> None:
    client = GoogleAssetsClient(
        sandbox.issue_key(), "admin@example.com", api_endpoint=sandbox.base_url
    )
    for number in range(205):
        sandbox.assets.add_chromeos_device(f"SN{number:04d}")
    assert len(list(client.chromeos_devices())) == 205
    assert sandbox.calls().count("chromeosdevices.list") == 2
    (user_id,) = sandbox.directory.seed_users([{"primaryEmail": "ada@example.com"}])
    sandbox.assets.add_token("ada@example.com", "1-slack.apps", "Slack", ["openid", "email"])
    (token,) = client.tokens(user_id, "ada@example.com")
    assert token.external_id == f"{user_id}:1-slack.apps"
    assert token.attributes["scopes"] == ["email", "openid"]


def test_a_token_without_the_device_scope_is_refused(sandbox) -> None:
    session = GoogleAdminSession(
        sandbox.issue_key(),
        "admin@example.com",
        scopes=["https://www.googleapis.com/auth/admin.directory.user.readonly"],
        api_endpoint=sandbox.base_url,
    )
    devices = session.service("admin", "directory_v1").mobiledevices()
    with pytest.raises(PermanentError, match="insufficientPermissions"):
        session.execute(devices.list(customerId="my_customer"), "phones")


def test_seed_and_counts_over_http(sandbox) -> None:
    status, body = control(
        sandbox.base_url, "POST", "/_sandbox/assets/seed", {"users": 6, "devices": 2}
    )
    assert (status, body) == (200, {"users": 6, "devices": 4})
    status, counts = control(sandbox.base_url, "GET", "/_sandbox/assets")
    assert counts == {
        "orgunits": 4,
        "domains": 1,
        "mobiledevices": 2,
        "chromeosdevices": 2,
        "tokens": 6,
    }
    assert len(sandbox.users()) == 6
    assert control(sandbox.base_url, "POST", "/_sandbox/assets/seed", [1])[0] == 400
