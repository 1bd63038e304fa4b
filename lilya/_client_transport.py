"""How the Python client reaches a server: one socket of text frames, two ways.

The client (``lilya/client.py``) needs only this of a socket: send a text
frame, receive the next one, close. :class:`Transport` is that. A
:class:`Dialer` opens one per connection attempt, as an async context manager
entered and left in the same task (anyio's rule for the task group the
in-process session runs in).

* :class:`WebSocketsDialer`: a real network socket through the ``websockets``
  library. That library is asyncio-only, so this dialer is too.
* :class:`TestClientDialer`: a session of lilya's ``AsyncTestClient``, the app
  in the same process and event loop: no network, asyncio or trio.

Both turn every way a socket ends into one exception, :class:`TransportClosed`
(``code``, ``reason``), and every refused handshake into
:class:`HandshakeRefused` (the HTTP ``status``), so the client's close-code
policy has a single shape to read.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import anyio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from lilya.exceptions import WebSocketRuntimeError
from lilya.status import WS_1006_ABNORMAL_CLOSURE
from lilya.testclient import AsyncTestClient, AsyncWebSocketTestSession, WebSocketDenialResponse
from lilya.websockets import WebSocketDisconnect

__all__ = [
    "Dialer",
    "HandshakeRefused",
    "TestClientDialer",
    "Transport",
    "TransportClosed",
    "WebSocketsDialer",
]


class TransportClosed(Exception):
    """The socket ended: with the close ``code`` and ``reason`` the server sent, or 1006.

    1006 means no close frame arrived: the connection broke, the server was
    killed, or the client itself gave up on a dead socket.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"The connection closed with {code}" + (f" ({reason})" if reason else ""))
        self.code = code
        self.reason = reason


class HandshakeRefused(Exception):
    """The server answered the WebSocket handshake with HTTP ``status`` instead of accepting."""

    def __init__(self, status: int, body: str = "") -> None:
        super().__init__(
            f"The server refused the WebSocket handshake with HTTP {status}"
            + (f": {body[:200]}" if body else "")
        )
        self.status = status
        self.body = body


class Transport(Protocol):
    """One open socket of JSON text frames."""

    async def send(self, text: str) -> None:
        """Send one text frame; raise :class:`TransportClosed` if the socket has ended."""

    async def receive(self) -> str:
        """Return the next text frame; raise :class:`TransportClosed` when the socket ends."""

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with *code*; return promptly even if the peer is gone."""


class Dialer(Protocol):
    """Opens a :class:`Transport` to *url*, offering *subprotocols*."""

    def open(
        self, url: str, subprotocols: Sequence[str]
    ) -> contextlib.AbstractAsyncContextManager[Transport]:
        """Return a context manager whose entering connects (or raises) and leaving closes."""


# -- websockets ----------------------------------------------------------------------


class _WebSocketsTransport:
    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    def _closed(self) -> TransportClosed:
        close = self._connection.protocol.close_rcvd
        if close is None:
            return TransportClosed(WS_1006_ABNORMAL_CLOSURE, "no close frame received")
        return TransportClosed(close.code, close.reason)

    async def send(self, text: str) -> None:
        try:
            await self._connection.send(text)
        except ConnectionClosed:
            raise self._closed() from None

    async def receive(self) -> str:
        try:
            frame = await self._connection.recv()
        except ConnectionClosed:
            raise self._closed() from None
        if isinstance(frame, bytes):
            # Protocol v1 is JSON text frames; a binary frame is not text we can read.
            return frame.decode("utf-8", "replace")
        return frame

    async def close(self, code: int, reason: str) -> None:
        await self._connection.close(code, reason)


class WebSocketsDialer:
    """Connect over the network with the ``websockets`` library (asyncio only).

    Args:
        open_timeout: seconds for TCP connect plus the handshake.
        close_timeout: seconds to wait for the server's close frame when closing.
        max_size: the largest frame accepted from the server, in bytes.
        headers: extra handshake headers (``Origin`` for a server that checks it).
    """

    def __init__(
        self,
        *,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        max_size: int = 1 << 20,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.max_size = max_size
        self.headers = list(headers)

    @contextlib.asynccontextmanager
    async def open(self, url: str, subprotocols: Sequence[str]) -> AsyncIterator[Transport]:
        """Connect to *url*.

        Raises:
            HandshakeRefused: the server answered with an HTTP status.
            TransportClosed: the connection failed (refused, reset, timed out): 1006.
        """
        try:
            connection = await connect(
                url,
                subprotocols=[Subprotocol(p) for p in subprotocols] or None,
                additional_headers=self.headers or None,
                open_timeout=self.open_timeout,
                close_timeout=self.close_timeout,
                max_size=self.max_size,
                # The client's own ping request does this job on every transport.
                ping_interval=None,
            )
        except InvalidStatus as exc:
            response = exc.response
            raise HandshakeRefused(
                response.status_code, response.body.decode("utf-8", "replace")
            ) from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise TransportClosed(WS_1006_ABNORMAL_CLOSURE, f"cannot connect: {exc}") from None
        try:
            yield _WebSocketsTransport(connection)
        finally:
            with anyio.move_on_after(self.close_timeout + 1, shield=True):
                await connection.close()


# -- lilya's test client -------------------------------------------------------------


class _SessionTransport:
    def __init__(self, session: AsyncWebSocketTestSession) -> None:
        self._session = session
        self._ended: TransportClosed | None = None

    async def send(self, text: str) -> None:
        if self._ended is not None:
            raise self._ended
        try:
            await self._session.send_text(text)
        except WebSocketRuntimeError:  # pragma: no cover  # only after the session was left
            raise TransportClosed(WS_1006_ABNORMAL_CLOSURE, "the session has ended") from None

    async def receive(self) -> str:
        if self._ended is not None:
            raise self._ended
        try:
            message = await self._session.receive(timeout=None)
        except WebSocketDisconnect as exc:
            self._ended = TransportClosed(exc.code, exc.reason or "")
            raise self._ended from None
        if message["type"] == "websocket.close":
            self._ended = TransportClosed(message.get("code", 1000), message.get("reason") or "")
            raise self._ended
        text = message.get("text")
        if text is None:
            return bytes(message.get("bytes") or b"").decode("utf-8", "replace")
        return str(text)

    async def close(self, code: int, reason: str) -> None:
        if self._ended is None:
            self._ended = TransportClosed(code, reason)
            await self._session.close(code, reason)


class TestClientDialer:
    """Connect to the app of an ``AsyncTestClient``, in process (asyncio or trio).

    Args:
        client: the test client whose app serves the endpoint; a relative
            URL (``"/ws"``) is resolved against it.
    """

    __test__ = False

    def __init__(self, client: AsyncTestClient) -> None:
        self.client = client

    @contextlib.asynccontextmanager
    async def open(self, url: str, subprotocols: Sequence[str]) -> AsyncIterator[Transport]:
        """Open a session of the test client on *url*.

        Raises:
            HandshakeRefused: the app sent a denial response.
            TransportClosed: the app closed before accepting.
        """
        session = self.client.websocket_connect(url, subprotocols=list(subprotocols) or None)
        try:
            await session.__aenter__()
        except WebSocketDenialResponse as denial:
            raise HandshakeRefused(denial.status_code, denial.text) from None
        except WebSocketDisconnect as exc:
            raise TransportClosed(exc.code, exc.reason or "") from None
        transport = _SessionTransport(session)
        try:
            yield transport
        finally:
            # Shielded and bounded: the client may be leaving because it was cancelled.
            with anyio.move_on_after(5, shield=True):
                await transport.close(1000, "")
            await session.__aexit__(None, None, None)
