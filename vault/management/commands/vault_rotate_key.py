"""``manage.py vault_rotate_key``: re-encrypts every embedded secret with the newest key."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from vault.backends import VaultSettings
from vault.backends.embedded import EmbeddedVault
from vault.crypto import KeyRing


class Command(BaseCommand):
    help = (
        "Re-encrypt every embedded-vault secret with the first key of ACCESSHIVE_VAULT_KEYS, so "
        "the older keys can then be removed. Safe to run again; rows already on that key are "
        "left alone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=200)

    def handle(self, *args: Any, **options: Any) -> None:
        config = VaultSettings.from_django()
        if config.addr:
            raise CommandError(
                "VAULT_ADDR is set: secrets live in HashiCorp Vault, which manages its own keys "
                "(vault operator rotate)"
            )
        keyring = KeyRing.from_lines(config.embedded_keys)
        report = EmbeddedVault(keyring).reencrypt_all(batch_size=options["batch_size"])
        self.stdout.write(
            f"Re-encrypted {report.reencrypted} secret version(s) with key {keyring.primary_id!r}."
        )
        if report.failed:
            shown = ", ".join(report.failed[:20])
            more = f" and {len(report.failed) - 20} more" if len(report.failed) > 20 else ""
            raise CommandError(
                f"{len(report.failed)} secret version(s) could not be decrypted with the "
                f"configured keys and were left as they are: {shown}{more}. Add their key back to "
                "ACCESSHIVE_VAULT_KEYS and run this again before removing any key."
            )
        self.stdout.write(
            f"Every secret now uses {keyring.primary_id!r}; the other keys "
            f"({', '.join(keyring.key_ids[1:]) or 'none'}) can be removed."
        )
