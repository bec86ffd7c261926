"""The other main pages open for an admin and leave a screenshot each."""

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User

from identities.models import Identity
from tests.browser.support import SECRET, expect, screenshot, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# (address, what its h1 says, screenshot name)
PAGES = [
    ("/platforms/", "Platforms", "platforms"),
    ("/identity-providers/", "Identity providers", "identity-providers"),
    ("/audit/", "Audit log", "audit"),
    ("/audit/platforms/", "Audit ingestion", "audit-ingestion"),
    ("/assets/", "Assets", "assets"),
    ("/assets/platforms/", "Asset discovery", "asset-discovery"),
    ("/directory/", "Identity sources", "directory"),
    ("/directory/events/", "Joiners, movers and leavers", "directory-events"),
    ("/policies/", "Policies", "policies"),
    ("/policies/violations/", "Violations", "violations"),
    ("/sessions/", "My sessions", "my-sessions"),
    ("/identities/import/", "Import identities from CSV", "import"),
    ("/settings/audit-trail/", "Audit trail", "audit-trail"),
    ("/settings/users/", "Users", "users"),
    ("/settings/sso/", "Single sign-on", "single-sign-on"),
]


def test_the_main_pages_open_for_an_admin(
    page: "Page", admin: User, shared_credential: Identity
) -> None:
    sign_in(page, "admin")
    for address, heading, name in PAGES:
        response = page.goto(address)
        assert response is not None
        assert response.ok, f"{address} answered {response.status}"
        expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
        screenshot(page, name)

    page.goto(f"/identities/{shared_credential.pk}/")
    expect(page.get_by_role("heading", name="Access sessions")).to_be_visible()
    expect(page.get_by_text(SECRET)).to_have_count(0)
    screenshot(page, "identity-detail-shared-credential")
