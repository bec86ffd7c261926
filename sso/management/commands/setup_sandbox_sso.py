"""``manage.py setup_sandbox_sso --idp-url http://127.0.0.1:8083``: single sign-on through
the local SAML IdP sandbox (``python -m sandbox.saml_idp``), with its groups mapped to roles."""

from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sso import saml
from sso.services import update_settings
from trail.origin import Origin, acting_from

GROUP_MAPPING = {
    "admin_groups": ["accesshive-admins"],
    "operator_groups": ["accesshive-operators"],
    "viewer_groups": ["accesshive-viewers"],
}


class Command(BaseCommand):
    help = "Turn on SAML sign-in through the sandbox IdP, read from its metadata (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--idp-url", required=True, help="the sandbox IdP's base URL")
        parser.add_argument("--timeout", type=float, default=10.0)

    def handle(self, *args: Any, **options: Any) -> None:
        metadata_url = options["idp_url"].rstrip("/") + "/metadata"
        try:
            reply = requests.get(metadata_url, timeout=options["timeout"])
            reply.raise_for_status()
        except requests.RequestException as exc:
            raise CommandError(f"Could not read the IdP metadata at {metadata_url}: {exc}") from exc
        try:
            idp = saml.parse_idp_metadata(reply.text)
        except ValueError as exc:
            raise CommandError(f"{metadata_url} is not usable IdP metadata: {exc}") from exc
        with acting_from(Origin(source="command")):
            update_settings(
                actor=None,
                enabled=True,
                idp_entity_id=idp.entity_id,
                idp_sso_url=idp.sso_url,
                idp_slo_url=idp.slo_url,
                idp_x509_cert=idp.certificates,
                default_role="",
                **GROUP_MAPPING,
            )
        self.stdout.write(f"Single sign-on now goes through the sandbox IdP {idp.entity_id}")
