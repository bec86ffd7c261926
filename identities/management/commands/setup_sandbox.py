"""``manage.py setup_sandbox``: the "Sandbox Workspace" platform and "Sandbox IdP" that
`make run` points at its local Google Directory and SCIM servers."""

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from identities.handlers.common import read_secret
from identities.models import IdentityProvider, Platform
from identities.services import (
    create_identity_provider,
    create_platform,
    set_scim_token,
    set_service_account_key,
)

PLATFORM = "Sandbox Workspace"
PROVIDER = "Sandbox IdP"


class Command(BaseCommand):
    help = "Create or update the sandbox platform and identity provider (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--gws-url", required=True)
        parser.add_argument("--gws-key-file", type=Path, required=True)
        parser.add_argument("--domain", default="example.com")
        parser.add_argument("--scim-url", required=True)
        parser.add_argument("--scim-token-file", type=Path, required=True)

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        key = json.loads(options["gws_key_file"].read_text())
        token = options["scim_token_file"].read_text().strip()
        provider = IdentityProvider.objects.filter(name=PROVIDER).first()
        if provider is None:
            provider = create_identity_provider(
                name=PROVIDER, scim_base_url=options["scim_url"], token=token
            )
        else:
            IdentityProvider.objects.filter(pk=provider.pk).update(
                scim_base_url=options["scim_url"]
            )
            if read_secret(provider.token_ref, PROVIDER)["token"] != token:
                set_scim_token(provider, token)
        domain = options["domain"]
        platform = Platform.objects.filter(name=PLATFORM).first()
        if platform is None:
            create_platform(
                name=PLATFORM,
                kind=Platform.Kind.GOOGLE_WORKSPACE,
                identity_provider=provider,
                primary_domain=domain,
                admin_email=f"admin@{domain}",
                api_endpoint=options["gws_url"],
                service_account_key=key,
            )
        else:
            Platform.objects.filter(pk=platform.pk).update(api_endpoint=options["gws_url"])
            stored = read_secret(platform.service_account_key_ref, PLATFORM)
            if json.loads(stored["json"]) != key:
                set_service_account_key(platform, key)
        self.stdout.write(
            f"{PLATFORM} ({domain}) and {PROVIDER} point at the local sandbox servers"
        )
