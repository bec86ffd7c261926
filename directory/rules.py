"""What a source's joiner/mover/leaver rule plans for an event, in words an admin reads on the
event page; and the login a directory user gets on the rule's platform."""

from typing import Any

from directory.models import EventKind, JmlRule

# Fields of a mover that the platform's Google Workspace user and SSO user carry.
NAME_FIELDS = ("given_name", "family_name")
ORG_UNIT_FIELD = "org_unit"


def login_for(rule: JmlRule | None, email: str, username: str) -> str:
    """The identity's login on the rule's platform: the directory email, or its local part
    (the username when there is no email) at the rule's login domain."""
    address = (email or username).strip().lower()
    if rule is None or not rule.login_domain:
        return address
    local = address.split("@", 1)[0]
    return f"{local}@{rule.login_domain.strip().lower()}"


def needs_job(rule: JmlRule | None, kind: str) -> bool:
    return rule is not None and rule.acts_on(kind)


def planned_actions(
    rule: JmlRule | None, kind: str, email: str, username: str, changes: dict[str, Any]
) -> list[str]:
    """One line per action the rule would take for this event, as of now."""
    if rule is None:
        return ["No rule for this source: nothing will be done."]
    if not rule.acts_on(kind):
        return [f"The rule does not act on {EventKind(kind).label.lower()}s: nothing will be done."]
    login = login_for(rule, email, username)
    platform = rule.platform
    prefix = "Dry run: would " if rule.dry_run else ""
    lines: list[str] = []
    if kind == EventKind.JOINER:
        lines.append(
            f"create a Human Interactive identity {login} on {platform.name} (its Google "
            "Workspace and SSO provisioning jobs follow)"
        )
    elif kind == EventKind.MOVER:
        if ORG_UNIT_FIELD in changes or any(name in changes for name in NAME_FIELDS):
            what = ", ".join(
                label
                for label, present in (
                    ("org unit", ORG_UNIT_FIELD in changes),
                    ("names", any(name in changes for name in NAME_FIELDS)),
                )
                if present
            )
            if platform.is_google_workspace:
                lines.append(f"update the Google Workspace user {login} ({what})")
            if any(name in changes for name in NAME_FIELDS) and platform.identity_provider_id:
                lines.append(f"update the SSO user {login} (names)")
        groups = changes.get("groups") or {}
        if rule.sync_groups and platform.is_google_workspace:
            for group in groups.get("added", []):
                lines.append(f"add {login} to group {group.get('email') or group.get('name')}")
            for group in groups.get("removed", []):
                lines.append(f"remove {login} from group {group.get('email') or group.get('name')}")
        if not lines:
            lines.append(
                "record the change (department, title or manager are not carried to the platform)"
            )
    else:
        if platform.is_google_workspace:
            lines.append(f"suspend the Google Workspace user {login}")
        if platform.identity_provider_id:
            lines.append(f"deactivate the SSO user {login} (SCIM active=false)")
        lines.append(
            f"check in the open PAM sessions held by {login} (managed shared credentials "
            "they had checked out are rotated)"
        )
        if rule.deactivate_accounts:
            lines.append(
                f"deactivate the AccessHive user {login}, if there is one (sessions ended, API "
                "tokens revoked)"
            )
    return [prefix + line for line in lines]
