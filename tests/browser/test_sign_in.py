"""Signing in through the login form."""

import re
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User

from tests.browser.support import expect, screenshot
from tests.factories import PASSWORD

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


def test_an_admin_signs_in_with_the_login_form(page: "Page", admin: User) -> None:
    page.goto("/settings/jobs/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/settings/jobs/$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "login")

    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(re.compile(r"/settings/jobs/$"))
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    expect(page.get_by_role("banner")).to_contain_text("admin")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
