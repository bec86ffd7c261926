"""What the browser tests share: where Chromium is, the worker, signing in, filling the
new-identity forms, finding rows, and screenshots. Playwright is imported only when a test
runs, so a missing package skips the tests (or fails them in CI) instead of breaking
collection."""

import importlib.util
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from identities.models import IdentityType, Platform
from tests.factories import PASSWORD, service_account_key
from tests.integration.worker import ROOT, CeleryProcess

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page
    from playwright.sync_api import expect as expect
else:

    def expect(actual: Any, message: str | None = None) -> Any:
        from playwright.sync_api import expect as playwright_expect

        return playwright_expect(actual, message)


CHROMIUM = Path("/usr/bin/chromium")
# Root in a container has no user namespaces for Chromium's sandbox; headless needs no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu"]
SCREENSHOTS = Path(
    os.environ.get("ACCESSHIVE_SCREENSHOTS_DIR") or ROOT / "artifacts" / "screenshots"
)
# A job's way through the real worker; the pages poll every 3 s, and CI machines are slow.
JOB_WAIT_MS = 30_000
# A credential typed into the forms, which no page may ever show.
SECRET = "br0wser-Secret-9f2c"


class Worker:
    """The package's one Celery worker: started by the first test that needs jobs to run;
    a test may stop it to watch jobs wait in the queue."""

    def __init__(self) -> None:
        self.process: CeleryProcess | None = None

    def start(self) -> CeleryProcess:
        if self.process is None:
            self.process = CeleryProcess("worker").start()
        return self.process

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


def require_browser() -> None:
    """Skip (or, in CI, fail) a test whose Chromium or Playwright is not installed."""
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if not missing:
        return
    reason = "needs " + " and ".join(missing)
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI must run the browser tests, but this one {reason}")
    pytest.skip(reason)


def screenshot(page: "Page", name: str) -> Path:
    """The whole page as SCREENSHOTS/<name>.png, which CI keeps as an artifact."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: "Page", username: str, password: str = PASSWORD) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


# What a person types into each type's form (labels as the page shows them), and the login
# the new identity gets.
NEW_IDENTITIES: dict[str, tuple[str, dict[str, str]]] = {
    IdentityType.HUMAN_INTERACTIVE: (
        "ada@example.com",
        {
            "Given name": "Ada",
            "Family name": "Lovelace",
            "Email": "ada@example.com",
            "Org unit path": "/Engineering",
        },
    ),
    IdentityType.SHARED_CREDENTIAL_MANAGED: (
        "ops-shared@example.com",
        {"Account email": "ops-shared@example.com", "Display name": "Ops shared mailbox"},
    ),
    IdentityType.SHARED_CREDENTIAL_EXTERNAL: (
        "ops-bot",
        {"Username": "ops-bot", "Password": SECRET, "Display name": "Ops bot"},
    ),
    IdentityType.SERVICE_ACCOUNT: (
        "robot@accesshive-tests.iam.gserviceaccount.com",
        {"JSON key (paste)": json.dumps(service_account_key(SECRET)), "Display name": "CI robot"},
    ),
    IdentityType.API_KEY: ("ci-deploy", {"Name": "ci-deploy", "API key": SECRET}),
    IdentityType.OAUTH_CLIENT: (
        "portal-client-123",
        {"Client id": "portal-client-123", "Client secret": SECRET, "Display name": "Portal"},
    ),
}


def create_through_form(page: "Page", identity_type: str, platform: Platform) -> str:
    """Choose the type on /identities/new/, fill its form, submit; returns the new login.
    Leaves the browser on the new identity's page."""
    login, fields = NEW_IDENTITIES[identity_type]
    page.goto("/identities/new/")
    page.get_by_role("link", name=IdentityType(identity_type).label, exact=True).click()
    page.get_by_label("Platform").select_option(label=platform.name)
    for label, value in fields.items():
        page.get_by_label(label).fill(value)
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("status").filter(has_text="Created")).to_contain_text(login)
    return login


def open_from_nav(page: "Page", name: str) -> None:
    """Follow a link of the header, opening the Settings menu first when it is in there."""
    nav = page.get_by_role("navigation", name="Main")
    link = nav.get_by_role("link", name=name, exact=True)
    if not link.is_visible():
        nav.get_by_text("Settings", exact=True).click()
    link.click()


def section(page: "Page", heading: str) -> "Locator":
    """The page's <section> under that h2, e.g. a job's "Attempts"."""
    title = page.get_by_role("heading", name=heading, exact=True, level=2)
    return page.locator("section").filter(has=title)


def body_rows(page: "Page | Locator", text: str = "") -> "Locator":
    """Table rows with data cells (not the header), optionally only those showing ``text``."""
    # A filter's inner locator is matched inside each row, so it starts from the page.
    cell = getattr(page, "page", page).get_by_role("cell")
    rows = page.get_by_role("row").filter(has=cell)
    return rows.filter(has_text=text) if text else rows


def status_cell(page: "Page", login: str, job_type_label: str) -> "Locator":
    """The Status cell of the Jobs list's row for that subject and job type."""
    return body_rows(page, login).filter(has_text=job_type_label).get_by_role("cell").nth(2)
