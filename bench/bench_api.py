"""Jobs API list and detail latency, hand-written views (before) against django-ninja (after).

One run, one database of N jobs (bench_dashboard's loader): the old jobs/api.py is read from
git at the commit before the move (BEFORE_COMMIT) and imported beside the new API; each timed
round calls the old view and the new one (alternating which goes first) for the same request,
plus the bare SELECT of the page through psycopg.
Run: .venv/bin/python bench/bench_api.py [--rows N] [--runs N]
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import support
from bench.bench_dashboard import load_jobs, raw_rows, timed

# The last commit with the hand-written API (web.inputs landed; the move had not).
BEFORE_COMMIT = "45976f9"


def legacy_jobs_api() -> types.ModuleType:
    """jobs/api.py as it was at BEFORE_COMMIT, as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE_COMMIT}:jobs/api.py"],
        cwd=support.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="bench-api-")) / "legacy_jobs_api.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("legacy_jobs_api", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call(view: Callable[..., Any], request: Any, kwargs: dict[str, Any]) -> Any:
    return view(request, **kwargs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="jobs to load (default 1M)")
    parser.add_argument("--runs", type=int, default=40, help="timed rounds per request")
    args = parser.parse_args()
    support.require_services(redis=False)

    db_name = f"ah_bench_api_{os.getpid()}"
    print(f"machine: {support.machine_summary()}")
    with support.django_on_fresh_database(db_name):
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import RequestFactory
        from django.test.utils import CaptureQueriesContext

        from web.api.main import _PATTERNS

        print(f"loaded {args.rows:,} jobs in {load_jobs(args.rows):.0f} s")
        legacy = legacy_jobs_api()
        user = get_user_model().objects.create_superuser("bench", "bench@example.com", None)
        with connection.cursor() as cursor:
            cursor.execute("SELECT max(id) FROM jobs_job WHERE status = 'failed'")
            failed_id = int(cursor.fetchone()[0])
        factory = RequestFactory()

        def request(path: str) -> Any:
            made = factory.get(path, headers={"Authorization": "Bearer bench"})
            made.user = user
            return made

        new_list, new_detail = _PATTERNS["jobs/"].callback, _PATTERNS["jobs/<int:job_id>/"].callback
        cases: list[tuple[str, str, Callable[[Any], Any], Callable[[Any], Any], dict[str, Any]]] = [
            ("list, first page", "/api/v1/jobs/", legacy.job_list, new_list, {}),
            (
                "list, type+status",
                "/api/v1/jobs/?type=directory_sync&status=failed",
                legacy.job_list,
                new_list,
                {},
            ),
            (
                "detail, failed job",
                f"/api/v1/jobs/{failed_id}/",
                legacy.job_detail,
                new_detail,
                {"job_id": failed_id},
            ),
        ]
        samples: dict[str, dict[str, list[float]]] = {
            name: {"before": [], "after": [], "raw": []} for name, *_ in cases
        }
        sql: dict[str, str] = {}
        for name, path, old, new, kwargs in cases:
            old_body = old(request(path), **kwargs).content
            with CaptureQueriesContext(connection) as captured:
                new_response = new(request(path), **kwargs)
            assert new_response.status_code == 200, new_response.content[:300]
            assert len(old_body) > 100
            sql[name] = next(q["sql"] for q in captured.captured_queries if "jobs_job" in q["sql"])
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as raw:
            for run in range(3 + args.runs):
                for name, path, old, new, kwargs in cases:
                    # Alternate which goes first, so neither always meets a warmer cache.
                    first, second = (old, new) if run % 2 == 0 else (new, old)
                    one = timed(partial(call, first, request(path), kwargs))
                    two = timed(partial(call, second, request(path), kwargs))
                    times = (
                        one if first is old else two,
                        two if first is old else one,
                        timed(partial(raw_rows, raw, sql[name])),
                    )
                    if run >= 3:
                        for key, value in zip(("before", "after", "raw"), times, strict=True):
                            samples[name][key].append(value)

    print(f"\n{args.runs} timed rounds after 3 warm-ups; old view, new view, bare SELECT; ms")
    rows = []
    for name, *_ in cases:
        before, after, bare = (support.median(samples[name][k]) for k in ("before", "after", "raw"))
        rows.append(
            [
                name,
                f"{before:.2f}",
                f"{after:.2f}",
                f"{support.p95(samples[name]['after']):.2f}",
                f"{bare:.2f}",
                f"{after / before:.2f}",
            ]
        )
    support.print_table(
        ["request", "before med", "after med", "after p95", "bare SELECT med", "after/before"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
