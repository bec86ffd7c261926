"""asset_discovery through google-api-python-client over HTTP against the sandbox: every kind,
new/changed/gone counts, gone-marking and reappearance, and transient versus permanent
errors."""

from collections.abc import Iterator
from typing import Any

import pytest

from assets import services
from assets.models import Asset, AssetKind
from connectors.google_assets import GoogleAssetsClient
from identities.models import Platform
from jobs.models import Job, JobStatus
from sandbox import google_directory
from tests import factories
from tests.inline import deliver

pytestmark = pytest.mark.django_db

FIRST_COUNTS = {
    "user": 3,
    "group": 2,
    "org_unit": 2,
    "domain": 2,
    "mobile_device": 2,
    "chromeos_device": 1,
    "oauth_token": 3,
}


@pytest.fixture
def gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    server = google_directory.start(domains=["example.com", "example.org"])
    yield server
    server.shutdown()


@pytest.fixture
def platform(gws: google_directory.GoogleDirectorySandbox) -> Platform:
    return factories.make_sandbox_platform(gws)


@pytest.fixture
def inventory(gws: google_directory.GoogleDirectorySandbox) -> dict[str, Any]:
    """Three users, two groups, two org units, two domains, two phones, a Chromebook and
    three OAuth grants."""
    ids = gws.directory.seed_users(
        [
            {"primaryEmail": f"{name}@example.com", "name": {"givenName": name, "familyName": "X"}}
            for name in ("ada", "bob", "cy")
        ]
    )
    gws.groups.seed(
        [{"email": "eng@example.com", "name": "Engineering"}, {"email": "all@example.com"}],
        {"eng@example.com": ["ada@example.com"]},
    )
    units = [gws.assets.add_org_unit("/Engineering"), gws.assets.add_org_unit("/Sales")]
    phones = [
        gws.assets.add_mobile_device("ada@example.com"),
        gws.assets.add_mobile_device("bob@example.com", model="iPhone 15", os="iOS 17.5"),
    ]
    book = gws.assets.add_chromeos_device("SN0001", annotated_user="bob@example.com")
    gws.assets.add_token("ada@example.com", "1-slack.apps", "Slack")
    gws.assets.add_token("ada@example.com", "2-zoom.apps", "Zoom")
    gws.assets.add_token("cy@example.com", "1-slack.apps", "Slack")
    return {"users": ids, "units": units, "phones": phones, "book": book}


def discover(platform: Platform) -> Job:
    job, created = services.discover_now(platform, actor=None)
    assert created
    return deliver(job)


def kinds(job: Job) -> dict[str, dict[str, int]]:
    return dict((job.result or {})["kinds"])


def column(job: Job, name: str) -> dict[str, int]:
    return {kind: counts[name] for kind, counts in kinds(job).items()}


def test_first_discovery_finds_every_kind(gws, platform, inventory) -> None:
    job = discover(platform)

    assert job.status == JobStatus.COMPLETED, job.error_message
    assert column(job, "new") == FIRST_COUNTS
    assert column(job, "seen") == FIRST_COUNTS
    assert set(column(job, "gone").values()) == {0}
    assert (job.result or {})["totals"]["new"] == sum(FIRST_COUNTS.values())
    assert Asset.objects.count() == sum(FIRST_COUNTS.values())

    ada = Asset.objects.get(kind=AssetKind.USER, name="ada@example.com")
    assert ada.external_id == inventory["users"][0]
    assert ada.attributes["fullName"] == "ada X"
    grants = Asset.objects.filter(
        kind=AssetKind.OAUTH_TOKEN, attributes__userEmail="ada@example.com"
    )
    assert sorted(grants.values_list("name", flat=True)) == [
        "Slack (ada@example.com)",
        "Zoom (ada@example.com)",
    ]
    assert Asset.objects.get(kind=AssetKind.DOMAIN, name="example.com").attributes["isPrimary"]
    phone = Asset.objects.get(external_id=inventory["phones"][1]["resourceId"])
    assert phone.name == "iPhone 15 (bob@example.com)"
    assert "lastSync" not in phone.attributes  # changes on every read: not tracked
    assert Asset.objects.get(kind=AssetKind.ORG_UNIT, name="/Sales").attributes["name"] == "Sales"


def test_a_second_run_with_nothing_different_changes_nothing(gws, platform, inventory) -> None:
    first = discover(platform)
    second = discover(platform)
    assert column(second, "seen") == FIRST_COUNTS
    for name in ("new", "changed", "gone", "returned"):
        assert set(column(second, name).values()) == {0}, name
    asset = Asset.objects.get(kind=AssetKind.CHROMEOS_DEVICE)
    assert asset.first_seen < asset.last_seen
    assert first.pk != second.pk


def test_changes_are_counted_and_stored(gws, platform, inventory) -> None:
    discover(platform)
    book = inventory["book"]
    gws.assets.update("chromeosdevices", book["deviceId"], osVersion="127.0.6533.88")
    unit = inventory["units"][0]
    gws.assets.update("orgunits", unit["orgUnitId"], description="Builders")
    # A new sync time alone is no change.
    gws.assets.update("mobiledevices", inventory["phones"][0]["resourceId"], lastSync="2030-01-01")

    job = discover(platform)

    assert column(job, "changed") == {
        **dict.fromkeys(FIRST_COUNTS, 0),
        "chromeos_device": 1,
        "org_unit": 1,
    }
    asset = Asset.objects.get(external_id=book["deviceId"])
    assert asset.attributes["osVersion"] == "127.0.6533.88"
    assert asset.changed_at == asset.last_seen


def test_what_disappears_is_marked_gone_not_deleted_and_comes_back(
    gws, platform, inventory
) -> None:
    discover(platform)
    phone = inventory["phones"][0]
    gws.assets.remove("mobiledevices", phone["resourceId"])
    gws.directory.delete("cy@example.com")  # and with it, cy's grant
    gws.assets.remove_token("ada@example.com", "2-zoom.apps")
    gws.assets.remove("domains", "example.org")

    second = discover(platform)

    assert column(second, "gone") == {
        **dict.fromkeys(FIRST_COUNTS, 0),
        "mobile_device": 1,
        "user": 1,
        "oauth_token": 2,
        "domain": 1,
    }
    assert Asset.objects.count() == sum(FIRST_COUNTS.values())
    gone = Asset.objects.filter(gone_at__isnull=False)
    assert sorted(gone.values_list("name", flat=True)) == [
        "Pixel 8 (ada@example.com)",
        "Slack (cy@example.com)",
        "Zoom (ada@example.com)",
        "cy@example.com",
        "example.org",
    ]
    gone_at = Asset.objects.get(external_id=phone["resourceId"]).gone_at

    # Back again: the same phone, the same grant.
    gws.assets.put("mobiledevices", phone["resourceId"], phone)
    gws.assets.add_token("ada@example.com", "2-zoom.apps", "Zoom")
    third = discover(platform)

    assert column(third, "returned") == {
        **dict.fromkeys(FIRST_COUNTS, 0),
        "mobile_device": 1,
        "oauth_token": 1,
    }
    assert column(third, "gone") == dict.fromkeys(FIRST_COUNTS, 0)
    back = Asset.objects.get(external_id=phone["resourceId"])
    assert back.gone_at is None
    assert gone_at is not None
    assert back.last_seen > gone_at
    assert Asset.objects.filter(gone_at__isnull=False).count() == 3
    # Still gone: seen gone again, not re-marked with a later time.
    still_gone = Asset.objects.get(name="cy@example.com").gone_at
    assert still_gone is not None
    assert still_gone < back.last_seen


@pytest.mark.parametrize(
    ("method", "status", "reason"),
    [
        ("users.list", 503, "backendError"),
        ("groups.list", 429, "rateLimitExceeded"),
        ("chromeosdevices.list", 403, "userRateLimitExceeded"),
        ("tokens.list", 403, "quotaExceeded"),
    ],
)
def test_transient_errors_are_retried_and_mark_nothing_gone(
    gws, platform, inventory, method, status, reason
) -> None:
    """Kinds are listed in order (users, groups, org units, domains, phones, Chromebooks,
    then each user's grants); a listing cut short, or never reached, proves nothing missing."""
    discover(platform)
    gws.directory.delete("cy@example.com")
    gws.assets.remove("chromeosdevices", inventory["book"]["deviceId"])
    gws.assets.remove_token("ada@example.com", "2-zoom.apps")
    gws.faults.add(method, status=status, reason=reason)

    job, _ = services.discover_now(platform, actor=None)
    job = deliver(job)

    assert job.status == JobStatus.RETRYING
    assert f"platform Sandbox Workspace: {status}" in job.error_message

    def gone(name: str) -> bool:
        return Asset.objects.get(name=name).gone_at is not None

    assert gone("cy@example.com") is (method != "users.list")
    assert gone("SN0001") is (method == "tokens.list")
    assert not Asset.objects.filter(kind=AssetKind.OAUTH_TOKEN, gone_at__isnull=False).exists()

    job = deliver(job)
    assert job.status == JobStatus.COMPLETED
    assert gone("cy@example.com")
    assert gone("SN0001")
    assert gone("Zoom (ada@example.com)")
    assert gone("Slack (cy@example.com)")


def test_forbidden_is_permanent_and_names_platform_and_listing(gws, platform, inventory) -> None:
    gws.faults.add("orgunits.list", status=403, reason="forbidden", times=None)

    job = discover(platform)

    assert job.status == JobStatus.FAILED
    assert job.attempt_count == 1
    assert "rejected the org unit list of platform Sandbox Workspace: 403" in job.error_message
    assert "(forbidden)" in job.error_message
    assert "needs read access" in job.error_message
    # What came before the error is recorded; nothing is gone.
    assert Asset.objects.filter(kind=AssetKind.USER).count() == 3
    assert not Asset.objects.filter(gone_at__isnull=False).exists()


def test_a_refused_delegation_lists_the_scopes_to_grant(gws, platform) -> None:
    gws.faults.add(
        "oauth.token", status=400, reason="invalid_grant", message="Bad grant", times=None
    )
    job = discover(platform)
    assert job.status == JobStatus.FAILED
    assert "did not grant a token" in job.error_message
    assert "the user list of platform Sandbox Workspace" in job.error_message
    assert "admin.directory.user.security" in job.error_message


def test_a_non_workspace_platform_is_refused(gws) -> None:
    platform = factories.make_platform("GitHub", kind=Platform.Kind.GITHUB)
    job = discover(platform)
    assert job.status == JobStatus.FAILED
    assert "Platform GitHub is not a Google Workspace platform" in job.error_message


def test_discover_now_does_not_start_a_second_run(platform) -> None:
    job, created = services.discover_now(platform, actor=None)
    again, created_again = services.discover_now(platform, actor=None)
    assert created
    assert not created_again
    assert again.pk == job.pk


def test_many_devices_are_read_page_by_page(gws, platform) -> None:
    for number in range(230):
        gws.assets.add_mobile_device(f"user{number}@example.com")
    job = discover(platform)
    assert column(job, "new")["mobile_device"] == 230
    assert gws.calls().count("mobiledevices.list") == 3


def test_tokens_of_a_user_gone_meanwhile_are_none(gws) -> None:
    client = GoogleAssetsClient(gws.issue_key(), "admin@example.com", api_endpoint=gws.base_url)
    assert client.tokens("100000000000000000000", "ghost@example.com") == []
