"""Every page each role can open (the roles table's GET routes, plus a job and an identity of
each kind), at 1366 x 768 and 390 x 844: the document never scrolls sideways, axe-core finds no
serious or critical accessibility violation, and a full-page screenshot of each is kept."""

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from django.urls import reverse
from pytest_django.live_server_helper import LiveServer

from identities.models import IdentityType
from jobs.models import JobStatus, JobType
from tests import factories
from tests.browser.support import SCREENSHOTS, screenshot, sign_in
from tests.roles_support import ADMIN, OPERATOR, VIEWER, World, make_world
from tests.test_roles_access import TABLE

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

WIDTHS = {"wide": (1366, 768), "phone": (390, 844)}
SERIOUS = {"serious", "critical"}
# GET routes that answer with something other than a page of ours: a file, a redirect to the
# IdP, XML metadata, or the sign-in page before anyone is signed in.
NOT_PAGES = {
    "root",
    "login",
    "healthz",
    "favicon",
    "imports:template",
    "jobs:charts",  # a fragment the Jobs page loads into itself
    "imports:report",
    "sso:metadata",
    "sso:login",
    "sso:sls",
    # The API's JSON document and its Swagger UI page (not ours; tests/browser/test_api_docs
    # loads it under the CSP).
    "api:openapi-json",
    "api:openapi-view",
    "api:api-root",
}
REPORT = SCREENSHOTS / "layout" / "report.json"


@dataclass
class Finding:
    role: str
    width: str
    url: str
    what: str


def layout_world() -> World:
    """The roles tests' world, and what only some pages show: a retrying job, a job that
    used up its attempts, an identity of every type."""
    world = make_world()
    platform = factories.make_platform("Workspace")
    ids = world.ids
    ids["retrying_job"] = factories.make_job(
        job_type=JobType.CREATE_DOMAIN_USER, status=JobStatus.RETRYING, attempts=2
    ).pk
    ids["exhausted_job"] = factories.make_job(
        job_type=JobType.PROVISION_SSO_USER, status=JobStatus.FAILED, attempts=6
    ).pk
    for identity_type in IdentityType.values:
        ids[f"identity_{identity_type}"] = factories.make_identity(
            platform=platform, identity_type=identity_type, login=f"{identity_type}@example.com"
        ).pk
    return world


def pages_of(role: str, world: World) -> list[str]:
    urls = [
        route.url(world)
        for route in TABLE
        if route.method == "GET"
        and not route.is_api
        and route.name not in NOT_PAGES
        and role in route.allowed
    ]
    urls += [reverse("jobs:detail", args=[world.ids[k]]) for k in ("retrying_job", "exhausted_job")]
    urls += [
        reverse("identities:detail", args=[world.ids[f"identity_{key}"]])
        for key in IdentityType.values
    ]
    if role == ADMIN:
        urls += [reverse("identities:create", args=[key]) for key in IdentityType.values]
    return list(dict.fromkeys(urls))


@pytest.fixture
def world(browser_db: None) -> World:
    return layout_world()


@pytest.fixture
def axe() -> object:
    from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]

    return Axe()


def check_page(page: "Page", axe: object, role: str, width: str, url: str) -> list[Finding]:
    findings: list[Finding] = []
    response = page.goto(url)
    assert response is not None
    if not response.ok:
        return [Finding(role, width, url, f"answered {response.status}")]
    page.wait_for_load_state("networkidle")
    scroll_width, inner_width = page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]"
    )
    if scroll_width > inner_width:
        findings.append(
            Finding(role, width, url, f"overflows: {scroll_width} px wide in {inner_width} px")
        )
    name = url.strip("/").replace("/", "-") or "root"
    screenshot(page, f"layout/{role}-{width}-{name}")
    results = axe.run(page)  # type: ignore[attr-defined]
    for violation in results.response["violations"]:
        if violation["impact"] in SERIOUS:
            targets = [" ".join(node["target"]) for node in violation["nodes"]][:3]
            findings.append(
                Finding(
                    role, width, url, f"axe {violation['id']} ({violation['impact']}): {targets}"
                )
            )
    return findings


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_fits_and_passes_axe(
    chromium: "Browser", live_server: LiveServer, world: World, axe: object, width: str
) -> None:
    findings: list[Finding] = []
    checked = 0
    for old in REPORT.parent.glob(f"*-{width}-*.png"):  # a page gone since the last run
        old.unlink()
    for role in (VIEWER, OPERATOR, ADMIN):
        w, h = WIDTHS[width]
        context = chromium.new_context(base_url=live_server.url, viewport={"width": w, "height": h})
        context.set_default_timeout(15_000)
        page = context.new_page()
        try:
            sign_in(page, world.users[role].get_username())
            for url in pages_of(role, world):
                findings += check_page(page, axe, role, width, url)
                checked += 1
        finally:
            context.close()
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    report = {"width": width, "pages": checked, "findings": [f.__dict__ for f in findings]}
    (REPORT.parent / f"report-{width}.json").write_text(json.dumps(report, indent=1))
    overflow = sum(1 for f in findings if f.what.startswith("overflows"))
    serious = sum(1 for f in findings if f.what.startswith("axe"))
    print(f"{width}: {checked} pages, {overflow} overflowing, {serious} serious/critical axe")
    if os.environ.get("ACCESSHIVE_LAYOUT_REPORT_ONLY"):
        return
    assert not findings, "\n".join(f"{f.role} {f.url}: {f.what}" for f in findings)
