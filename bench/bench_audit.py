"""Audit ingestion of 1,000,000 activities from the sandbox, and /audit/ with 1,000,000 events
stored, each beside the bare tool measured in the same run.

Part 1. The sandbox's Reports API runs in this process (threads), seeded in-process with
--events activities over the last 23 hours (login 45%, token 45%, admin 10%; 15% of admin
activities hold two events). One audit_ingestion job then runs in a child process through the
engine's runner, as a worker would run it (no Celery; its run budget lifted so one run reads
all 25 one-hour windows; no rate-limit pacing). Its wall time and peak RSS (getrusage in the
child) are measured. Beside it: a child that pages the same windows through
google-api-python-client with no database at all, and PostgreSQL's COPY of the very rows
ingestion stored, back into the same table with the same indexes.

Part 2. The table is emptied and --rows events over 30 days on three platforms are loaded with
one INSERT ... SELECT generate_series. Audit log pages are timed through Django's test client
beside list_events() alone and the page's SELECT through a plain psycopg cursor.

Run: .venv/bin/python bench/bench_audit.py [--events N] [--rows N] [--runs N]
"""

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import support

Raw = psycopg.Connection[tuple[Any, ...]]
REPORTS_SCOPE = "https://www.googleapis.com/auth/admin.reports.audit.readonly"
APPLICATIONS = ("admin", "login", "token")
LOOKBACK_HOURS = 24
WINDOW_MINUTES = 60
OVERLAP_MINUTES = 10


def memory_mib(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, from /proc.

    Not getrusage's ru_maxrss: Linux carries it across exec, so a child would report the
    size of the parent it was forked from (here, the sandbox holding a million activities).
    VmHWM belongs to the process image and starts afresh at exec.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


# --- children -------------------------------------------------------------------------------


def child_ingest(job_id: int) -> dict[str, Any]:
    import django

    django.setup()
    from jobs import runner
    from jobs.models import Job

    job = Job.objects.get(pk=job_id)
    before = memory_mib("VmRSS")
    started = time.perf_counter()
    runner.execute(
        job_id, task_id=str(job.celery_task_id), retries=0, max_retries=0, worker="bench"
    )
    wall = time.perf_counter() - started
    job.refresh_from_db()
    return {
        "wall": wall,
        "rss_before": before,
        "rss_peak": memory_mib("VmHWM"),
        "status": job.status,
        "error": job.error_message,
        "result": job.result,
    }


def child_client(key_file: str, base_url: str, start: str, end: str) -> dict[str, Any]:
    """The bare tool: google-api-python-client paging activities.list, counting the items."""
    import google_auth_httplib2
    import httplib2
    from google.oauth2 import service_account
    from googleapiclient.discovery import build

    key = json.loads(Path(key_file).read_text())
    from_info = service_account.Credentials.from_service_account_info
    credentials = from_info(key, scopes=[REPORTS_SCOPE])  # type: ignore[no-untyped-call]
    http = google_auth_httplib2.AuthorizedHttp(
        credentials.with_subject("admin@example.com"), http=httplib2.Http(timeout=60)
    )
    activities = build(
        "admin",
        "reports_v1",
        http=http,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": base_url},
    ).activities()
    before = memory_mib("VmRSS")
    started = time.perf_counter()
    items = pages = 0
    window_start = dt.datetime.fromisoformat(start)
    window_end = dt.datetime.fromisoformat(end)
    for application in APPLICATIONS:
        at = window_start
        while at < window_end:
            upto = min(at + dt.timedelta(minutes=WINDOW_MINUTES), window_end)
            request = activities.list(
                userKey="all",
                applicationName=application,
                startTime=at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                endTime=upto.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                maxResults=1000,
            )
            while request is not None:
                response = request.execute()
                items += len(response.get("items") or [])
                pages += 1
                request = activities.list_next(request, response)
            at = upto
    return {
        "wall": time.perf_counter() - started,
        "rss_before": before,
        "rss_peak": memory_mib("VmHWM"),
        "items": items,
        "pages": pages,
    }


def run_child(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"child {args[0]} failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- part 1: ingestion ----------------------------------------------------------------------


def copy_same_rows(database_url: str) -> tuple[float, int]:
    """Dump the stored events, empty the table, and time COPY putting them back."""
    with psycopg.connect(database_url, autocommit=True) as raw, tempfile.TemporaryFile() as dump:
        with raw.cursor().copy("COPY audit_auditevent TO STDOUT (FORMAT binary)") as copy:
            for chunk in copy:
                dump.write(chunk)
        raw.execute("TRUNCATE audit_auditevent")
        dump.seek(0)
        started = time.perf_counter()
        with raw.cursor().copy("COPY audit_auditevent FROM STDIN (FORMAT binary)") as copy:
            while chunk := dump.read(1 << 20):
                copy.write(chunk)
        wall = time.perf_counter() - started
        row = raw.execute("SELECT count(*) FROM audit_auditevent").fetchone()
    return wall, int(row[0]) if row else 0


def part_ingest(events: int, env: dict[str, str]) -> dict[str, Any]:
    from django.utils import timezone

    from audit import services
    from identities.services import create_platform
    from sandbox import google_directory

    sandbox = google_directory.start(["example.com"])
    try:
        now = timezone.now()
        started = time.perf_counter()
        sandbox.reports.log.generate(
            events,
            applications=APPLICATIONS,
            start=now - dt.timedelta(hours=LOOKBACK_HOURS - 1),
            end=now - dt.timedelta(minutes=1),
        )
        seeded = time.perf_counter() - started
        print(f"sandbox seeded with {events:,} activities in {seeded:.1f} s")
        key = sandbox.issue_key()
        platform = create_platform(
            name="Bench Workspace",
            kind="google_workspace",
            primary_domain="example.com",
            admin_email="admin@example.com",
            api_endpoint=sandbox.base_url,
            service_account_key=key,
        )
        job, _ = services.ingest_now(platform, actor=None)
        ingest = run_child(env, "ingest", str(job.pk))
        if ingest["status"] != "completed":
            sys.exit(f"ingestion failed: {ingest['error']}")
        apps = ingest["result"]["applications"]
        read = sum(app["read"] for app in apps.values())
        stored = sum(app["stored"] for app in apps.values())
        pages = sum(app["pages"] for app in apps.values())
        print(
            f"ingested in {ingest['wall']:.1f} s: {read:,} activities read, {stored:,} events "
            f"stored, {pages:,} pages, peak RSS {ingest['rss_peak']:.0f} MiB"
        )
        # Windows share their boundary instant, so an activity right on it is read twice
        # (and stored once).
        if read < events:
            sys.exit(f"ingestion read {read:,} activities of {events:,}")

        with tempfile.NamedTemporaryFile("w", suffix=".json") as key_file:
            os.chmod(key_file.name, 0o600)
            json.dump(key, key_file)
            key_file.flush()
            start = now - dt.timedelta(hours=LOOKBACK_HOURS, minutes=OVERLAP_MINUTES)
            client = run_child(
                env,
                "client",
                key_file.name,
                sandbox.base_url,
                start.isoformat(),
                timezone.now().isoformat(),
            )
        print(f"bare client: {client['items']:,} activities in {client['wall']:.1f} s")
        if client["items"] < events:
            sys.exit(f"the bare client read {client['items']:,} activities of {events:,}")
        copy_wall, copied = copy_same_rows(env["DATABASE_URL"])
        if copied != stored:
            sys.exit(f"COPY put back {copied:,} rows of {stored:,}")
    finally:
        sandbox.shutdown()
    return {
        "events": events,
        "read": read,
        "rows": stored,
        "pages": pages,
        "ingest": ingest,
        "client": client,
        "copy_wall": copy_wall,
    }


def report_ingest(figures: dict[str, Any]) -> None:
    ingest, client, copy_wall = figures["ingest"], figures["client"], figures["copy_wall"]
    events, rows = figures["events"], figures["rows"]
    print(
        f"\nPart 1: ingest {events:,} activities ({rows:,} event rows, {figures['pages']:,} "
        "pages of up to 1,000); wall time; resident memory of the process doing it (VmHWM "
        "at its peak, and that minus VmRSS just before the run)"
    )
    table = [
        [
            "audit_ingestion job (child process)",
            f"{ingest['wall']:.1f}",
            f"{events / ingest['wall']:,.0f}",
            f"{ingest['rss_peak']:.0f}",
            f"{ingest['rss_peak'] - ingest['rss_before']:.0f}",
            "1.00",
        ],
        [
            "bare client paging, no DB (child)",
            f"{client['wall']:.1f}",
            f"{events / client['wall']:,.0f}",
            f"{client['rss_peak']:.0f}",
            f"{client['rss_peak'] - client['rss_before']:.0f}",
            f"{client['wall'] / ingest['wall']:.2f}",
        ],
        [
            "COPY of the same rows (PostgreSQL)",
            f"{copy_wall:.1f}",
            f"{events / copy_wall:,.0f}",
            "-",
            "-",
            f"{copy_wall / ingest['wall']:.2f}",
        ],
    ]
    support.print_table(
        ["", "wall s", "activities/s", "peak RSS MiB", "peak - before", "share of job"], table
    )
    remainder = ingest["wall"] - client["wall"] - copy_wall
    print(
        f"job - client - COPY = {remainder:.1f} s: parsing into dataclasses, model rows, "
        "the duplicate check and bulk_create beyond what COPY costs"
    )


# --- part 2: the audit log with a million events --------------------------------------------

LOAD_SQL = """
INSERT INTO audit_auditevent (
    platform_id, application, occurred_at, unique_qualifier, event_index, event_name,
    event_type, actor_email, actor_profile_id, caller_type, ip_address, parameters, malformed,
    raw, ingested_at
)
SELECT
    (ARRAY[__PLATFORMS__])[1 + i % 3],
    app,
    now() - (__ROWS__ - i) * interval '__STEP__ milliseconds',
    (i::bigint * 7919 - 4611686018427387904)::text,
    0,
    CASE app
        WHEN 'login' THEN CASE WHEN r2 < 0.60 THEN 'login_success'
            WHEN r2 < 0.75 THEN 'login_failure' WHEN r2 < 0.94 THEN 'logout'
            WHEN r2 < 0.99 THEN 'login_challenge' ELSE 'suspicious_login' END
        WHEN 'token' THEN CASE WHEN r2 < 0.55 THEN 'activity' WHEN r2 < 0.93 THEN 'authorize'
            ELSE 'revoke' END
        ELSE CASE WHEN r2 < 0.45 THEN 'CHANGE_PASSWORD' WHEN r2 < 0.65 THEN 'ADD_GROUP_MEMBER'
            WHEN r2 < 0.80 THEN 'SUSPEND_USER' WHEN r2 < 0.92 THEN 'CHANGE_USER_ORGANIZATION'
            ELSE 'ASSIGN_ROLE' END
    END,
    CASE app WHEN 'login' THEN 'login' WHEN 'token' THEN 'auth' ELSE 'USER_SETTINGS' END,
    'user' || lpad((actor)::text, 4, '0') || '@example.com',
    (100000000000000000000 + actor * 7919)::text,
    'USER',
    ('203.0.113.' || (1 + i % 254))::inet,
    jsonb_build_object('login_type', 'google_password', 'client_id', 'app-' || (i % 40),
        'USER_EMAIL', 'user' || lpad((i % 2000)::text, 4, '0') || '@example.com'),
    false,
    NULL,
    now()
FROM (
    SELECT i, r2, (i * 31) % 2000 AS actor,
        CASE WHEN r1 < 0.45 THEN 'login' WHEN r1 < 0.90 THEN 'token' ELSE 'admin' END AS app
    FROM (SELECT i, random() AS r1, random() AS r2 FROM generate_series(1, __ROWS__) AS i) AS d
) AS rows
"""
DEEP = 10_000


def load_events(rows: int) -> tuple[float, list[int]]:
    """Three platforms and ``rows`` events over the last 30 days; returns seconds and ids."""
    from django.db import connection, transaction

    from identities.models import Platform

    platforms = [
        Platform.objects.create(
            name=f"Workspace {n}", kind="google_workspace", primary_domain=f"w{n}.example.com"
        ).pk
        for n in range(3)
    ]
    step_ms = 30 * 24 * 3600 * 1000 // rows
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE audit_auditevent")
        cursor.execute("SELECT setseed(0.42)")
        # No parameters, so the % of the modulo needs no escaping; every value is ours.
        cursor.execute(
            LOAD_SQL.replace("__PLATFORMS__", ", ".join(map(str, platforms)))
            .replace("__ROWS__", str(int(rows)))
            .replace("__STEP__", str(step_ms))
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) audit_auditevent")
    return time.perf_counter() - started, platforms


@dataclass
class Page:
    name: str
    url: str
    sql: str = ""
    queries: int = 0
    plan: str = ""
    view_ms: list[float] = field(default_factory=list)
    orm_ms: list[float] = field(default_factory=list)
    raw_ms: list[float] = field(default_factory=list)


def raw_rows(raw: Raw, sql: str) -> list[tuple[Any, ...]]:
    with raw.cursor() as cursor:
        cursor.execute(sql.encode())
        return cursor.fetchall()


def timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def prepare(page: Page, client: Any, raw: Raw) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = client.get(page.url)
    assert response.status_code == 200, (page.url, response.status_code)
    page.queries = len(captured.captured_queries)
    sqls = [query["sql"] for query in captured.captured_queries]
    assert not any("COUNT(" in sql.upper() for sql in sqls), sqls
    (page.sql,) = [sql for sql in sqls if 'FROM "audit_auditevent"' in sql]
    plan = [str(row[0]) for row in raw_rows(raw, f"EXPLAIN (ANALYZE, BUFFERS) {page.sql}")]
    scans = [line.strip() for line in plan if "Scan" in line]
    execution = [line.strip() for line in plan if line.startswith("Execution Time")]
    page.plan = " | ".join(scans[:1] + execution)


def measure(page: Page, client: Any, raw: Raw, *, keep: bool) -> None:
    from django.http import QueryDict

    from audit import queries

    params = QueryDict(page.url.partition("?")[2])
    filters, before = queries.parse_filters(params), queries.parse_before(params)

    def view() -> None:
        assert client.get(page.url).status_code == 200

    samples = (
        timed(view),
        timed(lambda: queries.list_events(filters, before=before)),
        timed(lambda: raw_rows(raw, page.sql)),
    )
    if keep:
        page.view_ms.append(samples[0])
        page.orm_ms.append(samples[1])
        page.raw_ms.append(samples[2])


def part_pages(rows: int, runs: int) -> list[Page]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from audit.queries import Cursor

    load_seconds, platforms = load_events(rows)
    print(f"\nloaded {rows:,} events via SQL in {load_seconds:.0f} s, VACUUM ANALYZE")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT occurred_at, id FROM audit_auditevent ORDER BY occurred_at DESC, id DESC "
            "OFFSET %s LIMIT 1",
            [min(DEEP, rows // 2) - 1],
        )
        deep_at, deep_id = cursor.fetchone()
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", None)
    client = Client()
    client.force_login(user)
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=12)).strftime("%Y-%m-%dT%H:%M")
    next_day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=11)).strftime("%Y-%m-%dT%H:%M")
    pages = [
        Page("first page", "/audit/"),
        Page("application + event", "/audit/?application=login&event=login_failure"),
        Page("rare event (0.45%)", "/audit/?event=suspicious_login"),
        Page("actor", "/audit/?actor=user0042@example.com"),
        Page(
            "platform + one day",
            f"/audit/?platform={platforms[1]}&since={day}&until={next_day}",
        ),
        Page(f"{min(DEEP, rows // 2):,} rows deep", f"/audit/?before={Cursor(deep_at, deep_id)}"),
    ]
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as raw:
        for page in pages:
            prepare(page, client, raw)
        for run in range(3 + runs):  # three warm-up rounds, not kept
            for page in pages:
                measure(page, client, raw, keep=run >= 3)
    return pages


def report_pages(pages: list[Page], runs: int) -> None:
    print(
        f"\nPart 2: {runs} timed runs per page after 3 warm-up rounds; each run a view "
        "request, list_events() alone and the raw SELECT, back to back; ms"
    )
    rows = [
        [
            page.name,
            f"{support.median(page.view_ms):.1f}",
            f"{support.p95(page.view_ms):.1f}",
            str(page.queries),
            f"{support.median(page.orm_ms):.2f}",
            f"{support.median(page.raw_ms):.2f}",
            f"{support.p95(page.raw_ms):.2f}",
            f"{support.median(page.view_ms) / support.median(page.raw_ms):.0f}",
        ]
        for page in pages
    ]
    headers = ["page", "view med", "view p95", "queries", "list_events() med", "raw SELECT med"]
    support.print_table([*headers, "raw p95", "view/raw"], rows)
    print("EXPLAIN ANALYZE of each page's events SELECT:")
    for page in pages:
        print(f"  {page.name}: {page.plan}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="activities to ingest")
    parser.add_argument("--rows", type=int, default=1_000_000, help="events for the pages")
    parser.add_argument("--runs", type=int, default=30, help="timed requests per page")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, *rest = args.child
        result = child_ingest(int(rest[0])) if mode == "ingest" else child_client(*rest)
        print(json.dumps(result, default=str))
        return 0

    support.require_services(redis=False)
    from vault.crypto import generate_key_line

    os.environ["ACCESSHIVE_VAULT_KEYS"] = generate_key_line("bench")
    # One run reads every window, unpaced: this measures the work, not the schedule.
    os.environ["ACCESSHIVE_AUDIT_RUN_BUDGET_SECONDS"] = "100000"
    os.environ["ACCESSHIVE_AUDIT_INITIAL_LOOKBACK_HOURS"] = str(LOOKBACK_HOURS)
    os.environ["ACCESSHIVE_AUDIT_WINDOW_MINUTES"] = str(WINDOW_MINUTES)
    os.environ["ACCESSHIVE_AUDIT_OVERLAP_MINUTES"] = str(OVERLAP_MINUTES)
    os.environ["ACCESSHIVE_RATE_LIMITS"] = "google_workspace=0"
    os.environ["ACCESSHIVE_JOB_TIMEOUT"] = "100000"
    db_name = f"ah_bench_audit_{os.getpid()}"
    print(f"machine: {support.machine_summary()}")
    started = time.monotonic()
    with support.django_on_fresh_database(db_name) as env:
        # Enqueued jobs are run by the child, not a worker: their messages go nowhere.
        from accesshive.celery import app

        os.environ["CELERY_BROKER_URL"] = env["CELERY_BROKER_URL"] = "memory://"
        app.conf.update(broker_url="memory://")
        figures = part_ingest(args.events, env)
        report_ingest(figures)
        pages = part_pages(args.rows, args.runs)
        report_pages(pages, args.runs)
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
