"""docs/metrics.md: its examples count, serve and trace as the page says."""

from __future__ import annotations

from typing import Any

import pytest

from lilya.testclient import AsyncTestClient
from tests.support.docs import python_blocks
from tests.support.metrics import parse

pytestmark = pytest.mark.anyio

BLOCKS = python_blocks("metrics.md")


def run(index: int) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(BLOCKS[index], "docs/metrics.md", "exec"), namespace)
    return namespace


def test_the_page_has_its_three_examples() -> None:
    assert len(BLOCKS) == 3


async def test_the_chat_is_counted_by_route_template_and_served_at_slash_metrics(
    anyio_backend: str,
) -> None:
    app = run(0)["app"]
    client = AsyncTestClient(app)
    async with client.websocket_connect("/chat/lobby") as session:
        await session.send_text("hi")
        assert await session.receive_text() == "lobby: hi"
        samples = parse((await client.get("/metrics")).text)
        assert samples.value("lilya_websocket_connections_active", route="/chat/{room}") == 1
    samples = parse((await client.get("/metrics")).text)
    assert samples.value("lilya_websocket_connections_active", route="/chat/{room}") == 0
    assert samples.value(
        "lilya_websocket_message_bytes_total", route="/chat/{room}", direction="sent"
    ) == len("lobby: hi")


async def test_the_private_app_serves_the_public_app_s_metrics(anyio_backend: str) -> None:
    namespace = run(1)
    public, private = namespace["public"], namespace["private"]
    assert (await AsyncTestClient(public).get("/metrics")).status_code == 404
    page = await AsyncTestClient(private).get("/metrics")
    assert "lilya_websocket_connections_active" in page.text


async def test_the_echo_s_connection_is_one_span(anyio_backend: str) -> None:
    namespace = run(2)
    app, exporter = namespace["app"], namespace["exporter"]
    async with AsyncTestClient(app).websocket_connect("/echo") as session:
        await session.send_text("hi")
        assert await session.receive_text() == "hi"
    [span] = exporter.get_finished_spans()
    assert span.name == "WebSocket /echo"
    assert span.attributes["websocket.close.side"] == "client"
    assert span.attributes["websocket.messages.sent"] == 1
