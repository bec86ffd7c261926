"""The chaos suite's own PostgreSQL (restarted and stopped by the tests) and a way to read
what it did (figures for docs/benchmarks.md)."""

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from django.db import DatabaseError, connections

from tests.settings import TEST_DATABASE_URL

T = TypeVar("T")


class PrivatePostgres:
    """The cluster scripts/services.sh started under ACCESSHIVE_CHAOS_PG_DIR; refuses any
    other, so a chaos run can never restart a PostgreSQL someone else uses."""

    def __init__(self) -> None:
        self.dir = Path(os.environ["ACCESSHIVE_CHAOS_PG_DIR"])
        self.port = int((self.dir / "port").read_text().strip())
        if urlparse(TEST_DATABASE_URL).port != self.port:
            raise RuntimeError(
                f"refusing to restart PostgreSQL: the tests use {TEST_DATABASE_URL}, "
                f"not the chaos cluster on port {self.port}"
            )
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_owner, "pg_ctl", "-D", str(self.dir / "data"), *args],
            cwd=self.dir,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def restart(self) -> None:
        """Fast restart: every session is cut, as in a failover or a package upgrade."""
        self.pg_ctl("restart", "-m", "fast", "-w", "-l", str(self.dir / "postgres.log"))

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "fast", "-w")

    def start(self) -> None:
        self.pg_ctl(
            "start",
            "-w",
            "-l",
            str(self.dir / "postgres.log"),
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.dir}",
        )


def reconnect() -> None:
    """This test process's own connections after PostgreSQL went away."""
    for conn in connections.all():
        conn.close()


def db_read(read: Callable[[], T]) -> T | None:
    """``read()``, or None while the database is unreachable."""
    try:
        return read()
    except DatabaseError:
        reconnect()
        return None


def record(fault: str, figures: dict[str, object]) -> None:
    """Append one fault's figures to ACCESSHIVE_CHAOS_REPORT (bench/bench_chaos.py reads it)."""
    path = os.environ.get("ACCESSHIVE_CHAOS_REPORT")
    if not path:
        return
    with open(path, "a") as out:
        out.write(json.dumps({"fault": fault, "at": time.time(), **figures}) + "\n")
