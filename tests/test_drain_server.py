"""The drain on a real server: ``lilya run`` stopped with SIGTERM while 1,000 sockets are open.

Every client must get the drain's close code (1012) within the drain window,
never a dropped connection (1006); a handshake during the drain gets 503 with
``Retry-After``; every handler's ``finally`` runs; the process exits 0, with
no traceback, with one worker and with two.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.servers import RunningServer, serve

pytestmark = [pytest.mark.server, pytest.mark.slow]

APP = "tests.support.drain_apps:app"
#: drain_timeout of the app above.
DRAIN_TIMEOUT = 10.0


def lilya_run(*args: str) -> list[str]:
    return [sys.executable, "-m", "lilya", "run", APP, "--port", "{port}", *args]


async def open_sockets(server: RunningServer, paths: list[str]) -> list[ClientConnection]:
    sockets: list[ClientConnection] = []
    for path in paths:
        # ping_interval=None: the server, not the client's keepalive, must end these.
        sockets.append(await connect(server.ws_url + path, open_timeout=30, ping_interval=None))
    return sockets


async def read_until_closed(
    ws: ClientConnection, codes: list[int | None], times: list[float]
) -> None:
    # The send-only route keeps sending: keep reading to see the close.
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass
    times.append(time.monotonic())
    codes.append(ws.close_code)


async def refused_during_drain(server: RunningServer) -> tuple[int, str | None]:
    """Try handshakes until one is refused."""
    with anyio.fail_after(10):
        while True:
            try:
                ws = await connect(server.ws_url + "/echo", open_timeout=10)
            except InvalidStatus as exc:
                return exc.response.status_code, exc.response.headers.get("retry-after")
            # It came before the drain began (the signal takes a moment): try again.
            await ws.close()
            await anyio.sleep(0.02)


async def drain_scenario(server: RunningServer, count: int) -> None:
    paths = ["/room"] * (count // 2) + ["/echo"] * (count // 4)
    paths += ["/push"] * (count - len(paths))
    sockets = await open_sockets(server, paths)
    codes: list[int | None] = []
    times: list[float] = []
    async with anyio.create_task_group() as tasks:
        for ws in sockets:
            tasks.start_soon(read_until_closed, ws, codes, times)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        status, retry_after = await refused_during_drain(server)
    assert (status, retry_after) == (503, "5")
    assert codes == [1012] * count  # no 1006: every client got the close frame
    assert max(times) - signalled < DRAIN_TIMEOUT
    with anyio.fail_after(DRAIN_TIMEOUT + 5):
        while server.process.poll() is None:
            await anyio.sleep(0.05)
    exited = time.monotonic() - signalled
    assert server.process.returncode == 0
    assert exited < DRAIN_TIMEOUT + 1
    log = server.log()
    assert "Traceback" not in log
    for kind, expected in (("relay", count // 2), ("echo", count // 4)):
        assert log.count(f"ended: {kind}") >= expected, log[-2000:]
    print(f"\n{count} sockets: last close {max(times) - signalled:.2f} s, exit {exited:.2f} s")


def test_sigterm_closes_1000_sockets_with_1012_refuses_handshakes_and_exits_0() -> None:
    with serve("", "lilya", command=lilya_run()) as server:
        anyio.run(drain_scenario, server, 1000)


def test_sigterm_with_two_workers_drains_each_and_exits_0() -> None:
    with serve("", "lilya", command=lilya_run("--workers", "2")) as server:
        server.wait_for_log("Started server process", timeout=20)
        time.sleep(1)  # both workers listening
        anyio.run(drain_scenario, server, 600)
