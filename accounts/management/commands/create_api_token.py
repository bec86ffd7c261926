"""``manage.py create_api_token USER NAME [--expires-days N]``: prints a new API token once."""

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for a user and print it (it is shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("name", nargs="?", default="automation")
        parser.add_argument(
            "--expires-days", type=int, default=None, help="refuse the token after N days"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user named {options['username']!r}")
        days = options["expires_days"]
        if days is not None and days <= 0:
            raise CommandError("--expires-days must be a positive number of days")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        _, raw = ApiToken.issue(user, options["name"], expires_at=expires_at)
        self.stdout.write(raw)
