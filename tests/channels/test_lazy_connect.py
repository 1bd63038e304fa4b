"""Channels connected on first use inside a WebSocket handler outlive that handler (issue 16).

Before: ``connect()`` entered the channels' task group in the handler's task,
and the handler's return crossed it: "RuntimeError: Attempted to exit a
cancel scope that isn't the current task's current cancel scope", raised
from the handler's layers once the first client left. Now the group lives in
a task of its own (``lilya._side_task``), over the test client on both
backends and over real servers on asyncio (uvicorn) and trio (hypercorn).
"""

from __future__ import annotations

import sys
import time

import anyio
import httpx
import pytest
from websockets.sync.client import connect

from lilya.testclient import AsyncTestClient
from tests.channels.lazy_connect_app import make_app
from tests.support.servers import serve, tracebacks

APP = "tests.channels.lazy_connect_app:app"


@pytest.mark.anyio
async def test_channels_connected_inside_a_handler_keep_working_after_it_returns() -> None:
    app, channels, stats = make_app()
    async with AsyncTestClient(app) as client:
        for round_ in (1, 2):
            async with client.websocket_connect("/sub") as session:
                await channels.publish("room", f"hello {round_}")
                assert await session.receive_text(timeout=5) == f"hello {round_}"
            with anyio.fail_after(5):
                while stats["relays_ended"] < round_:
                    await anyio.sleep(0.01)
    assert channels.connected
    await channels.disconnect()  # from another task than the one that connected
    assert not channels.connected


@pytest.mark.server
@pytest.mark.parametrize("server", ["uvicorn-websockets-sansio", "hypercorn-trio"])
def test_channels_connected_inside_a_handler_outlive_it_on_a_real_server(server: str) -> None:
    command = None
    if server == "hypercorn-trio":
        command = [
            sys.executable,
            "-m",
            "hypercorn",
            APP,
            "--bind",
            "127.0.0.1:{port}",
            "--worker-class",
            "trio",
        ]
    with serve(APP, server, command=command) as running:
        with httpx.Client(base_url=running.http_url, timeout=10) as http:
            for round_ in (1, 2):
                with connect(running.ws_url + "/sub", open_timeout=10) as client:
                    http.get("/publish", params={"text": f"hello {round_}"}).raise_for_status()
                    assert client.recv(timeout=10) == f"hello {round_}"
                for _ in range(500):
                    if http.get("/stats").json()["relays_ended"] == round_:
                        break
                    time.sleep(0.01)
                assert http.get("/stats").json()["relays_ended"] == round_
        log = running.log()
    assert tracebacks(log) == [], log
