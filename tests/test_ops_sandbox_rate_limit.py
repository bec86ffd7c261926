"""The sandbox Directory API's rate limit, seen through the real connector over HTTP: calls
beyond it get 429 (or 403 userRateLimitExceeded), which the connector treats as transient;
a client paced by our limiter at the same rate never meets it."""

import time
from collections.abc import Callable, Iterator

import pytest
import requests

from connectors.google_workspace import GoogleWorkspaceClient
from jobs import ratelimit
from jobs.errors import TransientError
from sandbox.google_directory import RATE_LIMIT_PATH, GoogleDirectorySandbox, start


@pytest.fixture
def sandbox() -> Iterator[GoogleDirectorySandbox]:
    server = start(["example.com"])
    yield server
    server.shutdown()


def client_for(
    sandbox: GoogleDirectorySandbox, before_call: Callable[[], None] | None = None
) -> GoogleWorkspaceClient:
    return GoogleWorkspaceClient(
        sandbox.issue_key(),
        "admin@example.com",
        api_endpoint=sandbox.base_url,
        before_call=before_call,
    )


def test_calls_beyond_the_limit_get_429(sandbox) -> None:
    client = client_for(sandbox)
    sandbox.set_rate_limit(5, burst=2)
    client.get_user("a@example.com")  # the token grant is not counted; these two are the burst
    client.get_user("b@example.com")
    with pytest.raises(TransientError, match="429"):
        client.get_user("c@example.com")
    assert sandbox.throttled() == 1
    time.sleep(0.25)  # a fifth of a second refills one call at 5 a second
    client.get_user("c@example.com")
    assert sandbox.throttled() == 1


def test_the_limit_can_answer_403_user_rate_limit_exceeded(sandbox) -> None:
    client = client_for(sandbox)
    sandbox.set_rate_limit(1, burst=1, status=403)
    client.get_user("a@example.com")
    with pytest.raises(TransientError, match="403"):  # Google's advice: back off and retry
        client.get_user("b@example.com")


def test_the_limit_is_set_and_read_over_http(sandbox) -> None:
    url = sandbox.base_url + RATE_LIMIT_PATH.lstrip("/")

    def call(method: str, body: dict[str, object] | None = None) -> dict[str, object]:
        response = requests.request(method, url, json=body, timeout=5)
        assert response.status_code == 200, response.text
        return dict(response.json())

    assert call("POST", {"rate": 10, "burst": 4})["rate"] == 10
    assert call("GET") == {"rate": 10, "burst": 4, "status": 429, "throttled": 0}
    assert call("DELETE")["rate"] is None


def test_a_client_paced_at_the_limit_is_never_refused(sandbox, settings) -> None:
    settings.REDIS_URL = ""  # this process's own bucket is enough for one client
    settings.RATE_LIMITS = {"google_workspace": (20.0, 2)}
    sandbox.set_rate_limit(20, burst=4)
    client = client_for(sandbox, before_call=ratelimit.pacer("google_workspace", "paced"))
    started = time.monotonic()
    for n in range(30):
        client.get_user(f"user{n}@example.com")
    assert sandbox.throttled() == 0
    assert time.monotonic() - started >= (30 - 2) / 20 - 0.05
