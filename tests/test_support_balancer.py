"""tests/support/balancer.py, the rolling-restart tests' load balancer: what they rely on."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.support.balancer import Balancer
from tests.support.servers import free_port


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        port: int = self.request.getsockname()[1]  # the server's own port
        while data := self.request.recv(4096):
            self.request.sendall(port.to_bytes(2, "big") + data)


@pytest.fixture
def echo() -> Iterator[int]:
    """A TCP server answering each chunk with its own port (2 bytes) and the chunk."""
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo) as server:
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield int(server.server_address[1])
        finally:
            server.shutdown()


def ask(balancer: Balancer, data: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", balancer.port), timeout=5) as sock:
        sock.sendall(data)
        reply = sock.recv(4096)
    return int.from_bytes(reply[:2], "big"), reply[2:]


def test_a_worker_that_refuses_is_skipped_for_the_next(echo: int) -> None:
    dead = free_port()
    with Balancer([dead, echo]) as balancer:
        answers = [ask(balancer, f"hi {n}".encode()) for n in range(4)]
    assert answers == [(echo, f"hi {n}".encode()) for n in range(4)]
    assert balancer.routed == [echo] * 4


def test_a_connection_no_worker_accepts_is_closed() -> None:
    with (
        Balancer([free_port()]) as balancer,
        socket.create_connection(("127.0.0.1", balancer.port), timeout=5) as sock,
    ):
        try:
            ended = sock.recv(1) == b""
        except ConnectionResetError:
            ended = True
    assert ended
    assert balancer.routed == []


def test_open_connections_are_counted_per_worker_and_stay_when_the_targets_change(
    echo: int,
) -> None:
    with Balancer([echo]) as balancer:
        sock = socket.create_connection(("127.0.0.1", balancer.port), timeout=5)
        sock.sendall(b"x")
        assert sock.recv(4096) == echo.to_bytes(2, "big") + b"x"
        assert balancer.open_to(echo) == 1
        balancer.targets = [free_port()]  # out of rotation: the open one stays
        sock.sendall(b"y")
        assert sock.recv(4096) == echo.to_bytes(2, "big") + b"y"
        sock.close()
        for _ in range(500):
            if balancer.open_to(echo) == 0:
                break
            threading.Event().wait(0.01)
        assert balancer.open_to(echo) == 0
