"""send_timeout on a real server: ``lilya run`` (uvicorn) with stalled clients beside healthy ones.

Clients that open ``/feed`` and then read nothing stall the server's sends.
Each must be closed within the send timeout plus the close grace, its handler
told ``WebSocketDisconnect(1013)``, and its TCP connection really gone (the
server's open sockets back to what they were), while a healthy client's
round trips go on meanwhile. The six server setups are in tests/interop.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection

from lilya.timeouts import CLOSE_GRACE
from tests.support.servers import RunningServer, serve, tracebacks
from tests.support.timeout_apps import SEND_TIMEOUT

pytestmark = [pytest.mark.server]

APP = "tests.support.timeout_apps:app"
STALLED = 5


def lilya_run() -> list[str]:
    return [sys.executable, "-m", "lilya", "run", APP, "--port", "{port}"]


def open_sockets(server: RunningServer) -> int:
    """How many TCP sockets the server process holds open (its listener included)."""
    fds = Path(f"/proc/{server.process.pid}/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd).startswith("socket:"):
                count += 1
    return count


def established(sock: socket.socket) -> bool:
    """Whether *sock*'s TCP connection is up (TCP_INFO's state), without reading from it."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return info[0] == 1  # TCP_ESTABLISHED


@contextlib.contextmanager
def server_connect(server: RunningServer) -> Iterator[ClientConnection]:
    with server.connect("/echo") as healthy:
        yield healthy


def stalled_client(port: int) -> socket.socket:
    """Open ``/feed`` by hand, then read nothing (a tiny receive window fills at once)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        b"GET /feed HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def test_stalled_clients_are_closed_1013_and_dropped_while_a_healthy_one_goes_on() -> None:
    with serve(APP, command=lilya_run()) as server, server_connect(server) as healthy:
        baseline = open_sockets(server)
        stalled = [stalled_client(server.port) for _ in range(STALLED)]
        started = time.monotonic()
        # Round trips go on while the stalled clients' sends wait for them.
        for n in range(50):
            healthy.send(str(n))
            assert healthy.recv(timeout=5) == str(n)
        log = server.wait_for_log("feed ended", timeout=SEND_TIMEOUT + CLOSE_GRACE + 5)
        deadline = time.monotonic() + 10
        while log.count("feed ended: WebSocketDisconnect(1013)") < STALLED:
            assert time.monotonic() < deadline, log
            time.sleep(0.05)
            log = server.log()
        # Each handler ended within the send timeout plus the close grace (and some slack).
        assert time.monotonic() - started < SEND_TIMEOUT + CLOSE_GRACE + 3
        # The server holds no socket of theirs: the TCP connections are gone, not half-open.
        while open_sockets(server) > baseline:
            assert time.monotonic() < deadline, f"{open_sockets(server)} sockets > {baseline}"
            time.sleep(0.05)
        # And each stalled client was reset, not left ESTABLISHED by an orphaned socket.
        while any(established(sock) for sock in stalled):
            assert time.monotonic() < deadline, "a stalled client's connection is still up"
            time.sleep(0.05)
        for sock in stalled:
            sock.close()
        healthy.send("after")
        assert healthy.recv(timeout=5) == "after"
        log = server.log()
    assert log.count("Closing /feed with 1013: send did not complete within send_timeout") == (
        STALLED
    )
    assert tracebacks(log) == []
