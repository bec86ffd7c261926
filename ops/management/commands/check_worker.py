"""manage.py check_worker: exit 0 when this host's worker beat recently, 1 otherwise."""

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from ops.worker import heartbeat_age


class Command(BaseCommand):
    help = (
        "Fail (exit 1) when the worker's heartbeat file (ACCESSHIVE_WORKER_HEARTBEAT_FILE) is "
        "missing or older than ACCESSHIVE_WORKER_HEARTBEAT_MAX_AGE seconds."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max-age", type=float, default=None, help="seconds")
        parser.add_argument("--file", type=Path, default=None, help="the heartbeat file")

    def handle(self, *args: Any, max_age: float | None, file: Path | None, **kw: Any) -> None:
        path = file or Path(settings.WORKER_HEARTBEAT_FILE)
        limit = settings.WORKER_HEARTBEAT_MAX_AGE if max_age is None else max_age
        age = heartbeat_age(path)
        if age is None:
            self.stderr.write(f"worker: no heartbeat at {path}")
            sys.exit(1)
        if age > limit:
            self.stderr.write(f"worker: last heartbeat {age:.0f} s ago (limit {limit:g} s)")
            sys.exit(1)
        self.stdout.write(f"worker: alive, last heartbeat {age:.1f} s ago")
