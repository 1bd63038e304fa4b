"""The app the real-socket slow-reader test serves: one feed, relayed to every client.

``GET /publish?count=N&size=S`` publishes N messages of S bytes, each stamped
with the wall clock, so readers on the same machine can measure delivery time.
``GET /stats`` says how many subscriptions ended and how.
"""

from __future__ import annotations

import time

import anyio

from lilya.apps import Lilya
from lilya.channels import Channels, relay
from lilya.requests import Request
from lilya.responses import JSONResponse
from lilya.routing import Path, WebSocketPath
from lilya.websockets import WebSocket

# The default policy ("close"): a stalled client is cut off with 1013.
channels = Channels("memory://", max_queue=32)
ended: dict[str, int] = {"overflowed": 0, "left": 0}


async def feed(websocket: WebSocket) -> None:
    async with channels.subscribe("feed") as sub:
        await relay(websocket, sub)
        ended["overflowed" if sub.dropped or sub.closed else "left"] += 1


async def publish(request: Request) -> JSONResponse:
    count = int(request.query_params.get("count", "100"))
    pad = "x" * int(request.query_params.get("size", "1000"))
    for seq in range(count):
        await channels.publish("feed", {"seq": seq, "ts": time.time(), "pad": pad})
        await anyio.sleep(0.002)
    return JSONResponse({"published": count})


async def stats(request: Request) -> JSONResponse:
    return JSONResponse(ended)


app = Lilya(
    routes=[WebSocketPath("/ws", feed), Path("/publish", publish), Path("/stats", stats)],
    lifespan=channels.lifespan,
)
