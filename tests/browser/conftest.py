"""Browser test fixtures: one Celery worker for the whole package; per test a Chromium on the
live server, the Google Directory and SCIM sandboxes, a platform served by them, users with
a role, and identities whose jobs the worker has run.

The live server enqueues with the default time limits (generous on a CI machine that also
runs a browser); the worker has the integration tests' short retry waits."""

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import redis
from django.apps import apps
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections
from pytest_django import DjangoDbBlocker
from pytest_django.live_server_helper import LiveServer

from accounts.services import set_role
from identities.models import Identity, IdentityType, Platform
from identities.services import (
    IdentityInput,
    create_identity,
)
from jobs.models import Job, JobStatus, JobType
from sandbox import google_directory, scim
from tests.browser.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    JOB_WAIT_MS,
    SCREENSHOTS,
    SECRET,
    Worker,
    require_browser,
    screenshot,
)
from tests.conftest import require_services
from tests.directory_support import gws_platform, running_gws, running_idp
from tests.factories import make_user
from tests.integration.worker import wait_for
from tests.settings import TEST_REDIS_URL

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
FAILED = pytest.StashKey[bool]()
FORBIDDEN = "Not Authorized to access this resource/api"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


@pytest.fixture(scope="package")
def worker(django_db_setup: None) -> Iterator[Worker]:
    require_services("postgres", "redis")
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    worker = Worker()
    yield worker
    worker.stop()


@pytest.fixture
def transactional_db(
    request: pytest.FixtureRequest, django_db_setup: None, django_db_blocker: DjangoDbBlocker
) -> None:
    """pytest-django's transactional database, entered from emptied tables when the test
    restores the migrations' rows: a transactional test without that restore, run before,
    left its tables flushed and refilled by post_migrate with other ids, and restoring the
    migrations' content types over those breaks their unique (app_label, model)."""
    if "django_db_serialized_rollback" in request.fixturenames:
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, inhibit_post_migrate=True, verbosity=0)
        ContentType.objects.clear_cache()
    request.getfixturevalue("_django_db_helper")


@pytest.fixture
def browser_db(django_db_serialized_rollback: None, transactional_db: None) -> None:
    """Each test's database, emptied afterwards and refilled with the rows migrations made
    (not made anew), so content type ids and the job counter rows stay what the worker,
    which caches them for as long as it runs, knows."""
    require_services("postgres", "redis")
    reset_sequences()


def reset_sequences() -> None:
    """The flush restarted every id sequence and the restore wrote its rows with their ids:
    move each sequence past its table's rows, or the next insert (a job counter upsert for
    a new status) takes an id that is already there."""
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), apps.get_models()):
            cursor.execute(sql)


@pytest.fixture(scope="package", autouse=True)
def migrations_rows_back(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker
) -> Iterator[None]:
    """After the package, the rows migrations made, as the tests that follow expect them: the
    last browser test's rollback emptied the tables and left the refilling to the next one,
    and this process still caches those rows' content type ids."""
    yield
    connection = connections[DEFAULT_DB_ALIAS]
    rows = getattr(connection, "_test_serialized_contents", None)
    with django_db_blocker.unblock():
        if rows and not ContentType.objects.exists():
            connection.creation.deserialize_db_from_string(rows)
            reset_sequences()


@pytest.fixture
def chromium(browser_db: None) -> Iterator["Browser"]:
    """Chromium for one test, started after its database is set up and stopped before it is
    emptied: Playwright's sync API keeps an asyncio loop running in this thread, and while
    it runs Django hands the thread another connection, one that cannot restore the
    migrations' rows."""
    require_browser()
    from playwright.sync_api import sync_playwright

    # With that loop running, Django refuses ORM calls here; the tests' ORM calls are plain
    # synchronous code, so they are safe.
    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            yield browser
            browser.close()
            # The connection the test's ORM calls opened under that loop would otherwise
            # outlive the test and hold on to the test database.
            connections.close_all()
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture
def page(
    chromium: "Browser", live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator["Page"]:
    """A page on the live server; a failing test leaves a screenshot of where it stopped."""
    failure = SCREENSHOTS / f"failed-{request.node.name}.png"
    failure.unlink(missing_ok=True)
    context = chromium.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    if request.node.stash.get(FAILED, False):
        screenshot(page, failure.stem)
    context.close()


@pytest.fixture
def gws() -> Iterator[google_directory.GoogleDirectorySandbox]:
    yield from running_gws()


@pytest.fixture
def idp() -> Iterator[scim.ScimSandbox]:
    yield from running_idp()


@pytest.fixture
def platform(
    browser_db: None, gws: google_directory.GoogleDirectorySandbox, idp: scim.ScimSandbox
) -> Platform:
    """The Sandbox Workspace on example.com, with the SCIM sandbox as its identity provider."""
    return gws_platform(gws, idp)


@pytest.fixture
def admin(browser_db: None) -> User:
    user = make_user("admin")
    set_role(user, "admin", actor=None)
    return user


@pytest.fixture
def viewer(browser_db: None) -> User:
    user = make_user("viewer")
    set_role(user, "viewer", actor=None)
    return user


def wait_for_jobs(identity: Identity, status: str, worker: Worker, *, count: int) -> None:
    process = worker.start()
    jobs = Job.objects.filter(subject_id=str(identity.pk), status=status)
    wait_for(lambda: jobs.count() == count, JOB_WAIT_MS / 1000, f"{identity} {status}", process)


@pytest.fixture
def provisioned(platform: Platform, worker: Worker) -> Identity:
    """Grace Hopper, provisioned by the worker: a completed job of each Google Workspace kind.
    Ask for it before failed_job, whose fault would fail it too."""
    identity = create_identity(
        IdentityInput(
            identity_type=IdentityType.HUMAN_INTERACTIVE,
            platform=platform,
            display_name="Grace Hopper",
            login="grace@example.com",
            given_name="Grace",
            family_name="Hopper",
            org_unit_path="/Engineering",
        ),
        actor=None,
    )
    wait_for_jobs(identity, JobStatus.COMPLETED, worker, count=2)
    return identity


@pytest.fixture
def failed_job(
    platform: Platform, gws: google_directory.GoogleDirectorySandbox, worker: Worker
) -> Job:
    """The create_domain_user job of a managed shared credential, failed for good: Google
    answers users.insert with 403 until the test clears the fault."""
    gws.faults.add("users.insert", status=403, reason="forbidden", message=FORBIDDEN, times=None)
    identity = create_identity(
        IdentityInput(
            identity_type=IdentityType.SHARED_CREDENTIAL_MANAGED,
            platform=platform,
            display_name="Ops shared",
            login="ops-shared@example.com",
            given_name="Ops",
            family_name="Shared",
        ),
        actor=None,
    )
    wait_for_jobs(identity, JobStatus.FAILED, worker, count=1)
    return Job.objects.get(subject_id=str(identity.pk), job_type=JobType.CREATE_DOMAIN_USER)


@pytest.fixture
def shared_credential(platform: Platform) -> Identity:
    """An external shared credential: its page carries the access-session panel."""
    return create_identity(
        IdentityInput(
            identity_type=IdentityType.SHARED_CREDENTIAL_EXTERNAL,
            platform=platform,
            display_name="Ops bot",
            login="ops-bot",
            secret={"username": "ops-bot", "password": SECRET},
        ),
        actor=None,
    )
