"""Settings > Jobs: its filters, a failed job's error and its retry, and a viewer who may
look but not retry."""

import re
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User

from identities.models import Identity
from jobs.models import Job
from sandbox import google_directory
from tests.browser.support import (
    JOB_WAIT_MS,
    body_rows,
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


def filtered(job_type: str, status: str) -> "re.Pattern[str]":
    """The list's address once htmx has pushed the filter form's values into it."""
    return re.compile(rf"/settings/jobs/\?type={job_type}&status={status}$")


def test_the_jobs_page_filters_by_type_and_status(
    page: "Page", admin: User, provisioned: Identity, failed_job: Job
) -> None:
    sign_in(page, "admin")
    open_from_nav(page, "Jobs")
    rows = body_rows(page)
    job_type = page.get_by_role("combobox", name="Type")
    status = page.get_by_role("combobox", name="Status")
    expect(rows).to_have_count(3)

    job_type.select_option(label="Create domain user")
    expect(page).to_have_url(filtered("create_domain_user", ""))
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Create domain user")).to_have_count(2)

    status.select_option(label="Failed")
    expect(page).to_have_url(filtered("create_domain_user", "failed"))
    expect(rows).to_have_count(1)
    expect(status_cell(page, "ops-shared@example.com", "Create domain user")).to_have_text("Failed")
    screenshot(page, "jobs-filtered")

    job_type.select_option(label="Provision identity provider user")
    expect(page).to_have_url(filtered("provision_sso_user", "failed"))
    expect(page.get_by_role("cell", name="No jobs match these filters.")).to_be_visible()

    status.select_option(label="Completed")
    expect(page).to_have_url(filtered("provision_sso_user", "completed"))
    expect(rows).to_have_count(1)
    expect(status_cell(page, "grace@example.com", "Provision identity")).to_have_text("Completed")


def test_a_failed_job_shows_its_error_and_retries_to_completion(
    page: "Page", admin: User, gws: google_directory.GoogleDirectorySandbox, failed_job: Job
) -> None:
    sign_in(page, "admin")
    open_from_nav(page, "Jobs")
    body_rows(page, "ops-shared@example.com").get_by_role("link", name=str(failed_job.pk)).click()
    title = page.get_by_role("heading", level=1)
    expect(title).to_contain_text("Create domain user")
    expect(title).to_contain_text("Failed")
    expect(page.get_by_role("heading", name="Error", exact=True)).to_be_visible()
    error = page.get_by_role("paragraph").filter(has_text="Google Workspace rejected")
    expect(error).to_contain_text("ops-shared@example.com")
    expect(error).to_contain_text("403")
    screenshot(page, "job-detail-failed")

    gws.faults.clear()
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status").filter(has_text="Retry queued")).to_be_visible()
    expect(title).to_contain_text("Completed", timeout=JOB_WAIT_MS)
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    attempts = body_rows(section(page, "Attempts"))
    expect(attempts).to_have_count(2)
    expect(attempts.first).to_contain_text("Failed")
    expect(attempts.last).to_contain_text("Succeeded")
    expect(body_rows(section(page, "History"), "Retried by an admin")).to_contain_text("admin")
    screenshot(page, "job-detail-retried")


def test_a_viewer_sees_a_failed_job_but_cannot_retry_it(
    page: "Page", viewer: User, failed_job: Job
) -> None:
    sign_in(page, "viewer")
    page.goto(f"/settings/jobs/{failed_job.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Failed")
    error = page.get_by_role("paragraph").filter(has_text="Google Workspace rejected")
    expect(error).to_contain_text("403")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)

    open_from_nav(page, "Identities")
    expect(page.get_by_role("heading", name="Identities")).to_be_visible()
    expect(body_rows(page, "ops-shared@example.com")).to_contain_text("Failed")
    expect(page.get_by_role("link", name="New identity")).to_have_count(0)
