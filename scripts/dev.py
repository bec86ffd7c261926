"""``make run``: prepare the embedded local setup, then run web, worker and beat as one unit.

Needs no servers: SQLite and the filesystem broker under var/. Every process gets its own
process group so a stop reaches its children too (runserver's reloader, the prefork pool);
if one process dies, the others are stopped and this script exits non-zero.
"""

from __future__ import annotations

import argparse
import functools
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ADMIN = "admin"
# Seconds a process gets to exit after SIGTERM before its group is killed. Celery's warm
# shutdown on the filesystem broker takes 6-8s; a second Ctrl-C cuts it short.
STOP_GRACE = 20.0
COLOURS = ("36", "33", "35", "32", "34", "31")


@dataclass(frozen=True)
class Proc:
    name: str
    argv: list[str]


GWS_SANDBOX_PORT = int(os.environ.get("SANDBOX_GWS_PORT") or 8081)
SCIM_SANDBOX_PORT = int(os.environ.get("SANDBOX_SCIM_PORT") or 8082)
SAML_SANDBOX_PORT = int(os.environ.get("SANDBOX_SAML_PORT") or 8083)
SANDBOX_PORTS = {
    GWS_SANDBOX_PORT: "SANDBOX_GWS_PORT",
    SCIM_SANDBOX_PORT: "SANDBOX_SCIM_PORT",
    SAML_SANDBOX_PORT: "SANDBOX_SAML_PORT",
}


def processes(port: int, var: Path) -> list[Proc]:
    """What `make run` runs: one line per process."""
    app = [PYTHON, "-m", "celery", "-A", "accesshive"]
    schedule = str(var / "celerybeat-schedule")
    gws_key = str(var / "sandbox-gws-key.json")
    return [
        Proc("web", [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}"]),
        Proc("worker", [*app, "worker", "--pool", "prefork", "--concurrency", "2", "-l", "info"]),
        Proc("beat", [*app, "beat", "-l", "info", "--schedule", schedule]),
        Proc(
            "gws",
            [
                *(PYTHON, "-m", "sandbox.google_directory", "--port", str(GWS_SANDBOX_PORT)),
                *("--domain", "example.com", "--key-out", gws_key),
            ],
        ),
        Proc(
            "scim",
            [
                *(PYTHON, "-m", "sandbox.scim", "--port", str(SCIM_SANDBOX_PORT)),
                *("--bearer-token-file", str(var / "sandbox-scim-token")),
            ],
        ),
        Proc(
            "saml",
            [
                *(PYTHON, "-m", "sandbox.saml_idp", "--port", str(SAML_SANDBOX_PORT)),
                *(
                    "--acs-base",
                    f"http://127.0.0.1:{port}",
                    "--acs-base",
                    f"http://localhost:{port}",
                ),
                *("--key-file", str(var / "sandbox-saml-idp.pem")),
            ],
        ),
    ]


def point_platform_at_sandboxes(env: dict[str, str], var: Path) -> None:
    """Once the sandbox servers answer, create or update the sandbox platform and IdP, and
    sign-in with SAML through the sandbox IdP."""
    deadline = time.monotonic() + 30
    key_file = var / "sandbox-gws-key.json"
    while not all(port_answers(port) for port in SANDBOX_PORTS):
        if time.monotonic() > deadline:
            say("the sandbox servers did not start; see the gws, scim and saml lines above")
            return
        time.sleep(0.3)
    sso = manage(
        env, "setup_sandbox_sso", "--idp-url", f"http://127.0.0.1:{SAML_SANDBOX_PORT}", check=False
    )
    if sso != 0:
        say("setup_sandbox_sso failed: Sign in with SSO may point at an old sandbox IdP")
    code = manage(
        env,
        "setup_sandbox",
        *("--gws-url", f"http://127.0.0.1:{GWS_SANDBOX_PORT}/", "--gws-key-file", str(key_file)),
        *("--scim-url", f"http://127.0.0.1:{SCIM_SANDBOX_PORT}/v2"),
        *("--scim-token-file", str(var / "sandbox-scim-token")),
        check=False,
    )
    if code != 0:
        say("setup_sandbox failed: the sandbox platform may point at old servers")


# --- preparation --------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"dev: {message}", flush=True)


def var_dir() -> Path:
    var = Path(os.environ.get("ACCESSHIVE_VAR_DIR") or ROOT / "var")
    var.mkdir(parents=True, exist_ok=True)
    return var


def generated_env(var: Path) -> dict[str, tuple[Path, Callable[[dict[str, str]], str]]]:
    """Local secrets made once and kept in var/ (mode 600): one line per variable."""
    return {
        "DJANGO_SECRET_KEY": (var / "secret-key", lambda _env: secrets.token_urlsafe(50)),
        "ACCESSHIVE_VAULT_KEYS": (
            var / "vault-keys",
            lambda env: manage_output(env, "vault_generate_key"),
        ),
        "ACCESSHIVE_SANDBOX_SCIM_TOKEN": (
            var / "sandbox-scim-token",
            lambda _env: secrets.token_urlsafe(24),
        ),
    }


def persisted(path: Path, make: Callable[[], str]) -> str:
    if not path.exists():
        value = make().strip()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        say(f"generated {path}")
    path.chmod(0o600)
    return path.read_text().strip()


def manage(env: dict[str, str], *args: str, check: bool = True, quiet: bool = False) -> int:
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=check,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL if quiet else None,
    ).returncode


def manage_output(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdin=subprocess.DEVNULL,
        # stderr too: the system checks' warnings ("no vault key yet"), or the error to show.
        capture_output=True,
        text=True,
    ).stdout


# Exits 0 when the demo admin exists and still takes the stored password.
ADMIN_CHECK = f"""
import os, sys
from django.contrib.auth import authenticate
password = open(os.environ["ACCESSHIVE_ADMIN_PASSWORD_FILE"]).read().strip()
user = authenticate(username={ADMIN!r}, password=password)
sys.exit(0 if user is not None and user.is_superuser else 1)
"""


def ensure_demo_admin(env: dict[str, str], password_file: Path) -> str:
    """Keep the demo admin's password stable across runs; (re)create it when it doesn't work."""
    env = {**env, "ACCESSHIVE_ADMIN_PASSWORD_FILE": str(password_file)}
    if not password_file.exists() or manage(env, "shell", "-c", ADMIN_CHECK, check=False) != 0:
        # Quiet: its sign-in line names port 8000 whatever PORT is; main() prints the right one.
        manage(
            env,
            *("create_demo_admin", "--username", ADMIN, "--password-file", str(password_file)),
            quiet=True,
        )
    return password_file.read_text().strip()


def port_in_use(port: int) -> bool:
    """True when something listens on 127.0.0.1:port. Our servers bind with SO_REUSEADDR, as
    this check does, so the TIME_WAIT sockets a stopped run leaves behind do not count."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def port_holder(port: int) -> str:
    """Which process listens on the port, e.g. "pid 412 (python -m sandbox.scim --port 8082)",
    or a plain description when it cannot be seen (another user's process)."""
    try:
        listeners = [
            conn.pid
            for conn in psutil.net_connections(kind="tcp")
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN
        ]
        pid = next(pid for pid in listeners if pid is not None)
        command = " ".join(psutil.Process(pid).cmdline()) or psutil.Process(pid).name()
    except (StopIteration, psutil.Error):
        return "a process this user cannot see"
    return f"pid {pid} ({command})"


def port_taken(port: int, setting: str) -> str:
    return (
        f"port {port} is in use by {port_holder(port)}: stop it (another `make run`?),"
        f" or set {setting} to a free port"
    )


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# --- running ------------------------------------------------------------------------------


class Supervisor:
    """Starts the processes, prefixes their output, and stops them all together."""

    def __init__(self, procs: list[Proc], env: dict[str, str]) -> None:
        self.procs = procs
        self.env = env
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.pumps: list[threading.Thread] = []
        self.width = max(len(p.name) for p in procs)
        self.colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        self.lock = threading.Lock()
        self.stop_requested: str | None = None
        self.first_signal = 0.0
        self.force = False

    def write(self, name: str, index: int, line: str) -> None:
        prefix = f"{name:<{self.width}} |"
        if self.colour:
            prefix = f"\033[{COLOURS[index % len(COLOURS)]}m{prefix}\033[0m"
        with self.lock:
            sys.stdout.write(f"{prefix} {line}")
            if not line.endswith("\n"):
                sys.stdout.write("\n")
            sys.stdout.flush()

    def pump(self, name: str, index: int, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.write(name, index, raw.decode(errors="replace"))
        stream.close()

    def start(self) -> None:
        for index, proc in enumerate(self.procs):
            popen = subprocess.Popen(
                proc.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
            assert popen.stdout is not None
            self.running[proc.name] = popen
            thread = threading.Thread(
                target=self.pump, args=(proc.name, index, popen.stdout), daemon=True
            )
            thread.start()
            self.pumps.append(thread)
            say(f"started {proc.name} (pid {popen.pid}): {' '.join(proc.argv)}")

    def request_stop(self, signum: int, _frame: object) -> None:
        if self.stop_requested is None:
            self.stop_requested = signal.Signals(signum).name
            self.first_signal = time.monotonic()
        # A second Ctrl-C kills at once; not the copy of the first that arrives at the same time
        # (a SIGTERM to the whole group reaches make, which forwards it, and this script too).
        elif not self.force and time.monotonic() - self.first_signal > 1:
            self.force = True
            self.write("dev", 0, "second signal: killing everything now")

    def watch(self) -> str | None:
        """Wait until a stop is requested (returns None) or a process exits (returns its name)."""
        while self.stop_requested is None:
            for name, popen in self.running.items():
                if popen.poll() is not None:
                    return name
            time.sleep(0.2)
        return None

    def stop(self) -> None:
        # The leader first: Celery's warm shutdown stops its own pool children cleanly.
        for popen in self.running.values():
            if popen.poll() is None:
                popen.terminate()
        deadline = time.monotonic() + STOP_GRACE
        while not self.force and time.monotonic() < deadline:
            if all(popen.poll() is not None for popen in self.running.values()):
                break
            time.sleep(0.1)
        for name, popen in self.running.items():
            if popen.poll() is None and not self.force:
                say(f"{name} did not stop within {STOP_GRACE:.0f}s: killing it")
        # Then whatever is left in each group (runserver's reloaded child, a stuck pool child).
        if any([signal_group(popen.pid, signal.SIGTERM) for popen in self.running.values()]):
            time.sleep(1)
        for popen in self.running.values():
            signal_group(popen.pid, signal.SIGKILL)
            popen.wait()
        for thread in self.pumps:
            thread.join(timeout=2)


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Signal a process group; False when nothing was left in it."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def announce_when_up(port: int, banner: str, supervisor: Supervisor) -> None:
    """Repeat the sign-in line once web answers, below the processes' start-up noise."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and supervisor.stop_requested is None:
        if port_answers(port):
            supervisor.write("dev", 0, f"AccessHive is up. {banner} Ctrl-C stops everything.")
            return
        time.sleep(0.5)


def sign_in(port: int, password: str, password_file: Path) -> str:
    return (
        f"Sign in at http://127.0.0.1:{port}/login/ as {ADMIN} / {password}"
        f" (password also in {password_file}), or with SSO through the sandbox IdP as"
        " alice (admin), bob (operator) or carol (viewer)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    args = parser.parse_args(argv)

    if port_in_use(args.port):
        say(port_taken(args.port, "PORT"))
        return 1

    var = var_dir()
    env = dict(os.environ)
    env.setdefault("DJANGO_DEBUG", "1")  # runserver then serves the static files itself
    env["PYTHONUNBUFFERED"] = "1"  # so log lines arrive as they are written
    env["DJANGO_SETTINGS_MODULE"] = "accesshive.settings"
    try:
        for name, (path, make) in generated_env(var).items():
            if not env.get(name):  # a value from the caller's environment wins
                env[name] = persisted(path, functools.partial(make, env))
        manage(env, "migrate", "--noinput")
        password_file = var / "admin-password.txt"
        password = ensure_demo_admin(env, password_file)
    except subprocess.CalledProcessError as exc:
        say(f"preparation failed: {' '.join(map(str, exc.cmd))} exited with {exc.returncode}")
        if exc.stderr:
            print(exc.stderr, file=sys.stderr)
        return 1
    shown = password_file.relative_to(ROOT) if password_file.is_relative_to(ROOT) else password_file
    banner = sign_in(args.port, password, shown)
    say(banner)

    for port, setting in SANDBOX_PORTS.items():
        if port_in_use(port):
            say(port_taken(port, setting))
            return 1
    env.pop("ACCESSHIVE_SANDBOX_SCIM_TOKEN")  # the sandbox reads it from its file
    supervisor = Supervisor(processes(args.port, var), env)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, supervisor.request_stop)
    supervisor.start()
    point_platform_at_sandboxes(env, var)
    threading.Thread(
        target=announce_when_up, args=(args.port, banner, supervisor), daemon=True
    ).start()

    died = supervisor.watch()
    if died is None:
        say(f"{supervisor.stop_requested}: stopping {', '.join(supervisor.running)}")
    else:
        code = supervisor.running[died].returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
        say(f"{died} {how}: stopping the others")
    supervisor.stop()
    say("all processes stopped")
    return 0 if died is None else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C during preparation, before the supervisor took over
        sys.exit(130)
