"""The audit log pages and /api/v1/audit-events/: auth and permissions, every filter, keyset
paging through ties, no COUNT, bad input; the per-platform settings and "Ingest now"."""

import datetime as dt
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import ApiToken
from audit.models import AuditEvent, AuditSettings
from identities.models import Platform
from jobs.models import Job, JobType
from tests import factories

pytestmark = pytest.mark.django_db

LIST_URL = reverse("audit:list")
API_URL = reverse("audit:api-list")
T0 = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
VIEWER_PERMS = ("audit.view_auditevent",)
ADMIN_PERMS = ("audit.view_auditevent", "audit.change_auditsettings", "audit.ingest_auditevents")


@pytest.fixture
def platforms() -> tuple[Platform, Platform]:
    return factories.make_platform("Acme"), factories.make_platform("Globex")


@pytest.fixture
def events(platforms) -> list[AuditEvent]:
    """60 events a minute apart on two platforms, three applications, two actors; the last
    ten share one time, so paging has ties to break."""
    acme, globex = platforms
    rows = []
    for n in range(60):
        application = ("login", "admin", "token")[n % 3]
        rows.append(
            AuditEvent(
                platform=acme if n % 4 else globex,
                application=application,
                occurred_at=T0 + dt.timedelta(minutes=min(n, 50)),
                unique_qualifier=str(1000 + n),
                event_name={"login": "login_success", "admin": "CHANGE_PASSWORD"}.get(
                    application, "authorize"
                ),
                actor_email="ada@example.com" if n % 2 else "bob@example.com",
                ip_address="203.0.113.9",
                parameters={"n": n},
            )
        )
    return AuditEvent.objects.bulk_create(rows)


@pytest.fixture
def viewer_client(client: Client) -> Client:
    client.force_login(factories.make_user("viewer", perms=VIEWER_PERMS))
    return client


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(factories.make_user("auditadmin", perms=ADMIN_PERMS))
    return client


def bearer(perms: tuple[str, ...] = VIEWER_PERMS) -> dict[str, str]:
    _, raw = ApiToken.issue(factories.make_user("robot", perms=perms), "tests")
    return {"Authorization": f"Bearer {raw}"}


def api_ids(client: Client, query: str = "", **headers: Any) -> list[int]:
    response = client.get(f"{API_URL}?{query}", headers=headers)
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def newest_first(rows: list[AuditEvent]) -> list[int]:
    return [row.pk for row in sorted(rows, key=lambda r: (r.occurred_at, r.pk), reverse=True)]


# --- auth and permissions -------------------------------------------------------------------


def test_anonymous_is_sent_to_login_and_the_api_answers_401(client: Client) -> None:
    response = client.get(LIST_URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    response = client.get(API_URL)
    assert response.status_code == 401
    assert response.json()["detail"].startswith("authentication required")


def test_without_the_permission_it_is_403(client: Client) -> None:
    client.force_login(factories.make_user("nobody"))
    assert client.get(LIST_URL).status_code == 403
    assert client.get(API_URL).json()["detail"] == "permission denied"
    assert client.get(reverse("audit:platform-list")).status_code == 403


def test_a_bearer_token_with_the_permission_reads_the_api(events) -> None:
    headers = bearer()
    ids = api_ids(Client(), "", **headers)
    assert len(ids) == 50
    response = Client().post(API_URL, headers=headers)
    assert response.status_code == 405


# --- filters and paging ---------------------------------------------------------------------


def test_the_page_lists_newest_first_with_a_link_to_older(viewer_client, events) -> None:
    response = viewer_client.get(LIST_URL)
    assert response.status_code == 200
    page = response.context["page"]
    assert [event.pk for event in page.events] == newest_first(events)[:50]
    assert response.context["next_url"]
    content = response.content.decode()
    assert "ada@example.com" in content
    assert 'href="/audit/?before=' in content


@pytest.mark.parametrize(
    ("query", "keep"),
    [
        ("application=admin", lambda e: e.application == "admin"),
        ("event=authorize", lambda e: e.event_name == "authorize"),
        ("actor=ADA@example.com", lambda e: e.actor_email == "ada@example.com"),
        (
            "since=2025-06-01T12:10&until=2025-06-01T12:20",
            lambda e: 10 <= e.occurred_at.minute < 20,
        ),
        (
            "application=login&actor=bob@example.com&since=2025-06-01T12:30:00Z",
            lambda e: (
                e.application == "login"
                and e.actor_email == "bob@example.com"
                and e.occurred_at.minute >= 30
            ),
        ),
    ],
)
def test_each_filter_on_the_page_and_the_api(viewer_client, events, query, keep) -> None:
    expected = newest_first([event for event in events if keep(event)])
    assert expected
    response = viewer_client.get(f"{LIST_URL}?{query}")
    assert [event.pk for event in response.context["page"].events] == expected[:50]
    assert api_ids(viewer_client, query) == expected[:50]


def test_the_platform_filter(viewer_client, events, platforms) -> None:
    acme, _ = platforms
    expected = newest_first([event for event in events if event.platform_id == acme.pk])
    assert api_ids(viewer_client, f"platform={acme.pk}") == expected


def test_keyset_pages_walk_through_ties_without_loss_or_repeat(
    viewer_client, events, settings
) -> None:
    settings.AUDIT_PAGE_SIZE = 7
    seen: list[int] = []
    url: str | None = f"{API_URL}?application=login"
    while url:
        body = viewer_client.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
        if url:
            assert parse_qs(urlsplit(url).query)["application"] == ["login"]
    assert seen == newest_first([event for event in events if event.application == "login"])

    # The page follows the same cursor.
    settings.AUDIT_PAGE_SIZE = 25
    first = viewer_client.get(LIST_URL)
    second = viewer_client.get(first.context["next_url"])
    pages = [e.pk for e in first.context["page"].events] + [
        e.pk for e in second.context["page"].events
    ]
    assert pages == newest_first(events)[:50]
    assert second.context["newest_url"] == LIST_URL


def test_a_page_reads_no_count_and_no_heavy_columns(viewer_client, events) -> None:
    with CaptureQueriesContext(connection) as captured:
        assert viewer_client.get(f"{LIST_URL}?application=token").status_code == 200
    sql = " ".join(query["sql"] for query in captured.captured_queries)
    assert "COUNT(" not in sql.upper()
    (select,) = [
        q["sql"] for q in captured.captured_queries if 'FROM "audit_auditevent"' in q["sql"]
    ]
    assert '"audit_auditevent"."raw"' not in select
    assert '"audit_auditevent"."parameters"' not in select


def test_htmx_gets_the_list_fragment_only(viewer_client, events) -> None:
    response = viewer_client.get(LIST_URL, headers={"HX-Request": "true"})
    content = response.content.decode()
    assert content.lstrip().startswith('<div id="audit-live">')
    assert "<html" not in content


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("platform=abc", "platform"),
        ("platform=999999", "platform"),
        ("application=nonsense", "application"),
        ("since=yesterday", "since"),
        ("since=2025-06-02T00:00&until=2025-06-01T00:00", "until"),
        ("before=oops", "before"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(viewer_client, query, parameter) -> None:
    response = viewer_client.get(f"{LIST_URL}?{query}")
    assert response.status_code == 400
    assert response.context["filter_error"].parameter == parameter
    api = viewer_client.get(f"{API_URL}?{query}")
    assert api.status_code == 400
    assert parameter in api.json()["errors"]


# --- one event ------------------------------------------------------------------------------


def test_an_event_shows_its_parameters_and_its_activitys_other_events(
    viewer_client, platforms
) -> None:
    acme, _ = platforms
    first, second = AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                platform=acme,
                application="admin",
                occurred_at=T0,
                unique_qualifier="77",
                event_index=index,
                event_name=name,
                actor_email="ada@example.com",
                parameters={"USER_EMAIL": "new@example.com"},
                malformed=index == 1,
                raw={"problems": ["ipAddress is not an IP address"], "activity": {"x": 1}}
                if index
                else None,
            )
            for index, name in enumerate(("CREATE_USER", "CHANGE_PASSWORD"))
        ]
    )
    page = viewer_client.get(reverse("audit:detail", args=[first.pk])).content.decode()
    assert "new@example.com" in page
    assert "CHANGE_PASSWORD" in page
    malformed = viewer_client.get(reverse("audit:detail", args=[second.pk])).content.decode()
    assert "ipAddress is not an IP address" in malformed

    body = viewer_client.get(reverse("audit:api-detail", args=[second.pk])).json()
    assert body["parameters"] == {"USER_EMAIL": "new@example.com"}
    assert body["problems"] == ["ipAddress is not an IP address"]
    assert [e["event_name"] for e in body["activity_events"]] == ["CREATE_USER", "CHANGE_PASSWORD"]
    assert body["google_id"]["unique_qualifier"] == "77"
    assert viewer_client.get(reverse("audit:detail", args=[999999])).status_code == 404
    assert viewer_client.get(reverse("audit:api-detail", args=[999999])).status_code == 404


# --- settings and "Ingest now" --------------------------------------------------------------


def test_settings_page_saves_with_the_change_permission(admin_client, platforms) -> None:
    acme, _ = platforms
    url = reverse("audit:platform", args=[acme.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(
        url, {"enabled": "on", "applications": ["login", "drive"], "interval_minutes": "5"}
    )
    assert response.status_code == 302
    saved = AuditSettings.objects.get(platform=acme)
    assert (saved.enabled, saved.applications, saved.interval_minutes) == (
        True,
        ["drive", "login"],
        5,
    )
    bad = admin_client.post(url, {"applications": [], "interval_minutes": "0"})
    assert bad.status_code == 400
    assert set(bad.context["form"].errors) == {"applications", "interval_minutes"}


def test_settings_are_read_only_without_the_change_permission(viewer_client, platforms) -> None:
    acme, _ = platforms
    url = reverse("audit:platform", args=[acme.pk])
    page = viewer_client.get(url)
    assert page.status_code == 200
    assert "Ingest now" not in page.content.decode()
    assert (
        viewer_client.post(url, {"applications": ["login"], "interval_minutes": "5"}).status_code
        == 403
    )
    assert viewer_client.post(reverse("audit:ingest", args=[acme.pk])).status_code == 403


def test_ingest_now_queues_one_run(admin_client, platforms) -> None:
    acme, _ = platforms
    url = reverse("audit:ingest", args=[acme.pk])
    assert admin_client.get(url).status_code == 405
    assert admin_client.post(url).status_code == 302
    assert admin_client.post(url).status_code == 302
    (job,) = Job.objects.filter(job_type=JobType.AUDIT_INGESTION)
    assert job.subject_id == str(acme.pk)
    assert job.trigger_label == "auditadmin"


def test_ingest_now_needs_the_csrf_token(platforms) -> None:
    acme, _ = platforms
    client = Client(enforce_csrf_checks=True)
    client.force_login(factories.make_user("auditadmin", perms=ADMIN_PERMS))
    assert client.post(reverse("audit:ingest", args=[acme.pk])).status_code == 403
    assert not Job.objects.exists()


def test_platform_pages_are_for_google_workspace_only(admin_client) -> None:
    github = factories.make_platform("GitHub", kind=Platform.Kind.GITHUB)
    assert admin_client.get(reverse("audit:platform", args=[github.pk])).status_code == 404
    listing = admin_client.get(reverse("audit:platform-list")).content.decode()
    assert "GitHub" not in listing


def test_viewing_the_settings_writes_nothing(viewer_client, platforms) -> None:
    acme, _ = platforms
    assert viewer_client.get(reverse("audit:platform-list")).status_code == 200
    page = viewer_client.get(reverse("audit:platform", args=[acme.pk]))
    assert "every 15 min" in page.content.decode()
    assert not AuditSettings.objects.exists()


def test_the_overlap_is_set_on_the_platforms_page(admin_client, platforms) -> None:
    platform, _ = platforms
    url = reverse("audit:platform", args=[platform.pk])
    data = {"enabled": "on", "applications": ["login"], "interval_minutes": "5"}
    response = admin_client.post(url, {**data, "overlap_minutes": "30"})
    assert response.status_code == 302
    assert AuditSettings.objects.get(platform=platform).overlap_minutes == 30
    bad = admin_client.post(url, {**data, "overlap_minutes": "-1"})
    assert bad.status_code == 400
    assert set(bad.context["form"].errors) == {"overlap_minutes"}
    assert 'name="overlap_minutes" value="30"' in admin_client.get(url).content.decode()
