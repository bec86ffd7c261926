"""``manage.py sso_generate_sp_key``: a new SAML SP key pair (private key to the vault)."""

from typing import Any

from django.core.management.base import BaseCommand

from sso.services import generate_sp_key
from trail.origin import Origin, acting_from


class Command(BaseCommand):
    help = (
        "Generate AccessHive's SAML SP key pair: AuthnRequests, logout messages and the "
        "metadata are signed from then on, and encrypted assertions accepted. Give the "
        "identity provider the new metadata (/sso/saml/metadata/) afterwards."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with acting_from(Origin(source="command")):
            row = generate_sp_key(actor=None)
        self.stdout.write("New SP certificate (the private key is in the vault):")
        self.stdout.write(row.sp_certificate)
