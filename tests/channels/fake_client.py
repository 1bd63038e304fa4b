"""An in-process WebSocket client for relay tests: a real ASGI conversation, no network.

The app side gets ``receive``/``send`` callables; the test side pushes client
frames and reads what the app sent. ``stall()`` makes the client stop reading:
every ``websocket.send`` of the app then blocks, as it would on a server whose
TCP buffers are full, while ``websocket.close`` still goes through (unless
``stall(close_too=True)``).
"""

from __future__ import annotations

import math
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from lilya.types import Message
from lilya.websockets import WebSocket
from tests.support.asgi import ws_scope


class FakeClient:
    def __init__(self) -> None:
        self._to_app: MemoryObjectSendStream[Message]
        self._from_client: MemoryObjectReceiveStream[Message]
        self._to_app, self._from_client = anyio.create_memory_object_stream[Message](math.inf)
        self._to_client: MemoryObjectSendStream[Message]
        self._from_app: MemoryObjectReceiveStream[Message]
        self._to_client, self._from_app = anyio.create_memory_object_stream[Message](math.inf)
        self._unstall = anyio.Event()
        self._unstall.set()
        self._close_too = False
        self._gone = False
        self.websocket = WebSocket(ws_scope(), self._receive, self._send)
        self._to_app.send_nowait({"type": "websocket.connect"})

    def close_streams(self) -> None:
        for stream in (self._to_app, self._from_client, self._to_client, self._from_app):
            stream.close()

    async def _receive(self) -> Message:
        return await self._from_client.receive()

    async def _send(self, message: Message) -> None:
        if self._gone:
            raise OSError("the client has gone")  # as uvicorn's ClientDisconnected
        if message["type"] == "websocket.send" or self._close_too:
            await self._unstall.wait()
        self._to_client.send_nowait(message)

    # -- the test's side ----------------------------------------------------------

    def stall(self, *, close_too: bool = False) -> None:
        self._unstall = anyio.Event()
        self._close_too = close_too

    def vanish(self) -> None:
        """Leave: every later send of the app fails with ``OSError``, as on a real server."""
        self._gone = True

    def send_text(self, text: str) -> None:
        self._to_app.send_nowait({"type": "websocket.receive", "text": text})

    def send_bytes(self, data: bytes) -> None:
        self._to_app.send_nowait({"type": "websocket.receive", "bytes": data})

    def disconnect(self, code: int = 1000) -> None:
        self._to_app.send_nowait({"type": "websocket.disconnect", "code": code})

    async def next_message(self, *, within: float = 5.0) -> Message:
        with anyio.fail_after(within):
            return await self._from_app.receive()

    async def next_data(self, *, within: float = 5.0) -> Any:
        message = await self.next_message(within=within)
        assert message["type"] == "websocket.send", message
        return message.get("text") if message.get("text") is not None else message["bytes"]
