"""Read side of the audit trail: filter parsing, keyset pages newest first."""

import datetime as dt
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from trail.actions import ACTIONS
from trail.models import Source, TrailEntry
from web.inputs import BoundedDateField, SingleLineCharField
from web.pages import InvalidFilterError, QueryForm, choice_parameter, parse_id_cursor

DEFAULT_PAGE_SIZE = 50
MAX_ACTOR_LENGTH = TrailEntry._meta.get_field("actor_name").max_length or 150
MAX_TARGET_ID_LENGTH = TrailEntry._meta.get_field("target_id").max_length or 64
# A model's label as the trail stores it: "identities.identity".
TARGET_TYPE = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class TrailFilters:
    """The filters of the trail; empty (or None) means "any". Dates are whole days, both
    included, in the server's time zone."""

    actor: str = ""
    action: str = ""
    target_type: str = ""
    target_id: str = ""
    source: str = ""
    ip: str = ""
    since: dt.date | None = None
    until: dt.date | None = None

    @property
    def target(self) -> str:
        return f"{self.target_type}:{self.target_id}" if self.target_id else self.target_type

    def as_query(self) -> dict[str, str]:
        """The filters as URL query parameters, leaving out the empty ones."""
        query = {
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "source": self.source,
            "ip": self.ip,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
        }
        return {key: value for key, value in query.items() if value}

    @property
    def active(self) -> bool:
        return bool(self.as_query())


@dataclass(frozen=True)
class TrailPage:
    entries: list[TrailEntry]
    before: int | None
    next_before: int | None


def page_size() -> int:
    return int(getattr(settings, "TRAIL_PAGE_SIZE", DEFAULT_PAGE_SIZE))


def _parse_target(raw: str) -> tuple[str, str]:
    target_type, _, target_id = raw.partition(":")
    if not TARGET_TYPE.fullmatch(target_type) or (":" in raw and not target_id):
        raise InvalidFilterError(
            "target",
            "target must be a kind of thing like identities.identity, or one thing like "
            "identities.identity:12",
        )
    if len(target_id) > MAX_TARGET_ID_LENGTH:
        raise InvalidFilterError(
            "target", f"target's id is at most {MAX_TARGET_ID_LENGTH} characters"
        )
    return target_type, target_id


class TrailFilterForm(QueryForm):
    actor = SingleLineCharField(required=False, max_length=MAX_ACTOR_LENGTH, label="actor")
    action = choice_parameter("action", list(ACTIONS), "action")
    target = SingleLineCharField(required=False, max_length=200, label="target")
    source = choice_parameter("source", Source.values, "source")
    ip = SingleLineCharField(required=False, max_length=64, label="ip")
    since = BoundedDateField(required=False, label="since")
    until = BoundedDateField(required=False, label="until")


def parse_filters(params: Mapping[str, str]) -> TrailFilters:
    """Read actor, action, target, source, ip, since and until; a value the trail cannot
    hold raises InvalidFilterError naming its parameter."""
    values = TrailFilterForm.parse(params)
    target_type, target_id = _parse_target(values["target"]) if values["target"] else ("", "")
    ip = values["ip"]
    if ip:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise InvalidFilterError("ip", "ip must be an IPv4 or IPv6 address") from None
    since, until = values["since"], values["until"]
    if since and until and until < since:
        raise InvalidFilterError("until", "until must be the same day as since or later")
    return TrailFilters(
        actor=values["actor"],
        action=values["action"],
        target_type=target_type,
        target_id=target_id,
        source=values["source"],
        ip=ip,
        since=since,
        until=until,
    )


def parse_before(params: Mapping[str, str]) -> int | None:
    return parse_id_cursor(params, "trail entry")


def start_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def filtered_entries(filters: TrailFilters) -> QuerySet[TrailEntry]:
    entries = TrailEntry.objects.all()
    if filters.actor:
        entries = entries.filter(actor_name=filters.actor)
    if filters.action:
        entries = entries.filter(action=filters.action)
    if filters.target_type:
        entries = entries.filter(target_type=filters.target_type)
    if filters.target_id:
        entries = entries.filter(target_id=filters.target_id)
    if filters.source:
        entries = entries.filter(source=filters.source)
    if filters.ip:
        entries = entries.filter(source_ip=filters.ip)
    if filters.since:
        entries = entries.filter(occurred_at__gte=start_of(filters.since))
    if filters.until:
        entries = entries.filter(occurred_at__lt=start_of(filters.until + dt.timedelta(days=1)))
    return entries


def list_entries(
    filters: TrailFilters, *, before: int | None = None, size: int | None = None
) -> TrailPage:
    """The page of entries older than ``before``, newest first.

    Keyset paging on the id: each filter has an index ending in -id (dates: one on the
    time), so page 1 and page 10,000 cost the same; one extra row says whether there is a
    next page, and nothing is counted.
    """
    size = size or page_size()
    entries = filtered_entries(filters).order_by("-id")
    if before is not None:
        entries = entries.filter(id__lt=before)
    rows = list(entries[: size + 1])
    next_before = rows[size - 1].pk if len(rows) > size else None
    return TrailPage(entries=rows[:size], before=before, next_before=next_before)
