"""lilya.metrics against real servers: 1,000 hostile cycles on each setup, and two workers.

The active gauge must come back to exactly 0 however clients leave (a close,
a vanished TCP connection, a handler that raises, a denied handshake), and
with two workers in ``prometheus_client``'s multi-process mode, whichever
worker answers ``/metrics`` reports the sockets open on both.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection

from tests.support.metrics import Samples, parse
from tests.support.servers import SERVERS, RunningServer, serve, tracebacks

pytestmark = [pytest.mark.server, pytest.mark.slow]

APP = "tests.support.metrics_apps:app"


def scrape(server: RunningServer) -> Samples:
    return parse(httpx.get(server.http_url + "/metrics", timeout=10).text)


def settle(server: RunningServer, name: str, value: float, **labels: str) -> Samples:
    """Scrape until *name* reads *value* (the server notices a vanished client promptly,
    but asynchronously); fail after 15 s with what it read."""
    deadline = time.monotonic() + 15
    while True:
        samples = scrape(server)
        if samples.value(name, **labels) == value or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def vanish(connection: ClientConnection) -> None:
    """Drop the TCP connection with no close frame (a client that lost its network)."""
    sock = connection.socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # linger 0: an RST, as when a phone drops off the network


def pid_read(connection: ClientConnection, how: str, server_name: str) -> bool:
    """Read the first frame, the worker's pid (the socket was accepted); ``False`` if lost.

    Only one loss is allowed, and only on daphne, where the server closes right
    after the pid: daphne then drops the TCP connection at once, and when the
    pid, the close and the reset reach websockets' sync client together, its
    close reply meets the reset and it drops the frames it had just read. The
    server's own counts (accepted handshakes, closes by code) are still exact.
    """
    try:
        assert connection.recv(timeout=10).isdigit()
    except ConnectionClosed:
        if server_name != "daphne" or how not in ("raise", "server-close"):
            raise
        return False
    return True


#: Every server setup (asyncio), and trio under hypercorn's trio worker.
SETUPS: dict[str, list[str] | None] = {
    **dict.fromkeys(SERVERS),
    "hypercorn-trio": [
        sys.executable, "-m", "hypercorn", APP, "--bind", "127.0.0.1:{port}",
        "--worker-class", "trio",
    ],
}  # fmt: skip


@pytest.mark.parametrize("setup", list(SETUPS))
def test_the_gauge_is_exactly_zero_after_1000_hostile_cycles(setup: str) -> None:
    ends = ("client-close", "vanish", "raise", "deny", "server-close")
    server_name = "hypercorn" if setup == "hypercorn-trio" else setup
    with serve(APP, server_name, command=SETUPS[setup]) as server:
        for cycle in range(1000):
            how = ends[cycle % len(ends)]
            if how == "deny":
                with pytest.raises(InvalidStatus) as denied:
                    server.connect("/ws?how=deny")
                assert denied.value.response.status_code == 403
                continue
            with server.connect(f"/ws?how={how}") as connection:
                if not pid_read(connection, how, server_name):
                    continue
                if how == "client-close":
                    connection.send("hi")
                    assert connection.recv(timeout=10) == "hi"
                    connection.close(3000)
                elif how == "vanish":
                    vanish(connection)
                else:
                    with pytest.raises(ConnectionClosed):
                        connection.recv(timeout=10)
        samples = settle(server, "lilya_websocket_connections_active", 0, route="/ws")
        log = server.log()
    assert samples.value("lilya_websocket_connections_active", route="/ws") == 0
    assert (
        samples.value("lilya_websocket_handshakes_total", outcome="accepted", status="101") == 800
    )
    assert samples.value("lilya_websocket_handshakes_total", outcome="denied", status="403") == 200
    assert samples.value("lilya_websocket_closes_total", code="4001", side="server") == 200
    assert samples.value("lilya_websocket_closes_total", code="1011", side="server") == 200
    # The client's closes and vanishings: the code is what the server reports. The
    # others forward 3000 and give a vanished client 1006 or 1005; hypercorn reports
    # 1006 for every client close (docs/servers.md).
    assert samples.total("lilya_websocket_closes_total", side="client") == 400
    if server_name != "hypercorn":
        assert samples.value("lilya_websocket_closes_total", code="3000", side="client") == 200
    assert samples.value("lilya_websocket_connection_duration_seconds_count", route="/ws") == 800
    # The only tracebacks are those the handler raised on purpose (200, less what
    # daphne, which logs from another thread, had not written yet).
    assert len(tracebacks(log)) <= 200
    assert all("the handler failed on purpose" in tb for tb in tracebacks(log))


def test_two_workers_report_every_open_socket_whichever_answers(tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    command = [
        sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", "{port}",
        "--workers", "2", "--log-level", "warning",
    ]  # fmt: skip
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    with serve(APP, "uvicorn-workers", command=command, env=env) as server:
        open_sockets: list[ClientConnection] = []
        pids: set[str] = set()
        with contextlib.ExitStack() as stack:
            # Open until both workers hold some (the kernel spreads connections;
            # bounded, so a server that never uses its second worker fails).
            while len(open_sockets) < 400 and (len(pids) < 2 or len(open_sockets) < 20):
                connection = stack.enter_context(server.connect("/ws"))
                pids.add(str(connection.recv(timeout=10)))
                open_sockets.append(connection)
            assert len(pids) == 2, f"every connection went to one worker: {pids}"
            count = len(open_sockets)
            for _ in range(10):  # whichever worker answers the scrape
                samples = scrape(server)
                assert samples.value("lilya_websocket_connections_active", route="/ws") == count
                assert (
                    samples.value(
                        "lilya_websocket_handshakes_total", outcome="accepted", status="101"
                    )
                    == count
                )
        samples = settle(server, "lilya_websocket_connections_active", 0, route="/ws")
        assert samples.value("lilya_websocket_connections_active", route="/ws") == 0
        assert samples.value("lilya_websocket_closes_total", code="1000", side="client") == count
        assert tracebacks(server.log()) == []
    assert {path.name.split("_")[0] for path in directory.iterdir()} >= {"counter", "gauge"}


def test_a_worker_killed_with_sigkill_stops_being_counted(tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    command = [
        sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", "{port}",
        "--workers", "2", "--log-level", "warning",
    ]  # fmt: skip
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    with serve(APP, "uvicorn-workers", command=command, env=env) as server:
        held: list[tuple[ClientConnection, str]] = []
        with contextlib.ExitStack() as stack:
            while len(held) < 400 and (len({pid for _, pid in held}) < 2 or len(held) < 20):
                connection = stack.enter_context(server.connect("/ws"))
                held.append((connection, str(connection.recv(timeout=10))))
            pids = sorted({pid for _, pid in held})
            assert len(pids) == 2, f"every connection went to one worker: {pids}"
            victim = pids[0]
            survivors = sum(1 for _, pid in held if pid != victim)
            assert scrape(server).value("lilya_websocket_connections_active", route="/ws") == len(
                held
            )
            os.kill(int(victim), signal.SIGKILL)  # no drain, no goodbye: its files stay
            samples = settle(server, "lilya_websocket_connections_active", survivors, route="/ws")
            assert samples.value("lilya_websocket_connections_active", route="/ws") == survivors
            # Its counters are history and stay summed: every accept still counts.
            handshakes = samples.value(
                "lilya_websocket_handshakes_total", outcome="accepted", status="101"
            )
            assert handshakes == len(held)
            for connection, pid in held:
                if pid == victim:
                    with contextlib.suppress(ConnectionClosed):
                        connection.recv(timeout=10)
