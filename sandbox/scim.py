"""Local SCIM 2.0 identity provider: scim2-server in memory, behind our fault-injection layer."""

import argparse
import fnmatch
import json
import secrets
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from http import HTTPStatus
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from scim2_models import ScimProvider
from scim2_server.applications.base import VERSION_PREFIX, BaseApplication
from scim2_server.memory import InMemoryStorage
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

from sandbox.serving import ServedInThread

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CONTROL_PATH = "/_sandbox/faults"
SILENT_SUCCESS_THEN_409 = "silent_success_then_409"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_MEDIA_TYPE = "application/scim+json"
_METHODS = frozenset({"*", "GET", "POST", "PUT", "PATCH", "DELETE"})
_KNOWN_STATUSES = frozenset(int(status) for status in HTTPStatus)


@dataclass
class Fault:
    """One injected failure for requests matching method and path ("*" globs; paths are
    relative to the SCIM root, so "/Users" or "/Users/*").

    times=None repeats until cleared. delay_seconds stalls the answer first (for timeouts);
    a fault with only a delay then lets the request through. Mode silent_success_then_409
    lets scim2-server create the user and then answers 503, as if the response had been
    lost, so the client's retry meets scim2-server's own 409 uniqueness error.
    """

    method: str = "*"
    path: str = "*"
    status: int | None = None
    detail: str | None = None
    scim_type: str | None = None
    times: int | None = 1
    mode: str | None = None
    delay_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        if self.method not in _METHODS:
            raise ValueError(f"unknown method {self.method!r}; one of {sorted(_METHODS)}")
        if not self.path.startswith(("/", "*")):
            raise ValueError("a fault path starts with / (relative to the SCIM root) or is *")
        if self.mode is not None:
            if self.mode != SILENT_SUCCESS_THEN_409:
                raise ValueError(f"unknown fault mode {self.mode!r}")
            if self.method == "*":
                self.method = "POST"
            if self.path == "*":
                self.path = "/Users"
            if self.method != "POST":
                raise ValueError(f"{self.mode} applies to POST (a create) only")
        if self.status is None and self.mode is None and not self.delay_seconds:
            raise ValueError("a fault needs a status, a mode or a delay_seconds")
        if self.status is not None and (
            not 400 <= self.status <= 599 or self.status not in _KNOWN_STATUSES
        ):
            raise ValueError("a fault status is a known HTTP error status (400-599)")
        if self.times is not None and self.times < 1:
            raise ValueError("times is at least 1, or null for until cleared")
        if self.delay_seconds < 0:
            raise ValueError("delay_seconds is not negative")

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and fnmatch.fnmatchcase(path, self.path)


class Faults:
    """The pending faults of one server, consumed first-added first; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Fault] = []

    def add(
        self,
        method: str = "*",
        path: str = "*",
        *,
        status: int | None = None,
        detail: str | None = None,
        scim_type: str | None = None,
        times: int | None = 1,
        mode: str | None = None,
        delay_seconds: float = 0.0,
    ) -> Fault:
        fault = Fault(method, path, status, detail, scim_type, times, mode, delay_seconds)
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

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._pending:
                if fault.matches(method, path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            self._pending.remove(fault)
                    return fault
        return None


def scim_error(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    """An error body in RFC 7644 §3.12's shape, as scim2-server itself answers."""
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return body


def _respond(
    start_response: "StartResponse",
    status: int,
    body: Any,
    content_type: str = SCIM_MEDIA_TYPE,
) -> list[bytes]:
    payload = b"" if body is None else json.dumps(body).encode()
    headers = [("Content-Length", str(len(payload)))]
    if body is not None:
        headers.append(("Content-Type", content_type))
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [payload]


def _read_body(environ: "WSGIEnvironment") -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length > 0 else b""


class FaultInjection:
    """WSGI middleware in front of scim2-server: serves the control path, injects faults,
    and records what was asked. Everything else, authentication included, is scim2-server's."""

    def __init__(self, app: BearerTokenApplication) -> None:
        self.app = app
        self.faults = Faults()
        self._lock = threading.Lock()
        self._calls: list[str] = []

    def calls(self) -> list[str]:
        """The SCIM requests seen so far ("POST /Users", "PATCH /Users/<id>", ...), in order."""
        with self._lock:
            return list(self._calls)

    def __call__(
        self, environ: "WSGIEnvironment", start_response: "StartResponse"
    ) -> Iterable[bytes]:
        raw_path = environ.get("PATH_INFO", "")
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if raw_path == CONTROL_PATH:
            return self._control(method, environ, start_response)
        path = BaseApplication.split_path(raw_path)
        with self._lock:
            self._calls.append(f"{method} {path}")
        # A request scim2-server will refuse for its token must not use up a fault meant for
        # the authenticated client, so those go straight through to its 401.
        fault = self.faults.take(method, path) if self._authenticated(environ) else None
        if fault is None:
            return self.app(environ, start_response)
        if fault.delay_seconds:
            time.sleep(fault.delay_seconds)
        if fault.mode == SILENT_SUCCESS_THEN_409:
            self._serve_and_discard(environ)
            detail = fault.detail or "The service is temporarily unavailable"
            return _respond(start_response, 503, scim_error(503, detail))
        if fault.status is None:
            return self.app(environ, start_response)
        # Read the body we will not use: closing on unread bytes can reset the connection
        # before the client reads our answer.
        _read_body(environ)
        detail = fault.detail or HTTPStatus(fault.status).description
        return _respond(
            start_response, fault.status, scim_error(fault.status, detail, fault.scim_type)
        )

    def _authenticated(self, environ: "WSGIEnvironment") -> bool:
        if not self.app.bearer_tokens:
            return True
        scheme, _, token = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
        return scheme.lower() == "bearer" and token in self.app.bearer_tokens

    def _serve_and_discard(self, environ: "WSGIEnvironment") -> None:
        def ignore(*_args: Any, **_kwargs: Any) -> Any:
            return lambda _data: None

        answer = self.app(environ, ignore)
        for _chunk in answer:
            pass
        close = getattr(answer, "close", None)
        if close is not None:
            close()

    def _control(
        self, method: str, environ: "WSGIEnvironment", start_response: "StartResponse"
    ) -> list[bytes]:
        as_json = "application/json"
        try:
            if method == "POST":
                specs = json.loads(_read_body(environ) or b"{}")
                for spec in specs if isinstance(specs, list) else [specs]:
                    self.faults.add_spec(spec)
            elif method == "DELETE":
                self.faults.clear()
                return _respond(start_response, 204, None)
            elif method != "GET":
                error = {"error": f"{method} is not allowed on {CONTROL_PATH}"}
                return _respond(start_response, 405, error, as_json)
        except (ValueError, TypeError) as exc:
            return _respond(start_response, 400, {"error": str(exc)}, as_json)
        return _respond(start_response, 200, {"faults": self.faults.pending()}, as_json)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up waiting (a timeout test) is no server fault worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and `make run` read calls() instead of stderr."""


def default_provider() -> ScimProvider:
    """RFC 7643's schemas and resource types, announcing bearer tokens as the CLI does, so
    scim2-server's 401s carry a WWW-Authenticate header."""
    config = load_default_service_provider_config()
    config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    return ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )


class ScimSandbox(ServedInThread):
    thread_name = "scim-sandbox"

    """scim2-server's WSGI app over its in-memory storage, on 127.0.0.1 by default.

    scim2-server checks the bearer token itself; base_url is the SCIM root (".../v2").
    """

    def __init__(self, *, bearer_token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        if not bearer_token:
            raise ValueError("the SCIM sandbox needs a bearer token")
        self.bearer_token = bearer_token
        self.storage = InMemoryStorage()
        self.app = BearerTokenApplication(
            self.storage, default_provider(), bearer_tokens=[bearer_token]
        )
        self.middleware = FaultInjection(self.app)
        self.faults = self.middleware.faults
        self._httpd = make_server(
            host, port, self.middleware, server_class=_Server, handler_class=_QuietHandler
        )
        bound_host, bound_port = self._httpd.server_address[:2]
        self.root_url = f"http://{bound_host!s}:{bound_port}"
        self.base_url = self.root_url + VERSION_PREFIX
        self.control_url = self.root_url + CONTROL_PATH

    def __repr__(self) -> str:
        return f"<ScimSandbox {self.base_url}>"

    # Python-side views for tests and `make run`.

    def users(self) -> list[dict[str, Any]]:
        """Every stored User resource as scim2-server holds it (camelCase SCIM JSON)."""
        with self.storage.lock:
            resources = list(self.storage.resources)
        users = []
        for resource in resources:
            if resource.meta is not None and resource.meta.resource_type == "User":
                users.append(resource.model_dump())
        return users

    def user(self, user_name: str) -> dict[str, Any] | None:
        """The stored user with this userName (compared case-insensitively, as SCIM does)."""
        wanted = user_name.casefold()
        for user in self.users():
            if str(user.get("userName", "")).casefold() == wanted:
                return user
        return None

    def calls(self) -> list[str]:
        return self.middleware.calls()

    # Serving.


def start(
    *, port: int = 0, bearer_token: str | None = None, host: str = "127.0.0.1"
) -> ScimSandbox:
    """A sandbox serving in a daemon thread (port 0: a free port; no token: a random one,
    readable as .bearer_token); call shutdown() when done."""
    token = bearer_token or secrets.token_urlsafe(32)
    return ScimSandbox(bearer_token=token, host=host, port=port).serve_in_thread()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.scim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082, help="0 picks a free port")
    token = parser.add_mutually_exclusive_group(required=True)
    token.add_argument("--bearer-token", help="the token clients must send (Bearer ...)")
    token.add_argument(
        "--bearer-token-file", type=Path, help="read the token from this file (keeps it out of ps)"
    )
    args = parser.parse_args(argv)
    bearer_token = args.bearer_token or args.bearer_token_file.read_text().strip()
    sandbox = ScimSandbox(bearer_token=bearer_token, host=args.host, port=args.port)
    print(
        f"SCIM sandbox (scim2-server) on {sandbox.base_url}, faults at {sandbox.control_url}",
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
