"""directory_sync of a Google Workspace source through google-api-python-client against the
sandbox Directory API: paging, movers, the safety brake, one sync at a time, a lost server."""

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from directory import services
from directory.models import DirectoryEvent, DirectoryMembership, DirectoryUser, EventKind, SyncRun
from directory.sync import claim
from jobs.models import Job, JobStatus, JobType
from jobs.services import enqueue
from sandbox import google_directory
from tests.conftest import require_services
from tests.directory_support import gws_platform, gws_source, result, running_gws, sync
from tests.inline import deliver

pytestmark = pytest.mark.django_db


@pytest.fixture
def gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    yield from running_gws()


def person(n: int, **extra: object) -> dict[str, object]:
    return {
        "primaryEmail": f"user{n:02d}@example.com",
        "name": {"givenName": f"User{n}", "familyName": "Example"},
        "orgUnitPath": "/Staff",
        "organizations": [{"primary": True, "department": "Research", "title": "Engineer"}],
        "relations": [{"type": "manager", "value": "user00@example.com"}],
        **extra,
    }


def seed(gws, users: int = 23, groups: int = 7) -> None:
    members = {
        f"group{g}@example.com": [f"user{n:02d}@example.com" for n in range(users) if n % 7 == g]
        for g in range(groups)
    }
    # One big group, so members.list pages too.
    members["group0@example.com"] = [f"user{n:02d}@example.com" for n in range(12)]
    gws.seed(
        users=[person(n) for n in range(users)],
        groups=[{"email": f"group{g}@example.com", "name": f"Group {g}"} for g in range(groups)],
        members=members,
    )


def test_sync_pages_through_users_groups_and_members(gws) -> None:
    seed(gws)
    source = gws_source(gws_platform(gws), page_size=5)

    job = sync(source)

    assert job.status == JobStatus.COMPLETED, job.error_message
    outcome = result(job)
    assert (outcome["users"], outcome["groups"], outcome["errors"]) == (23, 7, 0)
    calls = gws.calls()
    assert calls.count("users.list") == 5  # 23 users, 5 a page
    assert calls.count("groups.list") == 2  # 7 groups, 5 a page
    assert calls.count("members.list") == 7 + 2  # group0's 12 members take 3 pages
    stored = {u.email: u for u in DirectoryUser.objects.filter(source=source)}
    assert len(stored) == 23
    user = stored["user05@example.com"]
    assert (user.given_name, user.family_name, user.org_unit) == ("User5", "Example", "/Staff")
    assert (user.department, user.title, user.manager) == (
        "Research",
        "Engineer",
        "user00@example.com",
    )
    assert user.external_id == gws.directory.find_id("user05@example.com")
    group0 = DirectoryMembership.objects.filter(source=source, group__email="group0@example.com")
    assert group0.count() == 12
    assert DirectoryMembership.objects.filter(source=source).count() == 12 + 23 - 4


def test_a_mover_in_google_workspace(gws) -> None:
    seed(gws)
    source = gws_source(gws_platform(gws), page_size=5)
    sync(source)
    gws.directory.update(
        "user03@example.com",
        {
            "orgUnitPath": "/Staff/Sales",
            "organizations": [{"primary": True, "department": "Sales", "title": "Engineer"}],
        },
    )
    gws.directory.update("user04@example.com", {"suspended": True})

    outcome = result(sync(source))

    assert (outcome["joiners"], outcome["movers"], outcome["leavers"]) == (0, 1, 1)
    mover = DirectoryEvent.objects.get(kind=EventKind.MOVER)
    assert mover.label == "user03@example.com"
    assert mover.changes == {
        "org_unit": ["/Staff", "/Staff/Sales"],
        "department": ["Research", "Sales"],
    }
    assert DirectoryEvent.objects.get(kind=EventKind.LEAVER).label == "user04@example.com"


def test_a_second_sync_with_no_changes_makes_no_events(gws) -> None:
    seed(gws)
    source = gws_source(gws_platform(gws), page_size=5)
    sync(source)
    outcome = result(sync(source))
    assert (outcome["joiners"], outcome["movers"], outcome["leavers"]) == (0, 0, 0)
    assert not DirectoryEvent.objects.exists()


def test_brake_when_the_source_returns_no_users(gws) -> None:
    seed(gws)
    source = gws_source(gws_platform(gws), page_size=5)
    sync(source)
    snapshot = list(DirectoryUser.objects.filter(source=source).values())
    for user in gws.users():
        gws.directory.delete(user["id"])

    job = sync(source)

    assert job.status == JobStatus.FAILED
    assert "Safety brake" in job.error_message
    assert "Workspace directory returned no users" in job.error_message
    assert "Nothing was changed" in job.error_message
    assert "Override the safety brake" in job.error_message
    assert list(DirectoryUser.objects.filter(source=source).values()) == snapshot
    assert not DirectoryEvent.objects.exists()
    assert SyncRun.objects.filter(source=source).latest("id").status == SyncRun.Status.BRAKED


def test_brake_on_too_many_leavers_then_a_forced_sync(gws) -> None:
    seed(gws, users=20)
    source = gws_source(gws_platform(gws))
    sync(source)
    snapshot = list(DirectoryUser.objects.filter(source=source).values())
    memberships = DirectoryMembership.objects.filter(source=source).count()
    for n in (1, 2, 3):
        gws.directory.update(f"user{n:02d}@example.com", {"suspended": True})

    job = sync(source)

    assert job.status == JobStatus.FAILED
    assert "would make 3 of 20 active users leavers (15.0%)" in job.error_message
    assert "more than the allowed 10%" in job.error_message
    assert "Override the safety brake" in job.error_message
    assert list(DirectoryUser.objects.filter(source=source).values()) == snapshot
    assert DirectoryMembership.objects.filter(source=source).count() == memberships
    assert not DirectoryEvent.objects.exists()

    forced = sync(source, force=True)

    assert forced.status == JobStatus.COMPLETED, forced.error_message
    assert result(forced)["leavers"] == 3
    assert result(forced)["forced"] is True
    assert DirectoryUser.objects.filter(source=source, disabled=True).count() == 3


def test_one_sync_per_source_the_second_fails_fast(gws) -> None:
    seed(gws)
    source = gws_source(gws_platform(gws))
    holder = claim(source, job=None, force=False)  # a sync in progress elsewhere

    # Straight through enqueue: "Sync now" would refuse to queue a second job at all.
    job = deliver(enqueue(JobType.DIRECTORY_SYNC, subject=source, params={"source_id": source.pk}))

    assert job.status == JobStatus.FAILED
    assert job.attempt_count == 1
    assert f"already being synced by run #{holder.pk}" in job.error_message
    assert "one sync per source at a time" in job.error_message
    assert "users.list" not in gws.calls()
    assert SyncRun.objects.get(pk=holder.pk).status == SyncRun.Status.RUNNING

    # A claim whose run stopped reporting progress (its worker died) is taken over.
    SyncRun.objects.filter(pk=holder.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    job = sync(source)
    assert job.status == JobStatus.COMPLETED, job.error_message
    assert SyncRun.objects.get(pk=holder.pk).status == SyncRun.Status.FAILED


def test_sync_now_refuses_while_a_sync_is_queued(gws) -> None:
    source = gws_source(gws_platform(gws))
    first = services.request_sync(source, actor=None)
    with pytest.raises(services.SyncAlreadyQueued) as refused:
        services.request_sync(source, actor=None)
    assert refused.value.job.pk == first.pk
    assert Job.objects.filter(job_type=JobType.DIRECTORY_SYNC).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_syncs_at_once_one_runs_the_other_fails_fast(gws) -> None:
    """Two deliveries at the same moment, in two threads with their own connections."""
    require_services("postgres")
    seed(gws)
    source = gws_source(gws_platform(gws), page_size=5)
    # The first sync stalls on its first page, holding the source meanwhile.
    gws.faults.add("users.list", delay_seconds=1.5)
    first = enqueue(JobType.DIRECTORY_SYNC, subject=source, params={"source_id": source.pk})
    second = enqueue(JobType.DIRECTORY_SYNC, subject=source, params={"source_id": source.pk})

    def run_first() -> None:
        try:
            deliver(first)
        finally:
            connection.close()

    thread = threading.Thread(target=run_first)
    thread.start()
    deadline = time.monotonic() + 10
    while not SyncRun.objects.filter(source=source).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    second = deliver(second)
    thread.join(30)

    first.refresh_from_db()
    assert first.status == JobStatus.COMPLETED, first.error_message
    assert second.status == JobStatus.FAILED
    assert "already being synced" in second.error_message


def test_an_unreachable_directory_names_the_source_and_keeps_the_snapshot(gws) -> None:
    seed(gws)
    source = gws_source(gws_platform(gws))
    sync(source)
    snapshot = list(DirectoryUser.objects.filter(source=source).values())
    gws.shutdown()

    job = sync(source)

    assert job.status == JobStatus.RETRYING
    assert "Directory source Workspace directory" in job.error_message
    assert "unreachable" in job.error_message
    assert list(DirectoryUser.objects.filter(source=source).values()) == snapshot


def test_a_refusal_from_google_names_the_source(gws) -> None:
    seed(gws)
    source = gws_source(gws_platform(gws))
    gws.faults.add("groups.list", status=403, reason="forbidden")

    job = sync(source)

    assert job.status == JobStatus.FAILED
    assert "Directory source Workspace directory" in job.error_message
    assert "403" in job.error_message
    assert not DirectoryUser.objects.filter(source=source).exists()
