"""The API docs page renders the document in Chromium under ``script-src 'self'``."""

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User

from tests.browser.support import expect, open_from_nav, screenshot, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

pytestmark = pytest.mark.browser

CSP = "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'"


def test_the_docs_page_works_under_a_strict_script_policy(page: "Page", admin: User) -> None:
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )

    def with_csp(route: "Route") -> None:
        response = route.fetch()
        route.fulfill(
            response=response, headers={**response.headers, "content-security-policy": CSP}
        )

    sign_in(page, "admin")
    open_from_nav(page, "API docs")
    page.route("**/api/v1/docs", with_csp)
    page.reload()
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("AccessHive API")
    expect(page.get_by_text("/api/v1/jobs/retry/").first).to_be_visible()
    screenshot(page, "api-docs")
    assert not [text for text in violations if "script-src" in text], violations
