"""The HTTP request: the counterpart of ``WebSocket`` for ``http`` scopes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from lilya import _json
from lilya._connection import Connection
from lilya.exceptions import HTTPException
from lilya.types import Message, Receive, Scope, Send

__all__ = ["ClientDisconnect", "Request"]


class ClientDisconnect(Exception):
    """The client went away while you were reading the request body."""


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

    @property
    def method(self) -> str:
        """The HTTP method, upper case."""
        return str(self.scope["method"]).upper()

    @property
    def receive(self) -> Receive:
        """The raw ASGI receive callable."""
        return self._receive

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield the body in the chunks the server delivers.

        Raises:
            RuntimeError: the body was already streamed without being cached.
            ClientDisconnect: the client left before the body ended.
        """
        if self._body is not None:
            yield self._body
            return
        if self._stream_consumed:
            raise RuntimeError(
                "The request body was already streamed; read it once, or use body()."
            )
        self._stream_consumed = True
        while True:
            message = await self._receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    return
            elif message["type"] == "http.disconnect":
                raise ClientDisconnect()

    async def body(self) -> bytes:
        """Return the whole body (read once, then cached)."""
        if self._body is None:
            self._body = b"".join([chunk async for chunk in self.stream()])
        return self._body

    async def json(self) -> Any:
        """Parse the body as JSON.

        Raises:
            HTTPException: 400 when the body is not valid JSON (UTF-8).
        """
        try:
            return _json.loads(await self.body(), "binary")
        except ValueError as exc:
            raise HTTPException(400, f"The request body is not valid JSON: {exc}") from exc
