"""audit_ingestion through google-api-python-client over HTTP against the sandbox's Reports API:
paging, checkpoints and the overlap window across runs, late activities, malformed ones,
transient versus permanent errors, and the beat's schedule."""

import datetime as dt
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from audit import retention, services
from audit import tasks as audit_tasks
from audit.models import AuditCheckpoint, AuditEvent, AuditLateCheck, AuditSettings
from identities.models import Platform
from jobs import services as job_services
from jobs.models import AttemptOutcome, Job, JobStatus, JobType, Trigger
from sandbox import google_directory
from tests import factories
from tests.inline import deliver

pytestmark = pytest.mark.django_db

MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    server = google_directory.start(domains=["example.com"])
    yield server
    server.shutdown()


@pytest.fixture
def platform(gws: google_directory.GoogleDirectorySandbox) -> Platform:
    return factories.make_sandbox_platform(gws)


@pytest.fixture(autouse=True)
def audit_settings(settings: Any) -> Any:
    settings.AUDIT_OVERLAP_MINUTES = 10
    settings.AUDIT_INITIAL_LOOKBACK_HOURS = 2
    settings.AUDIT_WINDOW_MINUTES = 60
    settings.AUDIT_RUN_BUDGET_SECONDS = 60
    return settings


def only(platform: Platform, *applications: str) -> None:
    AuditSettings.objects.update_or_create(
        platform=platform, defaults={"applications": list(applications)}
    )


def ingest(platform: Platform) -> Job:
    job, created = services.ingest_now(platform, actor=None)
    assert created
    return deliver(job)


def stored_keys(application: str | None = None) -> Counter[tuple[str, str, int]]:
    rows = AuditEvent.objects.all()
    if application:
        rows = rows.filter(application=application)
    return Counter(rows.values_list("application", "unique_qualifier", "event_index"))


def published_keys(gws: google_directory.GoogleDirectorySandbox, *apps: str) -> Counter[Any]:
    """What Google holds (and has published), as the rows it should become."""
    keys: Counter[Any] = Counter()
    for app in apps:
        for activity in gws.reports.log.all_published(app):
            for index, _ in enumerate(activity["events"]):
                keys[(app, activity["id"]["uniqueQualifier"], index)] += 1
    return keys


def position(platform: Platform, application: str) -> dt.datetime | None:
    checkpoint = AuditCheckpoint.objects.filter(platform=platform, application=application).first()
    return checkpoint.position if checkpoint else None


def checkpoint_at(platform: Platform, application: str) -> dt.datetime:
    at = position(platform, application)
    assert at is not None
    return at


def test_reads_every_page_and_stores_each_event_once(gws, platform, audit_settings) -> None:
    audit_settings.AUDIT_WINDOW_MINUTES = 180  # the whole first read in one window
    only(platform, "login")
    now = timezone.now()
    gws.reports.log.generate(2600, applications=["login"], start=now - 50 * MINUTE, end=now)

    job = ingest(platform)

    assert job.status == JobStatus.COMPLETED, job.error_message
    login = (job.result or {})["applications"]["login"]
    assert (login["pages"], login["read"], login["stored"]) == (3, 2600, 2600)
    assert gws.calls().count("activities.list") == 3
    assert stored_keys() == published_keys(gws, "login")
    assert max(stored_keys().values()) == 1
    assert position(platform, "login") is not None


def test_stores_time_actor_event_parameters_and_ip(gws, platform) -> None:
    only(platform, "token")
    at = timezone.now() - 3 * MINUTE
    activity = gws.reports.log.activity(
        "token",
        at,
        name="authorize",
        event_type="auth",
        actor="Ada@Example.com",
        ip_address="2001:db8::7",
        parameters=[
            {"name": "client_id", "value": "123-slack.apps"},
            {"name": "scope", "multiValue": ["openid", "email"]},
            {"name": "num_response_bytes", "intValue": "5120"},
            {"name": "is_native", "boolValue": False},
            {"name": "details", "messageValue": {"parameter": [{"name": "k", "value": "v"}]}},
        ],
    )
    gws.reports.log.add("token", activity)

    assert ingest(platform).status == JobStatus.COMPLETED
    (event,) = AuditEvent.objects.all()
    assert event.occurred_at == at.replace(microsecond=at.microsecond // 1000 * 1000)
    assert (event.application, event.event_name, event.event_type) == ("token", "authorize", "auth")
    assert event.actor_email == "ada@example.com"
    assert event.actor_profile_id == "100000000000000000001"
    assert event.ip_address == "2001:db8::7"
    assert event.unique_qualifier == activity["id"]["uniqueQualifier"]
    assert event.parameters == {
        "client_id": "123-slack.apps",
        "scope": ["openid", "email"],
        "num_response_bytes": 5120,
        "is_native": False,
        "details": {"k": "v"},
    }
    assert event.malformed is False


def test_an_activity_with_two_events_is_two_rows(gws, platform) -> None:
    only(platform, "admin")
    activity = gws.reports.log.activity("admin", timezone.now() - MINUTE, name="CREATE_USER")
    activity["events"].append(
        {"type": "USER_SETTINGS", "name": "CHANGE_PASSWORD", "parameters": []}
    )
    gws.reports.log.add("admin", activity)

    assert ingest(platform).status == JobStatus.COMPLETED
    rows = list(AuditEvent.objects.order_by("event_index"))
    assert [(row.event_index, row.event_name) for row in rows] == [
        (0, "CREATE_USER"),
        (1, "CHANGE_PASSWORD"),
    ]
    assert {row.unique_qualifier for row in rows} == {activity["id"]["uniqueQualifier"]}


def test_checkpoint_and_overlap_across_runs_with_late_activities(gws, platform) -> None:
    """Nothing lost, nothing stored twice: activities published after a run, with times
    inside the overlap window, are picked up by the next run."""
    log = gws.reports.log
    apps = ("admin", "login", "token")
    now = timezone.now()
    log.generate(1500, applications=apps, start=now - 40 * MINUTE, end=now)
    # Recorded in the last five minutes but published only later, as Google does.
    held = log.generate(
        400,
        applications=apps,
        start=now - 5 * MINUTE,
        end=now,
        late_fraction=0.25,
        late_seconds=3600,
        seed=7,
    )
    assert held.late == 100

    first = ingest(platform)
    assert first.status == JobStatus.COMPLETED, first.error_message
    assert sum(stored_keys().values()) == sum(published_keys(gws, *apps).values())
    checkpoints = {app: checkpoint_at(platform, app) for app in apps}

    # More late ones: recorded before the checkpoint, inside the overlap window.
    for number in range(30):
        app = apps[number % 3]
        at = checkpoints[app] - dt.timedelta(minutes=8) + number * dt.timedelta(seconds=5)
        log.add(app, log.activity(app, at, unique_qualifier=f"-9{number:05d}"))
    assert log.publish_late() == 100
    later = timezone.now()
    log.generate(300, applications=apps, start=later - dt.timedelta(seconds=30), end=later)

    second = ingest(platform)

    assert second.status == JobStatus.COMPLETED, second.error_message
    expected = published_keys(gws, *apps)
    assert stored_keys() == expected
    assert max(stored_keys().values()) == 1
    result = (second.result or {})["applications"]
    # Admin activities may hold two events each, so at least this many rows are new.
    assert sum(result[app]["stored"] for app in apps) >= 100 + 30 + 300
    assert sum(result[app]["duplicates"] for app in apps) > 0  # the overlap was re-read
    for app in apps:
        assert checkpoint_at(platform, app) > checkpoints[app]

    # A third run with nothing new stores nothing.
    third = ingest(platform)
    assert sum(r["stored"] for r in (third.result or {})["applications"].values()) == 0
    assert stored_keys() == expected


def test_a_late_activity_older_than_the_overlap_window_is_not_read(gws, platform) -> None:
    """The overlap must exceed Google's publishing lag: this is what a longer lag costs."""
    only(platform, "login")
    log = gws.reports.log
    assert ingest(platform).status == JobStatus.COMPLETED
    checkpoint = position(platform, "login")
    assert checkpoint is not None
    log.add("login", log.activity("login", checkpoint - 11 * MINUTE))
    log.add("login", log.activity("login", checkpoint - 9 * MINUTE))

    assert ingest(platform).status == JobStatus.COMPLETED
    assert AuditEvent.objects.count() == 1
    assert AuditEvent.objects.get().occurred_at > checkpoint - 10 * MINUTE


def test_windows_move_the_checkpoint_one_at_a_time_within_the_budget(
    gws, platform, audit_settings
) -> None:
    audit_settings.AUDIT_RUN_BUDGET_SECONDS = 0
    audit_settings.AUDIT_INITIAL_LOOKBACK_HOURS = 3
    only(platform, "login")
    now = timezone.now()
    gws.reports.log.generate(600, applications=["login"], start=now - 170 * MINUTE, end=now)

    first = ingest(platform)

    assert first.status == JobStatus.COMPLETED
    assert (first.result or {})["caught_up"] is False
    assert (first.result or {})["applications"]["login"]["windows"] == 1
    checkpoint = position(platform, "login")
    assert checkpoint is not None
    assert abs(checkpoint - (now - 3 * 60 * MINUTE - 10 * MINUTE + 60 * MINUTE)) < MINUTE
    assert AuditSettings.objects.get(platform=platform).catching_up is True
    # Behind: the beat sends the next run at once, not after the interval.
    assert services.enqueue_due_ingestions() == 1

    runs = 1
    job = Job.objects.filter(job_type=JobType.AUDIT_INGESTION).latest("id")
    while True:
        job = deliver(job)
        runs += 1
        assert job.status == JobStatus.COMPLETED
        if (job.result or {})["caught_up"]:
            break
        job, _ = services.ingest_now(platform, actor=None)
    assert runs == 4  # 3 h 10 min in one-hour windows
    assert stored_keys() == published_keys(gws, "login")
    assert AuditSettings.objects.get(platform=platform).catching_up is False


def test_an_error_halfway_leaves_the_checkpoint_and_the_retry_loses_nothing(
    gws, platform, audit_settings
) -> None:
    audit_settings.AUDIT_WINDOW_MINUTES = 180  # one window of three pages
    only(platform, "login")
    now = timezone.now()
    gws.reports.log.generate(2500, applications=["login"], start=now - 30 * MINUTE, end=now)
    gws.reports.fail_after(1, status=503, reason="backendError")

    job = ingest(platform)

    assert job.status == JobStatus.RETRYING
    assert "503" in job.error_message
    assert "login activity report of platform Sandbox Workspace" in job.error_message
    assert AuditEvent.objects.count() == 1000  # the first page is kept
    assert position(platform, "login") is None  # the window was not read to its end

    job = deliver(job)

    assert job.status == JobStatus.COMPLETED
    login = (job.result or {})["applications"]["login"]
    assert (login["stored"], login["duplicates"]) == (1500, 1000)
    assert stored_keys() == published_keys(gws, "login")
    assert [a.outcome for a in job.attempts.all()] == [
        AttemptOutcome.FAILED,
        AttemptOutcome.SUCCEEDED,
    ]


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (503, "backendError"),
        (429, "rateLimitExceeded"),
        (403, "userRateLimitExceeded"),
        (403, "quotaExceeded"),
    ],
)
def test_transient_errors_are_retried(gws, platform, status, reason) -> None:
    only(platform, "login")
    gws.faults.add("activities.list", status=status, reason=reason)
    job = ingest(platform)
    assert job.status == JobStatus.RETRYING
    assert f"failed on the login activity report of platform Sandbox Workspace: {status}" in (
        job.error_message
    )
    assert deliver(job).status == JobStatus.COMPLETED


def test_no_reports_access_is_permanent_and_names_platform_and_application(gws, platform) -> None:
    only(platform, "admin", "login")
    gws.faults.add("activities.list", status=403, reason="forbidden", times=None)

    job = ingest(platform)

    assert job.status == JobStatus.FAILED
    assert job.attempt_count == 1
    message = job.error_message
    assert "rejected the admin activity report of platform Sandbox Workspace" in message
    assert "403 Not Authorized to access this resource/api (forbidden)" in message
    assert "admin.reports.audit.readonly" in message
    assert position(platform, "admin") is None


def test_an_expired_delegation_is_a_clear_permanent_error(gws, platform) -> None:
    only(platform, "login")
    gws.faults.add(
        "oauth.token",
        status=401,
        reason="unauthorized_client",
        message="Client is unauthorized to retrieve access tokens using this method",
        times=None,
    )

    job = ingest(platform)

    assert job.status == JobStatus.FAILED
    message = job.error_message
    assert "did not grant a token" in message
    assert "acting as admin@example.com" in message
    assert "the login activity report of platform Sandbox Workspace" in message
    assert "unauthorized_client" in message


def test_malformed_activities_are_stored_flagged_and_kept_whole(gws, platform) -> None:
    only(platform, "login")
    log = gws.reports.log
    at = timezone.now() - 5 * MINUTE
    bad_ip = log.activity("login", at, ip_address="not-an-ip", unique_qualifier="101")
    no_events = log.activity("login", at, unique_qualifier="102")
    del no_events["events"]
    no_qualifier = log.activity("login", at + MINUTE)
    del no_qualifier["id"]["uniqueQualifier"]
    for activity in (bad_ip, no_events, no_qualifier, log.activity("login", at)):
        log.add("login", activity)

    job = ingest(platform)

    assert job.status == JobStatus.COMPLETED
    login = (job.result or {})["applications"]["login"]
    assert (login["read"], login["stored"], login["malformed"]) == (4, 4, 3)
    flagged = {row.unique_qualifier: row for row in AuditEvent.objects.filter(malformed=True)}
    assert flagged["101"].ip_address is None
    assert "ipAddress is not an IP address: 'not-an-ip'" in flagged["101"].problems
    assert (flagged["101"].raw or {})["activity"]["ipAddress"] == "not-an-ip"
    assert flagged["102"].event_name == ""
    (hashed,) = [key for key in flagged if key.startswith("sha256:")]
    # Read again (the overlap), the one without a qualifier is recognised by its content.
    assert ingest(platform).status == JobStatus.COMPLETED
    assert AuditEvent.objects.count() == 4
    assert AuditEvent.objects.filter(unique_qualifier=hashed).count() == 1


def test_an_activity_without_a_time_fails_the_job_and_holds_its_checkpoint(
    gws, platform, audit_settings
) -> None:
    audit_settings.AUDIT_WINDOW_MINUTES = 180  # one window: the timeless activity's
    only(platform, "admin", "login")
    log = gws.reports.log
    now = timezone.now()
    log.generate(50, applications=["admin", "login"], start=now - 20 * MINUTE, end=now)
    timeless = log.activity("login", now - 10 * MINUTE)
    del timeless["id"]["time"]
    log.add("login", timeless, at=now - 10 * MINUTE)

    job = ingest(platform)

    assert job.status == JobStatus.FAILED
    assert job.attempt_count == 1
    message = job.error_message
    assert "platform Sandbox Workspace" in message
    assert "login: 1 activities between" in message
    assert "id.time is missing" in message
    assert "the checkpoint stays before them" in message
    # Everything else in that window was stored, the other application was read through.
    assert stored_keys("login") == published_keys(gws, "login") - Counter(
        {("login", timeless["id"]["uniqueQualifier"], 0): 1}
    )
    assert position(platform, "login") is None
    assert position(platform, "admin") is not None
    assert stored_keys("admin") == published_keys(gws, "admin")


def test_only_the_platforms_applications_are_read(gws, platform) -> None:
    only(platform, "token")
    now = timezone.now()
    gws.reports.log.generate(90, start=now - 5 * MINUTE, end=now)
    assert ingest(platform).status == JobStatus.COMPLETED
    assert set(AuditEvent.objects.values_list("application", flat=True)) == {"token"}
    assert list(AuditCheckpoint.objects.values_list("application", flat=True)) == ["token"]


def test_a_platform_without_a_key_fails_with_a_clear_message(platform) -> None:
    Platform.objects.filter(pk=platform.pk).update(service_account_key_ref="")
    job = ingest(platform)
    assert job.status == JobStatus.FAILED
    assert "service-account key of platform Sandbox Workspace is not stored" in job.error_message


# --- the beat's schedule --------------------------------------------------------------------


def audit_jobs() -> list[Job]:
    return list(Job.objects.filter(job_type=JobType.AUDIT_INGESTION).order_by("id"))


def test_the_beat_sends_one_run_per_connected_platform_when_due() -> None:
    connected = factories.make_platform("Connected")
    factories.make_platform("No key", service_account_key_ref="")
    factories.make_platform("GitHub", kind=Platform.Kind.GITHUB)
    now = timezone.now()

    assert services.enqueue_due_ingestions(now) == 1
    (job,) = audit_jobs()
    assert (job.subject_id, job.trigger) == (str(connected.pk), Trigger.SCHEDULE)
    # Still on its way: no second run.
    assert services.enqueue_due_ingestions(now + 20 * MINUTE) == 0

    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED)
    assert services.enqueue_due_ingestions(now + 14 * MINUTE) == 0
    assert services.enqueue_due_ingestions(now + 15 * MINUTE) == 1


def test_the_beat_entry_runs_the_schedule(settings) -> None:
    from audit import tasks

    entry = settings.CELERY_BEAT_SCHEDULE["audit-schedule-ingestion"]
    assert entry["task"] == tasks.schedule_ingestion.name == "audit.schedule_ingestion"
    assert entry["schedule"] == float(settings.AUDIT_SCHEDULE_INTERVAL)
    factories.make_platform("Connected")
    assert tasks.schedule_ingestion() == 1
    assert len(audit_jobs()) == 1


def test_the_interval_and_the_switch_are_per_platform() -> None:
    platform = factories.make_platform("Connected")
    services.update_settings(
        platform, enabled=True, applications=["login"], interval_minutes=5, actor=None
    )
    now = timezone.now()
    assert services.enqueue_due_ingestions(now) == 1
    Job.objects.update(status=JobStatus.COMPLETED)
    assert services.enqueue_due_ingestions(now + 5 * MINUTE) == 1
    Job.objects.update(status=JobStatus.COMPLETED)

    services.update_settings(
        platform, enabled=False, applications=["login"], interval_minutes=5, actor=None
    )
    assert services.enqueue_due_ingestions(now + 60 * MINUTE) == 0


def test_settings_refuse_unknown_applications() -> None:
    platform = factories.make_platform("Connected")
    with pytest.raises(services.InvalidSettingsError, match="nonsense"):
        services.update_settings(
            platform,
            enabled=True,
            applications=["login", "nonsense"],
            interval_minutes=15,
            actor=None,
        )


def test_ingest_now_does_not_start_a_second_run(platform) -> None:
    job, created = services.ingest_now(platform, actor=None)
    again, created_again = services.ingest_now(platform, actor=None)
    assert created
    assert not created_again
    assert again.pk == job.pk


def test_the_default_applications_come_from_settings(audit_settings) -> None:
    audit_settings.AUDIT_DEFAULT_APPLICATIONS = ["admin", "drive"]
    platform = factories.make_platform("Connected")
    assert services.get_settings(platform).applications == ["admin", "drive"]


def test_the_sandbox_publishes_late_activities_only_when_due(gws) -> None:
    log = gws.reports.log
    now = timezone.now()
    log.add("login", log.activity("login", now - MINUTE), visible_from=time.time() + 3600)
    assert log.all_published("login") == []
    assert log.counts()["login"] == {"activities": 1, "unpublished": 1}
    assert log.publish_late() == 1
    assert len(log.all_published("login")) == 1


# --- per-platform overlap, the daily late-arrival check, retention --------------------------


def test_the_overlap_is_per_platform(gws, platform) -> None:
    only(platform, "login")
    AuditSettings.objects.filter(platform=platform).update(overlap_minutes=15)
    log = gws.reports.log
    assert ingest(platform).status == JobStatus.COMPLETED
    checkpoint = checkpoint_at(platform, "login")
    log.add("login", log.activity("login", checkpoint - 11 * MINUTE))

    job = ingest(platform)
    assert job.status == JobStatus.COMPLETED
    assert AuditEvent.objects.count() == 1  # 10 minutes would have missed it
    assert (job.result or {})["applications"]["login"]["read_from"] == (
        checkpoint - 15 * MINUTE
    ).isoformat()


def test_the_daily_late_check_counts_and_stores_what_the_overlap_missed(
    gws, platform, client
) -> None:
    only(platform, "login")
    log = gws.reports.log
    assert ingest(platform).status == JobStatus.COMPLETED
    checkpoint = checkpoint_at(platform, "login")
    # Published after the runs had passed them: one older than the 10-minute overlap (the
    # runs never read it), one inside it (the next run would).
    missed_at = checkpoint - 11 * MINUTE
    log.add("login", log.activity("login", missed_at, unique_qualifier="-1"))
    log.add("login", log.activity("login", checkpoint - 9 * MINUTE, unique_qualifier="-2"))
    day = missed_at.date()

    job = deliver(
        job_services.enqueue(
            JobType.AUDIT_INGESTION, subject=platform, params={"late_check_day": str(day)}
        )
    )

    assert job.status == JobStatus.COMPLETED, job.error_message
    login = (job.result or {})["applications"]["login"]
    assert login["missed"] == 1
    assert (
        login["read_to"]
        == min(
            dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC) + dt.timedelta(days=1),
            checkpoint - 10 * MINUTE,
        ).isoformat()
    )
    assert list(AuditEvent.objects.values_list("unique_qualifier", flat=True)) == ["-1"]
    check = AuditLateCheck.objects.get(platform=platform, application="login", day=day)
    assert (check.missed, check.overlap_minutes) == (1, 10)

    # The platform's audit page shows it.
    client.force_login(factories.make_user("auditor", perms=("audit.view_auditevent",)))
    page = client.get(reverse("audit:platform", args=[platform.pk])).content.decode()
    assert "Late arrivals" in page
    assert f"<td>{day:%Y-%m-%d}</td><td>login</td>" in page

    # A second check of the same day keeps the first count.
    again = deliver(
        job_services.enqueue(
            JobType.AUDIT_INGESTION, subject=platform, params={"late_check_day": str(day)}
        )
    )
    assert again.status == JobStatus.COMPLETED
    assert AuditLateCheck.objects.get(pk=check.pk).missed == 1


def test_the_beat_sends_one_late_check_a_day_per_platform(gws, platform) -> None:
    only(platform, "login")
    now = timezone.now()
    assert services.enqueue_late_checks(now) == 1
    (job,) = Job.objects.filter(job_type=JobType.AUDIT_INGESTION)
    yesterday = (now - dt.timedelta(days=1)).date()
    assert job.params == {"late_check_day": yesterday.isoformat()}
    AuditLateCheck.objects.create(
        platform=platform, application="login", day=yesterday, read_to=now, overlap_minutes=10
    )
    assert services.enqueue_late_checks(now) == 0


def test_a_late_check_day_that_is_no_day_fails_clearly(platform) -> None:
    job = deliver(
        job_services.enqueue(
            JobType.AUDIT_INGESTION, subject=platform, params={"late_check_day": "yesterday"}
        )
    )
    assert job.status == JobStatus.FAILED
    assert "'yesterday' is not a day (YYYY-MM-DD)" in job.error_message


def test_retention_prunes_old_events_in_batches(platform, settings) -> None:
    settings.AUDIT_RETENTION_DAYS = 400
    now = timezone.now()
    for number, age in enumerate([401, 402, 500, 450, 399, 10]):
        AuditEvent.objects.create(
            platform=platform,
            application="login",
            occurred_at=now - dt.timedelta(days=age),
            unique_qualifier=str(number),
        )
    assert retention.prune(now=now, batch_size=2) == 4
    assert sorted(AuditEvent.objects.values_list("unique_qualifier", flat=True)) == ["4", "5"]
    assert retention.prune(now=now, batch_size=2) == 0


def test_the_beat_runs_retention_and_the_late_check(settings) -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["audit-prune"]["task"] == "audit.prune"
    assert schedule["audit-late-check"]["task"] == "audit.schedule_late_checks"
    assert audit_tasks.prune.name == "audit.prune"
    assert audit_tasks.schedule_late_checks.name == "audit.schedule_late_checks"
