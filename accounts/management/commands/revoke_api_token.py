"""``manage.py revoke_api_token ID``: refuse an API token from now on (on the trail)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import ApiToken
from accounts.services import revoke_api_token


class Command(BaseCommand):
    help = "Revoke an API token by its id (see list_api_tokens)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("token_id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        token = ApiToken.objects.select_related("user").filter(pk=options["token_id"]).first()
        if token is None:
            raise CommandError(f"no API token with id {options['token_id']}")
        if revoke_api_token(token, actor=None):
            self.stdout.write(f"revoked {token}")
        else:
            self.stdout.write(f"{token} was revoked already")
