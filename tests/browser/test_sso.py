"""Signing in with SAML single sign-on through the sandbox IdP, each role seeing its own
navigation, and single logout, in Chromium."""

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from pytest_django.live_server_helper import LiveServer

from sandbox.saml_idp import SamlIdpSandbox
from tests import saml_support
from tests.browser.conftest import FAILED
from tests.browser.support import SCREENSHOTS, expect, screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser
ADMIN_ONLY_LINKS = ("Users", "Single sign-on", "Import")


@pytest.fixture
def saml_idp(browser_db: None) -> Iterator[SamlIdpSandbox]:
    idp = saml_support.new_idp().serve_in_thread()
    yield idp
    idp.shutdown()


@pytest.fixture
def accesshive(live_server: LiveServer, saml_idp: SamlIdpSandbox) -> str:
    """The live server's URL under the IdP's host name, with SSO through that IdP.

    The IdP's answer reaches the ACS as a POST from the IdP's page, and the cookie naming the
    sign-ins this browser started is SameSite=Lax: a browser sends it on that POST only when
    both are the same site. Ports don't count, but host names do: localhost (pytest-django's
    live server) and 127.0.0.1 (the sandbox IdP) are different sites, and the sign-in would
    be refused. `make run` serves both on 127.0.0.1, as here."""
    live = urlsplit(live_server.url)
    url = f"{live.scheme}://{urlsplit(saml_idp.base_url).hostname}:{live.port}"
    saml_idp.register_accesshive(url)
    saml_support.configure(saml_idp)
    return url


@pytest.fixture
def new_page(
    chromium: "Browser", accesshive: str, request: pytest.FixtureRequest
) -> Iterator[Callable[[], "Page"]]:
    """Opens a page on AccessHive in a fresh browser context (a person with no cookies yet);
    a failing test leaves a screenshot of each."""
    failure = f"failed-{request.node.name}"
    for stale in SCREENSHOTS.glob(f"{failure}-*.png"):
        stale.unlink()
    pages: list[Page] = []

    def open_page() -> "Page":
        context = chromium.new_context(base_url=accesshive, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        pages.append(context.new_page())
        return pages[-1]

    yield open_page
    failed = request.node.stash.get(FAILED, False)
    for number, page in enumerate(pages, start=1):
        if failed:
            screenshot(page, f"{failure}-{number}")
        page.context.close()


def sign_in_with_sso(page: "Page", idp: SamlIdpSandbox, email: str, picker: str = "") -> None:
    """From AccessHive's login page through the IdP's picker back to AccessHive as ``email``;
    ``picker`` names a screenshot of the IdP's page."""
    page.get_by_role("button", name="Sign in with SSO").click()
    expect(page).to_have_url(re.compile("^" + re.escape(idp.sso_url + "?")))
    expect(page.get_by_text("asks who you are")).to_be_visible()
    if picker:
        screenshot(page, picker)
    page.get_by_role("button", name=re.compile(re.escape(f"<{email}>"))).click()
    expect(page.get_by_role("banner")).to_contain_text(email)


def test_people_sign_in_with_sso_and_single_logout_signs_them_out_of_the_idp(
    new_page: Callable[[], "Page"], accesshive: str, saml_idp: SamlIdpSandbox
) -> None:
    carol = new_page()
    carol.goto("/identities/")
    expect(carol).to_have_url(re.compile(r"/login/\?next=/identities/$"))
    sign_in_with_sso(carol, saml_idp, "carol@example.com", picker="sso-idp-picker")
    expect(carol).to_have_url(f"{accesshive}/identities/")
    expect(carol.get_by_role("banner")).to_contain_text("carol@example.com · Viewer")
    nav = carol.get_by_role("navigation")
    expect(nav.get_by_role("link", name="Identities", exact=True)).to_be_visible()
    for name in ADMIN_ONLY_LINKS:
        expect(nav.get_by_role("link", name=name, exact=True)).to_have_count(0)
    screenshot(carol, "sso-signed-in-viewer")

    alice = new_page()
    alice.goto("/login/")
    sign_in_with_sso(alice, saml_idp, "alice@example.com")
    expect(alice.get_by_role("banner")).to_contain_text("alice@example.com · Admin")
    nav = alice.get_by_role("navigation")
    nav.get_by_text("Settings", exact=True).click()  # the admin's pages are in its menu
    for name in ADMIN_ONLY_LINKS:
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    screenshot(alice, "sso-signed-in-admin")
    assert sorted(session.email for session in saml_idp.sessions()) == [
        "alice@example.com",
        "carol@example.com",
    ]

    # The header's Sign out goes to AccessHive's SAML sign-out, the IdP's /slo and back.
    alice.get_by_role("banner").get_by_role("button", name="Sign out").click()
    expect(alice).to_have_url(f"{accesshive}/login/")
    expect(alice.get_by_role("status")).to_have_text(
        "You are signed out of AccessHive and of your identity provider."
    )
    expect(alice.get_by_role("banner").get_by_role("button", name="Sign out")).to_have_count(0)
    screenshot(alice, "sso-signed-out")
    assert [session.email for session in saml_idp.sessions()] == ["carol@example.com"]
    alice.goto("/identities/")
    expect(alice).to_have_url(re.compile(r"/login/\?next=/identities/$"))

    carol.reload()
    expect(carol.get_by_role("banner")).to_contain_text("carol@example.com")
