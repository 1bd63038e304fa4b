"""Apps a real server drains: an echo, a send-only loop and a ``relay()``, each saying when it ends.

Each handler prints one line from its ``finally`` block, so a test can count in
the server's log that every handler ran to its end.
"""

from __future__ import annotations

import anyio

from lilya.apps import Lilya
from lilya.caps import ConnectionCaps
from lilya.channels import Channels, relay
from lilya.routing import WebSocketPath
from lilya.websockets import WebSocket

channels = Channels("memory://")


async def echo(websocket: WebSocket) -> None:
    """Echo text until the client or the drain ends it."""
    await websocket.accept()
    try:
        async for text in websocket.iter_text():
            await websocket.send_text(text)
    finally:
        print("ended: echo", flush=True)


async def push(websocket: WebSocket) -> None:
    """Send a tick every 50 ms and never read: only a failed send ends it."""
    await websocket.accept()
    try:
        while True:
            await websocket.send_text("tick")
            await anyio.sleep(0.05)
    finally:
        print("ended: push", flush=True)


async def room(websocket: WebSocket) -> None:
    """Relay the room's events (with presence) until the drain closes the socket."""
    try:
        async with channels.subscribe("drain:room", presence={"pid": "test"}) as sub:
            await relay(websocket, sub)
    finally:
        print("ended: relay", flush=True)


app = Lilya(
    routes=[
        WebSocketPath("/echo", echo),
        WebSocketPath("/push", push),
        WebSocketPath("/room", room),
    ],
    lifespan=channels.lifespan,
    drain_batch=50,
    drain_interval=0.2,
    drain_timeout=10,
    # 1,000 sockets from one loopback address: over the default per-address cap.
    connection_caps=ConnectionCaps(per_address=None),
)
