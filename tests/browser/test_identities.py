"""Identities created through the forms: their jobs wait for a worker while Settings > Jobs
follows them to Completed by itself; one identity of each type, the credential-only ones
provisioned at once, the Google Workspace ones by the worker."""

import re
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User

from identities.models import CREDENTIALS_ONLY_TYPES, IdentityType, Platform
from tests.browser.support import (
    JOB_WAIT_MS,
    NEW_IDENTITIES,
    SECRET,
    Worker,
    body_rows,
    create_through_form,
    expect,
    open_from_nav,
    screenshot,
    section,
    sign_in,
    status_cell,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

JOBS_OF: dict[str, list[str]] = {
    IdentityType.HUMAN_INTERACTIVE: ["Create domain user", "Provision identity provider user"],
    IdentityType.SHARED_CREDENTIAL_MANAGED: ["Create domain user"],
}


def test_the_jobs_page_follows_new_identities_jobs_to_completed_by_itself(
    page: "Page", admin: User, platform: Platform, worker: Worker
) -> None:
    worker.stop()  # so the new identities' jobs wait in the queue
    sign_in(page, "admin")
    human = create_through_form(page, IdentityType.HUMAN_INTERACTIVE, platform)
    managed = create_through_form(page, IdentityType.SHARED_CREDENTIAL_MANAGED, platform)
    open_from_nav(page, "Jobs")
    expect(page).to_have_url(re.compile(r"/settings/jobs/$"))
    cells = [
        status_cell(page, human, "Create domain user"),
        status_cell(page, human, "Provision identity provider user"),
        status_cell(page, managed, "Create domain user"),
    ]
    # The SSO user waits for the Google user; the others wait in the queue.
    expect(cells[0]).to_have_text("Pending")
    expect(cells[1]).to_have_text(re.compile(r"^\s*Waiting\s+waiting for #\d+\s*$"))
    expect(cells[2]).to_have_text("Pending")
    expect(body_rows(page)).to_have_count(len(cells))
    screenshot(page, "jobs-pending")
    # Gone if anything reloads the page: only htmx may bring the news.
    page.evaluate("window.sameDocument = true")

    worker.start()
    for cell in cells:
        expect(cell).to_have_text("Completed", timeout=JOB_WAIT_MS)
    assert page.evaluate("window.sameDocument") is True
    expect(page.get_by_role("list", name="Jobs per status")).to_contain_text("Completed 3")
    expect(page.get_by_role("img", name=re.compile("Jobs completed and failed"))).to_be_visible()
    screenshot(page, "jobs")


def test_an_admin_creates_one_identity_of_each_type_through_the_forms(
    page: "Page", admin: User, platform: Platform, worker: Worker
) -> None:
    worker.start()
    sign_in(page, "admin")
    open_from_nav(page, "Identities")
    page.get_by_role("link", name="New identity").click()
    expect(page.get_by_role("heading", name="New identity: choose its type")).to_be_visible()
    screenshot(page, "identity-new-choose-type")
    page.get_by_role("link", name="Human Interactive", exact=True).click()
    expect(page.get_by_role("heading", name="New Human Interactive")).to_be_visible()
    screenshot(page, "identity-new-form")

    for identity_type in NEW_IDENTITIES:
        create_through_form(page, identity_type, platform)
        expect(page.get_by_text(SECRET)).to_have_count(0)
        if identity_type in CREDENTIALS_ONLY_TYPES:
            # A settled identity's page does not refresh: this is its first render.
            expect(page.get_by_role("heading", level=1)).to_contain_text("Provisioned")
            expect(page.get_by_text("the credential went straight to the vault")).to_be_visible()
        else:
            jobs = body_rows(section(page, "Jobs"))
            for label in JOBS_OF[identity_type]:
                expect(jobs.filter(has_text=label)).to_have_count(1)
            expect(jobs).to_have_count(len(JOBS_OF[identity_type]))

    open_from_nav(page, "Identities")
    expect(body_rows(page)).to_have_count(len(NEW_IDENTITIES))
    for login, _ in NEW_IDENTITIES.values():
        status = body_rows(page, login).get_by_role("cell").nth(5)
        expect(status).to_have_text("Provisioned", timeout=JOB_WAIT_MS)
    screenshot(page, "identities")

    body_rows(page, "ada@example.com").get_by_role("link", name="ada@example.com").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Provisioned")
    jobs = section(page, "Jobs")
    expect(body_rows(jobs, "Create domain user")).to_contain_text("Completed")
    expect(body_rows(jobs, "Provision identity provider user")).to_contain_text("Completed")
    screenshot(page, "identity-detail")
