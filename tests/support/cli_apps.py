"""A lilya app for the ``lilya run`` tests: each route shows one server setting at work."""

from __future__ import annotations

import gc

import anyio

from lilya.apps import Lilya
from lilya.routing import Include, WebSocketPath
from lilya.websockets import WebSocket

__all__ = ["app", "mixed", "small", "unlimited"]


async def echo(websocket: WebSocket) -> None:
    """Echo every message back, text as text and bytes as bytes."""
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message.get("bytes") or b"")


async def linger(websocket: WebSocket) -> None:
    """Accept, say so, then never read again nor return: only a timeout ends it."""
    await websocket.accept()
    await websocket.send_text("lingering")
    await anyio.sleep_forever()


async def where(websocket: WebSocket) -> None:
    """Send back the scheme and client address the server put in the scope."""
    await websocket.accept()
    client = websocket.client
    await websocket.send_json(
        {"scheme": websocket.url.scheme, "client": client.host if client else None}
    )
    await websocket.close()


async def collector(websocket: WebSocket) -> None:
    """Send back the garbage collector's young threshold and frozen count (``--gc-tuning``)."""
    await websocket.accept()
    await websocket.send_json({"threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count()})
    await websocket.close()


app = Lilya(
    routes=[
        WebSocketPath("/echo", echo),
        WebSocketPath("/gc", collector),
        WebSocketPath("/linger", linger),
        WebSocketPath("/where", where),
    ],
    # /linger ignores the drain's close: its drain ends at this timeout, then
    # uvicorn's --timeout-graceful-shutdown cancels it.
    drain_timeout=2,
)

#: An app whose largest message is 64 KiB: ``lilya run`` gives uvicorn that limit.
small = Lilya(routes=[WebSocketPath("/echo", echo)], max_message_size=64 * 1024)

#: An app with one route beyond the app's default: the route's limit is the largest.
mixed = Lilya(
    routes=[
        WebSocketPath("/echo", echo, max_message_size=1000),
        Include("/big", routes=[WebSocketPath("/echo", echo, max_message_size=4 * 1024 * 1024)]),
    ]
)

#: An app that leaves the size limit to the server.
unlimited = Lilya(routes=[WebSocketPath("/echo", echo)], max_message_size=None)
