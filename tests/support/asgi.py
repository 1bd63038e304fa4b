"""The fake server: call an ASGI app in-process with scripted messages, and see what it sent.

No test client in between: these helpers show the exact ASGI messages, and let
a test leave out the Denial Response extension (as daphne does). Two ways in:

* :func:`call_websocket` / :func:`call_http` run a whole app and return an
  :class:`Outcome`;
* :class:`Wire` plays the server side of one connection for a ``WebSocket``
  driven step by step ("the client does X, the app sent Y"), and
  :func:`websocket` builds one over a fresh wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from lilya.types import ASGIApp, Message
from lilya.websockets import WebSocket

CONNECT: Message = {"type": "websocket.connect"}


def text(data: str) -> Message:
    return {"type": "websocket.receive", "text": data}


def binary(data: bytes) -> Message:
    return {"type": "websocket.receive", "bytes": data}


def disconnect(code: int | None = 1000, reason: str | None = None) -> Message:
    """A ``websocket.disconnect``; *reason* is left out when ``None``, as several servers do."""
    message: Message = {"type": "websocket.disconnect", "code": code}
    if reason is not None:
        message["reason"] = reason
    return message


@dataclass
class Outcome:
    """What the app sent, and what it raised (``None`` if it returned)."""

    sent: list[Message] = field(default_factory=list)
    error: BaseException | None = None
    scope: dict[str, Any] = field(default_factory=dict)

    @property
    def types(self) -> list[str]:
        return [message["type"] for message in self.sent]

    @property
    def close(self) -> tuple[int, str] | None:
        """The (code, reason) of the app's close message, if it sent one."""
        for message in self.sent:
            if message["type"] == "websocket.close":
                return int(message.get("code", 1000)), message.get("reason") or ""
        return None

    @property
    def status(self) -> int | None:
        """The status of an HTTP response or denial response, if one started."""
        for message in self.sent:
            if message["type"].endswith("http.response.start"):
                return int(message["status"])
        return None

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"].endswith(".body"))

    @property
    def headers(self) -> dict[str, str]:
        for message in self.sent:
            if message["type"].endswith("http.response.start"):
                return {k.decode(): v.decode() for k, v in message["headers"]}
        return {}


def _headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers]
    if not any(name == b"host" for name, _ in raw):
        raw.insert(0, (b"host", b"testserver"))
    return raw


def websocket_scope(
    path: str = "/",
    *,
    extensions: bool = True,
    subprotocols: Sequence[str] = (),
    headers: Iterable[tuple[str, str]] = (),
    query_string: bytes = b"",
) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "scheme": "ws",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "headers": _headers(headers),
        "subprotocols": list(subprotocols),
        "extensions": {"websocket.http.response": {}} if extensions else {},
        "state": {},
    }


async def call_websocket(
    app: ASGIApp,
    path: str = "/",
    messages: Sequence[Message] = (CONNECT,),
    *,
    scope: dict[str, Any] | None = None,
    timeout: float = 5.0,
    **scope_options: Any,
) -> Outcome:
    """Run *app* on a WebSocket scope, feeding it *messages*, then a 1006 disconnect.

    After the scripted messages the client "vanishes": the next receive gets
    ``websocket.disconnect`` 1006, and any further receive fails the test (a
    real server might hang there).
    """
    scope = scope if scope is not None else websocket_scope(path, **scope_options)
    outcome = Outcome(scope=scope)
    queue = list(messages)
    gone = False

    async def receive() -> Message:
        nonlocal gone
        if queue:
            return queue.pop(0)
        if gone:
            raise AssertionError("the app called receive() after the disconnect")
        gone = True
        return disconnect(1006)

    async def send(message: Message) -> None:
        outcome.sent.append(message)

    with anyio.fail_after(timeout):
        try:
            await app(scope, receive, send)
        except Exception as exc:
            outcome.error = exc
    return outcome


def http_scope(
    path: str = "/",
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (),
    query_string: bytes = b"",
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "headers": _headers(headers),
        "state": {},
    }


async def call_http(
    app: ASGIApp,
    path: str = "/",
    method: str = "GET",
    *,
    body: bytes = b"",
    timeout: float = 5.0,
    **scope_options: Any,
) -> Outcome:
    """Run *app* on an HTTP request with *body*; collect the response messages."""
    scope = http_scope(path, method, **scope_options)
    outcome = Outcome(scope=scope)
    sent_body = False

    async def receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        outcome.sent.append(message)

    with anyio.fail_after(timeout):
        try:
            await app(scope, receive, send)
        except Exception as exc:
            outcome.error = exc
    return outcome


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
