"""The asset pages and /api/v1/assets/: auth and permissions, filters, keyset paging, bad
input; the per-platform page and its "Discover now" (POST with CSRF)."""

import datetime as dt
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken
from assets.models import Asset, AssetKind
from identities.models import Platform
from jobs.models import Job, JobStatus, JobType
from tests import factories

pytestmark = pytest.mark.django_db

LIST_URL = reverse("assets:list")
API_URL = reverse("assets:api-list")
VIEWER_PERMS = ("assets.view_asset",)
DISCOVERER_PERMS = ("assets.view_asset", "assets.discover_assets")


@pytest.fixture
def platforms() -> tuple[Platform, Platform]:
    return factories.make_platform("Acme"), factories.make_platform("Globex")


@pytest.fixture
def assets(platforms) -> list[Asset]:
    acme, globex = platforms
    now = timezone.now()
    kinds = [AssetKind.USER, AssetKind.GROUP, AssetKind.MOBILE_DEVICE, AssetKind.OAUTH_TOKEN]
    return Asset.objects.bulk_create(
        Asset(
            platform=acme if n % 3 else globex,
            kind=kinds[n % 4],
            external_id=str(n),
            name=f"{kinds[n % 4]}-{n:02d}@example.com",
            attributes={"n": n},
            fingerprint=str(n),
            gone_at=now - dt.timedelta(days=1) if n % 5 == 0 else None,
        )
        for n in range(40)
    )


@pytest.fixture
def viewer_client(client: Client) -> Client:
    client.force_login(factories.make_user("viewer", perms=VIEWER_PERMS))
    return client


def ids(rows: Any) -> list[int]:
    return sorted((row.pk for row in rows), reverse=True)


def api_ids(client: Client, query: str = "", **headers: Any) -> list[int]:
    response = client.get(f"{API_URL}?{query}", headers=headers)
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_anonymous_and_unpermitted(client: Client) -> None:
    assert client.get(LIST_URL).status_code == 302
    assert client.get(API_URL).status_code == 401
    client.force_login(factories.make_user("nobody"))
    assert client.get(LIST_URL).status_code == 403
    assert client.get(API_URL).status_code == 403


def test_a_bearer_token_reads_the_api(assets) -> None:
    _, raw = ApiToken.issue(factories.make_user("robot", perms=VIEWER_PERMS), "tests")
    body = Client().get(API_URL, headers={"Authorization": f"Bearer {raw}"}).json()
    assert [row["id"] for row in body["results"]] == ids(assets)
    first = body["results"][0]
    assert first["attributes"] == {"n": 39}
    assert first["state"] == "present"
    assert first["kind_label"] == "Third-party OAuth token"


@pytest.mark.parametrize(
    ("query", "keep"),
    [
        ("kind=mobile_device", lambda a: a.kind == AssetKind.MOBILE_DEVICE),
        ("state=gone", lambda a: a.gone_at is not None),
        ("state=present&kind=user", lambda a: a.gone_at is None and a.kind == AssetKind.USER),
        ("q=GROUP-1", lambda a: a.name.startswith("group-1")),
    ],
)
def test_filters_on_the_page_and_the_api(viewer_client, assets, query, keep) -> None:
    expected = ids(asset for asset in assets if keep(asset))
    assert expected
    page = viewer_client.get(f"{LIST_URL}?{query}")
    assert [asset.pk for asset in page.context["page"].assets] == expected
    assert api_ids(viewer_client, query) == expected


def test_platform_filter_and_keyset_pages(viewer_client, assets, platforms, settings) -> None:
    settings.ASSET_PAGE_SIZE = 6
    acme, _ = platforms
    seen: list[int] = []
    url: str | None = f"{API_URL}?platform={acme.pk}"
    while url:
        body = viewer_client.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
    assert seen == ids(asset for asset in assets if asset.platform_id == acme.pk)
    first = viewer_client.get(LIST_URL)
    assert first.context["next_url"].startswith(f"{LIST_URL}?before=")


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("kind=printer", "kind"),
        ("state=lost", "state"),
        ("platform=x", "platform"),
        ("before=-1", "before"),
    ],
)
def test_bad_filters_are_400(viewer_client, query, parameter) -> None:
    page = viewer_client.get(f"{LIST_URL}?{query}")
    assert page.status_code == 400
    assert page.context["filter_error"].parameter == parameter
    assert parameter in viewer_client.get(f"{API_URL}?{query}").json()["errors"]


def test_an_asset_page_and_its_api(viewer_client, assets) -> None:
    gone = next(asset for asset in assets if asset.gone_at)
    page = viewer_client.get(reverse("assets:detail", args=[gone.pk])).content.decode()
    assert gone.name in page
    assert "gone" in page
    body = viewer_client.get(reverse("assets:api-detail", args=[gone.pk])).json()
    assert (body["state"], body["external_id"]) == ("gone", gone.external_id)
    assert viewer_client.get(reverse("assets:api-detail", args=[999999])).status_code == 404


def test_the_platform_page_shows_the_last_counts_and_discover_now(client, platforms) -> None:
    acme, _ = platforms
    client.force_login(factories.make_user("discoverer", perms=DISCOVERER_PERMS))
    factories.make_job(
        job_type=JobType.ASSET_DISCOVERY,
        status=JobStatus.COMPLETED,
        subject_label=acme.name,
        subject_type=ContentType.objects.get_for_model(Platform),
        result={"kinds": {"user": {"seen": 7, "new": 2, "changed": 1, "returned": 0, "gone": 3}}},
    )
    Job.objects.update(subject_id=str(acme.pk))
    page = client.get(reverse("assets:platform", args=[acme.pk])).content.decode()
    assert "Discover now" in page
    assert "state=gone" in page  # the 3 gone users link to the list

    url = reverse("assets:discover", args=[acme.pk])
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 302
    assert client.post(url).status_code == 302  # the first is still on its way
    (job,) = Job.objects.filter(job_type=JobType.ASSET_DISCOVERY, status=JobStatus.PENDING)
    assert job.trigger_label == "discoverer"


def test_discover_now_needs_the_permission_and_csrf(viewer_client, platforms) -> None:
    acme, _ = platforms
    url = reverse("assets:discover", args=[acme.pk])
    page = viewer_client.get(reverse("assets:platform", args=[acme.pk])).content.decode()
    assert "Discover now" not in page
    assert viewer_client.post(url).status_code == 403

    client = Client(enforce_csrf_checks=True)
    client.force_login(factories.make_user("discoverer", perms=DISCOVERER_PERMS))
    assert client.post(url).status_code == 403
    assert not Job.objects.exists()
    github = factories.make_platform("GitHub", kind=Platform.Kind.GITHUB)
    assert viewer_client.get(reverse("assets:platform", args=[github.pk])).status_code == 404
