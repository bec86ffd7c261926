"""Server time of Settings > Jobs with 1,000,000 jobs in PostgreSQL, beside the raw SQL it needs.

Loads the jobs with one INSERT ... SELECT generate_series, sets the per-status counters to
match, then times pages through Django's test client and the same SELECT through a plain
psycopg cursor, interleaved. Run: .venv/bin/python bench/bench_dashboard.py [--rows N]
"""

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import support

if TYPE_CHECKING:
    from django.test import Client

    from jobs.queries import JobFilters

Raw = psycopg.Connection[tuple[Any, ...]]

# Job types with a plausible share each (percent), and how the newest rows differ from the
# old ones: only they can still be pending, running or retrying.
TYPE_MIX = [
    ("provision_sso_user", 20),
    ("create_domain_user", 15),
    ("directory_sync", 15),
    ("audit_ingestion", 15),
    ("jml_automation", 12),
    ("credential_rotation", 8),
    ("asset_discovery", 7),
    ("remediation", 5),
    ("bulk_import", 3),
]
ACTIVE_TAIL = 2000
DEEP = 10_000

LOAD_SQL = """
INSERT INTO jobs_job (
    job_type, status, subject_id, subject_label, trigger, trigger_label, params, result,
    error_class, error_message, error_traceback, created_at, started_at, completed_at,
    next_attempt_at, celery_task_id, retries, attempt_count, attempt_started_at, dispatched_at
)
SELECT
    job_type, status, subject_id, subject_label, trigger, trigger_label, params,
    CASE WHEN status = 'completed' THEN '{"changed": 1}'::jsonb END,
    CASE WHEN failed THEN 'connectors.errors.TransientError' ELSE '' END,
    CASE WHEN failed THEN 'Google Workspace answered 503 Service Unavailable' ELSE '' END,
    CASE WHEN failed THEN repeat('  File "connectors/google_workspace.py", line 88, in request
    raise TransientError(message)
', 12) ELSE '' END,
    created_at,
    CASE WHEN status <> 'pending' THEN created_at + interval '1 second' END,
    CASE WHEN status IN ('completed', 'failed')
        THEN created_at + interval '1 second' + r3 * interval '20 seconds' END,
    CASE WHEN status = 'retrying' THEN created_at + interval '40 seconds' END,
    md5(i::text)::uuid,
    CASE WHEN status = 'failed' THEN 5 WHEN status = 'retrying' THEN 1 ELSE 0 END,
    CASE WHEN status = 'pending' THEN 0 WHEN status = 'failed' THEN 6
        WHEN status = 'retrying' THEN 2 ELSE 1 END,
    CASE WHEN status <> 'pending' THEN created_at + interval '1 second' END,
    created_at
FROM (
    SELECT i, r3, status, status = 'failed' AS failed,
        CASE __TYPE_CASE__ END AS job_type,
        (i % 50000)::text AS subject_id,
        'user' || (i % 50000) || '@example.com' AS subject_label,
        CASE WHEN r2 < 0.4 THEN 'schedule' WHEN r2 < 0.7 THEN 'event'
            WHEN r2 < 0.95 THEN 'user' ELSE 'system' END AS trigger,
        CASE WHEN r2 >= 0.7 AND r2 < 0.95 THEN 'admin' || (i % 7) ELSE '' END AS trigger_label,
        jsonb_build_object('source', 'bench', 'n', i) AS params,
        now() - (__ROWS__ - i) * interval '30 seconds' AS created_at
    FROM (
        SELECT i, r1, r2, r3,
            CASE
                WHEN i <= __ROWS__ - __TAIL__ THEN
                    CASE WHEN r3 < 0.06 THEN 'failed' ELSE 'completed' END
                WHEN r3 < 0.05 THEN 'pending'
                WHEN r3 < 0.08 THEN 'running'
                WHEN r3 < 0.10 THEN 'retrying'
                WHEN r3 < 0.15 THEN 'failed'
                ELSE 'completed'
            END AS status
        FROM (
            SELECT i, random() AS r1, random() AS r2, random() AS r3
            FROM generate_series(1, __ROWS__) AS i
        ) AS draws
    ) AS statuses
) AS rows
"""


def type_case() -> str:
    """CASE branches picking a type from r1 with the TYPE_MIX shares."""
    branches, upto = [], 0
    for job_type, share in TYPE_MIX:
        upto += share
        branches.append(f"WHEN r1 < {upto / 100} THEN '{job_type}'")
    return " ".join(branches[:-1]) + f" ELSE '{TYPE_MIX[-1][0]}'"


def load_jobs(rows: int) -> float:
    """Insert ``rows`` jobs and set the counters to match; returns the seconds it took."""
    from django.db import connection, transaction

    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        # No parameters, so the % of the modulo needs no escaping; every value is ours.
        sql = LOAD_SQL.replace("__TYPE_CASE__", type_case())
        cursor.execute(
            sql.replace("__ROWS__", str(int(rows))).replace("__TAIL__", str(ACTIVE_TAIL))
        )
        cursor.execute("UPDATE jobs_jobstatuscount SET count = 0")
        cursor.execute(
            """
            INSERT INTO jobs_jobstatuscount (job_type, status, count)
            SELECT job_type, status, count(*) FROM jobs_job GROUP BY job_type, status
            ON CONFLICT (job_type, status) DO UPDATE SET count = EXCLUDED.count
            """
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) jobs_job")
        cursor.execute("ANALYZE jobs_jobstatuscount")
    return time.perf_counter() - start


@dataclass
class Page:
    name: str
    url: str
    headers: dict[str, str]
    before: int | None = None
    sql: str = ""
    queries: int = 0
    query_tables: str = ""
    plan: str = ""
    view_ms: list[float] = field(default_factory=list)
    orm_ms: list[float] = field(default_factory=list)
    raw_ms: list[float] = field(default_factory=list)

    def filters(self) -> "JobFilters":
        from django.http import QueryDict

        from jobs import queries

        return queries.parse_filters(QueryDict(self.url.partition("?")[2]))


def prepare(page: Page, client: "Client", raw: Raw) -> None:
    """Count the page's queries, find its jobs SELECT and explain that."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = client.get(page.url, headers=page.headers)
    assert response.status_code == 200, (page.url, response.status_code)
    page.queries = len(captured.captured_queries)
    page.query_tables = ", ".join(
        query["sql"].partition(" FROM ")[2].split(" ", 1)[0].strip('"')
        for query in captured.captured_queries
    )
    selects = [q["sql"] for q in captured.captured_queries if 'FROM "jobs_job"' in q["sql"]]
    assert len(selects) == 1, selects
    page.sql = selects[0]
    plan = [str(row[0]) for row in raw_rows(raw, f"EXPLAIN (ANALYZE, BUFFERS) {page.sql}")]
    scans = [line.strip() for line in plan if "Scan" in line]
    execution = [line.strip() for line in plan if line.startswith("Execution Time")]
    page.plan = " | ".join(scans[:1] + execution)


def raw_rows(raw: Raw, sql: str) -> list[tuple[Any, ...]]:
    """The bare tool: the statement Django sent, through a plain psycopg cursor."""
    with raw.cursor() as cursor:
        cursor.execute(sql.encode())
        return cursor.fetchall()


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def measure(page: Page, client: "Client", raw: Raw, *, keep: bool) -> None:
    """One view request, one list_jobs() call and one raw SELECT, back to back."""
    from jobs import queries

    filters = page.filters()

    def view() -> None:
        response = client.get(page.url, headers=page.headers)
        assert response.status_code == 200

    samples = (
        timed(view),
        timed(lambda: queries.list_jobs(filters, before=page.before)),
        timed(lambda: raw_rows(raw, page.sql)),
    )
    if keep:
        page.view_ms.append(samples[0])
        page.orm_ms.append(samples[1])
        page.raw_ms.append(samples[2])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="jobs to load (default 1M)")
    parser.add_argument("--runs", type=int, default=30, help="timed requests per page")
    args = parser.parse_args()
    support.require_services(redis=False)

    db_name = f"ah_bench_dash_{os.getpid()}"
    print(f"machine: {support.machine_summary()}")
    started = time.monotonic()
    with support.django_on_fresh_database(db_name):
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client

        load_seconds = load_jobs(args.rows)
        print(f"loaded {args.rows:,} jobs in {load_seconds:.0f} s, counters set, VACUUM ANALYZE")
        with connection.cursor() as cursor:
            depth = min(DEEP, args.rows // 2)  # a small --rows run has no row 10,000 deep
            cursor.execute(
                "SELECT id FROM jobs_job ORDER BY id DESC OFFSET %s LIMIT 1", [depth - 1]
            )
            deep_id = int(cursor.fetchone()[0])

        user = get_user_model().objects.create_superuser("bench", "bench@example.com", None)
        client = Client()
        client.force_login(user)
        pages = [
            Page("first page", "/settings/jobs/", {}),
            Page("first page, htmx refresh", "/settings/jobs/", {"HX-Request": "true"}),
            Page("type+status filter", "/settings/jobs/?type=directory_sync&status=failed", {}),
            Page(f"{depth:,} rows deep", f"/settings/jobs/?before={deep_id}", {}, deep_id),
        ]
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as raw:
            for page in pages:
                prepare(page, client, raw)
            for run in range(3 + args.runs):  # three warm-up rounds, not kept
                for page in pages:
                    measure(page, client, raw, keep=run >= 3)
    report(pages, args.runs)
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


def report(pages: list[Page], runs: int) -> None:
    print(
        f"\n{runs} timed runs per page after 3 warm-up rounds; each run a view request, "
        "list_jobs() alone and the raw SELECT, back to back; ms"
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
    headers = ["page", "view med", "view p95", "queries", "list_jobs() med", "raw SELECT med"]
    support.print_table([*headers, "raw p95", "view/raw"], rows)
    print(f"\nthe queries of a page, by table: {pages[0].query_tables}")
    print("EXPLAIN ANALYZE of each page's jobs SELECT:")
    for page in pages:
        print(f"  {page.name}: {page.plan}")


if __name__ == "__main__":
    sys.exit(main())
