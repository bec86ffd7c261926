"""Recording to the admin audit trail. Never pass a secret in ``detail``."""

from typing import Any

from django.db import models

from trail.models import Source, TrailEntry
from trail.origin import current_origin


def record(
    action: str,
    *,
    actor: Any,
    target: models.Model | None = None,
    target_label: str = "",
    **detail: Any,
) -> TrailEntry:
    """Append one entry; call it inside the service's transaction so the trail and the
    change commit together. ``actor`` is the user (or None for AccessHive itself)."""
    origin = current_origin()
    person = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    return TrailEntry.objects.create(
        actor=person,
        actor_name=person.get_username() if person is not None else "",
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=(target_label or (str(target) if target is not None else ""))[:300],
        detail=detail,
        source=origin.source if origin else (Source.SYSTEM if person is None else Source.COMMAND),
        source_ip=origin.ip if origin else None,
    )
