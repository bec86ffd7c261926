"""Recording to the admin audit trail. Never pass a secret in ``detail``."""

import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from jobs.context import current_attempt
from trail.actions import check_action
from trail.models import Source, TrailEntry
from trail.origin import current_origin

# Detail keys that name a secret itself; a flag about one ("token_replaced") is fine. A
# guard against a slip, not a scanner: record() callers still choose what to pass.
SECRET_DETAIL_KEYS = frozenset(
    {
        "password",
        "bind_password",
        "secret",
        "client_secret",
        "token",
        "scim_token",
        "api_key",
        "key",
        "private_key",
        "service_account_key",
        "json_key",
        "credentials",
    }
)


class SecretInDetailError(ValueError):
    """A detail key names a secret; the trail keeps flags and names, never the value."""


def record(
    action: str,
    *,
    actor: Any,
    target: models.Model | None = None,
    target_label: str = "",
    **detail: Any,
) -> TrailEntry:
    """Append one entry; call it inside the service's transaction so the trail and the
    change commit together. ``actor`` is the user (or None for AccessHive itself).

    The source and address come from the request (trail.origin); inside a job's attempt
    without one, the entry is AccessHive's own doing and names the job.
    """
    check_action(action)
    secret = SECRET_DETAIL_KEYS.intersection(key.lower() for key in detail)
    if secret:
        raise SecretInDetailError(f"trail detail must not carry {', '.join(sorted(secret))}")
    origin = current_origin()
    person = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    if origin is not None:
        source, ip = origin.source, origin.ip
    else:
        attempt = current_attempt.get()
        if attempt is not None:
            source = Source.SYSTEM
            detail.setdefault("job", attempt.get("job_id"))
        else:
            source = Source.SYSTEM if person is None else Source.COMMAND
        ip = None
    return TrailEntry.objects.create(
        actor=person,
        actor_name=person.get_username() if person is not None else "",
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=(target_label or (str(target) if target is not None else ""))[:300],
        detail=plain(detail),
        source=source,
        source_ip=ip,
    )


def known_username(credentials: dict[str, Any]) -> str:
    """The typed username if it names a user; anything else someone typed (a password in the
    wrong box, a guess) is not kept."""
    field = get_user_model().USERNAME_FIELD
    username = str(credentials.get(field) or credentials.get("username") or "")[:150]
    if username and get_user_model().objects.filter(**{field: username}).exists():
        return username
    return ""


def record_anonymous_refusal(
    action: str, *, target_label: str = "", **detail: Any
) -> TrailEntry | None:
    """Record a refusal of someone not signed in (a failed sign-in, a refused SAML response),
    at most TRAIL_ANONYMOUS_REFUSALS rows per address per TRAIL_REFUSAL_WINDOW seconds: past
    that, one row says further refusals are only counted, and the rest are counted in the
    cache, so anyone on the network cannot fill the trail."""
    origin = current_origin()
    key = f"trail.refusals:{action}:{origin.ip if origin else None}"
    window = int(settings.TRAIL_REFUSAL_WINDOW)
    cache.add(key, 0, window)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, window)
        count = 1
    limit = int(settings.TRAIL_ANONYMOUS_REFUSALS)
    if count <= limit:
        return record(action, actor=None, target_label=target_label, **detail)
    if count == limit + 1:
        return record(
            action,
            actor=None,
            suppressed=f"more than {limit} from this address: further ones in the next "
            f"{window // 60} minutes are counted, not recorded",
        )
    return None


def plain(detail: Mapping[str, Any]) -> dict[str, Any]:
    """The detail as JSON would give it back (times as ISO strings), so what is stored is what
    the page and the API show."""
    result: dict[str, Any] = json.loads(json.dumps(dict(detail), cls=DjangoJSONEncoder))
    return result


def changed_fields(stored: models.Model, fields: Mapping[str, Any]) -> list[str]:
    """The names in ``fields`` whose value differs from the saved row ``stored`` (read from the
    database, not the instance a form already changed); a relation compares by its key."""
    changed = []
    for name, value in fields.items():
        field = stored._meta.get_field(name)
        if isinstance(field, models.ForeignKey):
            before = getattr(stored, field.attname)
            after = value.pk if isinstance(value, models.Model) else value
        else:
            before, after = getattr(stored, name), value
        if before != after:
            changed.append(name)
    return changed
