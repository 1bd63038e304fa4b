"""The app of ``benchmarks/size_limit.py``: one echo route that takes at most 64 KiB."""

from __future__ import annotations

from lilya.apps import Lilya
from lilya.routing import WebSocketPath
from lilya.websockets import WebSocket

LIMIT = 64 * 1024


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for data in websocket.iter_bytes():
        await websocket.send_bytes(data)


app = Lilya([WebSocketPath("/echo", echo, max_message_size=LIMIT)])
