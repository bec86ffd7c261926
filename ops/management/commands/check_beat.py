"""manage.py check_beat: exit 0 when beat ticked recently, 1 otherwise."""

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from ops.worker import heartbeat_age


class Command(BaseCommand):
    help = (
        "Fail (exit 1) when beat's heartbeat file (ACCESSHIVE_BEAT_HEARTBEAT_FILE) is missing "
        "or older than ACCESSHIVE_BEAT_HEARTBEAT_MAX_AGE seconds."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max-age", type=float, default=None, help="seconds")

    def handle(self, *args: Any, max_age: float | None, **kw: Any) -> None:
        limit = settings.BEAT_HEARTBEAT_MAX_AGE if max_age is None else max_age
        age = heartbeat_age(settings.BEAT_HEARTBEAT_FILE)
        if age is None or age > limit:
            said = "no heartbeat" if age is None else f"last heartbeat {age:.0f} s ago"
            self.stderr.write(f"beat: {said} (limit {limit:g} s)")
            sys.exit(1)
        self.stdout.write(f"beat: alive, last heartbeat {age:.1f} s ago")
