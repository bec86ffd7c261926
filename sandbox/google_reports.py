"""The Admin SDK Reports API's activities.list on the Directory sandbox's server, with a generator
of realistic activity streams in which some activities arrive late."""

import base64
import binascii
import bisect
import copy
import datetime as dt
import importlib.util
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sandbox.google_directory import GoogleApiError, Reply, Route

if TYPE_CHECKING:
    from sandbox.google_directory import GoogleDirectorySandbox

CONTROL_PREFIX = "/_sandbox/reports"
DEFAULT_APPLICATIONS = ("admin", "login", "token")
# A key packs an activity's time (ms) above a sequence number, so one sorted list of ints
# orders activities by time and keeps two of the same millisecond apart; 2**28 sequence
# numbers are far more than a sandbox ever holds.
SEQ_BITS = 28
SEQ_MASK = (1 << SEQ_BITS) - 1
_MASK64 = (1 << 64) - 1


def load_discovery(name: str) -> dict[str, Any]:
    """A discovery document shipped with google-api-python-client, found without importing it
    (only connectors import client libraries)."""
    spec = importlib.util.find_spec("googleapiclient")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("google-api-python-client is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    document = root / "discovery_cache" / "documents" / f"{name}.json"
    return cast(dict[str, Any], json.loads(document.read_text()))


def routes_for(document: dict[str, Any], resource: str, methods: Iterable[str]) -> list[Route]:
    """Routes for ``resource``'s ``methods`` as the discovery document describes them."""
    routes = []
    for name in methods:
        method = document["resources"][resource]["methods"][name]
        path = document["servicePath"] + method["path"]
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape("/" + path))
        routes.append(
            Route(
                name=f"{resource}.{name}",
                http_method=method["httpMethod"],
                path=path,
                pattern=re.compile(regex + "$"),
                parameters=method.get("parameters", {}),
                scopes=frozenset(method["scopes"]),
            )
        )
    return routes


DISCOVERY = load_discovery("admin.reports_v1")
SCOPES = frozenset(DISCOVERY["auth"]["oauth2"]["scopes"])
ROUTES = routes_for(DISCOVERY, "activities", ("list",))
_LIST_PARAMETERS: dict[str, Any] = DISCOVERY["resources"]["activities"]["methods"]["list"][
    "parameters"
]
APPLICATIONS: tuple[str, ...] = tuple(_LIST_PARAMETERS["applicationName"]["enum"])
_TIME_PATTERN = re.compile(_LIST_PARAMETERS["startTime"]["pattern"])
# Google keeps most activity reports for six months; a request without startTime reads them all.
RETENTION = dt.timedelta(days=180)


def rfc3339(moment: dt.datetime) -> str:
    """Google's activity time: UTC, milliseconds, a Z."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _mix(value: int) -> int:
    """splitmix64: a cheap, well-spread function of the sequence number, so a generated
    activity is re-rendered from its key alone instead of being kept in memory."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


# --- what a generated activity looks like ---------------------------------------------------

Params = Callable[[int, str, str], list[dict[str, Any]]]


def _p(name: str, value: Any) -> dict[str, Any]:
    """One event parameter in Google's typed shape."""
    if isinstance(value, bool):
        return {"name": name, "boolValue": value}
    if isinstance(value, int):
        return {"name": name, "intValue": str(value)}
    if isinstance(value, list):
        return {"name": name, "multiValue": value}
    return {"name": name, "value": value}


_OAUTH_APPS = (
    ("1234567890-slack.apps.googleusercontent.com", "Slack", "WEB"),
    ("2345678901-zoom.apps.googleusercontent.com", "Zoom", "WEB"),
    ("3456789012-gcal.apps.googleusercontent.com", "Calendar Sync", "NATIVE_DESKTOP"),
    ("4567890123-backup.apps.googleusercontent.com", "Backupify", "WEB"),
)
_SCOPES = (
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/drive.readonly",
    "https://www.googleapis.com/auth/userinfo.email",
    "openid",
)
_ROLES = ("_SEED_ADMIN_ROLE", "Help Desk Admin", "User Management Admin", "Groups Admin")


def _login(rng: int, actor: str, target: str) -> list[dict[str, Any]]:
    return [
        _p("login_type", ("google_password", "saml", "reauth")[rng % 3]),
        _p("login_challenge_method", ["password", "google_authenticator"][: 1 + rng % 2]),
        _p("is_suspicious", rng % 97 == 0),
    ]


def _login_failure(rng: int, actor: str, target: str) -> list[dict[str, Any]]:
    return [
        _p("login_type", "google_password"),
        _p("login_failure_type", "login_failure_invalid_password"),
        _p("is_suspicious", rng % 5 == 0),
    ]


def _challenge(rng: int, actor: str, target: str) -> list[dict[str, Any]]:
    return [
        _p("login_challenge_method", "google_authenticator"),
        _p("login_challenge_status", "Challenge Passed" if rng % 9 else "Challenge Failed"),
    ]


def _token(rng: int, actor: str, target: str) -> list[dict[str, Any]]:
    client_id, app_name, client_type = _OAUTH_APPS[rng % len(_OAUTH_APPS)]
    return [
        _p("client_id", client_id),
        _p("app_name", app_name),
        _p("client_type", client_type),
        _p("scope", list(_SCOPES[: 1 + rng % len(_SCOPES)])),
    ]


def _api_call(rng: int, actor: str, target: str) -> list[dict[str, Any]]:
    client_id, app_name, _ = _OAUTH_APPS[rng % len(_OAUTH_APPS)]
    return [
        _p("client_id", client_id),
        _p("app_name", app_name),
        _p("api_name", ("calendar", "drive", "gmail")[rng % 3]),
        _p("method_name", ("events.list", "files.get", "users.messages.list")[rng % 3]),
        _p("num_response_bytes", 200 + rng % 50_000),
    ]


def _user(rng: int, actor: str, target: str) -> list[dict[str, Any]]:
    return [_p("USER_EMAIL", target)]


def _group_member(rng: int, actor: str, target: str) -> list[dict[str, Any]]:
    domain = target.partition("@")[2]
    group = ("engineering", "sales", "all-staff", "admins")[rng % 4]
    return [_p("USER_EMAIL", target), _p("GROUP_EMAIL", f"{group}@{domain}")]


def _role(rng: int, actor: str, target: str) -> list[dict[str, Any]]:
    return [_p("USER_EMAIL", target), _p("ROLE_NAME", _ROLES[rng % len(_ROLES)])]


def _org_move(rng: int, actor: str, target: str) -> list[dict[str, Any]]:
    return [
        _p("USER_EMAIL", target),
        _p("ORG_UNIT_NAME", "/"),
        _p("NEW_VALUE", ("/Engineering", "/Sales", "/Contractors")[rng % 3]),
    ]


@dataclass(frozen=True)
class _Kind:
    """One kind of activity: its share (weight) and its events (type, name, parameters)."""

    weight: int
    events: tuple[tuple[str, str, Params], ...]


CATALOGUE: dict[str, tuple[_Kind, ...]] = {
    "login": (
        _Kind(60, (("login", "login_success", _login),)),
        _Kind(15, (("login", "login_failure", _login_failure),)),
        _Kind(19, (("login", "logout", _login),)),
        _Kind(5, (("login", "login_challenge", _challenge),)),
        _Kind(1, (("login", "suspicious_login", _login_failure),)),
    ),
    "token": (
        _Kind(55, (("auth", "activity", _api_call),)),
        _Kind(38, (("auth", "authorize", _token),)),
        _Kind(7, (("auth", "revoke", _token),)),
    ),
    "admin": (
        _Kind(30, (("USER_SETTINGS", "CHANGE_PASSWORD", _user),)),
        _Kind(20, (("GROUP_SETTINGS", "ADD_GROUP_MEMBER", _group_member),)),
        _Kind(15, (("USER_SETTINGS", "SUSPEND_USER", _user),)),
        _Kind(12, (("USER_SETTINGS", "CHANGE_USER_ORGANIZATION", _org_move),)),
        _Kind(8, (("DELEGATED_ADMIN_SETTINGS", "ASSIGN_ROLE", _role),)),
        # Some activities hold more than one event; an account set up in one go is one.
        _Kind(
            15,
            (
                ("USER_SETTINGS", "CREATE_USER", _user),
                ("USER_SETTINGS", "CHANGE_PASSWORD", _user),
            ),
        ),
    ),
}
# Applications without a catalogue of their own get plain login-like activities.
_FALLBACK = CATALOGUE["login"]
# Shares of the applications in a mixed stream: people sign in and apps call APIs far more
# often than admins change things.
APPLICATION_WEIGHTS = {"login": 45, "token": 45, "admin": 10}
ACTORS = 400
ADMINS = 6


def _pick(kinds: tuple[_Kind, ...], rng: int) -> _Kind:
    total = sum(kind.weight for kind in kinds)
    point = rng % total
    for kind in kinds:
        if point < kind.weight:
            return kind
        point -= kind.weight
    return kinds[-1]


def _ip(rng: int) -> str:
    if rng % 10 == 0:
        return f"2001:db8::{rng % 0xFFFF:x}"
    return (
        f"{(203, 198, 192)[rng % 3]}.{(0, 51, 0)[rng % 3]}.{(113, 100, 2)[rng % 3]}.{rng % 254 + 1}"
    )


# --- the activity log -----------------------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    """What generate() added: how many per application, how many of them are held back."""

    per_application: dict[str, int]
    late: int
    first: dt.datetime
    last: dt.datetime


class ActivityLog:
    """The activities of one customer, per application. Generated activities are kept as one
    int each and rendered when served; activities added as dicts are kept as given."""

    def __init__(self, customer_id: str, domain: str) -> None:
        self.customer_id = customer_id
        self.domain = domain
        self._lock = threading.Lock()
        self._keys: dict[str, list[int]] = {}
        self._custom: dict[str, dict[int, Any]] = {}
        # Activities Google has recorded but not published yet: key -> visible from (epoch s).
        self._hidden: dict[str, dict[int, float]] = {}
        self._seq = 0

    def _next_seq(self) -> int:
        self._seq += 1
        if self._seq > SEQ_MASK:
            raise RuntimeError("the sandbox activity log is full")
        return self._seq

    def add(
        self,
        application: str,
        activity: Any,
        *,
        at: dt.datetime | None = None,
        visible_from: float | None = None,
    ) -> None:
        """Add one activity as given (malformed ones too). ``at`` places it in time when its
        own id.time cannot; ``visible_from`` (epoch seconds) holds it back until then."""
        when = at
        if when is None and isinstance(activity, dict):
            raw_time = (activity.get("id") or {}).get("time")
            if isinstance(raw_time, str) and _TIME_PATTERN.fullmatch(raw_time):
                when = dt.datetime.fromisoformat(raw_time)
        when = when or dt.datetime.now(dt.UTC)
        with self._lock:
            key = (_ms(when) << SEQ_BITS) | self._next_seq()
            bisect.insort(self._keys.setdefault(application, []), key)
            self._custom.setdefault(application, {})[key] = copy.deepcopy(activity)
            if visible_from is not None:
                self._hidden.setdefault(application, {})[key] = visible_from

    def activity(
        self,
        application: str,
        at: dt.datetime,
        *,
        name: str = "login_success",
        event_type: str = "login",
        actor: str = "",
        ip_address: str = "203.0.113.7",
        parameters: Sequence[dict[str, Any]] = (),
        unique_qualifier: str | None = None,
    ) -> dict[str, Any]:
        """A well-formed activity with one event, for tests to add (or to spoil first)."""
        with self._lock:
            qualifier = unique_qualifier or str(_mix(self._seq + 7_000_000) - (1 << 63))
        return {
            "kind": "admin#reports#activity",
            "id": {
                "time": rfc3339(at),
                "uniqueQualifier": qualifier,
                "applicationName": application,
                "customerId": self.customer_id,
            },
            "etag": f'"{qualifier}"',
            "actor": {
                "callerType": "USER",
                "email": actor or f"user0001@{self.domain}",
                "profileId": "100000000000000000001",
            },
            "ipAddress": ip_address,
            "events": [{"type": event_type, "name": name, "parameters": list(parameters)}],
        }

    def generate(
        self,
        count: int,
        *,
        applications: Sequence[str] = DEFAULT_APPLICATIONS,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        late_fraction: float = 0.0,
        late_seconds: float = 300.0,
        seed: int = 0,
    ) -> Generated:
        """``count`` activities spread evenly over [start, end] (default: the last hour),
        mixed over ``applications``. A ``late_fraction`` of them are published half to all of
        ``late_seconds`` after their own time: those near ``end`` only become visible later."""
        if count < 0 or not 0.0 <= late_fraction <= 1.0:
            raise ValueError("count must be >= 0 and late_fraction within [0, 1]")
        unknown = [app for app in applications if app not in APPLICATIONS]
        if unknown or not applications:
            raise ValueError(f"unknown applications {unknown}; one of {list(APPLICATIONS)}")
        end = end or dt.datetime.now(dt.UTC)
        start = start or end - dt.timedelta(hours=1)
        if start > end:
            raise ValueError("start must not be after end")
        weights = [APPLICATION_WEIGHTS.get(app, 10) for app in applications]
        total_weight = sum(weights)
        span = max(_ms(end) - _ms(start), 1)
        late_every = round(1 / late_fraction) if late_fraction else 0
        per_app: dict[str, list[int]] = {app: [] for app in applications}
        hidden: dict[str, dict[int, float]] = {app: {} for app in applications}
        with self._lock:
            base = self._seq
            for n in range(count):
                seq = self._next_seq()
                rng = _mix(seq ^ (seed << 32))
                point = rng % total_weight
                app = applications[-1]
                for candidate, weight in zip(applications, weights, strict=True):
                    if point < weight:
                        app = candidate
                        break
                    point -= weight
                # Evenly spread, jittered within a step: realistic, and sorted almost for free.
                at = _ms(start) + (n * span) // max(count, 1) + (rng >> 20) % max(span // count, 1)
                key = (min(at, _ms(end)) << SEQ_BITS) | seq
                per_app[app].append(key)
                if late_every and (seq - base) % late_every == 0:
                    # Published between half and all of late_seconds after it happened, as
                    # Google's own lag varies.
                    lag = late_seconds * (0.5 + ((rng >> 8) % 1000) / 2000)
                    hidden[app][key] = min(at, _ms(end)) / 1000 + lag
            for app in applications:
                keys = self._keys.setdefault(app, [])
                keys.extend(per_app[app])
                keys.sort()
                self._hidden.setdefault(app, {}).update(hidden[app])
        now = time.time()
        return Generated(
            per_application={app: len(keys) for app, keys in per_app.items() if keys},
            late=sum(1 for h in hidden.values() for at in h.values() if at > now),
            first=start,
            last=end,
        )

    def publish_late(self) -> int:
        """Publish every activity held back, now; how many there were."""
        with self._lock:
            released = sum(len(hidden) for hidden in self._hidden.values())
            self._hidden.clear()
        return released

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
            self._custom.clear()
            self._hidden.clear()

    def counts(self) -> dict[str, dict[str, int]]:
        """Per application: activities held, and how many of them are not published yet."""
        now = time.time()
        with self._lock:
            return {
                app: {
                    "activities": len(keys),
                    "unpublished": sum(1 for at in self._hidden.get(app, {}).values() if at > now),
                }
                for app, keys in self._keys.items()
            }

    def all_published(self, application: str) -> list[dict[str, Any]]:
        """Every published activity of an application, newest first (for tests)."""
        now = time.time()
        with self._lock:
            keys = self._keys.get(application, [])
            hidden = self._hidden.get(application, {})
            return [
                self._render(application, key)
                for key in reversed(keys)
                if hidden.get(key, 0) <= now
            ]

    def _render(self, application: str, key: int) -> Any:
        custom = self._custom.get(application, {})
        if key in custom:
            return copy.deepcopy(custom[key])
        seq = key & SEQ_MASK
        # Not _mix(seq) itself: generate() picked the application from that, and the kind of
        # activity must not follow from the application.
        rng = _mix(seq ^ 0x2545F4914F6CDD1D)
        kind = _pick(CATALOGUE.get(application, _FALLBACK), rng)
        admin = application == "admin"
        number = (rng >> 16) % (ADMINS if admin else ACTORS) + 1
        actor = f"{'admin' if admin else 'user'}{number:04d}@{self.domain}"
        target = f"user{(rng >> 24) % ACTORS + 1:04d}@{self.domain}"
        qualifier = str(_mix(seq ^ 0x5EED) - (1 << 63))
        return {
            "kind": "admin#reports#activity",
            "id": {
                "time": rfc3339(_from_ms(key >> SEQ_BITS)),
                "uniqueQualifier": qualifier,
                "applicationName": application,
                "customerId": self.customer_id,
            },
            "etag": f'"{qualifier[-12:]}"',
            "actor": {
                "callerType": "USER",
                "email": actor,
                "profileId": str(100_000_000_000_000_000_000 + number * 7919 + admin),
            },
            "ipAddress": _ip(rng >> 32),
            "events": [
                {"type": event_type, "name": name, "parameters": params(rng, actor, target)}
                for event_type, name, params in kind.events
            ],
        }

    def page(
        self,
        application: str,
        *,
        start: dt.datetime,
        end: dt.datetime,
        size: int,
        after: int | None,
        matches: Callable[[Any], bool],
    ) -> tuple[list[Any], int | None]:
        """Published activities in [start, end], newest first, older than the key ``after``;
        with the key to continue from when there are more."""
        now = time.time()
        items: list[Any] = []
        last_key = 0
        with self._lock:
            keys = self._keys.get(application, [])
            hidden = self._hidden.get(application, {})
            low = bisect.bisect_left(keys, _ms(start) << SEQ_BITS)
            high = bisect.bisect_right(keys, (_ms(end) << SEQ_BITS) | SEQ_MASK)
            if after is not None:
                high = min(high, bisect.bisect_left(keys, after))
            index = high - 1
            while index >= low:
                key = keys[index]
                index -= 1
                if hidden.get(key, 0) > now:
                    continue
                activity = self._render(application, key)
                if not matches(activity):
                    continue
                if len(items) == size:
                    return items, last_key
                items.append(activity)
                last_key = key
        return items, None


def _parse_time(name: str, raw: str | None) -> dt.datetime | None:
    if raw is None:
        return None
    if not _TIME_PATTERN.fullmatch(raw):
        raise GoogleApiError(400, "invalid", f"Invalid value for {name}: {raw}")
    moment = dt.datetime.fromisoformat(raw)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _encode_token(key: int) -> str:
    return base64.urlsafe_b64encode(json.dumps(["a", str(key)]).encode()).decode()


def _decode_token(token: str) -> int:
    try:
        tag, key = json.loads(base64.urlsafe_b64decode(token.encode()))
        if tag == "a" and isinstance(key, str) and key.isdigit():
            return int(key)
    except (ValueError, TypeError, binascii.Error):
        pass
    raise GoogleApiError(400, "invalid", "Invalid Input: pageToken")


def _matcher(user_key: str, query: dict[str, str]) -> Callable[[Any], bool]:
    """The filters of activities.list the sandbox honours: userKey, eventName, actorIpAddress."""
    event_name = query.get("eventName")
    ip_address = query.get("actorIpAddress")
    user = None if user_key == "all" else user_key.lower()

    def matches(activity: Any) -> bool:
        if not isinstance(activity, dict):
            return user is None and event_name is None and ip_address is None
        actor = activity.get("actor") or {}
        if user is not None and user not in (
            str(actor.get("email", "")).lower(),
            str(actor.get("profileId", "")),
        ):
            return False
        if ip_address is not None and activity.get("ipAddress") != ip_address:
            return False
        if event_name is not None:
            names = {event.get("name") for event in activity.get("events") or []}
            return event_name in names
        return True

    return matches


class ActivityReports:
    """The Reports API of one sandbox server: its routes, its activity log, its controls."""

    routes = ROUTES
    control_prefix = CONTROL_PREFIX

    def __init__(self, sandbox: "GoogleDirectorySandbox") -> None:
        directory = sandbox.directory
        self.log = ActivityLog(directory.customer_id, directory.domains[0])
        self._lock = threading.Lock()
        self._fail_after: tuple[int, int, str | None] | None = None

    def fail_after(self, pages: int, status: int = 503, reason: str | None = None) -> None:
        """Answer ``pages`` more activities.list calls, then fail the next one: an error
        halfway through a listing, which the sandbox's faults (taken first come) cannot place."""
        with self._lock:
            self._fail_after = (pages, status, reason)

    def _take_page_fault(self) -> None:
        with self._lock:
            if self._fail_after is None:
                return
            pages, status, reason = self._fail_after
            self._fail_after = (pages - 1, status, reason) if pages > 0 else None
        if pages == 0:
            raise GoogleApiError(status, reason)

    def call(self, route: Route, path: dict[str, str], query: dict[str, str], raw: bytes) -> Reply:
        self._take_page_fault()
        application = path["applicationName"]
        if application not in APPLICATIONS:
            raise GoogleApiError(
                400, "invalid", f"Invalid value for applicationName: {application}"
            )
        customer = query.get("customerId")
        if customer is not None and customer not in ("my_customer", self.log.customer_id):
            raise GoogleApiError(400, "badRequest", "Bad Request")
        now = dt.datetime.now(dt.UTC)
        end = _parse_time("endTime", query.get("endTime")) or now
        start = _parse_time("startTime", query.get("startTime")) or now - RETENTION
        if start > end:
            raise GoogleApiError(
                400, "invalid", "Start time must be less than or equal to the end time."
            )
        if end > now + dt.timedelta(minutes=5):
            raise GoogleApiError(400, "invalid", "End time cannot be in the future.")
        after = _decode_token(query["pageToken"]) if "pageToken" in query else None
        items, more = self.log.page(
            application,
            start=start,
            end=end,
            size=int(query.get("maxResults") or 1000),
            after=after,
            matches=_matcher(path["userKey"], query),
        )
        answer: dict[str, Any] = {"kind": "admin#reports#activities", "etag": '"sandbox"'}
        if items:
            answer["items"] = items
        if more is not None:
            answer["nextPageToken"] = _encode_token(more)
        return Reply(200, answer)

    def control(self, verb: str, path: str, raw: bytes) -> Reply:
        """GET: counts; DELETE: empty the log; POST …/generate {"count": N, "late_fraction":
        0.05, "late_seconds": 300, "minutes": 60, "applications": [...]}; POST …/publish:
        publish the late activities now; POST …/fail_after {"pages": 2, "status": 503}."""
        action = path[len(CONTROL_PREFIX) :].strip("/")
        try:
            body = json.loads(raw or b"{}")
            if verb == "GET" and not action:
                return Reply(200, {"applications": self.log.counts()})
            if verb == "DELETE" and not action:
                self.log.clear()
                return Reply(204)
            if verb == "POST" and action == "publish":
                return Reply(200, {"published": self.log.publish_late()})
            if verb == "POST" and action == "fail_after":
                self.fail_after(
                    int(body["pages"]), int(body.get("status", 503)), body.get("reason")
                )
                return Reply(200, {"fail_after": body})
            if verb == "POST" and action == "generate":
                if not isinstance(body, dict):
                    raise ValueError("the body is a JSON object")
                end = dt.datetime.now(dt.UTC)
                done = self.log.generate(
                    int(body.get("count", 100)),
                    applications=body.get("applications") or DEFAULT_APPLICATIONS,
                    start=end - dt.timedelta(minutes=float(body.get("minutes", 60))),
                    end=end,
                    late_fraction=float(body.get("late_fraction", 0.05)),
                    late_seconds=float(body.get("late_seconds", 300)),
                    seed=int(body.get("seed", time.time_ns() & 0xFFFF)),
                )
                return Reply(
                    200,
                    {
                        "generated": done.per_application,
                        "late": done.late,
                        "from": rfc3339(done.first),
                        "to": rfc3339(done.last),
                    },
                )
        except (ValueError, TypeError, KeyError) as exc:
            return Reply(400, {"error": str(exc)})
        return Reply(404, {"error": f"no control {verb} {path}"})
