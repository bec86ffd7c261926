"""create_domain_user: the identity's Google Workspace user, with its initial password in
the vault; a retry adopts the user an earlier, unanswered attempt created."""

from typing import Any

from connectors.google_workspace import GwsUser, UserAlreadyExists
from identities.handlers.common import google_workspace_client, load_identity
from identities.models import Identity
from identities.passwords import generate_password
from jobs.errors import PermanentError
from jobs.models import Job
from jobs.registry import register
from vault.backends import get_vault
from vault.base import SecretRef
from vault.errors import VaultConflict


def external_id(identity: Identity) -> str:
    return f"accesshive-identity-{identity.pk}"


def initial_password(identity: Identity) -> tuple[SecretRef, str]:
    """The identity's initial password: written once, then the same one on every retry, so
    whatever attempt reached Google set the password the vault holds."""
    vault = get_vault()
    version = vault.current_version(identity.password_path)
    if version is None:
        try:
            ref = vault.write(identity.password_path, {"password": generate_password()}, cas=0)
            version = ref.version
        except VaultConflict:  # a concurrent attempt wrote it first
            version = vault.current_version(identity.password_path)
    assert version is not None
    ref = SecretRef(identity.password_path, version)
    return ref, vault.read(ref.path, ref.version)["password"]


@register("create_domain_user")
def run(job: Job) -> dict[str, Any]:
    identity = load_identity(job)
    platform = identity.platform
    if identity.gws_user_id:
        return {"gws_user_id": identity.gws_user_id, "note": "already created"}
    client = google_workspace_client(platform)
    password_ref, password = initial_password(identity)
    adopted = False
    try:
        user = client.insert_user(
            identity.login,
            identity.given_name or identity.display_name,
            identity.family_name or "-",
            password,
            org_unit_path=identity.org_unit_path or "/",
            external_id=external_id(identity),
        )
    except UserAlreadyExists as exc:
        user = adopt(client.get_user(identity.login), identity, exc)
        adopted = True
    Identity.objects.filter(pk=identity.pk).update(gws_user_id=user.id)
    return {
        "gws_user_id": user.id,
        "primary_email": user.primary_email,
        "password_ref": str(password_ref),
        "adopted": adopted,
    }


def adopt(user: GwsUser | None, identity: Identity, exc: UserAlreadyExists) -> GwsUser:
    """Take over a user that already exists only if an earlier attempt of ours made it."""
    if user is not None and external_id(identity) in user.external_ids:
        return user
    raise PermanentError(
        f"Google Workspace already has a user {identity.login} that AccessHive did not create "
        f"({exc}). Pick another address, or remove that user, then retry."
    )
