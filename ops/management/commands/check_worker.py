"""manage.py check_worker: exit 0 when this host's worker is alive and its pool reaches the
database and the broker, 1 otherwise."""

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from ops.worker import heartbeat_age, heartbeat_file, pool_heartbeat_file


class Command(BaseCommand):
    help = (
        "Fail (exit 1) when the worker's event-loop heartbeat (ACCESSHIVE_WORKER_HEARTBEAT_FILE) "
        "or its pool's database-and-broker heartbeat (the same name + .pool) is missing or "
        "older than ACCESSHIVE_WORKER_HEARTBEAT_MAX_AGE seconds."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max-age", type=float, default=None, help="seconds")
        parser.add_argument("--file", type=Path, default=None, help="the heartbeat file")

    def handle(self, *args: Any, max_age: float | None, file: Path | None, **kw: Any) -> None:
        path = file or heartbeat_file()
        pool_path = path.with_name(path.name + ".pool") if file else pool_heartbeat_file()
        limit = settings.WORKER_HEARTBEAT_MAX_AGE if max_age is None else max_age
        age = heartbeat_age(path)
        if age is None:
            self.fail(f"worker: no heartbeat at {path}")
        elif age > limit:
            self.fail(f"worker: last heartbeat {age:.0f} s ago (limit {limit:g} s)")
        pool_age = heartbeat_age(pool_path)
        if pool_age is None:
            self.fail("worker: no pool process has reached the database and the broker yet")
        elif pool_age > limit:
            self.fail(
                f"worker: its pool last reached the database and the broker {pool_age:.0f} s "
                f"ago (limit {limit:g} s)"
            )
        self.stdout.write(
            f"worker: alive, last heartbeat {age:.1f} s ago; pool reached the database and "
            f"the broker {pool_age:.1f} s ago"
        )

    def fail(self, message: str) -> None:
        self.stderr.write(message)
        sys.exit(1)
