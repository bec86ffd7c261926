"""The Google Workspace connector through google-api-python-client over real HTTP to the sandbox."""

import http.client
import json
import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from connectors.google_workspace import GoogleWorkspaceClient, GwsUser, UserAlreadyExists
from jobs.errors import PermanentError, TransientError
from sandbox.google_directory import start
from sandbox.google_keys import new_service_account_key

PASSWORD = "Tr0ub4dor&3-sandbox"


def control(base_url: str, method: str, body: Any = None) -> int:
    """Drive the sandbox's fault control path the way `make run` users would, over HTTP."""
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    payload = None if body is None else json.dumps(body)
    connection.request(method, "/_sandbox/faults", payload, {"Content-Type": "application/json"})
    status = connection.getresponse().status
    connection.close()
    return status


@pytest.fixture
def sandbox():
    server = start(["example.com"], org_units=["/Engineering", "/Alumni"])
    yield server
    server.shutdown()


@pytest.fixture
def key(sandbox):
    return sandbox.issue_key()


@pytest.fixture
def client(sandbox, key):
    return GoogleWorkspaceClient(key, "admin@example.com", api_endpoint=sandbox.base_url, timeout=5)


def insert_ada(client: GoogleWorkspaceClient, email: str = "ada@example.com") -> GwsUser:
    return client.insert_user(email, "Ada", "Lovelace", PASSWORD, "/Engineering")


def test_token_exchange_runs_end_to_end_as_the_delegated_admin(sandbox, client):
    assert client.get_user("nobody@example.com") is None
    assert sandbox.tokens_issued() == ["admin@example.com"]
    assert sandbox.calls() == ["oauth.token", "users.get"]


def test_a_key_the_sandbox_never_issued_is_refused(sandbox):
    stranger = new_service_account_key(sandbox.token_url)
    client = GoogleWorkspaceClient(stranger, "admin@example.com", api_endpoint=sandbox.base_url)
    with pytest.raises(PermanentError, match="Invalid JWT Signature"):
        client.get_user("ada@example.com")
    assert sandbox.tokens_issued() == []


def test_an_admin_outside_the_domain_is_refused(sandbox, key):
    client = GoogleWorkspaceClient(key, "admin@other.org", api_endpoint=sandbox.base_url)
    with pytest.raises(PermanentError, match=r"acting as admin@other\.org.*unauthorized_client"):
        client.get_user("ada@example.com")


def test_a_key_missing_fields_is_a_permanent_error_without_key_material(key):
    broken = {**key, "private_key": "", "token_uri": ""}
    with pytest.raises(PermanentError, match="missing private_key, token_uri"):
        GoogleWorkspaceClient(broken, "admin@example.com")
    garbled = {**key, "private_key": key["private_key"][:200]}
    with pytest.raises(PermanentError) as caught:
        GoogleWorkspaceClient(garbled, "admin@example.com")
    assert key["private_key"][40:200] not in str(caught.value)


def test_insert_get_update_and_the_sandbox_holds_the_last_password(sandbox, client):
    user = insert_ada(client)
    assert user == GwsUser(
        id=user.id,
        primary_email="ada@example.com",
        suspended=False,
        org_unit_path="/Engineering",
        name="Ada Lovelace",
        given_name="Ada",
        family_name="Lovelace",
    )
    assert user.id.isdigit()
    assert client.get_user(user.id) == user
    assert client.get_user("ADA@example.com") == user
    assert sandbox.password_of(user.id) == PASSWORD

    updated = client.update_user(user.id, password="n3w-" + PASSWORD, suspended=True)
    assert updated.suspended
    assert sandbox.password_of("ada@example.com") == "n3w-" + PASSWORD
    moved = client.update_user("ada@example.com", org_unit_path="/Alumni", family_name="King")
    assert (moved.org_unit_path, moved.name, moved.suspended) == ("/Alumni", "Ada King", True)
    assert sandbox.password_of(user.id) == "n3w-" + PASSWORD
    assert client.update_user(user.id, suspended=False).suspended is False

    assert client.delete_user(user.id) is True
    assert client.delete_user(user.id) is False
    assert client.get_user(user.id) is None


def test_list_users_walks_every_page(sandbox, client):
    for number in (5, 2, 6, 0, 3, 1, 4):
        client.insert_user(f"user{number}@example.com", "User", str(number), PASSWORD)

    users = list(client.list_users(domain="example.com", page_size=3))

    assert [user.primary_email for user in users] == [f"user{n}@example.com" for n in range(7)]
    assert sandbox.calls().count("users.list") == 3
    assert len(list(client.list_users(page_size=500))) == 7
    assert [user.family_name for user in client.list_users(query="email:user3@example.com")] == [
        "3"
    ]


@pytest.mark.parametrize(
    ("status", "reason", "error_class", "google_message"),
    [
        (400, "invalid", PermanentError, "Invalid Input"),
        (401, "authError", PermanentError, "Invalid Credentials"),
        (403, "forbidden", PermanentError, "Not Authorized to access this resource/api"),
        (403, "userRateLimitExceeded", TransientError, "User Rate Limit Exceeded"),
        (403, "rateLimitExceeded", TransientError, "Rate Limit Exceeded"),
        (403, "quotaExceeded", TransientError, "Quota exceeded"),
        (404, "notFound", PermanentError, "Resource Not Found: userKey"),
        (409, "duplicate", UserAlreadyExists, "Entity already exists."),
        (429, "rateLimitExceeded", TransientError, "Rate Limit Exceeded"),
        (500, "backendError", TransientError, "The service is currently unavailable."),
        (503, "backendError", TransientError, "The service is currently unavailable."),
    ],
)
def test_google_errors_map_to_our_classes_with_googles_message(
    sandbox, client, status, reason, error_class, google_message
):
    # times=None: a 401 makes the library refresh its token and try once more.
    sandbox.faults.add("users.insert", status=status, reason=reason, times=None)
    with pytest.raises(error_class) as caught:
        insert_ada(client)
    message = str(caught.value)
    assert message.startswith("Google Workspace ")
    assert f"user ada@example.com: {status} {google_message}" in message
    assert type(caught.value) is error_class
    assert PASSWORD not in message


def test_real_refusals_map_to_permanent_errors(sandbox, client):
    insert_ada(client)
    with pytest.raises(UserAlreadyExists) as duplicate:
        insert_ada(client)
    assert str(duplicate.value) == (
        "Google Workspace rejected user ada@example.com: 409 Entity already exists."
    )
    with pytest.raises(PermanentError, match=r"bob@example\.com: 404 Resource Not Found: userKey"):
        client.update_user("bob@example.com", suspended=True)
    with pytest.raises(PermanentError, match=r"bob@other\.org: 404 Domain not found\."):
        insert_ada(client, "bob@other.org")
    with pytest.raises(PermanentError, match=r"bob@example\.com: 400 Invalid Password") as short:
        client.insert_user("bob@example.com", "Bob", "Short", "2short", "/")
    assert "2short" not in str(short.value)
    with pytest.raises(PermanentError, match="400 Invalid Input: INVALID_OU_ID"):
        client.update_user("ada@example.com", org_unit_path="Engineering")


def test_a_lost_insert_response_then_409_leaves_exactly_one_user(sandbox, client):
    assert control(sandbox.base_url, "POST", {"mode": "silent_success_then_409"}) == 200

    with pytest.raises(TransientError, match="503"):
        insert_ada(client)
    with pytest.raises(UserAlreadyExists):
        insert_ada(client)

    found = list(client.list_users(domain="example.com", query="email:ada@example.com"))
    assert [user.primary_email for user in found] == ["ada@example.com"]
    assert client.get_user("ada@example.com") == found[0]
    assert sandbox.password_of("ada@example.com") == PASSWORD


def test_faults_set_over_http_are_served_then_cleared(sandbox, client):
    insert_ada(client)
    assert (
        control(sandbox.base_url, "POST", {"method": "users.get", "status": 503, "times": 2}) == 200
    )
    for _ in range(2):
        with pytest.raises(TransientError, match=r"ada@example\.com: 503"):
            client.get_user("ada@example.com")
    assert client.get_user("ada@example.com") is not None

    control(sandbox.base_url, "POST", {"method": "users.update", "status": 403, "times": None})
    with pytest.raises(PermanentError, match="403 Not Authorized"):
        client.update_user("ada@example.com", suspended=True)
    assert control(sandbox.base_url, "DELETE") == 204
    assert client.update_user("ada@example.com", suspended=True).suspended


def test_a_slow_answer_times_out_as_a_transient_error(sandbox, key):
    client = GoogleWorkspaceClient(
        key, "admin@example.com", api_endpoint=sandbox.base_url, timeout=0.3
    )
    sandbox.faults.add("users.get", delay_seconds=2)
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"unreachable for user ada@example\.com"):
        client.get_user("ada@example.com")
    # Given up before the 2 s answer came (the 0.3 s timeout, however loaded the machine).
    assert time.monotonic() - started < 2.0


def test_an_unreachable_token_endpoint_is_transient(sandbox, key):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    moved = {**key, "token_uri": f"http://127.0.0.1:{closed_port}/token"}
    client = GoogleWorkspaceClient(moved, "admin@example.com", api_endpoint=sandbox.base_url)
    with pytest.raises(TransientError, match="unreachable"):
        client.get_user("ada@example.com")


def test_a_failing_token_endpoint_is_transient(sandbox, client):
    # google-auth itself retries the token call three times, about 3 s, before giving up.
    sandbox.faults.add("oauth.token", status=503, times=None)
    with pytest.raises(TransientError, match=r"did not grant a token.*Service Unavailable"):
        client.get_user("ada@example.com")
    assert sandbox.calls().count("oauth.token") == 3
    assert "users.get" not in sandbox.calls()


def test_no_password_in_messages_reprs_or_logs(sandbox, client, caplog):
    caplog.set_level(logging.DEBUG)
    user = insert_ada(client)
    sandbox.faults.add("users.update", status=400, message=f"Invalid Input: {PASSWORD}")
    with pytest.raises(PermanentError) as caught:
        client.update_user(user.id, password=PASSWORD)
    assert "[redacted]" in str(caught.value)
    for text in (str(caught.value), repr(caught.value), repr(user), repr(client), caplog.text):
        assert PASSWORD not in text
    assert "PRIVATE KEY" not in repr(client)
