"""The three roles of AccessHive's own users and the permissions each one carries.

A role is a fixed set of Django permissions, defined here in code, so the pages and API
endpoints keep checking ordinary permissions (``user.has_perm``) and a change of a role's
reach is one reviewed edit instead of a database migration. ``accounts.backends.RoleBackend``
grants them; superusers keep every permission, as Django gives them.
"""

from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


VIEWER_PERMISSIONS = frozenset(
    {
        "jobs.view_job",
        "identities.view_identity",
        "identities.view_platform",
        "identities.view_identityprovider",
        "audit.view_auditevent",
        "assets.view_asset",
        "directory.view_identitysource",
        "directory.view_directoryevent",
        "policies.view_policy",
        "policies.view_violation",
        "trail.view_trailentry",
    }
)

OPERATOR_PERMISSIONS = VIEWER_PERMISSIONS | {
    "jobs.retry_job",
    "jobs.cancel_job",
    "directory.sync_identitysource",
    "assets.discover_assets",
    "audit.ingest_auditevents",
    "policies.decide_violation",
    "pam.check_out_credential",
    "pam.record_manual_rotation",
}

ADMIN_PERMISSIONS = OPERATOR_PERMISSIONS | {
    "identities.add_identity",
    "identities.add_platform",
    "identities.change_platform",
    "identities.add_identityprovider",
    "identities.change_identityprovider",
    "directory.add_identitysource",
    "directory.change_identitysource",
    "directory.change_jmlrule",
    "policies.add_policy",
    "policies.change_policy",
    "audit.change_auditsettings",
    "pam.check_in_any_session",
    "sso.change_samlsettings",
    "accounts.change_userrole",
}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.VIEWER: VIEWER_PERMISSIONS,
    Role.OPERATOR: frozenset(OPERATOR_PERMISSIONS),
    Role.ADMIN: frozenset(ADMIN_PERMISSIONS),
}
