"""Server time of Settings > Audit trail with 1,000,000 entries, beside the raw SQL it needs,
and what a role costs a page against a superuser.

Loads the entries with one INSERT ... SELECT generate_series (50 actors, every action of
trail.actions, their target types, web/api/sso/command/system, 200 addresses, a year of
time increasing with the id), then times pages through Django's test client signed in as a
user with the viewer role, beside list_entries() alone and the page's SELECT through a plain
psycopg cursor, interleaved. Then loads 10,000 jobs (bench_dashboard's loader) and times
Settings > Jobs and the trail's first page for a superuser and for the viewer, interleaved.
Run: .venv/bin/python bench/bench_trail.py [--rows N] [--runs N] [--jobs N]
"""

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import bench_dashboard, support

if TYPE_CHECKING:
    from django.test import Client

Raw = psycopg.Connection[tuple[Any, ...]]

# The first ones do the most (actor n has a share of sqrt((n+1)/50) - sqrt(n/50)). The first,
# the busiest, left half a year ago: a filter on them finds many rows, all old.
ACTORS = [f"admin{n:02d}" for n in range(50)]
# Every action with a plausible weight, the kind of thing it is about (as record() stores
# it), how many such things there are, the label ("#" is the id) and a typical detail.
ACTION_MIX: list[tuple[str, int, str, int, str, str]] = [
    ("user.signed_in", 250, "", 0, "", '{"method": "password"}'),
    ("user.signed_out", 150, "", 0, "", "{}"),
    ("user.sign_in_failed", 40, "", 0, "", "{}"),
    ("user.sign_in_refused", 5, "", 0, "", '{"reason": "no user has this email"}'),
    ("user.role_changed", 3, "auth.user", 50, "admin#", '{"role": "operator"}'),
    ("identity.created", 120, "identities.identity", 20_000, "user#@example.com", "{}"),
    ("import.started", 2, "imports.importbatch", 300, "people-#.csv", '{"rows": 500}'),
    ("platform.created", 1, "identities.platform", 8, "Workspace #", '{"key_stored": true}'),
    ("platform.changed", 3, "identities.platform", 8, "Workspace #", '{"changed": ["name"]}'),
    ("identity_provider.created", 1, "identities.identityprovider", 3, "IdP #", "{}"),
    ("identity_provider.changed", 2, "identities.identityprovider", 3, "IdP #", "{}"),
    ("source.created", 1, "directory.identitysource", 6, "Directory #", "{}"),
    ("source.changed", 3, "directory.identitysource", 6, "Directory #", '{"changed": ["ou"]}'),
    ("jml_rule.changed", 2, "directory.identitysource", 6, "Directory #", '{"dry_run": true}'),
    ("directory.sync_started", 60, "directory.identitysource", 6, "Directory #", '{"job": 7}'),
    ("assets.discovery_started", 20, "identities.platform", 8, "Workspace #", '{"job": 8}'),
    ("audit.ingestion_started", 30, "identities.platform", 8, "Workspace #", '{"job": 9}'),
    ("audit.settings_changed", 2, "identities.platform", 8, "Workspace #", '{"enabled": true}'),
    ("credential.checked_out", 100, "identities.identity", 20_000, "svc-#", '{"reason": "INC"}'),
    ("credential.checked_in", 90, "identities.identity", 20_000, "svc-#", '{"session": 81}'),
    ("credential.revealed", 80, "identities.identity", 20_000, "svc-#", '{"session": 81}'),
    ("credential.rotated_by_hand", 5, "identities.identity", 20_000, "svc-#", "{}"),
    ("policy.created", 1, "policies.policy", 40, "Policy #", '{"mode": "dry_run"}'),
    ("policy.changed", 4, "policies.policy", 40, "Policy #", '{"changed": ["mode"]}'),
    ("violation.approved", 15, "policies.violation", 5_000, "Violation #", '{"job": 10}'),
    ("violation.dismissed", 10, "policies.violation", 5_000, "Violation #", "{}"),
    ("job.retried", 20, "jobs.job", 100_000, "create_domain_user #", "{}"),
    ("job.cancelled", 5, "jobs.job", 100_000, "create_domain_user #", '{"attempt": 3}'),
    ("sso.settings_changed", 1, "sso.samlsettings", 1, "SAML settings", '{"changed": ["x"]}'),
]
# Started by a schedule most of the time, so AccessHive's own doing: no person, no address.
SCHEDULED = ("directory.sync_started", "assets.discovery_started", "audit.ingestion_started")
NOBODY = ("user.sign_in_failed", "user.sign_in_refused")
ADDRESSES = 200
DEEP = 10_000
YEAR_US = 365 * 24 * 3600 * 1_000_000

LOAD_SQL = """
INSERT INTO trail_trailentry (
    occurred_at, actor_id, actor_name, action, target_type, target_id, target_label, detail,
    source, source_ip
)
SELECT
    occurred_at,
    CASE WHEN with_actor THEN (ARRAY[__ACTOR_IDS__])[1 + actor] END,
    CASE WHEN with_actor THEN name ELSE '' END,
    action, target_type, target_id,
    CASE WHEN action IN (__NOBODY__) THEN name
        WHEN target_id = '' THEN '' ELSE replace(label, '#', target_id) END,
    CASE WHEN action = 'user.sign_in_failed' THEN jsonb_build_object('username', name)
        WHEN action = 'user.signed_in' AND source = 'sso' THEN '{"method": "saml"}'::jsonb
        ELSE detail END,
    source,
    CASE WHEN source IN ('system', 'command') THEN NULL
        WHEN ip < 100 THEN ('198.51.100.' || (ip + 1))::inet
        ELSE ('203.0.113.' || (ip - 99))::inet END
FROM (
    SELECT action, target_type, label, detail, source, actor,
        (ARRAY[__ACTOR_NAMES__])[1 + actor] AS name,
        CASE WHEN ids > 0 THEN (1 + (i * 7919) % ids)::text ELSE '' END AS target_id,
        CASE WHEN r4 < 0.9 THEN (actor * 4 + i % 4) % __ADDRESSES__
            ELSE (i * 7919) % __ADDRESSES__ END AS ip,
        source <> 'system' AND action NOT IN (__NOBODY__) AS with_actor,
        now() - (__ROWS__ - i) * interval '__STEP__ microseconds' AS occurred_at
    FROM (
        SELECT i, r4,
            CASE WHEN drawn = 0 AND i > __LEFT_AT__ THEN 1 ELSE drawn END AS actor,
            (ARRAY[__ACTIONS__])[a] AS action,
            (ARRAY[__TARGET_TYPES__])[a] AS target_type,
            (ARRAY[__TARGET_COUNTS__])[a] AS ids,
            (ARRAY[__LABELS__])[a] AS label,
            (ARRAY[__DETAILS__])[a] AS detail,
            CASE
                WHEN a = __REFUSED__ THEN 'sso'
                WHEN a = 1 AND r2 < 0.4 THEN 'sso'
                WHEN a IN (1, 2, 3) THEN 'web'
                WHEN a IN (__SCHEDULED__) AND r2 < 0.6 THEN 'system'
                WHEN r2 < 0.75 THEN 'web'
                WHEN r2 < 0.96 THEN 'api'
                ELSE 'command'
            END AS source
        FROM (
            SELECT i::bigint AS i, r2, r4, floor(50 * r3 * r3)::int AS drawn,
                CASE __ACTION_CASE__ END AS a
            FROM (
                SELECT i, random() AS r1, random() AS r2, random() AS r3, random() AS r4
                FROM generate_series(1, __ROWS__) AS i
            ) AS draws
        ) AS picks
    ) AS chosen
) AS entries
"""


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def texts(values: list[str]) -> str:
    return ", ".join(literal(value) for value in values)


def action_case() -> str:
    """CASE branches picking an action's 1-based index from r1 with the ACTION_MIX weights."""
    total = sum(weight for _, weight, *_ in ACTION_MIX)
    branches, upto = [], 0
    for n, (_, weight, *_) in enumerate(ACTION_MIX[:-1], start=1):
        upto += weight
        branches.append(f"WHEN r1 < {upto / total} THEN {n}")
    return " ".join(branches) + f" ELSE {len(ACTION_MIX)}"


def load_sql(rows: int, actor_ids: list[int]) -> str:
    keys = [key for key, *_ in ACTION_MIX]
    index = {key: n for n, key in enumerate(keys, start=1)}
    assert keys[:3] == ["user.signed_in", "user.signed_out", "user.sign_in_failed"], keys
    replacements = {
        "__ACTOR_IDS__": ", ".join(map(str, actor_ids)),
        "__ACTOR_NAMES__": texts(ACTORS),
        "__NOBODY__": texts(list(NOBODY)),
        "__ADDRESSES__": str(ADDRESSES),
        "__ROWS__": str(int(rows)),
        "__LEFT_AT__": str(int(rows) // 2),
        "__STEP__": str(YEAR_US // rows),
        "__ACTIONS__": texts(keys),
        "__TARGET_TYPES__": texts([target_type for _, _, target_type, *_ in ACTION_MIX]),
        "__TARGET_COUNTS__": ", ".join(str(ids) for *_, ids, _, _ in ACTION_MIX),
        "__LABELS__": texts([label for *_, label, _ in ACTION_MIX]),
        "__DETAILS__": ", ".join(f"{literal(detail)}::jsonb" for *_, detail in ACTION_MIX),
        "__REFUSED__": str(index["user.sign_in_refused"]),
        "__SCHEDULED__": ", ".join(str(index[key]) for key in SCHEDULED),
        "__ACTION_CASE__": action_case(),
    }
    sql = LOAD_SQL
    for placeholder, value in replacements.items():
        sql = sql.replace(placeholder, value)
    return sql


def load_entries(rows: int) -> float:
    """The 50 actors and ``rows`` trail entries; returns the seconds it took."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from trail.actions import ACTIONS

    assert [key for key, *_ in ACTION_MIX] == list(ACTIONS), "ACTION_MIX is not trail.actions"
    user_model = get_user_model()
    actors = user_model.objects.bulk_create(user_model(username=name) for name in ACTORS)
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        # No parameters, so the % of the modulo needs no escaping; every value is ours.
        cursor.execute(load_sql(rows, [int(actor.pk) for actor in actors]))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) trail_trailentry")
    return time.perf_counter() - start


@dataclass
class Page:
    name: str
    url: str
    matching: int = 0
    sql: str = ""
    queries: int = 0
    query_tables: str = ""
    plan: str = ""
    view_ms: list[float] = field(default_factory=list)
    orm_ms: list[float] = field(default_factory=list)
    raw_ms: list[float] = field(default_factory=list)


def raw_rows(raw: Raw, sql: str) -> list[tuple[Any, ...]]:
    """The bare tool: the statement Django sent, through a plain psycopg cursor."""
    with raw.cursor() as cursor:
        cursor.execute(sql.encode())
        return cursor.fetchall()


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def capture(page: Page, client: "Client") -> list[str]:
    """Request the page once, keep its query count and tables; returns the statements."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = client.get(page.url)
    assert response.status_code == 200, (page.url, response.status_code)
    sqls = [query["sql"] for query in captured.captured_queries]
    assert not any("COUNT(" in sql.upper() for sql in sqls), sqls
    page.queries = len(sqls)
    page.query_tables = ", ".join(
        sql.partition(" FROM ")[2].split(" ", 1)[0].strip('"') for sql in sqls
    )
    return sqls


def prepare(page: Page, client: "Client", raw: Raw) -> None:
    """Count the page's queries and matching rows, find its trail SELECT and explain that."""
    from django.http import QueryDict

    from trail import queries

    sqls = capture(page, client)
    (page.sql,) = [sql for sql in sqls if 'FROM "trail_trailentry"' in sql]
    page.matching = queries.filtered_entries(
        queries.parse_filters(QueryDict(page.url.partition("?")[2]))
    ).count()
    plan = [str(row[0]) for row in raw_rows(raw, f"EXPLAIN (ANALYZE, BUFFERS) {page.sql}")]
    scans = [line.strip() for line in plan if "Scan" in line]
    execution = [line.strip() for line in plan if line.startswith("Execution Time")]
    page.plan = " | ".join(scans[:1] + execution)


def measure(page: Page, client: "Client", raw: Raw, *, keep: bool) -> None:
    """One view request, one list_entries() call and one raw SELECT, back to back."""
    from django.http import QueryDict

    from trail import queries

    params = QueryDict(page.url.partition("?")[2])
    filters, before = queries.parse_filters(params), queries.parse_before(params)

    def view() -> None:
        assert client.get(page.url).status_code == 200

    samples = (
        timed(view),
        timed(lambda: queries.list_entries(filters, before=before)),
        timed(lambda: raw_rows(raw, page.sql)),
    )
    if keep:
        page.view_ms.append(samples[0])
        page.orm_ms.append(samples[1])
        page.raw_ms.append(samples[2])


def signed_in(user: Any) -> "Client":
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def part_trail(rows: int, runs: int) -> tuple[list[Page], Any, Any]:
    """Load the trail, time its pages as the viewer; returns the pages, superuser, viewer."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from accounts.services import set_role

    load_seconds = load_entries(rows)
    print(f"loaded {rows:,} trail entries in {load_seconds:.0f} s, VACUUM ANALYZE")
    depth = min(DEEP, rows // 2)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM trail_trailentry ORDER BY id DESC OFFSET %s LIMIT 1", [depth - 1]
        )
        deep_id = int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT action, count(*) FROM trail_trailentry GROUP BY action ORDER BY 2 DESC"
        )
        mix = cursor.fetchall()
    print("actions: " + ", ".join(f"{action} {count:,}" for action, count in mix))

    user_model = get_user_model()
    superuser = user_model.objects.create_superuser("bench", "bench@example.com", None)
    viewer = user_model.objects.create_user("bench-viewer")
    set_role(viewer, "viewer", actor=None)
    client = signed_in(viewer)
    day = (dt.date.today() - dt.timedelta(days=180)).isoformat()
    month = (dt.date.today() - dt.timedelta(days=210)).isoformat()
    pages = [
        Page("first page", "/settings/audit-trail/"),
        Page("actor", f"/settings/audit-trail/?actor={ACTORS[7]}"),
        Page("actor who left 6 months ago", f"/settings/audit-trail/?actor={ACTORS[0]}"),
        Page("action", "/settings/audit-trail/?action=credential.revealed"),
        Page("rare action", "/settings/audit-trail/?action=sso.settings_changed"),
        Page("target type", "/settings/audit-trail/?target=identities.platform"),
        Page("target type:id", "/settings/audit-trail/?target=identities.identity:4242"),
        Page("source", "/settings/audit-trail/?source=api"),
        Page("ip", "/settings/audit-trail/?ip=203.0.113.77"),
        Page("since+until, one day", f"/settings/audit-trail/?since={day}&until={day}"),
        Page("since+until, 30 days", f"/settings/audit-trail/?since={month}&until={day}"),
        Page(f"{depth:,} rows deep", f"/settings/audit-trail/?before={deep_id}"),
    ]
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as raw:
        for page in pages:
            prepare(page, client, raw)
        for run in range(3 + runs):  # three warm-up rounds, not kept
            for page in pages:
                measure(page, client, raw, keep=run >= 3)
    return pages, superuser, viewer


def part_roles(jobs: int, runs: int, superuser: Any, viewer: Any) -> list[tuple[Page, Page]]:
    """Settings > Jobs and the trail's first page, a superuser's request beside the viewer's."""
    load_seconds = bench_dashboard.load_jobs(jobs)
    print(f"loaded {jobs:,} jobs in {load_seconds:.1f} s")
    clients = (signed_in(superuser), signed_in(viewer))
    pairs = [
        (Page(f"{name}, superuser", url), Page(f"{name}, viewer", url))
        for name, url in [
            ("Settings > Jobs", "/settings/jobs/"),
            ("Audit trail", "/settings/audit-trail/"),
        ]
    ]
    requests = [
        (page, client) for pair in pairs for page, client in zip(pair, clients, strict=True)
    ]
    for page, client in requests:
        capture(page, client)
    for run in range(3 + runs):  # three warm-up rounds, not kept
        for page, client in requests:
            start = time.perf_counter()
            assert client.get(page.url).status_code == 200
            if run >= 3:
                page.view_ms.append((time.perf_counter() - start) * 1000)
    return pairs


def report_trail(pages: list[Page], runs: int) -> None:
    print(
        f"\nAudit trail as a viewer: {runs} timed runs per page after 3 warm-up rounds; each "
        "run a view request, list_entries() alone and the raw SELECT, back to back; ms"
    )
    rows = [
        [
            page.name,
            f"{page.matching:,}",
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
    headers = ["page", "rows matching", "view med", "view p95", "queries"]
    support.print_table(
        [*headers, "list_entries() med", "raw SELECT med", "raw p95", "view/raw"], rows
    )
    print(f"\nthe queries of a page, by table: {pages[0].query_tables}")
    print("EXPLAIN ANALYZE of each page's trail SELECT:")
    for page in pages:
        print(f"  {page.name}: {page.plan}")


def report_roles(pairs: list[tuple[Page, Page]], runs: int) -> None:
    print(f"\nA superuser's request beside the viewer's, {runs} timed runs each; ms")
    rows = []
    for superuser, viewer in pairs:
        for page in (superuser, viewer):
            rows.append(
                [
                    page.name,
                    f"{support.median(page.view_ms):.1f}",
                    f"{support.p95(page.view_ms):.1f}",
                    str(page.queries),
                    f"{support.median(page.view_ms) / support.median(superuser.view_ms):.2f}",
                ]
            )
    support.print_table(["page", "view med", "view p95", "queries", "vs superuser"], rows)
    for superuser, viewer in pairs:
        print(f"  {superuser.name}: {superuser.query_tables}")
        print(f"  {viewer.name}: {viewer.query_tables}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="trail entries (1M)")
    parser.add_argument("--runs", type=int, default=30, help="timed requests per page")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs for the role part")
    args = parser.parse_args()
    support.require_services(redis=False)

    db_name = f"ah_bench_trail_{os.getpid()}"
    print(f"machine: {support.machine_summary()}")
    started = time.monotonic()
    with support.django_on_fresh_database(db_name):
        pages, superuser, viewer = part_trail(args.rows, args.runs)
        pairs = part_roles(args.jobs, args.runs, superuser, viewer)
    report_trail(pages, args.runs)
    report_roles(pairs, args.runs)
    total = time.monotonic() - started
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end; total {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
