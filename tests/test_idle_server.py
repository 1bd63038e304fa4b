"""idle_timeout on a real server: ``lilya run`` (uvicorn) with silent and stalled raw clients.

Raw sockets open ``/quiet`` and then say nothing: each handler is told
``WebSocketDisconnect(1001)`` within the idle timeout (plus a second), while
a healthy client that talks is kept. Raw sockets that open ``/flood`` and
read nothing leave a send waiting for ever (that route has no send timeout):
the idle timeout closes them too, the close cannot leave, and after the close
grace their TCP connections are reset, not left half-open. The six server
setups are in tests/interop.
"""

from __future__ import annotations

import socket
import sys
import time

import pytest

from lilya.timeouts import CLOSE_GRACE
from tests.support.idle_apps import IDLE_TIMEOUT
from tests.support.servers import RunningServer, serve, tracebacks
from tests.test_timeouts_server import established, open_sockets

pytestmark = [pytest.mark.server]

APP = "tests.support.idle_apps:app"
QUIET = 30
STALLED = 3


def lilya_run() -> list[str]:
    return [sys.executable, "-m", "lilya", "run", APP, "--port", "{port}"]


def raw_client(port: int, path: str) -> socket.socket:
    """Open *path* by hand, then neither send nor read (a tiny receive window)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def wait_for(server: RunningServer, line: str, count: int, within: float) -> str:
    deadline = time.monotonic() + within
    log = server.log()
    while log.count(line) < count:
        assert time.monotonic() < deadline, log[-2000:]
        time.sleep(0.05)
        log = server.log()
    return log


def test_silent_clients_are_closed_1001_and_stalled_ones_dropped_while_a_talker_stays() -> None:
    with serve(APP, command=lilya_run()) as server, server.connect("/echo") as talker:
        baseline = open_sockets(server)
        started = time.monotonic()
        quiet = [raw_client(server.port, "/quiet") for _ in range(QUIET)]
        stalled = [raw_client(server.port, "/flood") for _ in range(STALLED)]
        # The talker says something more often than the idle timeout: it stays.
        while time.monotonic() - started < IDLE_TIMEOUT * 2.5:
            talker.send("ping")
            assert talker.recv(timeout=5) == "ping"
            time.sleep(IDLE_TIMEOUT / 4)
        log = wait_for(server, "quiet ended: WebSocketDisconnect(1001)", QUIET, within=5)
        assert time.monotonic() - started < IDLE_TIMEOUT * 2.5 + 1
        # The stalled ones: their pending send raised once the connection was dropped.
        log = wait_for(
            server, "flood ended: WebSocketDisconnect(1001)", STALLED, within=CLOSE_GRACE + 5
        )
        deadline = time.monotonic() + 10
        while any(established(sock) for sock in stalled):
            assert time.monotonic() < deadline, "a stalled client's connection is still up"
            time.sleep(0.05)
        for sock in quiet + stalled:
            sock.close()
        # No socket of theirs is left in the server: closed or reset, none half-open.
        while open_sockets(server) > baseline:
            assert time.monotonic() < deadline, f"{open_sockets(server)} sockets > {baseline}"
            time.sleep(0.05)
        talker.send("after")
        assert talker.recv(timeout=5) == "after"
        log = server.log()
    assert log.count("Closing /quiet with 1001: idle: no message either way") == QUIET
    assert log.count("Closing /flood with 1001: idle: no message either way") == STALLED
    assert tracebacks(log) == []
