"""The app of the real-server close-race test: every client frame is published to the room.

A client of ``/ws`` is subscribed to ``room`` and relayed; each text frame it
sends is published to ``room`` (so the server is busy sending to the client
while it reads), and counted. ``GET /stats`` returns the counts so the test can
check that every frame a client sent before closing was handled.
"""

from __future__ import annotations

from typing import Any

import anyio

from lilya.apps import Lilya
from lilya.channels import Channels, relay
from lilya.requests import Request
from lilya.responses import JSONResponse
from lilya.routing import Path, WebSocketPath
from lilya.websockets import WebSocket

channels = Channels("memory://", history_size=0)
stats: dict[str, int] = {"handled": 0, "relays_ended": 0}


async def room(websocket: WebSocket) -> None:
    async def on_receive(data: Any) -> None:
        await channels.publish("room", data)
        stats["handled"] += 1
        await anyio.sleep(0)  # a handler that yields, as any real one does

    async with channels.subscribe("room", max_queue=100_000) as sub:
        await relay(websocket, sub, on_receive=on_receive)
    stats["relays_ended"] += 1


async def read_stats(request: Request) -> JSONResponse:
    return JSONResponse(stats)


app = Lilya(
    routes=[WebSocketPath("/ws", room), Path("/stats", read_stats)],
    lifespan=channels.lifespan,
    rate_limit=None,  # the client floods on purpose: this is about the relay, not the limit
)
