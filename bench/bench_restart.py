"""`make run` stopped with Ctrl-C and started again at once, on the same ports: seconds from
the second start to "AccessHive is up", beside `manage.py runserver` alone from start to its
first answer (the floor: the web process without migrate, worker, beat and sandboxes).

Needs no servers (SQLite, filesystem broker, like `make run`); uses a temporary var/ and
free ports. Before the port check looked for a listener, the second start exited 1 on the
first sandbox port still in TIME_WAIT.
Run: .venv/bin/python bench/bench_restart.py [--runs N]
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UP = "AccessHive is up"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_for_line(process: subprocess.Popen[str], text: str, timeout: float) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        if text in line:
            return
        if time.monotonic() > deadline:
            break
    raise SystemExit(f"no {text!r} within {timeout}s (exit code {process.poll()})")


def make_run(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "scripts/dev.py", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        process_group=0,
    )


def ctrl_c(process: subprocess.Popen[str]) -> float:
    """SIGINT to the group, as a terminal's Ctrl-C does; seconds until everything stopped."""
    started = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    assert process.stdout is not None
    process.stdout.read()
    process.wait(60)
    return time.monotonic() - started


def made_by_make_run(var: Path) -> dict[str, str]:
    """The settings `make run` generated into var/, for runserver alone."""
    return {
        "DJANGO_DEBUG": "1",
        "DJANGO_SECRET_KEY": (var / "secret-key").read_text().strip(),
        "ACCESSHIVE_VAULT_KEYS": (var / "vault-keys").read_text().strip(),
    }


def runserver_alone(env: dict[str, str]) -> float:
    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=1).close()
                return time.monotonic() - started
            except OSError:
                if process.poll() is not None:
                    raise SystemExit(f"runserver exited with {process.returncode}") from None
                time.sleep(0.05)
    finally:
        process.terminate()
        process.wait()


def rounded(values: list[float]) -> list[float]:
    return [round(value, 1) for value in values]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ah-bench-restart-") as var:
        env = dict(os.environ, ACCESSHIVE_VAR_DIR=var, NO_COLOR="1")
        for name in ("SANDBOX_GWS_PORT", "SANDBOX_SCIM_PORT", "SANDBOX_SAML_PORT"):
            env[name] = str(free_port())
        port = free_port()
        first = make_run(env, port)
        wait_for_line(first, UP, 180)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5).close()
        stop = ctrl_c(first)
        restarts, floors = [], []
        for _ in range(args.runs):
            started = time.monotonic()
            again = make_run(env, port)
            wait_for_line(again, UP, 180)
            restarts.append(time.monotonic() - started)
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5).close()
            ctrl_c(again)
            floors.append(runserver_alone({**env, **made_by_make_run(Path(var))}))
        restart, floor = sorted(restarts)[len(restarts) // 2], sorted(floors)[len(floors) // 2]
        print(f"first stop (Ctrl-C to all stopped): {stop:.1f} s")
        print(f"{'':32}{'median s':>10}")
        print(f"{'make run again, to up':32}{restart:>10.1f}   runs {rounded(restarts)}")
        print(f"{'runserver alone, to answer':32}{floor:>10.1f}   runs {rounded(floors)}")
        print(f"ratio {restart / floor:.1f}x")


if __name__ == "__main__":
    main()
