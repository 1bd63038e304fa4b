"""An in-memory ASGI wire for driving a WebSocket without a server.

``Wire`` plays the server: it hands the app a script of incoming messages and
records what the app sends. Tests read as "the client does X, the app sent Y".
"""

from __future__ import annotations

from typing import Any

from lilya.types import Message
from lilya.websockets import WebSocket

CONNECT: Message = {"type": "websocket.connect"}


def text(data: str) -> Message:
    return {"type": "websocket.receive", "text": data}


def binary(data: bytes) -> Message:
    return {"type": "websocket.receive", "bytes": data}


def disconnect(code: int | None = 1000, reason: str | None = None) -> Message:
    message: Message = {"type": "websocket.disconnect", "code": code}
    if reason is not None:
        message["reason"] = reason
    return message


def ws_scope(**overrides: Any) -> dict[str, Any]:
    """A websocket scope as uvicorn builds it, with *overrides* applied."""
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
        "state": {},
    }
    scope.update(overrides)
    return scope


class Wire:
    """The server side of one connection: scripted input, recorded output."""

    def __init__(self, *incoming: Message, send_error: BaseException | None = None) -> None:
        self.incoming = list(incoming)
        self.sent: list[Message] = []
        self.receive_calls = 0
        self.send_error = send_error

    async def receive(self) -> Message:
        self.receive_calls += 1
        if not self.incoming:
            raise AssertionError("the app called receive() but the script has no more messages")
        return self.incoming.pop(0)

    async def send(self, message: Message) -> None:
        if self.send_error is not None:
            raise self.send_error
        self.sent.append(message)

    @property
    def sent_types(self) -> list[str]:
        return [m["type"] for m in self.sent]


def websocket(*incoming: Message, **scope: Any) -> tuple[WebSocket, Wire]:
    """A WebSocket over a fresh Wire scripted with *incoming*."""
    wire = Wire(*incoming)
    return WebSocket(ws_scope(**scope), wire.receive, wire.send), wire
