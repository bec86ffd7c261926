"""`make run`'s port check: a stopped run's TIME_WAIT sockets do not stop the next one; a port
that something really listens on is refused, naming the process that holds it."""

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import dev


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A server socket listening on a free port, bound as our servers bind (SO_REUSEADDR)."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server
    server.close()


def leave_time_wait(server: socket.socket) -> int:
    """One connection the server side closes first (so the server's port enters TIME_WAIT, as
    it does when `make run` is stopped with clients connected); then the listener stops."""
    port: int = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()
    client.recv(1)  # the server's FIN has arrived
    client.close()
    server.close()
    return port


def test_a_port_left_in_time_wait_is_free_for_the_next_run(listener: socket.socket) -> None:
    port = leave_time_wait(listener)
    # The premise: a bind without SO_REUSEADDR is refused.
    with socket.socket() as plain, pytest.raises(OSError, match="Address already in use"):
        plain.bind(("127.0.0.1", port))
    assert not dev.port_in_use(port)
    # And the next run's server really binds it.
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()


def test_a_port_something_listens_on_is_refused_naming_the_holder(
    listener: socket.socket,
) -> None:
    port = listener.getsockname()[1]
    assert dev.port_in_use(port)
    message = dev.port_taken(port, "SANDBOX_SCIM_PORT")
    assert f"port {port} is in use by pid {os.getpid()} (" in message
    assert "pytest" in message  # the holder's command line
    assert "set SANDBOX_SCIM_PORT" in message
