"""docs/operations.md: its example drains as the page says."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from lilya.testclient import AsyncTestClient
from lilya.websockets import WebSocketDisconnect
from tests.support.docs import python_blocks

pytestmark = pytest.mark.anyio


def example() -> dict[str, Any]:
    [block] = python_blocks("operations.md")
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
