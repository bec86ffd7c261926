"""Google Workspace Reports API activities, page by page, as plain dataclasses."""

import datetime as dt
import hashlib
import json
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import googleapiclient

from connectors.google_admin import DEFAULT_TIMEOUT_SECONDS, GoogleAdminSession

REPORTS_SCOPE = "https://www.googleapis.com/auth/admin.reports.audit.readonly"
# activities.list serves at most 1,000 activities a page.
MAX_PAGE_SIZE = 1000


def _applications() -> tuple[str, ...]:
    """Every applicationName activities.list accepts, from the discovery document shipped
    with the client library (the same one it builds the client from)."""
    documents = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
    document = json.loads((documents / "admin.reports_v1.json").read_text())
    parameters = document["resources"]["activities"]["methods"]["list"]["parameters"]
    return tuple(parameters["applicationName"]["enum"])


APPLICATIONS = _applications()


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class ActivityEvent:
    """One event of an activity; parameters as {name: value} with Google's typed values
    turned into JSON values (intValue as a number, messageValue as an object)."""

    name: str
    type: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Activity:
    """One activity record. ``problems`` lists what was wrong with it (empty when it was well
    formed); ``raw`` keeps Google's record then, so nothing it said is lost. Without a time
    it cannot be placed or told apart from others: ``identifiable`` is False."""

    time: dt.datetime | None
    unique_qualifier: str
    application: str
    actor_email: str = ""
    actor_profile_id: str = ""
    caller_type: str = ""
    ip_address: str = ""
    events: tuple[ActivityEvent, ...] = ()
    problems: tuple[str, ...] = ()
    raw: Any = field(default=None, compare=False)

    @property
    def identifiable(self) -> bool:
        return self.time is not None

    @classmethod
    def from_resource(cls, resource: Any, application: str) -> "Activity":
        if not isinstance(resource, Mapping):
            return cls(None, "", application, problems=("not a JSON object",), raw=resource)
        problems: list[str] = []
        ids: Mapping[str, Any] = resource["id"] if isinstance(resource.get("id"), Mapping) else {}
        time = _parse_time(ids.get("time"))
        if time is None:
            problems.append(f"id.time is missing or not RFC 3339: {ids.get('time')!r}")
        qualifier = ids.get("uniqueQualifier")
        if isinstance(qualifier, int | str) and str(qualifier).lstrip("-").isdigit():
            qualifier = str(qualifier)
        else:
            # Told apart by its content instead: the same record read twice hashes the same.
            problems.append("id.uniqueQualifier is missing or not a number")
            qualifier = "sha256:" + _content_hash(resource)
        if ids.get("applicationName") not in (None, application):
            problems.append(f"id.applicationName is {ids.get('applicationName')!r}")
        actor: Mapping[str, Any] = (
            resource["actor"] if isinstance(resource.get("actor"), Mapping) else {}
        )
        ip_address = resource.get("ipAddress") or ""
        if ip_address and not _is_ip_address(ip_address):
            problems.append(f"ipAddress is not an IP address: {ip_address!r}")
            ip_address = ""
        events = _events(resource.get("events"), problems)
        return cls(
            time=time,
            unique_qualifier=qualifier,
            application=application,
            actor_email=str(actor.get("email") or "").lower(),
            actor_profile_id=str(actor.get("profileId") or ""),
            caller_type=str(actor.get("callerType") or ""),
            ip_address=ip_address,
            events=events,
            problems=tuple(problems),
            raw=dict(resource) if problems else None,
        )


def _is_ip_address(value: Any) -> bool:
    # inet_pton rather than the ipaddress module: as strict, and ten times faster a call.
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, str(value))
        except OSError:
            continue
        return True
    return False


def _parse_time(raw: Any) -> dt.datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def _content_hash(resource: Mapping[str, Any]) -> str:
    # The etag changes between answers for the same record; leave it out.
    content = {key: value for key, value in resource.items() if key not in ("etag", "kind")}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[
        :32
    ]


def _events(raw: Any, problems: list[str]) -> tuple[ActivityEvent, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append("events is missing or empty")
        return (ActivityEvent("", "", {}),)
    events = []
    for number, event in enumerate(raw):
        if not isinstance(event, Mapping) or not isinstance(event.get("name"), str):
            problems.append(f"events[{number}] has no name")
            event = event if isinstance(event, Mapping) else {}
        events.append(
            ActivityEvent(
                name=str(event.get("name") or ""),
                type=str(event.get("type") or ""),
                parameters=_parameters(event.get("parameters"), problems, f"events[{number}]"),
            )
        )
    return tuple(events)


def _parameters(raw: Any, problems: list[str], where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        problems.append(f"{where}.parameters is not a list")
        return {}
    values: dict[str, Any] = {}
    for parameter in raw:
        if not isinstance(parameter, Mapping) or not isinstance(parameter.get("name"), str):
            problems.append(f"{where} has a parameter without a name")
            continue
        name = parameter["name"]
        value = _value(parameter)
        # A name Google repeats keeps every value, in order.
        if name in values:
            previous = values[name]
            values[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            values[name] = value
    return values


def _value(parameter: Mapping[str, Any]) -> Any:
    if "value" in parameter:
        return parameter["value"]
    if "boolValue" in parameter:
        return parameter["boolValue"]
    if "intValue" in parameter:
        return _int(parameter["intValue"])
    if "multiValue" in parameter:
        return parameter["multiValue"]
    if "multiIntValue" in parameter:
        return [_int(item) for item in parameter["multiIntValue"] or []]
    if "messageValue" in parameter:
        return _message(parameter["messageValue"])
    if "multiMessageValue" in parameter:
        return [_message(item) for item in parameter["multiMessageValue"] or []]
    return None


def _int(raw: Any) -> Any:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return raw


def _message(raw: Any) -> Any:
    if not isinstance(raw, Mapping):
        return raw
    nested = raw.get("parameter")
    if not isinstance(nested, list):
        return dict(raw)
    return {
        str(item.get("name")): _value(item)
        for item in nested
        if isinstance(item, Mapping) and "name" in item
    }


class GoogleReportsClient:
    """Activity reports of one Workspace customer. ``label`` names the platform in errors."""

    def __init__(
        self,
        key: Mapping[str, Any],
        admin_email: str,
        *,
        api_endpoint: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        label: str = "",
        before_call: Callable[[], None] | None = None,
    ) -> None:
        self.label = label
        self._session = GoogleAdminSession(
            key,
            admin_email,
            scopes=[REPORTS_SCOPE],
            api_endpoint=api_endpoint,
            timeout=timeout,
            before_call=before_call,
            access_hint=(
                f"The admin {admin_email} needs the Reports privilege, and the service "
                f"account's domain-wide delegation the scope {REPORTS_SCOPE}"
            ),
        )
        self._activities = self._session.service("admin", "reports_v1").activities()

    def __repr__(self) -> str:
        return f"<GoogleReportsClient {self._session!r}>"

    def subject(self, application: str) -> str:
        return f"the {application} activity report" + (f" of {self.label}" if self.label else "")

    def list_activities(
        self,
        application: str,
        *,
        start: dt.datetime,
        end: dt.datetime,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[list[Activity]]:
        """Every activity of ``application`` from ``start`` to ``end``, one page at a time
        (Google answers newest first), so no more than a page is held in memory."""
        if application not in APPLICATIONS:
            raise ValueError(f"unknown Reports application {application!r}")
        request = self._activities.list(
            userKey="all",
            applicationName=application,
            startTime=rfc3339(start),
            endTime=rfc3339(end),
            maxResults=page_size,
        )
        subject = self.subject(application)
        while request is not None:
            response = self._session.execute(request, subject)
            items = response.get("items") or []
            yield [Activity.from_resource(item, application) for item in items]
            request = self._activities.list_next(request, response)
