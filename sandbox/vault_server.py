"""An in-memory HashiCorp Vault stand-in (KV v2, token and AppRole auth) that hvac can talk to.

It follows Vault's HTTP API for the calls AccessHive makes: the KV version 2 engine's data,
metadata, delete, undelete, destroy and config endpoints, ``LIST``, ``sys/health``, AppRole login
and token lookup. Nothing is persisted. Run it with::

    python -m sandbox.vault_server --port 8200 --token root [--role-id R --secret-id S]

or start it from a test with ``start_vault_server()``, which serves from a thread and returns
the server, its URL and switches to make it answer 503 (sealed) or slowly.
"""

import argparse
import collections
import json
import logging
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

logger = logging.getLogger("sandbox.vault")

CAS_MISMATCH = "check-and-set parameter did not match the current version"
CAS_REQUIRED = "check-and-set parameter required for this call"
DEFAULT_MAX_VERSIONS = 10  # what Vault keeps when max_versions is 0
VERSION = "1.17.0+accesshive-sandbox"

Payload = dict[str, Any] | None


class VaultHTTPError(Exception):
    """Answered as ``{"errors": [...]}`` with this status, the way Vault reports failures."""

    def __init__(self, status: int, *errors: str, body: Payload = None) -> None:
        super().__init__(status, errors)
        self.status = status
        self.body: dict[str, Any] = body if body is not None else {"errors": list(errors)}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Version:
    data: dict[str, Any] | None
    created_time: str
    deletion_time: str = ""
    destroyed: bool = False

    def metadata(self) -> dict[str, Any]:
        return {
            "created_time": self.created_time,
            "deletion_time": self.deletion_time,
            "destroyed": self.destroyed,
        }


@dataclass
class _Secret:
    created_time: str = field(default_factory=_now)
    updated_time: str = field(default_factory=_now)
    versions: dict[int, _Version] = field(default_factory=dict)
    current_version: int = 0
    oldest_version: int = 0
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: str = "0s"
    custom_metadata: dict[str, str] | None = None


@dataclass
class _MountConfig:
    max_versions: int = 0
    cas_required: bool = False
    delete_version_after: str = "0s"


@dataclass
class _Token:
    policies: list[str]
    display_name: str
    expires_at: float | None  # time.monotonic(); None never expires
    ttl: int


class VaultState:
    """The store behind the server; every method is safe to call from any thread."""

    def __init__(
        self,
        *,
        root_token: str,
        approles: Mapping[str, str] | None = None,
        token_ttl: int = 3600,
        mounts: Iterable[str] = ("secret",),
        approle_mount: str = "approle",
    ) -> None:
        self._lock = threading.RLock()
        self._tokens: dict[str, _Token] = {
            root_token: _Token(policies=["root"], display_name="root", expires_at=None, ttl=0)
        }
        self._approles = dict(approles or {})
        self._approle_mount = approle_mount
        self._mounts = {mount.strip("/"): _MountConfig() for mount in mounts}
        self._secrets: dict[tuple[str, str], _Secret] = {}
        self.token_ttl = token_ttl
        # Switches for tests: answer everything but health with 503, or answer late.
        self.unavailable = False
        self.delay = 0.0
        self.request_log: collections.deque[tuple[str, str, int]] = collections.deque(maxlen=1000)

    # --- switches and inspection for tests --------------------------------------------------

    def add_approle(self, role_id: str, secret_id: str) -> None:
        with self._lock:
            self._approles[role_id] = secret_id

    def revoke_tokens(self) -> None:
        """Revoke every token but the root token, as a Vault restart or lease revocation would."""
        with self._lock:
            self._tokens = {t: info for t, info in self._tokens.items() if "root" in info.policies}

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in list(self.request_log) if m == method and p == path)

    # --- the API ---------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: Mapping[str, list[str]], body: Any, token: str
    ) -> tuple[int, Payload]:
        """Answer one request: (status, JSON body or None for an empty 204)."""
        try:
            return self._route(method, path, query, body, token)
        except VaultHTTPError as exc:
            return exc.status, exc.body

    def _route(
        self, method: str, path: str, query: Mapping[str, list[str]], body: Any, token: str
    ) -> tuple[int, Payload]:
        if not path.startswith("/v1/"):
            raise VaultHTTPError(404)
        rest = path[len("/v1/") :]
        while "//" in rest:
            rest = rest.replace("//", "/")
        if rest == "sys/health" and method in {"GET", "HEAD"}:
            return self._health()
        if self.unavailable:
            raise VaultHTTPError(503, "Vault is sealed")
        if rest == f"auth/{self._approle_mount}/login" and method in {"POST", "PUT"}:
            return self._approle_login(body)
        with self._lock:
            info = self._valid_token(token)
            if rest == "auth/token/lookup-self" and method == "GET":
                return 200, _envelope(self._lookup(token, info))
            mount, _, sub = rest.partition("/")
            if mount not in self._mounts:
                raise VaultHTTPError(404, f'no handler for route "{rest}". route entry not found.')
            operation, _, key = sub.partition("/")
            is_list = method == "LIST" or (
                method == "GET" and query.get("list", [""])[0].lower() in {"true", "1"}
            )
            if operation == "metadata" and is_list:
                return self._list(mount, key)
            if operation == "config" and not key:
                return self._config(mount, method, body)
            handler = {
                ("data", "GET"): self._read_data,
                ("data", "POST"): self._write_data,
                ("data", "PUT"): self._write_data,
                ("data", "DELETE"): self._delete_latest,
                ("metadata", "GET"): self._read_metadata,
                ("metadata", "POST"): self._write_metadata,
                ("metadata", "PUT"): self._write_metadata,
                ("metadata", "DELETE"): self._delete_metadata,
                ("delete", "POST"): self._delete_versions,
                ("delete", "PUT"): self._delete_versions,
                ("undelete", "POST"): self._undelete_versions,
                ("undelete", "PUT"): self._undelete_versions,
                ("destroy", "POST"): self._destroy_versions,
                ("destroy", "PUT"): self._destroy_versions,
            }.get((operation, method))
            if handler is None:
                raise VaultHTTPError(405, "unsupported operation")
            if not key or key.endswith("/"):
                raise VaultHTTPError(404)
            return handler(mount, key, query, body)

    def _health(self) -> tuple[int, Payload]:
        return (503 if self.unavailable else 200), {
            "initialized": True,
            "sealed": self.unavailable,
            "standby": False,
            "performance_standby": False,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": int(time.time()),
            "version": VERSION,
            "cluster_name": "accesshive-sandbox",
        }

    def _approle_login(self, body: Any) -> tuple[int, Payload]:
        body = _object(body)
        role_id, secret_id = body.get("role_id"), body.get("secret_id")
        with self._lock:
            if not role_id or role_id not in self._approles:
                raise VaultHTTPError(400, "invalid role or secret ID")
            if not secrets.compare_digest(str(secret_id or ""), self._approles[role_id]):
                raise VaultHTTPError(400, "invalid role or secret ID")
            token = "hvs." + secrets.token_urlsafe(24)
            expires = time.monotonic() + self.token_ttl if self.token_ttl > 0 else None
            self._tokens[token] = _Token(
                policies=["default", "accesshive"],
                display_name="approle",
                expires_at=expires,
                ttl=self.token_ttl,
            )
        auth = {
            "client_token": token,
            "accessor": secrets.token_hex(12),
            "policies": ["default", "accesshive"],
            "token_policies": ["default", "accesshive"],
            "metadata": {"role_name": "accesshive"},
            "lease_duration": self.token_ttl,
            "renewable": True,
            "entity_id": "",
            "token_type": "service",
            "orphan": True,
        }
        return 200, _envelope(None, auth=auth)

    def _valid_token(self, token: str) -> _Token:
        info = self._tokens.get(token) if token else None
        if info is not None and info.expires_at is not None and time.monotonic() >= info.expires_at:
            del self._tokens[token]
            info = None
        if info is None:
            raise VaultHTTPError(403, "permission denied")
        return info

    def _lookup(self, token: str, info: _Token) -> dict[str, Any]:
        remaining = (
            0 if info.expires_at is None else max(0, int(info.expires_at - time.monotonic()))
        )
        return {
            "id": token,
            "display_name": info.display_name,
            "policies": info.policies,
            "ttl": remaining,
            "renewable": info.expires_at is not None,
            "type": "service",
        }

    # --- KV v2 ------------------------------------------------------------------------------

    def _max_versions(self, mount: str, secret: _Secret) -> int:
        return secret.max_versions or self._mounts[mount].max_versions or DEFAULT_MAX_VERSIONS

    def _version_metadata(self, secret: _Secret, number: int) -> dict[str, Any]:
        return {
            **secret.versions[number].metadata(),
            "custom_metadata": secret.custom_metadata,
            "version": number,
        }

    def _read_data(
        self, mount: str, key: str, query: Mapping[str, list[str]], body: Any
    ) -> tuple[int, Payload]:
        secret = self._secrets.get((mount, key))
        number = _int_param(query, "version")
        if secret is None:
            raise VaultHTTPError(404)
        number = number or secret.current_version
        version = secret.versions.get(number)
        if version is None:
            raise VaultHTTPError(404)
        metadata = self._version_metadata(secret, number)
        if version.deletion_time or version.destroyed:
            # Vault answers 404 but still says which version it was and when it went.
            raise VaultHTTPError(404, body=_envelope({"data": None, "metadata": metadata}))
        return 200, _envelope({"data": version.data, "metadata": metadata})

    def _write_data(
        self, mount: str, key: str, query: Mapping[str, list[str]], body: Any
    ) -> tuple[int, Payload]:
        body = _object(body)
        data = body.get("data")
        if data is None:
            raise VaultHTTPError(400, "no data provided")
        if not isinstance(data, dict):
            raise VaultHTTPError(400, "data must be a JSON object")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise VaultHTTPError(400, "options must be a JSON object")
        cas = options.get("cas")
        secret = self._secrets.get((mount, key))
        current = secret.current_version if secret else 0
        cas_required = (secret is not None and secret.cas_required) or self._mounts[
            mount
        ].cas_required
        if cas is None:
            if cas_required:
                raise VaultHTTPError(400, CAS_REQUIRED)
        else:
            if isinstance(cas, bool) or not isinstance(cas, int) or cas < 0:
                raise VaultHTTPError(400, "cas must be a non-negative integer")
            if cas != current:
                raise VaultHTTPError(400, CAS_MISMATCH)
        if secret is None:
            secret = self._secrets[(mount, key)] = _Secret()
        number = secret.current_version + 1
        secret.versions[number] = _Version(data=data, created_time=_now())
        secret.current_version = number
        secret.updated_time = secret.versions[number].created_time
        keep = self._max_versions(mount, secret)
        for old in sorted(secret.versions)[:-keep]:
            del secret.versions[old]
        secret.oldest_version = min(secret.versions)
        if secret.oldest_version == 1:
            secret.oldest_version = 0  # Vault reports 0 until it has pruned anything
        return 200, _envelope(self._version_metadata(secret, number))

    def _delete_latest(
        self, mount: str, key: str, query: Mapping[str, list[str]], body: Any
    ) -> tuple[int, Payload]:
        secret = self._secrets.get((mount, key))
        if secret is not None and secret.current_version in secret.versions:
            version = secret.versions[secret.current_version]
            if not version.deletion_time and not version.destroyed:
                version.deletion_time = _now()
        return 204, None

    def _versions_param(self, body: Any) -> list[int]:
        versions = _object(body).get("versions")
        if not versions or not isinstance(versions, list):
            raise VaultHTTPError(400, "no version number provided")
        try:
            return [int(v) for v in versions]
        except (TypeError, ValueError):
            raise VaultHTTPError(400, "versions must be integers") from None

    def _delete_versions(
        self, mount: str, key: str, query: Mapping[str, list[str]], body: Any
    ) -> tuple[int, Payload]:
        numbers = self._versions_param(body)
        secret = self._secrets.get((mount, key))
        for number in numbers:
            version = secret.versions.get(number) if secret else None
            if version is not None and not version.deletion_time and not version.destroyed:
                version.deletion_time = _now()
        return 204, None

    def _undelete_versions(
        self, mount: str, key: str, query: Mapping[str, list[str]], body: Any
    ) -> tuple[int, Payload]:
        numbers = self._versions_param(body)
        secret = self._secrets.get((mount, key))
        for number in numbers:
            version = secret.versions.get(number) if secret else None
            if version is not None and not version.destroyed:
                version.deletion_time = ""
        return 204, None

    def _destroy_versions(
        self, mount: str, key: str, query: Mapping[str, list[str]], body: Any
    ) -> tuple[int, Payload]:
        numbers = self._versions_param(body)
        secret = self._secrets.get((mount, key))
        for number in numbers:
            version = secret.versions.get(number) if secret else None
            if version is not None:
                version.destroyed, version.data = True, None
        return 204, None

    def _read_metadata(
        self, mount: str, key: str, query: Mapping[str, list[str]], body: Any
    ) -> tuple[int, Payload]:
        secret = self._secrets.get((mount, key))
        if secret is None:
            raise VaultHTTPError(404)
        return 200, _envelope(
            {
                "cas_required": secret.cas_required,
                "created_time": secret.created_time,
                "current_version": secret.current_version,
                "custom_metadata": secret.custom_metadata,
                "delete_version_after": secret.delete_version_after,
                "max_versions": secret.max_versions,
                "oldest_version": secret.oldest_version,
                "updated_time": secret.updated_time,
                "versions": {str(n): v.metadata() for n, v in sorted(secret.versions.items())},
            }
        )

    def _write_metadata(
        self, mount: str, key: str, query: Mapping[str, list[str]], body: Any
    ) -> tuple[int, Payload]:
        body = _object(body)
        secret = self._secrets.get((mount, key)) or _Secret()
        if "max_versions" in body:
            secret.max_versions = _non_negative(body["max_versions"], "max_versions")
        if "cas_required" in body:
            if not isinstance(body["cas_required"], bool):
                raise VaultHTTPError(400, "cas_required must be a boolean")
            secret.cas_required = body["cas_required"]
        if "delete_version_after" in body:
            secret.delete_version_after = str(body["delete_version_after"])
        if "custom_metadata" in body:
            custom = body["custom_metadata"]
            if not isinstance(custom, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in custom.items()
            ):
                raise VaultHTTPError(400, "custom_metadata must map strings to strings")
            if len(custom) > 64:
                raise VaultHTTPError(400, "custom_metadata has more than 64 keys")
            secret.custom_metadata = dict(custom)
        secret.updated_time = _now()
        self._secrets[(mount, key)] = secret
        return 204, None

    def _delete_metadata(
        self, mount: str, key: str, query: Mapping[str, list[str]], body: Any
    ) -> tuple[int, Payload]:
        self._secrets.pop((mount, key), None)
        return 204, None

    def _list(self, mount: str, prefix: str) -> tuple[int, Payload]:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        keys = set()
        for secret_mount, key in self._secrets:
            if secret_mount == mount and key.startswith(prefix):
                head, slash, _ = key[len(prefix) :].partition("/")
                keys.add(head + slash)
        if not keys:
            raise VaultHTTPError(404)
        return 200, _envelope({"keys": sorted(keys)})

    def _config(self, mount: str, method: str, body: Any) -> tuple[int, Payload]:
        config = self._mounts[mount]
        if method == "GET":
            return 200, _envelope(
                {
                    "max_versions": config.max_versions,
                    "cas_required": config.cas_required,
                    "delete_version_after": config.delete_version_after,
                }
            )
        if method not in {"POST", "PUT"}:
            raise VaultHTTPError(405, "unsupported operation")
        body = _object(body)
        if "max_versions" in body:
            config.max_versions = _non_negative(body["max_versions"], "max_versions")
        if "cas_required" in body:
            config.cas_required = bool(body["cas_required"])
        if "delete_version_after" in body:
            config.delete_version_after = str(body["delete_version_after"])
        return 204, None


def _envelope(data: dict[str, Any] | None, *, auth: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": auth,
    }


def _object(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise VaultHTTPError(400, "the request body must be a JSON object")
    return body


def _non_negative(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise VaultHTTPError(400, f"{name} must be a non-negative integer")
    return value


def _int_param(query: Mapping[str, list[str]], name: str) -> int:
    raw = query.get(name, ["0"])[0] or "0"
    try:
        return _non_negative(int(raw), name)
    except ValueError:
        raise VaultHTTPError(400, f"{name} must be an integer") from None


class _Handler(BaseHTTPRequestHandler):
    server: "VaultServer"
    protocol_version = "HTTP/1.1"
    server_version = "VaultSandbox/1"
    # Buffered, so headers and body leave in one segment instead of waiting on a delayed ACK.
    wbufsize = 64 * 1024

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_LIST(self) -> None:
        self._serve("LIST")

    def _serve(self, method: str) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if state.delay:
            time.sleep(state.delay)
        status: int
        payload: Payload
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            status, payload = 400, {"errors": ["failed to parse JSON input"]}
        else:
            token = self.headers.get("X-Vault-Token") or ""
            authorization = self.headers.get("Authorization") or ""
            if not token and authorization.lower().startswith("bearer "):
                token = authorization[len("bearer ") :].strip()
            status, payload = state.handle(method, path, parse_qs(parts.query), body, token)
        state.request_log.append((method, path, status))
        self._respond(status, payload, head=method == "HEAD")

    def _respond(self, status: int, payload: Payload, *, head: bool) -> None:
        self.send_response(status)
        if status == HTTPStatus.NO_CONTENT or payload is None:
            self.end_headers()
            return
        data = json.dumps(payload).encode()
        # Exactly this value: hvac only parses error bodies whose Content-Type is exactly it.
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines only (paths, never bodies or headers), and only when asked for.
        if self.server.verbose:
            logger.info("%s %s", self.address_string(), format % args)


class VaultServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], state: VaultState, *, verbose: bool = False
    ) -> None:
        super().__init__(address, _Handler)
        self.state = state
        self.verbose = verbose

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is what the slow-answer switch is for.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@dataclass
class RunningVaultServer:
    """A sandbox Vault serving from a daemon thread; ``shutdown()`` (or ``with``) stops it."""

    server: VaultServer
    url: str
    thread: threading.Thread

    @property
    def state(self) -> VaultState:
        return self.server.state

    def set_unavailable(self, unavailable: bool = True) -> None:
        """Answer every request but health with 503 "Vault is sealed"."""
        self.state.unavailable = unavailable

    def set_delay(self, seconds: float) -> None:
        """Wait this long before answering each request (for client timeout tests)."""
        self.state.delay = seconds

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> "RunningVaultServer":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()


def start_vault_server(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    root_token: str = "root",  # noqa: S107 - a sandbox's well-known dev token
    approles: Mapping[str, str] | None = None,
    token_ttl: int = 3600,
    mounts: Iterable[str] = ("secret",),
    verbose: bool = False,
) -> RunningVaultServer:
    """Serve a fresh, empty Vault on ``host:port`` (0: a free port) from a background thread."""
    state = VaultState(root_token=root_token, approles=approles, token_ttl=token_ttl, mounts=mounts)
    server = VaultServer((host, port), state, verbose=verbose)
    bound_host, bound_port = server.server_address[:2]
    thread = threading.Thread(
        # A short poll interval makes shutdown() quick, which adds up over a test suite.
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="vault-sandbox",
        daemon=True,
    )
    thread.start()
    return RunningVaultServer(
        server=server, url=f"http://{bound_host!s}:{bound_port}", thread=thread
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument(
        "--token", required=True, help="the root token clients send as X-Vault-Token"
    )
    parser.add_argument("--role-id", help="accept AppRole logins with this role_id ...")
    parser.add_argument("--secret-id", default="", help="... and this secret_id")
    parser.add_argument(
        "--token-ttl", type=int, default=3600, help="AppRole token lifetime, seconds"
    )
    parser.add_argument(
        "--mount", action="append", help="a KV v2 mount (default: secret; repeatable)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    approles = {args.role_id: args.secret_id} if args.role_id else None
    state = VaultState(
        root_token=args.token,
        approles=approles,
        token_ttl=args.token_ttl,
        mounts=args.mount or ["secret"],
    )
    server = VaultServer((args.host, args.port), state, verbose=True)
    host, port = server.server_address[:2]
    logger.info(
        "Vault sandbox (KV v2 at %s) listening on http://%s:%s",
        ", ".join(args.mount or ["secret"]),
        host,
        port,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
