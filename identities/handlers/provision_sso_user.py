"""provision_sso_user: the identity's user in the identity provider, over SCIM 2.0; searched
by userName first, so a retry never makes a second one."""

from typing import Any

from identities.handlers.common import load_identity, scim_client
from identities.models import Identity
from jobs.models import Job
from jobs.registry import register


@register("provision_sso_user")
def run(job: Job) -> dict[str, Any]:
    identity = load_identity(job)
    if identity.idp_user_id:
        return {"idp_user_id": identity.idp_user_id, "note": "already provisioned"}
    platform = identity.platform
    client = scim_client(platform.identity_provider, platform)
    user = client.ensure_user(
        user_name=identity.login,
        given_name=identity.given_name or identity.display_name,
        family_name=identity.family_name or "-",
        email=identity.login,
        external_id=str(identity.pk),
    )
    Identity.objects.filter(pk=identity.pk).update(idp_user_id=user.id)
    return {"idp_user_id": user.id, "user_name": identity.login}
