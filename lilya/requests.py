"""The HTTP request: the counterpart of ``WebSocket`` for ``http`` scopes."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any, Final

import anyio

from lilya import _json
from lilya._connection import Connection
from lilya.exceptions import HTTPException
from lilya.types import Message, Receive, Scope, Send

__all__ = ["ClientDisconnect", "Request"]


class ClientDisconnect(Exception):
    """The client went away while you were reading the request body."""


# A body is read from the server once per connection, but several Request
# objects may want it: the handler's, then an exception handler's. The body
# (or the fact that it was streamed away uncached) is kept in the scope, for
# Requests over the same ``receive``: one over another receive (a middleware
# that replays a rewritten body) reads its own.
_BODY_KEY: Final = "lilya.request_body"
_STREAMED: Final = object()


async def _empty_receive() -> Message:
    raise RuntimeError(
        "This Request was built without a receive callable, so it cannot read the body; "
        "pass receive= when you construct it."
    )


async def _empty_send(message: Message) -> None:
    raise RuntimeError("This Request was built without a send callable.")


class Request(Connection):
    """One HTTP request, wrapped around an ASGI ``http`` scope.

    Read ``method``, ``url``, ``headers``, ``query_params``, ``path_params`` and
    ``cookies``; read the body once with :meth:`body`, :meth:`json` or
    :meth:`stream` (the body is cached, so ``body()`` after ``json()`` works).

    Raises:
        TypeError: the scope is not an ``"http"`` scope.
    """

    def __init__(
        self, scope: Scope, receive: Receive = _empty_receive, send: Send = _empty_send
    ) -> None:
        scope_type = scope.get("type") if isinstance(scope, Mapping) else None
        if scope_type != "http":
            raise TypeError(
                f'Request needs an ASGI scope of type "http", got {scope_type!r}; '
                "use lilya.websockets.WebSocket for WebSocket scopes."
            )
        super().__init__(scope)
        self._receive = receive
        self._send = send
        self._body: bytes | None = None
        self._stream_consumed = False
        self._pending: list[Message] = []
        self._disconnected = False
        cached = scope.get(_BODY_KEY)
        if cached is not None and cached[0] == receive:
            if cached[1] is _STREAMED:
                self._stream_consumed = True
            else:
                self._body = cached[1]

    @property
    def method(self) -> str:
        """The HTTP method, upper case."""
        return str(self.scope["method"]).upper()

    @property
    def receive(self) -> Receive:
        """The raw ASGI receive callable."""
        return self._receive

    async def stream(self) -> AsyncGenerator[bytes, None]:
        """Yield the body in the chunks the server delivers, then a last ``b""``.

        The rules for reading twice, Starlette's: after :meth:`body` (or
        :meth:`json`), ``stream()`` yields the cached body again, as often as
        you like, from this Request or any other over the same connection.
        Streams of one Request opened before the body has ended share it: each
        chunk goes to whichever asks next. Once a ``stream()`` has read the
        body to its end, the body is gone (a stream does not keep it), so a new
        ``stream()``, or a ``body()``, raises ``RuntimeError`` rather than wait
        for chunks that will never come.

        Raises:
            RuntimeError: the body was already streamed to its end, uncached.
            ClientDisconnect: the client left before the body ended.
        """
        if self._body is not None:
            yield self._body
            yield b""
            return
        if self._stream_consumed:
            raise RuntimeError(
                "The request body was already streamed, and a streamed body is not kept; "
                "read it once, or read it with body() and then stream() it again."
            )
        while not self._stream_consumed:
            message = self._pending.pop(0) if self._pending else await self._receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                if not message.get("more_body", False):
                    self._stream_consumed = True
                    self.scope[_BODY_KEY] = (self._receive, _STREAMED)
                if chunk:
                    yield chunk
            elif message["type"] == "http.disconnect":
                self._disconnected = True
                raise ClientDisconnect()
        yield b""

    async def body(self) -> bytes:
        """Return the whole body (read once, then cached for every Request of the connection)."""
        if self._body is None:
            body = b"".join([chunk async for chunk in self.stream()])
            self._body = body
            self.scope[_BODY_KEY] = (self._receive, body)
        return self._body

    async def is_disconnected(self) -> bool:
        """Return whether the client has gone, without waiting.

        You can poll it in a long handler to stop working for nobody. It
        looks at what the server has ready right now; a body chunk that
        arrives instead is kept for :meth:`stream`, never lost.
        """
        if not self._disconnected:
            message: Message | None = None
            with anyio.CancelScope() as scope:
                scope.cancel()  # take only what is ready: never block
                message = await self._receive()
            if message is not None:
                if message["type"] == "http.disconnect":
                    self._disconnected = True
                else:
                    self._pending.append(message)
        return self._disconnected

    async def json(self) -> Any:
        """Parse the body as JSON.

        Raises:
            HTTPException: 400 when the body is not valid JSON (UTF-8).
        """
        try:
            return _json.loads(await self.body(), "binary")
        except ValueError as exc:
            raise HTTPException(400, f"The request body is not valid JSON: {exc}") from exc
