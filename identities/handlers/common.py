"""What the identity handlers share: loading the identity and building connector clients
with secrets read from the vault at the moment of use."""

import json
from collections.abc import Callable, Sequence

from connectors.google_workspace import USER_SCOPE, GoogleWorkspaceClient
from connectors.scim import ScimClient
from identities.models import Identity, IdentityProvider, Platform
from jobs import ratelimit
from jobs.errors import PermanentError
from jobs.models import Job
from vault.backends import get_vault
from vault.base import SecretRef


def load_identity(job: Job) -> Identity:
    identity = (
        Identity.objects.select_related("platform__identity_provider")
        .filter(pk=job.subject_id or 0)
        .first()
    )
    if identity is None:
        raise PermanentError(f"Job {job.pk} names identity {job.subject_id!r}, which is gone")
    return identity


def read_secret(ref: str, what: str) -> dict[str, str]:
    if not ref:
        raise PermanentError(f"{what} is not stored in the vault yet; enter it on its page")
    secret_ref = SecretRef.parse(ref)
    return get_vault().read(secret_ref.path, secret_ref.version)


def google_workspace_client(
    platform: Platform, *, scopes: Sequence[str] | None = None
) -> GoogleWorkspaceClient:
    """The platform's Directory API client (user scope unless ``scopes`` says otherwise)."""
    if not platform.is_google_workspace:
        raise PermanentError(f"Platform {platform.name} is not a Google Workspace platform")
    secret = read_secret(
        platform.service_account_key_ref, f"The service-account key of platform {platform.name}"
    )
    return GoogleWorkspaceClient(
        json.loads(secret["json"]),
        platform.admin_email,
        api_endpoint=platform.api_endpoint or None,
        scopes=scopes or (USER_SCOPE,),
        # One bucket per platform shared by every worker: a thousand jobs stay under quota.
        before_call=platform_pacer(platform),
    )


def platform_pacer(platform: Platform) -> Callable[[], None] | None:
    """What every client of the platform calls before a request: its limit from its page,
    else the settings' default for its kind."""
    return ratelimit.pacer(
        platform.kind,
        platform.pk,
        rate=platform.rate_limit_per_second,
        burst=platform.rate_limit_burst,
    )


def rate_limit_label(platform: Platform) -> str:
    """The limit platform_pacer applies, in words, and whether it is the platform's own."""
    limit = ratelimit.limit_for(
        platform.kind,
        platform.pk,
        rate=platform.rate_limit_per_second,
        burst=platform.rate_limit_burst,
    )
    text = f"{limit.rate:g}/s, burst {limit.burst}" if limit else "no limit"
    return text if platform.rate_limit_per_second is not None else f"{text} (default)"


def scim_client(provider: IdentityProvider | None, platform: Platform) -> ScimClient:
    if provider is None:
        raise PermanentError(
            f"Platform {platform.name} has no identity provider; choose one on its page"
        )
    secret = read_secret(provider.token_ref, f"The SCIM token of identity provider {provider.name}")
    return ScimClient(provider.scim_base_url, secret["token"], provider_name=provider.name)
