"""manage.py prune_jobs: delete finished jobs past retention (beat runs the same daily)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from jobs import retention


class Command(BaseCommand):
    help = (
        "Delete completed jobs older than ACCESSHIVE_JOB_RETENTION_DAYS and failed ones older "
        "than ACCESSHIVE_FAILED_JOB_RETENTION_DAYS, with their attempts and events."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted; delete nothing"
        )
        parser.add_argument(
            "--batch-size", type=int, default=None, help="jobs per transaction (default 1000)"
        )

    def handle(self, *args: Any, dry_run: bool, batch_size: int | None, **options: Any) -> None:
        result = retention.prune(dry_run=dry_run, batch_size=batch_size)
        verb = "would delete" if dry_run else "deleted"
        for status, cutoff in result.cutoffs.items():
            self.stdout.write(
                f"{status}: {verb} {result.deleted[status]} finished before "
                f"{cutoff:%Y-%m-%d %H:%M} UTC"
            )
