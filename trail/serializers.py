"""Plain dicts of trail entries, shared by the audit trail page and its API."""

from typing import Any

from django.urls import NoReverseMatch, reverse

from trail.actions import label_of
from trail.models import Source, TrailEntry

# The page each kind of target has (its id is the route's one argument).
TARGET_PAGES = {
    "identities.identity": "identities:detail",
    "identities.platform": "identities:platform-edit",
    "identities.identityprovider": "identities:provider-edit",
    "jobs.job": "jobs:detail",
    "policies.policy": "policies:edit",
    "directory.identitysource": "directory:source-detail",
    "imports.importbatch": "imports:detail",
}
# Actions about a platform that have a page of their own for it.
ACTION_PAGES = {
    "assets.discovery_started": "assets:platform",
    "audit.ingestion_started": "audit:platform",
    "audit.settings_changed": "audit:platform",
}


def target_url(entry: TrailEntry) -> str | None:
    route = ACTION_PAGES.get(entry.action) or TARGET_PAGES.get(entry.target_type)
    if route is None or not entry.target_id.isdigit():
        return None
    try:
        return reverse(route, args=[int(entry.target_id)])
    except NoReverseMatch:
        return None


def actor_label(entry: TrailEntry) -> str:
    if entry.actor_name:
        return entry.actor_name
    return "AccessHive" if entry.source == Source.SYSTEM else "—"


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list):
        return ", ".join(format_value(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key}={format_value(item)}" for key, item in value.items())
    return str(value)


def detail_text(detail: dict[str, Any]) -> str:
    """The detail as one compact line, ``reason: audit · for someone else: no``; keys without
    a value (no rotation job) left out."""
    return " · ".join(
        f"{key.replace('_', ' ')}: {format_value(value)}"
        for key, value in detail.items()
        if value is not None
    )


def entry_data(entry: TrailEntry) -> dict[str, Any]:
    target = None
    if entry.target_type or entry.target_label:
        target = {
            "type": entry.target_type or None,
            "id": entry.target_id or None,
            "label": entry.target_label,
            "url": target_url(entry),
        }
    return {
        "id": entry.pk,
        "time": entry.occurred_at,
        "actor": {"id": entry.actor_id, "username": entry.actor_name} if entry.actor_name else None,
        "actor_label": actor_label(entry),
        "action": entry.action,
        "action_label": label_of(entry.action),
        "target": target,
        "detail": entry.detail if isinstance(entry.detail, dict) else {},
        "detail_text": detail_text(entry.detail) if isinstance(entry.detail, dict) else "",
        "source": entry.source,
        "source_label": entry.get_source_display(),
        "ip": entry.source_ip,
    }
