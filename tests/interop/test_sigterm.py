"""SIGTERM with sockets open, on the six server setups and under ``lilya run``.

Each server runs ``tests.support.drain_apps:app`` (an echo, a send-only loop and
a ``relay()``, each printing a line from its ``finally``) in a process of its
own, 18 sockets are opened, and the server gets SIGTERM. The table says what
the clients see, the exit status, and whether every handler's ``finally`` ran:
what a deploy does to your clients on each server. ``lilya run`` is the row
where nothing is lost; the plain servers are measured as they are (the app's
drain runs through the lifespan there, after the server has dealt with the
sockets itself). ``docs/operations.md`` prints this table.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from dataclasses import dataclass

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.servers import SERVERS, RunningServer, free_port, serve, server_command

pytestmark = [pytest.mark.server, pytest.mark.slow]

APP = "tests.support.drain_apps:app"


@dataclass(frozen=True)
class Outcome:
    """What a SIGTERM did: the close codes clients saw, the exit status, the handlers' ends."""

    codes: frozenset[int]
    status: int
    #: ``None``: some do, some not, as a race decides.
    all_finally_ran: bool | None
    traceback: bool = False
    note: str = ""


EXPECTED: dict[str, Outcome] = {
    "lilya-run": Outcome(frozenset({1012}), 0, True, note="drained: 503, 1012 in batches, exit 0"),
    **dict.fromkeys(
        ("uvicorn-websockets", "uvicorn-websockets-sansio", "uvicorn-wsproto"),
        Outcome(frozenset({1012}), -signal.SIGTERM, True, note="1012 to all at once; -15"),
    ),
    "hypercorn": Outcome(
        frozenset({1011}),
        0,
        True,
        traceback=True,
        note="waits its graceful timeout (3 s), then cancels: 1011 and a CancelledError logged",
    ),
    "granian": Outcome(
        frozenset({1006, 1012}),
        0,
        None,
        note="granian sends lifespan.shutdown with the sockets still open: the app's drain "
        "closes some with 1012 before granian drops the rest without a close frame (1006)",
    ),
    "daphne": Outcome(
        frozenset({1006}),
        0,
        False,
        note="no lifespan: the process exits at once, no close frame, no finally",
    ),
}


def command(setup: str, port: int) -> list[str]:
    if setup == "lilya-run":
        return [sys.executable, "-m", "lilya", "run", APP, "--port", str(port)]
    return server_command(setup, APP, port)


async def stop_with_sockets_open(server: RunningServer, paths: list[str]) -> list[int | None]:
    sockets: list[ClientConnection] = [
        await connect(server.ws_url + path, open_timeout=30, ping_interval=None) for path in paths
    ]
    codes: list[int | None] = []

    async def read(ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass
        codes.append(ws.close_code)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            for ws in sockets:
                tasks.start_soon(read, ws)
            server.process.send_signal(signal.SIGTERM)
    return codes


@pytest.mark.parametrize("setup", ["lilya-run", *SERVERS])
def test_sigterm_with_sockets_open(setup: str) -> None:
    expected = EXPECTED[setup]
    # Daphne has no lifespan, so the channels never connect: no relay() there.
    kinds = ["/echo", "/push"] if setup == "daphne" else ["/echo", "/push", "/room"]
    paths = kinds * (18 // len(kinds))

    port = free_port()
    with serve(APP, setup, command=command(setup, port), port=port) as server:
        time.sleep(0.5)
        codes = anyio.run(stop_with_sockets_open, server, paths)
        status = server.process.wait(30)
        log = server.log()
    assert codes, "no client saw its connection end"
    assert set(codes) <= expected.codes, expected.note
    assert status == expected.status
    if expected.all_finally_ran is not None:
        assert (log.count("ended: ") == len(paths)) == expected.all_finally_ran, log[-2000:]
    assert ("Traceback" in log) == expected.traceback, log[-2000:]
