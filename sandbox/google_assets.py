"""The Directory API's inventory beyond users on the Directory sandbox's server: org units,
domains, mobile and ChromeOS devices, and users' third-party OAuth tokens (list methods, and
tokens.delete to revoke a grant)."""

import base64
import binascii
import copy
import datetime as dt
import hashlib
import json
import secrets
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sandbox.google_directory import DISCOVERY, GoogleApiError, Reply, Route
from sandbox.google_reports import routes_for

if TYPE_CHECKING:
    from sandbox.google_directory import GoogleDirectorySandbox

CONTROL_PREFIX = "/_sandbox/assets"
ROUTES: list[Route] = [
    *routes_for(DISCOVERY, "orgunits", ("list",)),
    *routes_for(DISCOVERY, "domains", ("list",)),
    *routes_for(DISCOVERY, "mobiledevices", ("list",)),
    *routes_for(DISCOVERY, "chromeosdevices", ("list",)),
    *routes_for(DISCOVERY, "tokens", ("list", "delete")),
]
# The collections held here, by the name tests and the control path use.
KINDS = ("orgunits", "domains", "mobiledevices", "chromeosdevices")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _etag() -> str:
    return f'"{secrets.token_urlsafe(18)}"'


def _short_id(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:12]


def _encode_token(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(["d", after]).encode()).decode()


def _decode_token(token: str) -> str:
    try:
        tag, after = json.loads(base64.urlsafe_b64decode(token.encode()))
        if tag == "d" and isinstance(after, str):
            return after
    except (ValueError, TypeError, binascii.Error):
        pass
    raise GoogleApiError(400, "invalid", "Invalid Input: pageToken")


def _page(
    items: list[dict[str, Any]], id_field: str, query: dict[str, str], default_size: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Keyset paging by id, as stable as Google's while items come and go between pages."""
    items = sorted(items, key=lambda item: str(item[id_field]))
    if "pageToken" in query:
        after = _decode_token(query["pageToken"])
        items = [item for item in items if str(item[id_field]) > after]
    size = int(query.get("maxResults") or default_size)
    page = items[:size]
    more = _encode_token(str(page[-1][id_field])) if len(items) > size else None
    return copy.deepcopy(page), more


class AssetInventory:
    """Org units, domains, devices and OAuth tokens of the sandbox's customer, in memory."""

    routes = ROUTES
    control_prefix = CONTROL_PREFIX

    def __init__(self, sandbox: "GoogleDirectorySandbox") -> None:
        self.directory = sandbox.directory
        self._lock = threading.RLock()
        self._items: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self._tokens: dict[str, dict[str, dict[str, Any]]] = {}  # user id -> client id -> token
        for number, domain in enumerate(self.directory.domains):
            self.add_domain(domain, primary=number == 0)

    # Python-side controls for tests, the demo and benchmarks.

    def add_org_unit(self, path: str, description: str = "") -> dict[str, Any]:
        parent, _, name = path.rstrip("/").rpartition("/")
        unit_id = f"id:{_short_id(path)}"
        unit = {
            "kind": "admin#directory#orgUnit",
            "etag": _etag(),
            "name": name,
            "description": description,
            "orgUnitPath": path,
            "orgUnitId": unit_id,
            "parentOrgUnitPath": parent or "/",
            "parentOrgUnitId": f"id:{_short_id(parent or '/')}",
            "blockInheritance": False,
        }
        return self.put("orgunits", unit_id, unit)

    def has_org_unit(self, path: str) -> bool:
        """Whether the customer has this org unit; Google compares paths case-insensitively."""
        if path == "/":
            return True
        wanted = path.rstrip("/").lower()
        with self._lock:
            return any(
                unit["orgUnitPath"].lower() == wanted for unit in self._items["orgunits"].values()
            )

    def add_domain(self, name: str, *, primary: bool = False) -> dict[str, Any]:
        domain: dict[str, Any] = {
            "kind": "admin#directory#domain",
            "etag": _etag(),
            "domainName": name.lower(),
            "isPrimary": primary,
            "verified": True,
            "creationTime": "1700000000000",
            "domainAliases": [],
        }
        return self.put("domains", name.lower(), domain)

    def add_mobile_device(
        self,
        email: str,
        *,
        model: str = "Pixel 8",
        os: str = "Android 14",
        device_type: str = "ANDROID",
        status: str = "APPROVED",
    ) -> dict[str, Any]:
        resource_id = "AFiQxQ" + secrets.token_hex(10)
        device = {
            "kind": "admin#directory#mobiledevice",
            "etag": _etag(),
            "resourceId": resource_id,
            "deviceId": secrets.token_hex(8),
            "email": [email],
            "name": [email.partition("@")[0]],
            "model": model,
            "os": os,
            "type": device_type,
            "status": status,
            "firstSync": _now(),
            "lastSync": _now(),
            "serialNumber": secrets.token_hex(5).upper(),
            "encryptionStatus": "Encrypted",
            "devicePasswordStatus": "On",
            "deviceCompromisedStatus": "No compromise detected",
        }
        return self.put("mobiledevices", resource_id, device)

    def add_chromeos_device(
        self,
        serial_number: str,
        *,
        model: str = "HP Chromebook 14",
        org_unit_path: str = "/",
        annotated_user: str = "",
        os_version: str = "126.0.6478.132",
    ) -> dict[str, Any]:
        device_id = f"{_short_id(serial_number)}-{secrets.token_hex(4)}"
        device = {
            "kind": "admin#directory#chromeosdevice",
            "etag": _etag(),
            "deviceId": device_id,
            "serialNumber": serial_number,
            "status": "ACTIVE",
            "model": model,
            "orgUnitPath": org_unit_path,
            "annotatedUser": annotated_user,
            "osVersion": os_version,
            "platformVersion": "15886.44.0 (Official Build) stable-channel",
            "bootMode": "Verified",
            "lastSync": _now(),
            "lastEnrollmentTime": _now(),
            "macAddress": secrets.token_hex(6),
        }
        return self.put("chromeosdevices", device_id, device)

    def add_token(
        self,
        user_key: str,
        client_id: str,
        display_text: str,
        scopes: Iterable[str] = ("https://www.googleapis.com/auth/userinfo.email",),
    ) -> dict[str, Any]:
        user = self.directory.get(user_key)
        token = {
            "kind": "admin#directory#token",
            "etag": _etag(),
            "clientId": client_id,
            "displayText": display_text,
            "anonymous": False,
            "nativeApp": False,
            "scopes": list(scopes),
            "userKey": user["id"],
        }
        with self._lock:
            self._tokens.setdefault(user["id"], {})[client_id] = token
        return copy.deepcopy(token)

    def remove_token(self, user_key: str, client_id: str) -> None:
        user = self.directory.get(user_key)
        with self._lock:
            self._tokens.get(user["id"], {}).pop(client_id, None)

    def update(self, kind: str, item_id: str, **fields: Any) -> dict[str, Any]:
        """Change fields of one org unit, domain or device (as an admin or a sync would)."""
        with self._lock:
            item = self._items[kind][item_id]
            item.update(fields, etag=_etag())
            return copy.deepcopy(item)

    def remove(self, kind: str, item_id: str) -> None:
        with self._lock:
            del self._items[kind][item_id]

    def items(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._items[kind].values()))

    def seed(self, *, users: int = 10, devices: int = 5) -> dict[str, int]:
        """A small realistic customer: org units, users (through the Directory), their
        phones and OAuth grants, Chromebooks."""
        domain = self.directory.domains[0]
        for path in ("/Engineering", "/Engineering/Platform", "/Sales", "/Contractors"):
            self.add_org_unit(path, f"{path.rsplit('/', 1)[1]} team")
        apps = (("slack", "Slack"), ("zoom", "Zoom"), ("backupify", "Backupify"))
        made = 0
        for number in range(1, users + 1):
            email = f"person{number:04d}@{domain}"
            try:
                user = self.directory.insert(
                    {
                        "primaryEmail": email,
                        "name": {"givenName": "Person", "familyName": f"{number:04d}"},
                        "password": secrets.token_urlsafe(16),
                        "orgUnitPath": ("/Engineering", "/Sales", "/Contractors")[number % 3],
                    }
                )
            except GoogleApiError:  # already there from an earlier seed
                user = self.directory.get(email)
            made += 1
            slug, name = apps[number % len(apps)]
            self.add_token(user["id"], f"{number % 3 + 1}00200300-{slug}.apps", name)
            if number <= devices:
                if number % 2:
                    self.add_mobile_device(
                        email, model="iPhone 15", os="iOS 17.5", device_type="IOS_SYNC"
                    )
                else:
                    self.add_mobile_device(email)
                self.add_chromeos_device(f"SN{number:06d}", annotated_user=email)
        return {"users": made, "devices": min(devices, users) * 2}

    def put(self, kind: str, item_id: str, item: dict[str, Any]) -> dict[str, Any]:
        """Add or replace one org unit, domain or device as given (a returning one, say)."""
        with self._lock:
            self._items[kind][item_id] = copy.deepcopy(item)
            return copy.deepcopy(item)

    # HTTP.

    def _check_customer(self, value: str) -> None:
        if value not in ("my_customer", self.directory.customer_id):
            raise GoogleApiError(400, "badRequest", "Bad Request")

    def call(self, route: Route, path: dict[str, str], query: dict[str, str], raw: bytes) -> Reply:
        if route.name == "tokens.delete":
            user = self.directory.get(path["userKey"])
            with self._lock:
                if self._tokens.get(user["id"], {}).pop(path["clientId"], None) is None:
                    raise GoogleApiError(404, "notFound", "Resource Not Found: clientId")
            return Reply(204)
        if route.name == "tokens.list":
            user = self.directory.get(path["userKey"])
            with self._lock:
                tokens = copy.deepcopy(list(self._tokens.get(user["id"], {}).values()))
            return Reply(
                200, {"kind": "admin#directory#tokenList", "etag": _etag(), "items": tokens}
            )
        if route.name == "domains.list":
            self._check_customer(path["customer"])
            return Reply(
                200,
                {
                    "kind": "admin#directory#domains",
                    "etag": _etag(),
                    "domains": self.items("domains"),
                },
            )
        self._check_customer(path["customerId"])
        if route.name == "orgunits.list":
            return Reply(200, self._org_units(query))
        kind = route.name.partition(".")[0]
        items = self.items(kind)
        if kind == "chromeosdevices" and query.get("orgUnitPath"):
            items = [item for item in items if item["orgUnitPath"] == query["orgUnitPath"]]
        id_field = "resourceId" if kind == "mobiledevices" else "deviceId"
        page, more = _page(items, id_field, query, default_size=100)
        answer: dict[str, Any] = {"kind": f"admin#directory#{kind}", "etag": _etag()}
        if page:
            answer[kind] = page
        if more:
            answer["nextPageToken"] = more
        return Reply(200, answer)

    def _org_units(self, query: dict[str, str]) -> dict[str, Any]:
        """type=all: every unit under orgUnitPath; children (Google's default): one level;
        allIncludingParent: the parent too."""
        parent = query.get("orgUnitPath") or "/"
        parent = parent if parent.startswith("/") else "/" + parent
        scope = query.get("type", "children")
        prefix = parent.rstrip("/") + "/"
        units = [
            unit
            for unit in self.items("orgunits")
            if (
                unit["parentOrgUnitPath"] == parent
                if scope == "children"
                else unit["orgUnitPath"].startswith(prefix)
                or (scope == "allIncludingParent" and unit["orgUnitPath"] == parent)
            )
        ]
        units.sort(key=lambda unit: unit["orgUnitPath"])
        return {"kind": "admin#directory#orgUnits", "etag": _etag(), "organizationUnits": units}

    def control(self, verb: str, path: str, raw: bytes) -> Reply:
        """GET: counts; POST …/seed {"users": 10, "devices": 5}: a small realistic customer."""
        action = path[len(CONTROL_PREFIX) :].strip("/")
        try:
            if verb == "GET" and not action:
                with self._lock:
                    counts = {kind: len(items) for kind, items in self._items.items()}
                    counts["tokens"] = sum(len(tokens) for tokens in self._tokens.values())
                return Reply(200, counts)
            if verb == "POST" and action == "seed":
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("the body is a JSON object")
                seeded = self.seed(
                    users=int(body.get("users", 10)), devices=int(body.get("devices", 5))
                )
                return Reply(200, seeded)
        except (ValueError, TypeError) as exc:
            return Reply(400, {"error": str(exc)})
        return Reply(404, {"error": f"no control {verb} {path}"})
