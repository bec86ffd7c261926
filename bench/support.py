"""What both benchmarks share: a throwaway PostgreSQL database, Django set up on it, figures."""

import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import psycopg

ROOT = Path(__file__).resolve().parents[1]


def server_of(url: str) -> str:
    """scheme://user@host:port of a URL, without its database."""
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}"


# The server the benchmark databases are made on, and the Redis database the benchmarks own
# (the tests use 15 and 14), wiped at the start and the end of a run. Run under
# scripts/services.sh, they follow the servers it found or started.
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL") or server_of(
    os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432")
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL") or (
    server_of(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")) + "/13"
)


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def require_services(*, redis: bool) -> None:
    missing = [f"PostgreSQL at {POSTGRES_URL}"] if not reachable(POSTGRES_URL, 5432) else []
    if redis and not reachable(REDIS_URL, 6379):
        missing.append(f"Redis at {REDIS_URL}")
    if missing:
        sys.exit(f"benchmark needs {' and '.join(missing)} (bash scripts/services.sh starts them)")


def admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True)


@contextmanager
def django_on_fresh_database(db_name: str) -> Iterator[dict[str, str]]:
    """Create and migrate ``db_name``, set Django up on it, and drop it again at the end.

    Yields the environment a subprocess (a worker) needs to use the same database and broker.
    """
    var_dir = tempfile.mkdtemp(prefix=f"{db_name}-")
    env = {
        "DJANGO_SETTINGS_MODULE": "accesshive.settings",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or "bench-only-secret-key",
        "DATABASE_URL": f"{POSTGRES_URL}/{db_name}",
        "CELERY_BROKER_URL": REDIS_URL,
        "ACCESSHIVE_VAR_DIR": var_dir,
        "ACCESSHIVE_LOG_LEVEL": "WARNING",
        # Django's test client talks to "testserver".
        "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1,testserver",
    }
    os.environ.update(env)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    drop_database(db_name)
    with admin_connection() as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--verbosity", "0", "--skip-checks"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        import django

        django.setup()
        yield env
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(db_name)
        shutil.rmtree(var_dir, ignore_errors=True)


def drop_database(db_name: str) -> None:
    with admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def machine_summary() -> str:
    """nproc, memory and the versions that matter, for the report."""
    memory = ""
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    with admin_connection() as conn:
        row = conn.execute("SHOW server_version").fetchone()
    import celery
    import django

    return (
        f"{os.cpu_count()} cores, {memory}, Python {platform.python_version()}, "
        f"Django {django.get_version()}, Celery {celery.__version__}, "
        f"PostgreSQL {row[0] if row else '?'}; load average {os.getloadavg()[0]:.1f} at start"
    )
