"""Local server speaking Google's Admin SDK Directory API (users) and its OAuth token endpoint."""

import argparse
import base64
import binascii
import copy
import datetime as dt
import importlib.util
import json
import os
import re
import secrets
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from sandbox.google_keys import (
    decode_unverified,
    new_service_account_key,
    public_key_of,
    verify_rs256,
)
from sandbox.serving import ServedInThread

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth addresses every grant assertion to Google's token endpoint whatever the key's
# token_uri says, so the sandbox, standing in for that endpoint, answers to that name too.
GOOGLE_OAUTH_AUDIENCE = "https://oauth2.googleapis.com/token"
OAUTH_PATH = "/token"
CONTROL_PATH = "/_sandbox/faults"
RATE_LIMIT_PATH = "/_sandbox/rate-limit"
OAUTH_METHOD = "oauth.token"
SILENT_SUCCESS_THEN_409 = "silent_success_then_409"
SERVED_METHODS = ("insert", "get", "update", "patch", "list", "delete")
# Groups and their direct members: what directory sync lists and joiner/mover/leaver changes.
GROUP_SERVED_METHODS = {
    "groups": ("list", "get", "insert"),
    "members": ("list", "insert", "delete"),
}
HASH_FUNCTIONS = frozenset({"MD5", "SHA-1", "crypt"})
# Google's password rule: 8 to 100 characters, printable ASCII.
PASSWORD_LENGTH = (8, 100)
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]*$")
# The discovery document types these "any"; Google's reference says what they are: lists of
# objects, but for gender and notes, single objects.
_ANY_AS_OBJECT = frozenset({"gender", "notes"})
TOKEN_LIFETIME_SECONDS = 3600
_EMAIL = re.compile(r"^[^@\s]+@([^@\s]+\.[^@\s]+)$")


def _load_discovery() -> dict[str, Any]:
    # Found without importing googleapiclient: only connectors import client libraries.
    spec = importlib.util.find_spec("googleapiclient")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("google-api-python-client is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    document = root / "discovery_cache" / "documents" / "admin.directory_v1.json"
    return cast(dict[str, Any], json.loads(document.read_text()))


DISCOVERY = _load_discovery()
USER_PROPERTIES: dict[str, Any] = DISCOVERY["schemas"]["User"]["properties"]
# The Reports API (sandbox.google_reports) shares this token endpoint, as it shares Google's.
REPORTS_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/admin.reports.audit.readonly",
        "https://www.googleapis.com/auth/admin.reports.usage.readonly",
    }
)
KNOWN_SCOPES = frozenset(DISCOVERY["auth"]["oauth2"]["scopes"]) | REPORTS_SCOPES
# Server-assigned or output-only; a client sending them is ignored, as Google does.
_WRITABLE = {name for name, spec in USER_PROPERTIES.items() if not spec.get("readOnly")} - {
    "id",
    "password",
    "hashFunction",
    "primaryEmail",
}


def _required_fields(schema: str, method_id: str, prefix: str = "") -> list[str]:
    """Dotted paths the discovery document annotates as required for method_id."""
    found = []
    for name, spec in DISCOVERY["schemas"][schema]["properties"].items():
        if method_id in spec.get("annotations", {}).get("required", []):
            found.append(prefix + name)
            if "$ref" in spec:
                found += _required_fields(spec["$ref"], method_id, f"{prefix}{name}.")
    return found


INSERT_REQUIRED = _required_fields("User", "directory.users.insert")


@dataclass(frozen=True)
class Route:
    """One Directory API method served here, as the discovery document describes it."""

    name: str
    http_method: str
    path: str
    pattern: re.Pattern[str]
    parameters: dict[str, Any]
    scopes: frozenset[str]
    # The discovery schema of the answer ("User", "Users", ...): what a fields mask may name.
    response: str = ""


def discovery_routes() -> list[Route]:
    routes = []
    for resource, served in {"users": SERVED_METHODS, **GROUP_SERVED_METHODS}.items():
        methods = DISCOVERY["resources"][resource]["methods"]
        for name in served:
            method = methods[name]
            path = DISCOVERY["servicePath"] + method["path"]
            regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape("/" + path))
            routes.append(
                Route(
                    name=f"{resource}.{name}",
                    http_method=method["httpMethod"],
                    path=path,
                    pattern=re.compile(regex + "$"),
                    parameters=method.get("parameters", {}),
                    scopes=frozenset(method["scopes"]),
                    response=method.get("response", {}).get("$ref", ""),
                )
            )
    return routes


ROUTES = discovery_routes()


def extra_routes() -> list[Route]:
    """The Reports API's and the asset inventory's routes (sandbox.google_reports and
    sandbox.google_assets), served beside these; imported late, as they build on this module."""
    from sandbox import google_assets, google_reports

    return [*google_reports.ROUTES, *google_assets.ROUTES]


# reason -> (domain, Google's usual message)
_REASONS: dict[str, tuple[str, str]] = {
    "parseError": ("global", "Invalid JSON payload received."),
    "invalidParameter": ("global", "Invalid parameter"),
    "invalid": ("global", "Invalid Input"),
    "badRequest": ("global", "Bad Request"),
    "required": ("global", "Login Required."),
    "authError": ("global", "Invalid Credentials"),
    "forbidden": ("global", "Not Authorized to access this resource/api"),
    "insufficientPermissions": ("global", "Request had insufficient authentication scopes."),
    "userRateLimitExceeded": ("usageLimits", "User Rate Limit Exceeded"),
    "rateLimitExceeded": ("usageLimits", "Rate Limit Exceeded"),
    "quotaExceeded": ("usageLimits", "Quota exceeded for quota metric 'Queries'."),
    "notFound": ("global", "Resource Not Found: userKey"),
    "duplicate": ("global", "Entity already exists."),
    "conditionNotMet": ("global", "Precondition Failed"),
    "backendError": ("global", "The service is currently unavailable."),
}
_DEFAULT_REASONS = {
    400: "invalid",
    401: "authError",
    403: "forbidden",
    404: "notFound",
    409: "duplicate",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
}


class GoogleApiError(Exception):
    """An error the API answers with, in Google's JSON error shape."""

    def __init__(self, status: int, reason: str | None = None, message: str | None = None) -> None:
        self.status = status
        self.reason = reason or _DEFAULT_REASONS.get(
            status, "backendError" if status >= 500 else "invalid"
        )
        self.domain, default = _REASONS.get(self.reason, ("global", HTTPStatus(status).phrase))
        self.message = message or default
        super().__init__(f"{status} {self.reason}: {self.message}")

    def body(self) -> dict[str, Any]:
        detail = {"message": self.message, "domain": self.domain, "reason": self.reason}
        return {"error": {"code": self.status, "message": self.message, "errors": [detail]}}


def _invalid(what: str) -> GoogleApiError:
    return GoogleApiError(400, "invalid", f"Invalid Input: {what}")


@dataclass
class Fault:
    """One injected failure for a method ("users.insert", "oauth.token", or "*" for any API call).

    times=None repeats until cleared. delay_seconds stalls the answer first (for timeouts).
    mode silent_success_then_409 performs the insert and then answers 503, as if the response
    had been lost, so the client's retry meets 409 duplicate.
    """

    method: str = "*"
    status: int | None = None
    reason: str | None = None
    message: str | None = None
    times: int | None = 1
    mode: str | None = None
    delay_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.mode is not None:
            if self.mode != SILENT_SUCCESS_THEN_409:
                raise ValueError(f"unknown fault mode {self.mode!r}")
            if self.method == "*":
                self.method = "users.insert"
            if self.method != "users.insert":
                raise ValueError(f"{self.mode} applies to users.insert only")
        served = {route.name for route in [*ROUTES, *extra_routes()]} | {OAUTH_METHOD, "*"}
        if self.method not in served:
            raise ValueError(f"unknown method {self.method!r}; one of {sorted(served)}")
        if self.status is None and self.mode is None and not self.delay_seconds:
            raise ValueError("a fault needs a status, a mode or a delay_seconds")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError("a fault status is an HTTP error status (400-599)")
        if self.times is not None and self.times < 1:
            raise ValueError("times is at least 1, or null for until cleared")


class Faults:
    """The pending faults of one server, consumed first-added first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Fault] = []

    def add(
        self,
        method: str = "*",
        *,
        status: int | None = None,
        reason: str | None = None,
        message: str | None = None,
        times: int | None = 1,
        mode: str | None = None,
        delay_seconds: float = 0.0,
    ) -> Fault:
        fault = Fault(method, status, reason, message, times, mode, delay_seconds)
        with self._lock:
            self._pending.append(fault)
        return fault

    def add_spec(self, spec: object) -> Fault:
        """Add a fault from its JSON form, as POSTed to the control path."""
        if not isinstance(spec, dict):
            raise ValueError("a fault is a JSON object")
        unknown = set(spec) - {f.name for f in fields(Fault)}
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        return self.add(**spec)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(fault) for fault in self._pending]

    def take(self, method: str) -> Fault | None:
        with self._lock:
            for fault in self._pending:
                if fault.method == method or (fault.method == "*" and method != OAUTH_METHOD):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            self._pending.remove(fault)
                    return fault
        return None


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _etag() -> str:
    return f'"{secrets.token_urlsafe(27)}"'


def _numeric_id() -> str:
    return "1" + "".join(str(secrets.randbelow(10)) for _ in range(20))


def _typed_as(spec: dict[str, Any], name: str, value: Any) -> bool:
    kind = spec.get("type")
    if "$ref" in spec or kind == "object":
        return isinstance(value, dict)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if kind == "any":
        if name in _ANY_AS_OBJECT:
            return isinstance(value, dict)
        return isinstance(value, list) and all(isinstance(item, dict) for item in value)
    return True


def _type_label(spec: dict[str, Any], name: str) -> str:
    """How Google's error names the expected type: TYPE_STRING, TYPE_BOOL, a message type."""
    kind = spec.get("type")
    if kind == "boolean":
        return "TYPE_BOOL"
    if kind == "string":
        return "TYPE_STRING"
    if "$ref" in spec:
        return f"type.googleapis.com/admin.directory.{spec['$ref']}"
    return f"repeated {name}" if name not in _ANY_AS_OBJECT else name


class Directory:
    """The users of one customer, in memory. Every public method holds the lock."""

    def __init__(self, domains: Iterable[str], customer_id: str) -> None:
        self.domains = tuple(domain.lower() for domain in domains)
        self.customer_id = customer_id
        self._lock = threading.RLock()
        self._users: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, str] = {}  # lowercased primary email or alias -> id
        self._passwords: dict[str, tuple[str, str | None]] = {}  # id -> (password, hashFunction)
        # Whether the customer has an org unit at a path; the sandbox wires in its inventory.
        self.has_org_unit: Callable[[str], bool] = lambda path: path == "/"

    def _email_in_domain(self, value: object) -> str:
        if not isinstance(value, str) or not (match := _EMAIL.match(value.strip())):
            raise _invalid("primary_user_email")
        if match.group(1).lower() not in self.domains:
            raise GoogleApiError(404, "notFound", "Domain not found.")
        return value.strip().lower()

    def _find(self, user_key: str) -> dict[str, Any]:
        user_id = user_key if user_key in self._users else self._keys.get(user_key.lower())
        if user_id is None:
            raise GoogleApiError(404, "notFound", "Resource Not Found: userKey")
        return self._users[user_id]

    def _check(self, body: dict[str, Any]) -> None:
        """Refuse a bad body before anything changes, so a 400 never leaves half an update:
        unknown fields, wrong types, an org unit the customer lacks, a password Google
        would not take. Messages are Google's."""
        for name, value in body.items():
            spec = USER_PROPERTIES.get(name)
            if spec is None:
                raise GoogleApiError(
                    400,
                    "invalid",
                    f"Invalid JSON payload received. Unknown name \"{name}\" at 'user': "
                    "Cannot find field.",
                )
            if value is not None and not _typed_as(spec, name, value):
                raise GoogleApiError(
                    400,
                    "invalid",
                    f"Invalid value at 'user.{name}' ({_type_label(spec, name)}), "
                    f"{json.dumps(value)[:100]}",
                )
        if "name" in body and isinstance(body["name"], dict):
            for part, value in body["name"].items():
                known = DISCOVERY["schemas"]["UserName"]["properties"]
                if part not in known:
                    raise GoogleApiError(
                        400,
                        "invalid",
                        f'Invalid JSON payload received. Unknown name "{part}" at '
                        "'user.name': Cannot find field.",
                    )
                if value is not None and not isinstance(value, str):
                    raise _invalid(f"name.{part}")
        if "orgUnitPath" in body:
            path = str(body["orgUnitPath"] or "")
            if not path.startswith("/") or not self.has_org_unit(path):
                raise _invalid("INVALID_OU_ID")
        if "password" in body:
            password, hash_function = body["password"], body.get("hashFunction")
            if hash_function is not None and hash_function not in HASH_FUNCTIONS:
                raise _invalid("hashFunction")
            low, high = PASSWORD_LENGTH
            if not isinstance(password, str) or (
                hash_function is None
                and not (low <= len(password) <= high and _PRINTABLE_ASCII.match(password))
            ):
                raise GoogleApiError(400, "invalid", "Invalid Password")

    def _apply(self, user: dict[str, Any], body: dict[str, Any]) -> None:
        for name, value in body.items():
            if name not in _WRITABLE:
                continue
            if value is None:
                user.pop(name, None)
            elif name == "name":
                user["name"] = {**user.get("name", {}), **value}
            else:
                user[name] = value
        if "name" in user:
            names = user["name"]
            full = " ".join(filter(None, (names.get("givenName"), names.get("familyName"))))
            names["fullName"] = full
        if user.get("suspended"):
            user.setdefault("suspensionReason", "ADMIN")
        else:
            user.pop("suspensionReason", None)
        if "password" in body:
            self._passwords[user["id"]] = (body["password"], body.get("hashFunction"))
        user["etag"] = _etag()

    def insert(self, body: dict[str, Any]) -> dict[str, Any]:
        for path in INSERT_REQUIRED:
            value: Any = body
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if not value:
                raise _invalid(path)
        self._check(body)
        with self._lock:
            email = self._email_in_domain(body["primaryEmail"])
            if email in self._keys:
                raise GoogleApiError(409, "duplicate", "Entity already exists.")
            user_id = _numeric_id()
            while user_id in self._users:
                user_id = _numeric_id()
            user: dict[str, Any] = {
                "kind": "admin#directory#user",
                "id": user_id,
                "primaryEmail": email,
                "isAdmin": False,
                "isDelegatedAdmin": False,
                "lastLoginTime": "1970-01-01T00:00:00.000Z",
                "creationTime": _now(),
                "agreedToTerms": False,
                "suspended": False,
                "archived": False,
                "changePasswordAtNextLogin": False,
                "ipWhitelisted": False,
                "emails": [{"address": email, "primary": True}],
                "customerId": self.customer_id,
                "orgUnitPath": "/",
                "isMailboxSetup": False,
                "isEnrolledIn2Sv": False,
                "isEnforcedIn2Sv": False,
                "includeInGlobalAddressList": True,
            }
            self._apply(user, body)
            self._users[user_id] = user
            self._keys[email] = user_id
            return copy.deepcopy(user)

    def get(self, user_key: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._find(user_key))

    def update(self, user_key: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check(body)
        with self._lock:
            user = self._find(user_key)
            new_email = body.get("primaryEmail")
            if new_email is not None and new_email.lower() != user["primaryEmail"]:
                new_email = self._email_in_domain(new_email)
                if new_email in self._keys and self._keys[new_email] != user["id"]:
                    raise GoogleApiError(409, "duplicate", "Entity already exists.")
                # Google keeps the old address as an alias after a rename.
                user.setdefault("aliases", []).append(user["primaryEmail"])
                user["primaryEmail"] = new_email
                user["emails"] = [{"address": new_email, "primary": True}]
                self._keys[new_email] = user["id"]
            self._apply(user, body)
            return copy.deepcopy(user)

    def delete(self, user_key: str) -> None:
        with self._lock:
            user = self._find(user_key)
            del self._users[user["id"]]
            self._passwords.pop(user["id"], None)
            for key in [key for key, user_id in self._keys.items() if user_id == user["id"]]:
                del self._keys[key]

    def list_users(self, params: dict[str, str]) -> dict[str, Any]:
        customer, domain = params.get("customer"), params.get("domain")
        if not customer and not domain:
            raise GoogleApiError(400, "badRequest", "Bad Request")
        if customer and customer not in ("my_customer", self.customer_id):
            raise GoogleApiError(400, "badRequest", "Bad Request")
        if domain and domain.lower() not in self.domains:
            raise GoogleApiError(404, "notFound", "Domain not found.")
        matches = _compile_query(params.get("query", ""))
        order_by = params.get("orderBy", "email")
        descending = params.get("sortOrder") == "DESCENDING"
        page_size = int(params.get("maxResults") or 100)

        def sort_key(user: dict[str, Any]) -> list[str]:
            value = user["primaryEmail"] if order_by == "email" else user["name"][order_by]
            return [value.lower(), user["id"]]

        with self._lock:
            users = [
                user
                for user in self._users.values()
                if (not domain or user["primaryEmail"].endswith("@" + domain.lower()))
                and matches(user)
            ]
            users.sort(key=sort_key, reverse=descending)
            if "pageToken" in params:
                after = _decode_page_token(params["pageToken"])
                users = [
                    u for u in users if (sort_key(u) < after if descending else sort_key(u) > after)
                ]
            page = copy.deepcopy(users[:page_size])
        answer: dict[str, Any] = {"kind": "admin#directory#users", "etag": _etag()}
        if page:
            answer["users"] = page
        if len(users) > page_size:
            answer["nextPageToken"] = _encode_page_token(sort_key(page[-1]))
        return answer

    def password_of(self, user_key: str) -> tuple[str, str | None] | None:
        with self._lock:
            try:
                return self._passwords.get(self._find(user_key)["id"])
            except GoogleApiError:
                return None

    def users(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._users.values()))

    # Fast paths for tests and benchmarks, and the lookups the group store needs.

    def seed_users(self, users: Iterable[dict[str, Any]]) -> list[str]:
        """Add many users at once from User resources (primaryEmail required; name,
        orgUnitPath, suspended, organizations, relations, ... as given), skipping the API's
        copies and checks: 100,000 users take about a second. Returns their ids."""
        ids = []
        with self._lock:
            for body in users:
                email = self._email_in_domain(body["primaryEmail"])
                if email in self._keys:
                    raise GoogleApiError(409, "duplicate", "Entity already exists.")
                user_id = f"1{secrets.randbits(64):020d}"
                while user_id in self._users:
                    user_id = f"1{secrets.randbits(64):020d}"
                names = dict(body.get("name") or {})
                names["fullName"] = " ".join(
                    filter(None, (names.get("givenName"), names.get("familyName")))
                )
                user = {
                    "kind": "admin#directory#user",
                    "orgUnitPath": "/",
                    "suspended": False,
                    "customerId": self.customer_id,
                    **body,
                    "id": user_id,
                    "primaryEmail": email,
                    "name": names,
                    "etag": '"seeded"',
                }
                self._users[user_id] = user
                self._keys[email] = user_id
                ids.append(user_id)
        return ids

    def find_id(self, user_key: str) -> str | None:
        """The id of the user with this id, primary email or alias; None if there is none."""
        with self._lock:
            return user_key if user_key in self._users else self._keys.get(user_key.lower())

    def email_of(self, user_id: str) -> str | None:
        with self._lock:
            user = self._users.get(user_id)
            return None if user is None else str(user["primaryEmail"])


GROUP_INSERT_REQUIRED = _required_fields("Group", "directory.groups.insert")
# Google's caps for groups.list and members.list; larger maxResults are served as this many.
GROUP_PAGE_MAX = 200


class Groups:
    """The groups of the customer and their direct members, beside the users of `directory`.

    A member is kept as (kind, id, role); its email is read from the user or group at the time
    of listing, as Google reflects a renamed member. A member whose user was deleted is
    dropped from listings, as Google does.
    """

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self._lock = threading.RLock()
        self._groups: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, str] = {}  # lowercased email or alias -> id
        self._members: dict[str, dict[str, tuple[str, str]]] = {}  # group -> id -> (type, role)

    def _find(self, group_key: str) -> dict[str, Any]:
        group_id = group_key if group_key in self._groups else self._keys.get(group_key.lower())
        if group_id is None:
            raise GoogleApiError(404, "notFound", "Resource Not Found: groupKey")
        return self._groups[group_id]

    def _new_id(self) -> str:
        group_id = "0" + secrets.token_hex(7)
        while group_id in self._groups:
            group_id = "0" + secrets.token_hex(7)
        return group_id

    def _add(self, body: dict[str, Any]) -> dict[str, Any]:
        email = self.directory._email_in_domain(body.get("email"))
        if email in self._keys or self.directory.find_id(email) is not None:
            raise GoogleApiError(409, "duplicate", "Entity already exists.")
        group: dict[str, Any] = {
            "kind": "admin#directory#group",
            "id": self._new_id(),
            "etag": _etag(),
            "email": email,
            "name": str(body.get("name") or email.split("@")[0]),
            "description": str(body.get("description") or ""),
            "directMembersCount": "0",
            "adminCreated": True,
        }
        self._groups[group["id"]] = group
        self._keys[email] = group["id"]
        self._members[group["id"]] = {}
        return group

    def insert(self, body: dict[str, Any]) -> dict[str, Any]:
        for name in GROUP_INSERT_REQUIRED:
            if not body.get(name):
                raise _invalid(name)
        with self._lock:
            return copy.deepcopy(self._add(body))

    def get(self, group_key: str) -> dict[str, Any]:
        with self._lock:
            group = copy.deepcopy(self._find(group_key))
            group["directMembersCount"] = str(len(self._members[group["id"]]))
            return group

    def list_groups(self, params: dict[str, str]) -> dict[str, Any]:
        customer, domain, user_key = (params.get(k) for k in ("customer", "domain", "userKey"))
        if customer and user_key:
            raise GoogleApiError(400, "badRequest", "Bad Request")
        if not customer and not domain and not user_key:
            raise GoogleApiError(400, "badRequest", "Bad Request")
        if customer and customer not in ("my_customer", self.directory.customer_id):
            raise GoogleApiError(400, "badRequest", "Bad Request")
        if domain and domain.lower() not in self.directory.domains:
            raise GoogleApiError(404, "notFound", "Domain not found.")
        if params.get("query"):
            raise _invalid("query (the sandbox does not search groups)")
        member_id = None
        if user_key:
            member_id = self.directory.find_id(user_key)
            if member_id is None:
                raise GoogleApiError(404, "notFound", "Resource Not Found: userKey")
        descending = params.get("sortOrder") == "DESCENDING"
        with self._lock:
            groups = [
                group
                for group in self._groups.values()
                if (not domain or group["email"].endswith("@" + domain.lower()))
                and (member_id is None or member_id in self._members[group["id"]])
            ]
            return _page_of(
                groups,
                params,
                key=lambda group: [group["email"], group["id"]],
                descending=descending,
                kind="admin#directory#groups",
                items="groups",
            )

    def _member_resource(self, member_id: str, kind: str, role: str) -> dict[str, Any] | None:
        if kind == "USER":
            email = self.directory.email_of(member_id)
        else:
            group = self._groups.get(member_id)
            email = None if group is None else group["email"]
        if email is None:
            return None
        return {
            "kind": "admin#directory#member",
            "etag": '"member"',
            "id": member_id,
            "email": email,
            "role": role,
            "type": kind,
            "status": "ACTIVE",
        }

    def list_members(self, group_key: str, params: dict[str, str]) -> dict[str, Any]:
        roles = {r.strip().upper() for r in params.get("roles", "").split(",") if r.strip()}
        with self._lock:
            group = self._find(group_key)
            members = []
            for member_id, (kind, role) in self._members[group["id"]].items():
                if roles and role not in roles:
                    continue
                resource = self._member_resource(member_id, kind, role)
                if resource is not None:
                    members.append(resource)
            return _page_of(
                members,
                params,
                key=lambda member: [member["email"], member["id"]],
                descending=False,
                kind="admin#directory#members",
                items="members",
            )

    def _resolve_member(self, key: str) -> tuple[str, str]:
        user_id = self.directory.find_id(key)
        if user_id is not None:
            return user_id, "USER"
        group_id = key if key in self._groups else self._keys.get(key.lower())
        if group_id is not None:
            return group_id, "GROUP"
        raise GoogleApiError(404, "notFound", "Resource Not Found: memberKey")

    def insert_member(self, group_key: str, body: dict[str, Any]) -> dict[str, Any]:
        key = body.get("email") or body.get("id")
        if not isinstance(key, str) or not key:
            raise _invalid("memberKey")
        role = str(body.get("role") or "MEMBER").upper()
        if role not in ("OWNER", "MANAGER", "MEMBER"):
            raise _invalid("role")
        with self._lock:
            group = self._find(group_key)
            member_id, kind = self._resolve_member(key)
            if member_id == group["id"]:
                raise _invalid("memberKey")
            members = self._members[group["id"]]
            if member_id in members:
                raise GoogleApiError(409, "duplicate", "Member already exists.")
            members[member_id] = (kind, role)
            resource = self._member_resource(member_id, kind, role)
            assert resource is not None
            return resource

    def delete_member(self, group_key: str, member_key: str) -> None:
        with self._lock:
            group = self._find(group_key)
            members = self._members[group["id"]]
            try:
                member_id, _ = self._resolve_member(member_key)
            except GoogleApiError:
                member_id = member_key
            if member_id not in members:
                raise GoogleApiError(404, "notFound", "Resource Not Found: memberKey")
            del members[member_id]

    # Python-side views and seeding.

    def seed(
        self,
        groups: Iterable[dict[str, Any]],
        members: Mapping[str, Iterable[str]] | None = None,
    ) -> list[str]:
        """Add many groups ({"email", "name"}) and their user members (group email -> user
        emails or ids) at once, without the API's copies. Returns the new groups' ids."""
        with self._lock:
            ids = [self._add(dict(body))["id"] for body in groups]
            for group_key, keys in (members or {}).items():
                group_members = self._members[self._find(group_key)["id"]]
                for key in keys:
                    member_id, kind = self._resolve_member(key)
                    group_members[member_id] = (kind, "MEMBER")
        return ids

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._groups.values()))

    def member_emails(self, group_key: str) -> list[str]:
        with self._lock:
            group = self._find(group_key)
            emails = [
                resource["email"]
                for member_id, (kind, role) in self._members[group["id"]].items()
                if (resource := self._member_resource(member_id, kind, role)) is not None
            ]
            return sorted(emails)


def _page_of(
    objects: list[dict[str, Any]],
    params: dict[str, str],
    *,
    key: Callable[[dict[str, Any]], list[str]],
    descending: bool,
    kind: str,
    items: str,
) -> dict[str, Any]:
    """One page of a group or member listing, in key order, with Google's paging fields."""
    page_size = min(int(params.get("maxResults") or GROUP_PAGE_MAX), GROUP_PAGE_MAX)
    objects = sorted(objects, key=key, reverse=descending)
    if "pageToken" in params:
        after = _decode_page_token(params["pageToken"])
        objects = [o for o in objects if (key(o) < after if descending else key(o) > after)]
    page = copy.deepcopy(objects[:page_size])
    answer: dict[str, Any] = {"kind": kind, "etag": _etag()}
    if page:
        answer[items] = page
    if len(objects) > page_size:
        answer["nextPageToken"] = _encode_page_token(key(page[-1]))
    return _apply_fields(answer, params.get("fields", ""))


def _apply_fields(body: dict[str, Any], mask: str) -> dict[str, Any]:
    """Google's partial response: keep only the fields a `fields=` mask names, e.g.
    ``nextPageToken,groups(id,email)``. An empty mask keeps everything."""
    if not mask.strip():
        return body
    return cast(dict[str, Any], _select(body, _mask_tree(mask)))


def _mask_tree(mask: str) -> dict[str, Any]:
    compact = mask.replace(" ", "")
    try:
        tree, rest = _parse_mask(compact, 0)
    except (IndexError, ValueError):
        tree, rest = {}, -1
    if rest != len(compact):
        raise _invalid(f"fields mask {mask}")
    return tree


def check_fields_mask(mask: str, schema: str) -> None:
    """Refuse a fields mask naming what the answer's schema lacks, as Google does (400
    invalidParameter "Invalid field selection foo"); sub-fields of untyped ("any") values
    are not checked."""
    if mask.strip():
        _check_mask_names(_mask_tree(mask), schema)


def _check_mask_names(tree: dict[str, Any], schema: str) -> None:
    properties = DISCOVERY["schemas"].get(schema, {}).get("properties", {})
    for name, sub in tree.items():
        spec = properties.get(name)
        if spec is None:
            raise GoogleApiError(400, "invalidParameter", f"Invalid field selection {name}")
        target = spec.get("$ref") or (spec.get("items") or {}).get("$ref")
        if sub and target:
            _check_mask_names(sub, target)


def _parse_mask(mask: str, at: int) -> tuple[dict[str, Any], int]:
    tree: dict[str, Any] = {}
    while at < len(mask):
        match = re.compile(r"[A-Za-z_][\w/]*").match(mask, at)
        if match is None:
            raise ValueError(mask)
        name, at = match.group(0), match.end()
        sub: dict[str, Any] = {}
        if at < len(mask) and mask[at] == "(":
            sub, at = _parse_mask(mask, at + 1)
            if at >= len(mask) or mask[at] != ")":
                raise ValueError(mask)
            at += 1
        node = tree
        parts = name.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = sub
        if at < len(mask) and mask[at] == ",":
            at += 1
        elif at < len(mask) and mask[at] == ")":
            return tree, at
    return tree, at


def _select(value: Any, tree: dict[str, Any]) -> Any:
    if not tree:
        return value
    if isinstance(value, list):
        return [_select(item, tree) for item in value]
    if isinstance(value, dict):
        return {name: _select(value[name], sub) for name, sub in tree.items() if name in value}
    return value


def _encode_page_token(after: list[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(after).encode()).decode()


def _decode_page_token(token: str) -> list[str]:
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        after = None
    if not (isinstance(after, list) and all(isinstance(part, str) for part in after)):
        raise _invalid("pageToken")
    return after


def _compile_query(query: str) -> Callable[[dict[str, Any]], bool]:
    """The subset of Google's user search: email, givenName, familyName, name, orgUnitPath,
    isSuspended and isAdmin, with ':' (prefix when the value ends in '*') and '='."""
    tests: list[Callable[[dict[str, Any]], bool]] = []
    try:
        terms = shlex.split(query)
    except ValueError as exc:
        raise _invalid("query") from exc
    for term in terms:
        match = re.fullmatch(r"(\w+)([:=])(.*)", term)
        if not match:
            raise _invalid(f"query term {term}")
        field, operator, value = match.group(1), match.group(2), match.group(3).lower()
        if field in ("isSuspended", "isAdmin"):
            flag = "suspended" if field == "isSuspended" else "isAdmin"
            wanted = value == "true"

            def flag_test(user: dict[str, Any], flag: str = flag, wanted: bool = wanted) -> bool:
                return bool(user.get(flag)) == wanted

            tests.append(flag_test)
            continue
        getters: dict[str, Callable[[dict[str, Any]], list[str]]] = {
            "email": lambda user: [user["primaryEmail"], *user.get("aliases", [])],
            "givenName": lambda user: [user["name"].get("givenName", "")],
            "familyName": lambda user: [user["name"].get("familyName", "")],
            "name": lambda user: [user["name"].get("fullName", "")],
            "orgUnitPath": lambda user: [user.get("orgUnitPath", "/")],
        }
        if field not in getters:
            raise _invalid(f"query field {field}")
        prefix = operator == ":" and value.endswith("*")
        wanted_value = value.rstrip("*") if prefix else value

        def test(
            user: dict[str, Any],
            get: Callable[[dict[str, Any]], list[str]] = getters[field],
            wanted_value: str = wanted_value,
            prefix: bool = prefix,
        ) -> bool:
            values = [candidate.lower() for candidate in get(user)]
            if prefix:
                return any(candidate.startswith(wanted_value) for candidate in values)
            return wanted_value in values

        tests.append(test)
    return lambda user: all(test(user) for test in tests)


def _check_parameters(route: Route, query: dict[str, str]) -> None:
    """Refuse query parameters the discovery document does not allow, as Google's frontend does."""
    for name, value in query.items():
        spec = route.parameters.get(name) or DISCOVERY["parameters"].get(name)
        if spec is None or spec.get("location") != "query":
            raise GoogleApiError(
                400,
                "invalid",
                f'Invalid JSON payload received. Unknown name "{name}": '
                "Cannot bind query parameter.",
            )
        if "enum" in spec and value not in spec["enum"]:
            raise GoogleApiError(400, "invalid", f"Invalid value for {name}: {value}")
        if spec.get("type") == "integer":
            low, high = int(spec.get("minimum", -(2**31))), int(spec.get("maximum", 2**31 - 1))
            if not value.isdigit() or not low <= int(value) <= high:
                raise GoogleApiError(
                    400,
                    "invalid",
                    f"Invalid value '{value}'. Values must be within the range: [{low}, {high}]",
                )


@dataclass(frozen=True)
class Reply:
    """What the server answers: a status and a JSON body (None: no body)."""

    status: int
    body: Any = None


@dataclass(frozen=True)
class _Token:
    subject: str
    scopes: frozenset[str]
    expires_at: float


class RateLimit:
    """Google's per-user quota, made strict: a token bucket over every Directory API call
    (token grants excluded, as Google does); a call beyond it is answered 429
    rateLimitExceeded, or 403 userRateLimitExceeded as Directory often answers instead."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rate: float | None = None
        self.burst = 0
        self.status = 429
        self._tokens = 0.0
        self._at = 0.0
        self._throttled = 0

    def set(self, rate: float | None, *, burst: int | None = None, status: int = 429) -> None:
        """Allow ``rate`` calls a second with bursts of ``burst`` (default: one second's
        worth); None or 0 lifts the limit. The bucket starts full."""
        if status not in (429, 403):
            raise ValueError("a rate limit answers 429 or 403")
        with self._lock:
            self.rate = rate or None
            self.burst = max(1, burst if burst is not None else round(rate or 1))
            self.status = status
            self._tokens, self._at = float(self.burst), time.monotonic()

    def check(self) -> None:
        with self._lock:
            if self.rate is None:
                return
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            self._throttled += 1
        if self.status == 403:
            raise GoogleApiError(403, "userRateLimitExceeded")
        raise GoogleApiError(429, "rateLimitExceeded")

    def throttled(self) -> int:
        """How many calls were refused for the rate limit so far."""
        with self._lock:
            return self._throttled

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rate": self.rate,
                "burst": self.burst,
                "status": self.status,
                "throttled": self._throttled,
            }


class GoogleDirectorySandbox(ServedInThread):
    thread_name = "google-directory-sandbox"

    """An in-memory Google Workspace customer owning `domains`, served over HTTP."""

    def __init__(
        self,
        domains: Sequence[str] = ("example.com",),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        customer_id: str | None = None,
        org_units: Iterable[str] = (),
    ) -> None:
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        self.directory = Directory(
            domains, customer_id or "C0" + "".join(secrets.choice(alphabet) for _ in range(7))
        )
        self.faults = Faults()
        self.rate_limit = RateLimit()
        self.groups = Groups(self.directory)
        self.routes = ROUTES
        # The Reports API and the asset inventory answer here too, with the same tokens and
        # faults, as they share admin.googleapis.com (imported late: they build on this module).
        from sandbox.google_assets import AssetInventory
        from sandbox.google_reports import ActivityReports

        self.reports = ActivityReports(self)
        self.assets = AssetInventory(self)
        self.routes = [*self.routes, *self.reports.routes, *self.assets.routes]
        self.directory.has_org_unit = self.assets.has_org_unit
        for path in org_units:
            self.add_org_unit(path)
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[str, RSAPublicKey]] = {}  # private_key_id -> (email, key)
        self._tokens: dict[str, _Token] = {}
        self._calls: list[str] = []
        self._httpd = _HTTPServer((host, port), self)
        bound_host, bound_port = self._httpd.server_address[:2]
        self.base_url = f"http://{bound_host!s}:{bound_port}/"
        self.token_url = self.base_url + OAUTH_PATH.lstrip("/")

    # Python-side controls for tests and `make run`.

    def issue_key(self, name: str = "accesshive") -> dict[str, str]:
        """A new service-account key whose tokens this server grants."""
        key = new_service_account_key(self.token_url, name=name)
        with self._lock:
            self._keys[key["private_key_id"]] = (key["client_email"], public_key_of(key))
        return key

    def trust_key(self, key: dict[str, str]) -> None:
        """Grant tokens to an existing sandbox key too (one kept from an earlier run)."""
        with self._lock:
            self._keys[key["private_key_id"]] = (key["client_email"], public_key_of(key))

    def add_org_unit(self, path: str) -> None:
        """Give the customer an org unit (and its parents), as an admin would in the console;
        users.insert and users.update refuse any other orgUnitPath."""
        parts = [part for part in path.strip("/").split("/") if part]
        for depth in range(1, len(parts) + 1):
            partial = "/" + "/".join(parts[:depth])
            if not self.assets.has_org_unit(partial):
                self.assets.add_org_unit(partial)

    def password_of(self, user_key: str) -> str | None:
        """The last password the API received for a user; never served over HTTP."""
        stored = self.directory.password_of(user_key)
        return stored[0] if stored else None

    def hash_function_of(self, user_key: str) -> str | None:
        stored = self.directory.password_of(user_key)
        return stored[1] if stored else None

    def users(self) -> list[dict[str, Any]]:
        return self.directory.users()

    def seed(
        self,
        users: Iterable[dict[str, Any]] = (),
        groups: Iterable[dict[str, Any]] = (),
        members: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        """Fill the customer fast from Python (tests, benchmarks): User resources, groups
        ({"email", "name"}) and members (group email -> user emails)."""
        self.directory.seed_users(users)
        self.groups.seed(groups, members)

    def set_rate_limit(
        self, rate: float | None, *, burst: int | None = None, status: int = 429
    ) -> None:
        """Answer Directory API calls beyond ``rate`` a second with 429 (or 403
        userRateLimitExceeded); None lifts the limit. See RateLimit."""
        self.rate_limit.set(rate, burst=burst, status=status)

    def throttled(self) -> int:
        """How many calls the rate limit refused so far."""
        return self.rate_limit.throttled()

    def calls(self) -> list[str]:
        """Names of the methods called so far ("oauth.token", "users.list", ...), in order."""
        with self._lock:
            return list(self._calls)

    def tokens_issued(self) -> list[str]:
        """The subject (impersonated admin) of each access token granted so far."""
        with self._lock:
            return [token.subject for token in self._tokens.values()]

    # HTTP.

    def handle(self, verb: str, target: str, headers: dict[str, str], raw: bytes) -> Reply:
        url = urlsplit(target)
        query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        for api in (self.reports, self.assets):
            if url.path.startswith(api.control_prefix):
                return api.control(verb, url.path, raw)
        if url.path == CONTROL_PATH:
            return self._control(verb, raw)
        if url.path == RATE_LIMIT_PATH:
            return _rate_limit_reply(self, verb, raw)
        if url.path == OAUTH_PATH and verb == "POST":
            return self._token(raw)
        try:
            route, path_parameters = self._route(verb, url.path)
            with self._lock:
                self._calls.append(route.name)
            self._authorize(route, headers.get("authorization", ""))
            _check_parameters(route, query)
            if route in ROUTES and route.response:
                check_fields_mask(query.get("fields", ""), route.response)
            self.rate_limit.check()
            fault = self.faults.take(route.name)
            if fault is not None:
                time.sleep(fault.delay_seconds)
                if fault.mode == SILENT_SUCCESS_THEN_409:
                    self._call(route, path_parameters, query, raw)
                    raise GoogleApiError(503)
                if fault.status is not None:
                    raise GoogleApiError(fault.status, fault.reason, fault.message)
            reply = self._call(route, path_parameters, query, raw)
            if route in ROUTES and isinstance(reply.body, dict) and query.get("fields"):
                return Reply(reply.status, _apply_fields(reply.body, query["fields"]))
            return reply
        except GoogleApiError as exc:
            return Reply(exc.status, exc.body())

    def _route(self, verb: str, path: str) -> tuple[Route, dict[str, str]]:
        for route in self.routes:
            match = route.pattern.match(path)
            if match and route.http_method == verb:
                return route, {name: unquote(value) for name, value in match.groupdict().items()}
        raise GoogleApiError(404, "notFound", f"Not Found: {verb} {path}")

    def _authorize(self, route: Route, authorization: str) -> None:
        scheme, _, access_token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not access_token:
            raise GoogleApiError(401, "required", "Login Required.")
        with self._lock:
            token = self._tokens.get(access_token.strip())
        if token is None or token.expires_at < time.time():
            raise GoogleApiError(401, "authError", "Invalid Credentials")
        if not token.scopes & route.scopes:
            raise GoogleApiError(403, "insufficientPermissions")

    def _call(self, route: Route, path: dict[str, str], query: dict[str, str], raw: bytes) -> Reply:
        for api in (self.reports, self.assets):
            if route in api.routes:
                return api.call(route, path, query, raw)
        if route.name.startswith(("groups.", "members.")):
            return self._call_groups(route, path, query, raw)
        if route.name == "users.list":
            return Reply(200, self.directory.list_users(query))
        if route.name == "users.get":
            return Reply(200, self.directory.get(path["userKey"]))
        if route.name == "users.delete":
            self.directory.delete(path["userKey"])
            return Reply(204)
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise GoogleApiError(400, "parseError") from exc
        if not isinstance(body, dict):
            raise GoogleApiError(400, "parseError")
        if route.name == "users.insert":
            return Reply(200, self.directory.insert(body))
        return Reply(200, self.directory.update(path["userKey"], body))

    def _call_groups(
        self, route: Route, path: dict[str, str], query: dict[str, str], raw: bytes
    ) -> Reply:
        if route.name == "groups.list":
            return Reply(200, self.groups.list_groups(query))
        if route.name == "groups.get":
            return Reply(
                200, _apply_fields(self.groups.get(path["groupKey"]), query.get("fields", ""))
            )
        if route.name == "members.list":
            return Reply(200, self.groups.list_members(path["groupKey"], query))
        if route.name == "members.delete":
            self.groups.delete_member(path["groupKey"], path["memberKey"])
            return Reply(204)
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise GoogleApiError(400, "parseError") from exc
        if not isinstance(body, dict):
            raise GoogleApiError(400, "parseError")
        if route.name == "groups.insert":
            return Reply(200, self.groups.insert(body))
        return Reply(200, self.groups.insert_member(path["groupKey"], body))

    def _token(self, raw: bytes) -> Reply:
        with self._lock:
            self._calls.append(OAUTH_METHOD)
        fault = self.faults.take(OAUTH_METHOD)
        if fault is not None:
            time.sleep(fault.delay_seconds)
            if fault.status is not None:
                error = fault.reason or (
                    "internal_failure" if fault.status >= 500 else "invalid_grant"
                )
                description = fault.message or HTTPStatus(fault.status).phrase
                return Reply(fault.status, {"error": error, "error_description": description})
        form = {name: values[-1] for name, values in parse_qs(raw.decode(errors="replace")).items()}
        if form.get("grant_type") != JWT_BEARER:
            return _oauth_error(400, "unsupported_grant_type", "Invalid grant_type.")
        assertion = form.get("assertion", "")
        try:
            header, claims = decode_unverified(assertion)
        except ValueError:
            return _oauth_error(400, "invalid_grant", "Invalid JWT: malformed assertion.")
        with self._lock:
            client_email, public_key = self._keys.get(str(header.get("kid")), ("", None))
        if (
            public_key is None
            or header.get("alg") != "RS256"
            or claims.get("iss") != client_email
            or not verify_rs256(assertion, public_key)
        ):
            return _oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        if claims.get("aud") not in (self.token_url, GOOGLE_OAUTH_AUDIENCE):
            return _oauth_error(400, "invalid_grant", "Invalid JWT: Failed audience check.")
        now, issued, expires = time.time(), claims.get("iat"), claims.get("exp")
        if not (
            isinstance(issued, int)
            and isinstance(expires, int)
            and issued - 300 <= now <= expires
            and expires - issued <= TOKEN_LIFETIME_SECONDS
        ):
            return _oauth_error(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim.",
            )
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes or not scopes <= KNOWN_SCOPES:
            return _oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience.")
        subject = claims.get("sub")
        if (
            not isinstance(subject, str)
            or not (match := _EMAIL.match(subject))
            or (match.group(1).lower() not in self.directory.domains)
        ):
            return _oauth_error(
                401,
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or client "
                "not authorized for any of the scopes requested.",
            )
        access_token = "ya29.sandbox-" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[access_token] = _Token(
                subject.lower(), scopes, now + TOKEN_LIFETIME_SECONDS
            )
        return Reply(
            200,
            {
                "access_token": access_token,
                "expires_in": TOKEN_LIFETIME_SECONDS,
                "token_type": "Bearer",
            },
        )

    def _control(self, verb: str, raw: bytes) -> Reply:
        try:
            if verb == "POST":
                specs = json.loads(raw or b"{}")
                for spec in specs if isinstance(specs, list) else [specs]:
                    self.faults.add_spec(spec)
            elif verb == "DELETE":
                self.faults.clear()
                return Reply(204)
            elif verb != "GET":
                return Reply(405, {"error": f"{verb} is not allowed on {CONTROL_PATH}"})
        except (ValueError, TypeError) as exc:
            return Reply(400, {"error": str(exc)})
        return Reply(200, {"faults": self.faults.pending()})


def _rate_limit_reply(sandbox: GoogleDirectorySandbox, verb: str, raw: bytes) -> Reply:
    """GET: the limit and how many calls it refused; POST {"rate", "burst", "status"}: set
    it; DELETE: lift it."""
    try:
        if verb == "POST":
            spec = json.loads(raw or b"{}")
            sandbox.set_rate_limit(
                spec.get("rate"), burst=spec.get("burst"), status=int(spec.get("status", 429))
            )
        elif verb == "DELETE":
            sandbox.set_rate_limit(None)
        elif verb != "GET":
            return Reply(405, {"error": f"{verb} is not allowed on {RATE_LIMIT_PATH}"})
    except (ValueError, TypeError, AttributeError) as exc:
        return Reply(400, {"error": str(exc)})
    return Reply(200, sandbox.rate_limit.state())


def _oauth_error(status: int, error: str, description: str) -> Reply:
    return Reply(status, {"error": error, "error_description": description})


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: GoogleDirectorySandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up waiting (a timeout test) is no server fault worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        sandbox = cast(_HTTPServer, self.server).sandbox
        reply = sandbox.handle(self.command, self.path, headers, raw)
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        if reply.status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')
        if reply.body is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and `make run` read the calls() log instead of stderr."""


# The org units `make run`'s sandbox starts with.
DEMO_ORG_UNITS = (
    "/Engineering/Platform",
    "/Sales",
    "/Contractors",
    "/Staff/Research",
    "/Staff/Sales",
)


def start(
    domains: Sequence[str] = ("example.com",),
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    customer_id: str | None = None,
    org_units: Iterable[str] = (),
) -> GoogleDirectorySandbox:
    """A sandbox serving in a daemon thread (port 0: a free port); call shutdown() when done.
    ``org_units``: the customer's org units besides "/" (parents are added too)."""
    return GoogleDirectorySandbox(
        domains, host=host, port=port, customer_id=customer_id, org_units=org_units
    ).serve_in_thread()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.google_directory", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument(
        "--domain", action="append", dest="domains", help="a domain it owns (repeatable)"
    )
    parser.add_argument(
        "--key-out",
        type=Path,
        help="a service-account key for this server: kept and trusted if the file exists, "
        "else written there",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        metavar="RPS",
        help="answer Directory API calls beyond RPS a second with 429 (default: no limit)",
    )
    parser.add_argument("--rate-limit-burst", type=int, help="bucket size (default: RPS)")
    parser.add_argument(
        "--rate-limit-status",
        type=int,
        choices=(429, 403),
        default=429,
        help="429 rateLimitExceeded, or 403 userRateLimitExceeded",
    )
    parser.add_argument(
        "--org-unit",
        action="append",
        dest="org_units",
        help=f"an org unit it has (repeatable; default: {', '.join(DEMO_ORG_UNITS)})",
    )
    args = parser.parse_args(argv)
    sandbox = GoogleDirectorySandbox(
        args.domains or ["example.com"],
        host=args.host,
        port=args.port,
        org_units=args.org_units or DEMO_ORG_UNITS,
    )
    if args.rate_limit:
        sandbox.set_rate_limit(
            args.rate_limit, burst=args.rate_limit_burst, status=args.rate_limit_status
        )
    if args.key_out and args.key_out.exists():
        sandbox.trust_key(json.loads(args.key_out.read_text()))
    elif args.key_out:
        # The file holds a private key: readable by its owner only, from the first byte.
        descriptor = os.open(args.key_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(sandbox.issue_key(), out, indent=2)
    print(
        f"Google Directory sandbox for {', '.join(sandbox.directory.domains)} "
        f"on {sandbox.base_url}" + (f", key in {args.key_out}" if args.key_out else ""),
        flush=True,
    )
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.shutdown()


if __name__ == "__main__":
    main()
