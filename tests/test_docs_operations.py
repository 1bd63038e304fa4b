"""docs/operations.md: its example drains as the page says."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from lilya.testclient import AsyncTestClient
from lilya.websockets import WebSocketDisconnect
from tests.support.docs import python_blocks

pytestmark = pytest.mark.anyio


def example(number: int = 0) -> dict[str, Any]:
    block = python_blocks("operations.md")[number]
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/operations.md", "exec"), namespace)
    return namespace


async def test_the_example_saves_the_draft_and_ends_the_ticker_with_1012() -> None:
    namespace = example()
    app = namespace["app"]
    client = AsyncTestClient(app)
    async with (
        anyio.create_task_group() as tasks,
        client.websocket_connect("/tick") as ticks,
        client.websocket_connect("/edit") as edit,
    ):
        assert await ticks.receive_text() == "tick"
        await edit.send_text("hello, ")
        await edit.send_text("world")
        await anyio.sleep(0.05)
        tasks.start_soon(app.drain)
        for session in (ticks, edit):
            with pytest.raises(WebSocketDisconnect) as info:
                await session.receive_text(timeout=10)
            assert info.value.code == 1012
        # Leaving the sessions is the clients' answer to the close: the drain ends.
    assert namespace["saved"] == ["hello, world"]
    assert app.draining


async def test_the_heartbeat_example_keeps_an_answering_client_and_closes_a_silent_one() -> None:
    namespace = example(1)
    client = AsyncTestClient(namespace["app"])
    async with client.websocket_connect("/tick") as session:
        assert await session.receive_json() == {"latency": None}
        await anyio.sleep(0.3)  # pings answered by the session: still open
        latencies = [(await session.receive_json())["latency"] for _ in range(3)]
        assert latencies[-1] is not None
        await session.stop_ponging()
        with pytest.raises(WebSocketDisconnect) as info:
            while True:
                await session.receive_json(timeout=5)
        assert info.value.code == 1011
        with anyio.fail_after(5):
            while not namespace["stopped"]:
                await anyio.sleep(0.01)
    assert namespace["stopped"] == [1011]


async def test_the_idle_example_closes_a_silent_client_1001_despite_the_heartbeat() -> None:
    namespace = example(2)
    client = AsyncTestClient(namespace["app"])
    async with (
        client.websocket_connect("/echo") as idle,
        client.websocket_connect("/forever") as kept,
    ):
        await idle.send_text("hi")
        assert await idle.receive_text() == "hi"
        with pytest.raises(WebSocketDisconnect) as info:
            await idle.receive_text(timeout=5)  # pings answered meanwhile, then 1001
        assert info.value.code == 1001
        await anyio.sleep(0.4)  # twice the app's idle_timeout: this route has none
        await kept.send_text("still here")
        assert await kept.receive_text() == "still here"
        with anyio.fail_after(5):
            while not namespace["told"]:
                await anyio.sleep(0.01)
    assert namespace["told"][0] == (1001, "idle: no message either way within idle_timeout (0.2 s)")
