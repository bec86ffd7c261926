"""``manage.py list_api_tokens [USER]``: every API token (or one user's), never the secret."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts.models import ApiToken


class Command(BaseCommand):
    help = "List API tokens: id, user, name, prefix, created, last used, expires, state."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?")

    def handle(self, *args: Any, **options: Any) -> None:
        tokens = ApiToken.objects.select_related("user").order_by("id")
        if options["username"]:
            tokens = tokens.filter(user__username=options["username"])
        for token in tokens:
            fields = (
                token.pk,
                token.user.get_username(),
                token.name,
                f"{token.prefix}…",
                token.created_at.isoformat(timespec="seconds"),
                token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "-",
                token.expires_at.isoformat(timespec="seconds") if token.expires_at else "-",
                token.state,
            )
            self.stdout.write("\t".join(str(field) for field in fields))
