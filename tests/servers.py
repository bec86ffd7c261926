"""What the helpers starting real servers for tests share (tests/openbao.py, slapd.py,
samba_ad.py, pysaml2_idp.py): free ports, skipping loudly, stopping, relaying TCP."""

import os
import select
import socket
import subprocess
import threading
from collections.abc import Callable
from typing import IO, NoReturn

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing(what: str, reason: str) -> NoReturn:
    """Skip a test that ``reason`` keeps from running; in CI (CI=true), fail it instead: a
    skipped service test there is a failure."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI must run the {what} tests, but this one {reason}")
    pytest.skip(reason)


def stop(process: subprocess.Popen[bytes] | None, log: IO[bytes] | None = None) -> None:
    """Terminate a server we started (kill it if it lingers) and close its log."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    if log is not None:
        log.close()


def serve_connections(
    listener: socket.socket,
    handle: Callable[[socket.socket], None],
    stopped: threading.Event,
) -> None:
    """Accept on ``listener`` in a daemon thread, handing each connection to ``handle`` in a
    thread of its own, until the listener is closed."""

    def accept() -> None:
        while not stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


def relay(client: socket.socket, upstream: socket.socket, stopped: threading.Event) -> None:
    """Copy bytes both ways until either side closes (or ``stopped`` is set)."""
    sockets = [client, upstream]
    while not stopped.is_set():
        readable, _, _ = select.select(sockets, [], [], 0.5)
        for sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            (upstream if sock is client else client).sendall(data)
