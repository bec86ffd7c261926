"""``manage.py vault_generate_key``: prints a new key entry for ACCESSHIVE_VAULT_KEYS."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from vault.crypto import generate_key_line


class Command(BaseCommand):
    help = (
        "Print a new 'key_id:base64key' entry for the embedded vault. Put it first in "
        "ACCESSHIVE_VAULT_KEYS (keep the old entries after it), then run vault_rotate_key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--id", dest="key_id", help="Key id (default: k + 8 random hex digits)")

    def handle(self, *args: Any, **options: Any) -> None:
        # Only the line on stdout, so it can be piped into a secrets store.
        self.stdout.write(generate_key_line(options["key_id"]))
