"""The SCIM connector over real HTTP against scim2-server, served by sandbox/scim.py."""

import json
import logging
import socket
import subprocess
import sys
import threading
from typing import Any

import pytest
import requests

from connectors.scim import ScimClient, ScimUser, UserAlreadyExists
from jobs.errors import PermanentError, TransientError
from sandbox.scim import CONTROL_PATH, start

TOKEN = "scim-sandbox-token-5f2b9c1e7d"
EXTERNAL_ID = "accesshive-identity-42"


def control(sandbox, method: str, body: Any = None) -> requests.Response:
    """Drive the fault control path the way `make run` users would, over HTTP."""
    return requests.request(method, sandbox.root_url + CONTROL_PATH, json=body, timeout=10)


@pytest.fixture
def sandbox():
    server = start(bearer_token=TOKEN)
    yield server
    server.shutdown()


@pytest.fixture
def client(sandbox):
    with ScimClient(sandbox.base_url, TOKEN, timeout=5) as scim:
        yield scim


def create_ada(client: ScimClient, external_id: str = EXTERNAL_ID) -> ScimUser:
    return client.create_user("ada@example.com", "Ada", "Lovelace", "ada@example.com", external_id)


def ensure_ada(client: ScimClient, external_id: str = EXTERNAL_ID) -> ScimUser:
    return client.ensure_user("ada@example.com", "Ada", "Lovelace", "ada@example.com", external_id)


def test_create_then_find_and_get_return_the_same_user(sandbox, client):
    created = create_ada(client)
    assert created.user_name == "ada@example.com"
    assert created.external_id == EXTERNAL_ID
    assert created.active is True
    assert created.version
    assert (created.given_name, created.family_name, created.email) == (
        "Ada",
        "Lovelace",
        "ada@example.com",
    )
    # userName is case-insensitive in SCIM.
    assert client.find_user_by_username("ADA@example.com") == created
    assert client.get_user(created.id) == created
    stored = sandbox.user("ada@example.com")
    assert stored is not None
    assert stored["id"] == created.id
    assert stored["emails"] == [{"value": "ada@example.com", "type": "work", "primary": True}]
    assert stored["name"] == {"givenName": "Ada", "familyName": "Lovelace"}


def test_absent_users_are_none_not_errors(client):
    assert client.find_user_by_username("nobody@example.com") is None
    assert client.get_user("0123456789abcdef") is None


def test_a_user_name_with_quotes_is_searched_exactly(client):
    name = 'o"brien\\ops@example.com'
    created = client.create_user(name, "Pat", "O'Brien", "pat@example.com", "x-1")
    assert client.find_user_by_username(name) == created
    assert client.find_user_by_username("o") is None


def test_ensure_user_twice_creates_exactly_one_user(sandbox, client):
    first = ensure_ada(client)
    second = ensure_ada(client)
    assert first == second
    assert len(sandbox.users()) == 1
    assert sandbox.calls() == ["GET /Users", "POST /Users", "GET /Users"]


def test_a_lost_create_answer_is_retried_into_the_existing_user(sandbox, client):
    assert control(sandbox, "POST", {"mode": "silent_success_then_409"}).status_code == 200
    with pytest.raises(TransientError, match=r"failed on user ada@example\.com: 503"):
        ensure_ada(client)
    assert len(sandbox.users()) == 1  # the create went through; only its answer was lost

    # Created again blindly, the server's own uniqueness check answers 409 ...
    with pytest.raises(UserAlreadyExists, match=r"rejected user ada@example\.com: 409 .*in use"):
        create_ada(client)
    # ... while the retried job adopts the user its lost create made.
    adopted = ensure_ada(client)
    assert adopted.external_id == EXTERNAL_ID
    assert [user["id"] for user in sandbox.users()] == [adopted.id]


def test_a_409_from_a_concurrent_create_is_adopted(sandbox, client):
    # Both creates wait long enough for both searches to miss: one create wins, the other
    # meets 409, searches again and adopts the winner's user (same externalId).
    sandbox.faults.add("POST", "/Users", delay_seconds=0.5, times=2)
    results: list[ScimUser] = []
    errors: list[BaseException] = []

    def provision() -> None:
        try:
            with ScimClient(sandbox.base_url, TOKEN, timeout=5) as own:
                results.append(ensure_ada(own))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=provision) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(sandbox.users()) == 1
    assert results[0] == results[1]
    assert sandbox.calls().count("POST /Users") == 2
    assert sandbox.calls().count("GET /Users") == 3


def test_a_user_with_someone_elses_external_id_is_not_adopted(sandbox, client):
    create_ada(client, external_id="hr-system-7")
    with pytest.raises(UserAlreadyExists) as caught:
        ensure_ada(client)
    message = str(caught.value)
    assert "ada@example.com" in message
    assert "'hr-system-7'" in message
    assert f"'{EXTERNAL_ID}'" in message
    assert len(sandbox.users()) == 1


def test_a_user_without_external_id_is_adopted(sandbox, client):
    response = requests.post(
        sandbox.base_url + "/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ada@example.com",
        },
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 201
    assert ensure_ada(client).id == response.json()["id"]
    assert len(sandbox.users()) == 1


def test_503_then_success(sandbox, client):
    control(sandbox, "POST", {"method": "POST", "path": "/Users", "status": 503, "times": 2})
    for _ in range(2):
        with pytest.raises(TransientError, match=r"failed on user ada@example\.com: 503"):
            ensure_ada(client)
    assert sandbox.users() == []
    assert ensure_ada(client).user_name == "ada@example.com"
    assert len(sandbox.users()) == 1


def test_429_is_transient_and_quotes_the_detail(sandbox, client):
    sandbox.faults.add("GET", "/Users", status=429, detail="Too many requests, slow down")
    with pytest.raises(TransientError) as caught:
        client.find_user_by_username("ada@example.com")
    assert str(caught.value) == (
        "Identity provider failed on user ada@example.com: 429 Too many requests, slow down"
    )
    assert not isinstance(caught.value, PermanentError)


def test_an_injected_400_is_permanent_and_names_the_user(sandbox, client):
    sandbox.faults.add(
        "POST",
        "/Users",
        status=400,
        detail="Attribute 'emails' is invalid",
        scim_type="invalidValue",
    )
    with pytest.raises(PermanentError) as caught:
        ensure_ada(client)
    assert str(caught.value) == (
        "Identity provider rejected user ada@example.com: 400 Attribute 'emails' is invalid"
    )


def test_scim2_servers_own_404_is_permanent_and_quoted(client):
    with pytest.raises(PermanentError) as caught:
        client.set_active("0123456789abcdef", False, user_name="ada@example.com")
    assert str(caught.value) == (
        "Identity provider rejected user ada@example.com (id 0123456789abcdef): "
        "404 User '0123456789abcdef' not found"
    )


def test_403_is_permanent_with_a_hint(sandbox, client):
    sandbox.faults.add("PATCH", "/Users/*", status=403, detail="Insufficient scope")
    with pytest.raises(PermanentError) as caught:
        client.set_active("abc", False)
    assert str(caught.value) == (
        "Identity provider rejected user id abc: 403 Insufficient scope "
        "(check the SCIM bearer token and its permissions)"
    )


def test_a_wrong_token_is_permanent_and_spends_no_fault(sandbox):
    sandbox.faults.add("GET", "/Users", status=503)
    stranger = ScimClient(sandbox.base_url, "not-the-token", timeout=5)
    with pytest.raises(PermanentError) as caught:
        stranger.find_user_by_username("ada@example.com")
    message = str(caught.value)
    assert message.startswith("Identity provider rejected user ada@example.com: 401 ")
    assert "Authorization failure" in message
    assert "not-the-token" not in message
    assert len(sandbox.faults.pending()) == 1


def test_set_active_false_deactivates_the_user_on_the_server(sandbox, client):
    ada = create_ada(client)
    deactivated = client.set_active(ada.id, False)
    assert deactivated.active is False
    assert deactivated.version != ada.version
    stored = sandbox.user("ada@example.com")
    assert stored is not None
    assert stored["active"] is False
    assert client.set_active(ada.id, True).active is True
    assert sandbox.calls()[1:] == [f"PATCH /Users/{ada.id}", f"GET /Users/{ada.id}"] * 2


def test_set_active_falls_back_to_put_when_patch_is_refused(sandbox, client):
    ada = create_ada(client)
    sandbox.faults.add("PATCH", "/Users/*", status=501, detail="PATCH is not supported")
    deactivated = client.set_active(ada.id, False, user_name="ada@example.com")
    assert deactivated.active is False
    assert sandbox.calls()[1:] == [
        f"PATCH /Users/{ada.id}",
        f"GET /Users/{ada.id}",
        f"PUT /Users/{ada.id}",
    ]
    stored = sandbox.user("ada@example.com")
    assert stored is not None
    assert stored["active"] is False
    # The whole resource went back, so nothing else was cleared by the PUT.
    assert stored["emails"] == [{"value": "ada@example.com", "type": "work", "primary": True}]
    assert stored["externalId"] == EXTERNAL_ID


def test_replace_user_puts_the_whole_user_and_a_stale_version_is_transient(sandbox, client):
    ada = create_ada(client)
    replaced = client.replace_user(
        ada.id, "ada@example.com", "Augusta Ada", "King", "ada.king@example.com", EXTERNAL_ID,
        active=False, version=ada.version,
    )  # fmt: skip
    assert (replaced.given_name, replaced.family_name, replaced.email) == (
        "Augusta Ada",
        "King",
        "ada.king@example.com",
    )
    assert replaced.active is False
    with pytest.raises(TransientError, match=r"failed on user ada@example\.com: 412"):
        client.replace_user(
            ada.id, "ada@example.com", "Ada", "Lovelace", "ada@example.com", EXTERNAL_ID,
            version=ada.version,
        )  # fmt: skip
    stored = sandbox.user("ada@example.com")
    assert stored is not None
    assert stored["name"]["familyName"] == "King"


def test_delete_user_is_true_then_false(sandbox, client):
    ada = create_ada(client)
    assert client.delete_user(ada.id) is True
    assert client.delete_user(ada.id) is False
    assert sandbox.users() == []


def test_a_slow_answer_times_out_as_transient(sandbox):
    sandbox.faults.add("GET", "/Users", delay_seconds=1.0)
    impatient = ScimClient(sandbox.base_url, TOKEN, timeout=0.2)
    with pytest.raises(TransientError, match=r"unreachable for user ada@example\.com: .*Timeout"):
        impatient.find_user_by_username("ada@example.com")


def test_a_refused_connection_is_transient():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    scim = ScimClient(f"http://127.0.0.1:{port}/v2", TOKEN, timeout=2)
    with pytest.raises(TransientError, match=r"unreachable for user ada@example\.com: Connection"):
        scim.find_user_by_username("ada@example.com")


def test_a_wrong_base_url_is_permanent(sandbox):
    lost = ScimClient(sandbox.root_url + "/nowhere", TOKEN, timeout=5)
    with pytest.raises(PermanentError, match=r"rejected user ada@example\.com: 404"):
        lost.find_user_by_username("ada@example.com")


def test_the_token_never_appears_in_messages_reprs_or_logs(sandbox, client, caplog):
    caplog.set_level(logging.DEBUG)
    raised: list[BaseException] = []
    ada = ensure_ada(client)
    ensure_ada(client)
    client.set_active(ada.id, False)
    for fault in (
        {"method": "GET", "status": 503},
        {"method": "GET", "status": 429},
        {"method": "POST", "status": 400},
        {"method": "GET", "delay_seconds": 1.0},
    ):
        sandbox.faults.add(**fault)
        with ScimClient(sandbox.base_url, TOKEN, timeout=0.3) as scim:
            try:
                ensure_ada(scim, external_id="someone-else")
            except (TransientError, PermanentError) as exc:
                raised.append(exc)
    with pytest.raises(PermanentError) as refused:
        create_ada(client)
    raised.append(refused.value)
    # A token requests refuses to put in a header must not come back in its complaint.
    broken = ScimClient(sandbox.base_url, TOKEN + "\n", timeout=5)
    with pytest.raises(PermanentError) as unsendable:
        broken.get_user(ada.id)
    assert unsendable.value.__cause__ is None
    assert unsendable.value.__context__ is None
    raised.append(unsendable.value)
    assert len(raised) == 6

    texts = [repr(client), str(client), caplog.text]
    texts += [f"{exc!s} {exc!r} {exc.__cause__!s} {exc.__cause__!r}" for exc in raised]
    texts += [json.dumps(record.__dict__, default=str) for record in caplog.records]
    assert any("connectors.scim.request" in text for text in texts)
    for text in texts:
        assert TOKEN not in text


def test_the_control_path_adds_lists_and_clears_faults_over_http(sandbox):
    spec = {"method": "POST", "path": "/Users", "status": 503, "times": 2}
    listed = control(sandbox, "POST", [spec, {"mode": "silent_success_then_409"}]).json()
    assert [(f["method"], f["path"], f["status"], f["mode"]) for f in listed["faults"]] == [
        ("POST", "/Users", 503, None),
        ("POST", "/Users", None, "silent_success_then_409"),
    ]
    assert len(control(sandbox, "GET").json()["faults"]) == 2
    assert control(sandbox, "DELETE").status_code == 204
    assert control(sandbox, "GET").json() == {"faults": []}
    refused = control(sandbox, "POST", {"status": 200})
    assert refused.status_code == 400
    assert "400-599" in refused.json()["error"]
    assert control(sandbox, "POST", {"colour": "red"}).status_code == 400
    assert (
        control(sandbox, "POST", {"mode": "silent_success_then_409", "method": "GET"}).status_code
        == 400
    )


def test_injected_errors_have_scim_error_bodies(sandbox):
    sandbox.faults.add("GET", "/Users", status=503, detail="Down for maintenance")
    response = requests.get(
        sandbox.base_url + "/Users", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/scim+json"
    assert response.json() == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": "503",
        "detail": "Down for maintenance",
    }


def test_scim2_server_itself_demands_the_bearer_token(sandbox):
    response = requests.get(sandbox.base_url + "/Users", timeout=10)
    assert response.status_code == 401
    assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert response.headers.get("WWW-Authenticate", "").lower().startswith("bearer")


def test_python_m_sandbox_scim_serves_standalone():
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.scim", "--port", "0", "--bearer-token", TOKEN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("SCIM sandbox (scim2-server) on http://127.0.0.1:")
        base_url = banner.split(" on ", 1)[1].split(",", 1)[0]
        with ScimClient(base_url, TOKEN, timeout=5) as scim:
            assert ensure_ada(scim).user_name == "ada@example.com"
            assert scim.find_user_by_username("ada@example.com") is not None
    finally:
        process.terminate()
        process.communicate(timeout=10)
