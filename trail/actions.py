"""Every action the admin audit trail knows, with the label its page shows.

``record()`` refuses a key that is not here, so the trail's action filter always lists every
action that can appear. A new action is one line here and a ``record()`` call in its service.
"""

ACTIONS: dict[str, str] = {
    # Signing in and out, and roles.
    "user.signed_in": "Signed in",
    "user.signed_out": "Signed out",
    "user.sign_in_failed": "Sign-in failed",
    "user.sign_in_refused": "SSO sign-in refused",
    "user.sign_in_tampering": "SSO response tampered with",
    "user.role_changed": "Role changed",
    "user.locked_out": "Sign-in locked out",
    "user.unlocked": "Sign-in unlocked",
    "api_token.revoked": "API token revoked",
    "user.deactivated": "User deactivated",
    # Identities, platforms, identity providers.
    "identity.created": "Identity created",
    "import.started": "Import started",
    "platform.created": "Platform created",
    "platform.changed": "Platform changed",
    "identity_provider.created": "Identity provider created",
    "identity_provider.changed": "Identity provider changed",
    # Directory.
    "source.created": "Directory source created",
    "source.changed": "Directory source changed",
    "jml_rule.changed": "JML rule changed",
    "directory.sync_started": "Directory sync started",
    # Assets and audit ingestion.
    "assets.discovery_started": "Asset discovery started",
    "audit.ingestion_started": "Audit ingestion started",
    "audit.settings_changed": "Audit settings changed",
    # Privileged access.
    "credential.checked_out": "Credential checked out",
    "credential.checked_in": "Credential checked in",
    "credential.revealed": "Password revealed",
    "credential.rotated_by_hand": "Rotation by hand recorded",
    # Policies.
    "policy.created": "Policy created",
    "policy.changed": "Policy changed",
    "violation.approved": "Remediation approved",
    "violation.dismissed": "Violation dismissed",
    # Jobs.
    "job.retried": "Job retried",
    "job.cancelled": "Job cancelled",
    "jobs.bulk_retried": "Jobs retried in bulk",
    "jobs.bulk_cancelled": "Jobs cancelled in bulk",
    # Single sign-on of AccessHive's own users.
    "sso.settings_changed": "SSO settings changed",
}


class UnknownActionError(ValueError):
    """An action key that trail.actions.ACTIONS does not list."""


def check_action(key: str) -> str:
    if key not in ACTIONS:
        raise UnknownActionError(
            f"Unknown trail action {key!r}: add it to trail.actions.ACTIONS with its label"
        )
    return key


def label_of(key: str) -> str:
    """The action's label; a key no longer listed (an old row) shows as itself."""
    return ACTIONS.get(key, key)


def action_choices() -> list[tuple[str, str]]:
    """(key, label) for the action filter, in the order above (grouped by subject)."""
    return list(ACTIONS.items())
