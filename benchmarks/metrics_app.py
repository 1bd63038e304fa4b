"""The app ``benchmarks/metrics_plot.py`` loads: an echo and a relayed room, metrics on."""

from __future__ import annotations

from typing import Any

from lilya.apps import Lilya
from lilya.channels import Channels, relay
from lilya.metrics import Metrics
from lilya.routing import WebSocketPath
from lilya.websockets import WebSocket

channels = Channels("memory://", max_queue=64, policy="drop_oldest")


async def echo(websocket: WebSocket) -> None:
    """Echo text until the client leaves."""
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


async def room(websocket: WebSocket) -> None:
    """Everyone in the room gets what anyone sends (through the channel)."""

    async def publish(data: Any) -> None:
        await channels.publish("room", data)

    async with channels.subscribe("room") as sub:
        await relay(websocket, sub, on_receive=publish)


app = Lilya(
    routes=[WebSocketPath("/echo", echo), WebSocketPath("/room", room)],
    metrics=Metrics(),
    max_message_size=4096,
    rate_limit=None,
    connection_caps=None,  # 200 clients from one address
    lifespan=channels.lifespan,
)
