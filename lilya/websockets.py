"""The WebSocket connection: the seed's ``WebSocket`` class and its companions.

Theory of operation
-------------------
An ASGI WebSocket has two sides, and we track each with its own state:

* ``client_state`` moves on what :meth:`WebSocket.receive` gets from the server
  (``websocket.connect``, ``websocket.receive``, ``websocket.disconnect``);
* ``application_state`` moves on what :meth:`WebSocket.send` gives the server
  (``websocket.accept``, ``websocket.send``, ``websocket.close`` and the
  Denial Response extension's ``websocket.http.response.*``).

Every legal move is one row of :data:`TRANSITIONS` (in ``lilya/_transitions.py``,
with how it is indexed). ``send()`` and ``receive()`` look the message up in the
table for the side's current state *before* any I/O; a message with no row is
the application's mistake and raises
:class:`~lilya.exceptions.WebSocketRuntimeError` naming what was expected.

Servers differ (``shared/asgi-servers.md``): some hang if ``receive`` is called
after a disconnect, some raise, some ignore a send to a gone client. We never
call the server after we know the connection is over, so every server looks
the same from here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Final, Literal

from lilya._close import check_close, received_code, send_with_close_fallback
from lilya._connection import Connection
from lilya._json import dumps_bytes as _dumps_bytes
from lilya._json import dumps_text as _dumps_text
from lilya._json import loads as _loads
from lilya._transitions import BODY as _BODY
from lilya._transitions import CONNECTED as _CONNECTED
from lilya._transitions import CONNECTING as _CONNECTING
from lilya._transitions import DISCONNECTED as _DISCONNECTED
from lilya._transitions import RECEIVE_MOVES as _RECEIVE_MOVES
from lilya._transitions import SEND_MOVES as _SEND_MOVES
from lilya._transitions import TRANSITIONS, WebSocketState
from lilya._transitions import refused as _refused
from lilya.datastructures import encode_headers
from lilya.exceptions import WebSocketFrameError, WebSocketRuntimeError
from lilya.types import Message, Receive, Scope, Send

__all__ = [
    "TRANSITIONS",
    "WebSocket",
    "WebSocketClose",
    "WebSocketDisconnect",
    "WebSocketState",
    "supports_denial",
]


class WebSocketDisconnect(Exception):
    """The client has gone: raised by ``receive_*`` on a disconnect and by a send after it.

    Attributes:
        code: the close code the server reported (1005 when it reported none,
            1006 when the connection dropped without a close frame).
        reason: the close reason, ``""`` when there was none.
    """

    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""
        super().__init__(code, self.reason)

    def __str__(self) -> str:
        return f"WebSocket disconnected with code {self.code}" + (
            f": {self.reason}" if self.reason else ""
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r})"


def _payload_error(message: Message) -> TypeError | None:
    # Servers fail deep inside on a payload of the wrong type (uvicorn: an
    # AttributeError about .encode, or a TypeError about bytes-like objects).
    # Say instead what the application did and which method it wanted.
    text, data = message.get("text"), message.get("bytes")
    if text is not None and not isinstance(text, str):
        return TypeError(
            f"A text frame needs a str, got {type(text).__name__}; "
            "use send_bytes() for binary data."
        )
    if data is not None and not isinstance(data, (bytes, bytearray, memoryview)):
        return TypeError(
            f"A binary frame needs bytes, got {type(data).__name__}; use send_text() for text."
        )
    return None


_MODE_ERROR: Final = 'The "mode" argument should be "text" or "binary".'
_NOT_CONNECTED: Final = 'WebSocket is not connected. Need to call "accept" first.'


def supports_denial(scope: Scope) -> bool:
    """Whether the server offers the Websocket Denial Response extension.

    Servers that do put ``"websocket.http.response"`` in ``scope["extensions"]``;
    daphne has no ``extensions`` key at all (``shared/asgi-servers.md``).
    """
    return "websocket.http.response" in (scope.get("extensions") or {})


class WebSocket(Connection):
    """One WebSocket connection, wrapped around an ASGI scope, receive and send.

    Use it like the scope (``websocket["path"]``) and read what the client asked
    for through ``url``, ``headers``, ``query_params``, ``path_params``,
    ``cookies``. Talk through the operations below rather than the raw
    callables, so both sides' states stay right.

    Raises:
        WebSocketRuntimeError: the scope is not a ``"websocket"`` scope.
    """

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope.get("type") if isinstance(scope, Mapping) else None
        if scope_type != "websocket":
            raise WebSocketRuntimeError(
                f'WebSocket needs an ASGI scope of type "websocket", got {scope_type!r}; '
                "use lilya.requests.Request for HTTP scopes."
            )
        super().__init__(scope)
        self._receive = receive
        self._send = send
        self._client_state = _CONNECTING
        self._application_state = _CONNECTING
        # True exactly when both sides are CONNECTED: the one condition the
        # data fast paths test, kept in step by the two setters below.
        self._open = False
        self._disconnect_code = 1005
        self._disconnect_reason = ""
        self._lost_on_send = False

    @property
    def client_state(self) -> WebSocketState:
        """The client's side, moved by what :meth:`receive` gets."""
        return self._client_state

    @client_state.setter
    def client_state(self, state: WebSocketState) -> None:
        self._client_state = state
        self._open = state is _CONNECTED and self._application_state is _CONNECTED

    @property
    def application_state(self) -> WebSocketState:
        """The application's side, moved by what :meth:`send` sends."""
        return self._application_state

    @application_state.setter
    def application_state(self, state: WebSocketState) -> None:
        self._application_state = state
        self._open = state is _CONNECTED and self._client_state is _CONNECTED

    # -- the raw messages, through the state table ---------------------------
    async def receive(self) -> Message:
        """Receive the next raw ASGI message from the server.

        Returns:
            The message, unchanged.

        Raises:
            WebSocketRuntimeError: a disconnect was already received (the server
                may never answer again), or the server sent a message the
                client's state does not allow.
        """
        if self.client_state is _DISCONNECTED:
            raise WebSocketRuntimeError(
                'Cannot call "receive" once a disconnect message has been received.',
                state=_DISCONNECTED.name,
            )
        message = await self._receive()
        self._client_move(message)
        return message

    def _client_move(self, message: Message) -> None:
        # The receive side of the table: refuse, or move and remember a disconnect.
        state = self.client_state
        message_type = message.get("type")
        next_state = _RECEIVE_MOVES[state].get(message_type)
        if next_state is None:
            if not (self._lost_on_send and message_type == "websocket.disconnect"):
                raise _refused("receive", state, message_type)
            # A receive was already waiting when a send found the client gone
            # (relay() and every reader/writer pair do this): the server's
            # disconnect confirms what we inferred, and knows the real code.
            self._lost_on_send = False
            next_state = _DISCONNECTED
        self.client_state = next_state
        if next_state is _DISCONNECTED:
            # asgi-servers.md: daphne may send ``code: None`` and several
            # servers omit ``reason``; ASGI says both mean 1005 / "".
            self._disconnect_code = received_code(message)
            self._disconnect_reason = message.get("reason") or ""

    async def send(self, message: Message) -> None:
        """Send a raw ASGI message to the server.

        A ``websocket.send`` after the client has gone raises
        :class:`WebSocketDisconnect` without calling the server; a
        ``websocket.close`` then just marks this side closed.

        Raises:
            WebSocketRuntimeError: a close was already sent, or the message is
                not allowed in this state (e.g. ``websocket.send`` before
                ``accept``).
            WebSocketDisconnect: the client is gone (now, or before this call).
            TypeError: *message* is not a message, or the server refused a
                payload of the wrong type (``text`` that is not a ``str``...).
        """
        if not isinstance(message, Mapping):
            raise TypeError(
                f"send() takes an ASGI message (a dict with a 'type'), got "
                f"{type(message).__name__}; use send_text() or send_bytes() for data."
            )
        state = self.application_state
        message_type = message.get("type")
        key = (
            (message_type, bool(message.get("more_body", False)))
            if message_type == _BODY
            else message_type
        )
        next_state = _SEND_MOVES[state].get(key)
        if next_state is None:
            if state is _DISCONNECTED:
                raise WebSocketRuntimeError(
                    'Cannot call "send" once a close message has been sent.',
                    state=state.name,
                    message_type=message_type,
                )
            raise _refused("send", state, message_type)
        if self.client_state is _DISCONNECTED:
            # The client left; servers would raise, hang or drop it silently,
            # so we never call them. A close just ends our side; anything else
            # tells the app the client is gone (and leaves close() legal).
            if message_type == "websocket.close":
                self.application_state = _DISCONNECTED
                return
            raise WebSocketDisconnect(self._disconnect_code, self._disconnect_reason)
        # The state moves before the await, so a second task sending at the
        # same time already sees it (no frame after our close); it moves back
        # if the server refuses the message.
        self.application_state = next_state
        try:
            await send_with_close_fallback(self._send, message)
        except OSError:
            lost = self._lost()
            if message_type == "websocket.close":
                self.application_state = _DISCONNECTED
                return  # closing a connection that is already gone is done
            # Our side stays open in the table (the message never left), so a
            # following close() is the silent no-op it is after any disconnect.
            self.application_state = state
            raise lost from None
        except Exception as exc:
            self.application_state = state  # the server refused it: it never left
            mistake = _payload_error(message) if message_type == "websocket.send" else None
            if mistake is not None:
                raise mistake from exc
            raise

    def _lost(self) -> WebSocketDisconnect:
        # ASGI 2.4: a send on a closed connection raises an OSError subclass
        # (uvicorn's ClientDisconnected): the peer vanished without a close frame.
        self.client_state = _DISCONNECTED
        self._lost_on_send = True
        self._disconnect_code, self._disconnect_reason = 1006, ""
        return WebSocketDisconnect(1006)

    # -- handshake and close -------------------------------------------------
    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Iterable[tuple[bytes, bytes]]
        | Iterable[tuple[str, str]]
        | Mapping[str, str]
        | None = None,
    ) -> None:
        """Accept the handshake, first waiting for the client's connect if needed.

        Args:
            subprotocol: the one of ``websocket["subprotocols"]`` you chose.
            headers: extra response headers, as ``(bytes, bytes)`` or ``str``
                pairs or a mapping (``str`` is encoded as latin-1). Granian and
                daphne ignore them.

        Raises:
            WebSocketRuntimeError: the connection was already accepted or closed.

        Moves ``application_state`` to CONNECTED.
        """
        if self.client_state is _CONNECTING:
            await self.receive()
        # Always a "headers" list (ASGI: default empty), so middleware can
        # append to message["headers"] without checking for it.
        await self.send(
            {
                "type": "websocket.accept",
                "subprotocol": subprotocol,
                "headers": [] if headers is None else encode_headers(headers),
            }
        )

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the connection with *code* and *reason*.

        Before ``accept`` the server answers the handshake with HTTP 403. After
        the client has already left, nothing is sent (servers refuse it) and the
        application side is just marked DISCONNECTED.

        Args:
            code: 1000-1003, 1007-1014 or 3000-4999 (RFC 6455 §7.4.1).
            reason: at most 123 bytes of UTF-8.

        Raises:
            WebSocketRuntimeError: you already closed it.
            ValueError: a code no endpoint may send, or a reason too long.
        """
        reason = check_close(code, reason)
        await self.send({"type": "websocket.close", "code": code, "reason": reason})

    async def send_denial_response(self, response: Any) -> None:
        """Refuse the handshake with an HTTP *response* instead of a bare 403.

        The response runs as an ASGI app through this WebSocket's ``send``, so
        the state machine sees ``websocket.http.response.start`` and ``.body``.

        Raises:
            RuntimeError: the server does not advertise the Websocket Denial
                Response extension (daphne, for one).
            WebSocketRuntimeError: the connection was already accepted or closed.
        """
        if not supports_denial(self.scope):
            raise RuntimeError(
                "The server doesn't support the Websocket Denial Response extension."
            )
        if self.application_state is not _CONNECTING:
            raise WebSocketRuntimeError(
                "A denial response can only be sent before the connection is accepted; "
                f"the application side is {self.application_state.name}.",
                state=self.application_state.name,
            )
        await response(self.scope, self.receive, self.send)

    # -- typed receive -------------------------------------------------------
    # The typed operations below take a fast path for data frames on an open
    # connection: the table's only move there is (CONNECTED, "websocket.receive"
    # or "websocket.send") -> CONNECTED, which changes no state, so we skip the
    # lookup and the extra coroutine of receive()/send(). Every other message
    # and state goes through receive()/send() and the table. This is what keeps
    # a text echo close to a raw ASGI loop (benchmarks/inproc.py).

    async def _receive_slow(self) -> Message:
        state = self.application_state
        if state is not _CONNECTED:
            if state is _DISCONNECTED:
                raise WebSocketRuntimeError(
                    "Cannot receive once the application has closed the connection; "
                    "the client's close is not delivered as data.",
                    state=state.name,
                )
            raise WebSocketRuntimeError(_NOT_CONNECTED, state=state.name)
        if self._lost_on_send:
            # A send found the client gone before the app ever read a
            # disconnect: that is the peer's doing, so tell it as one.
            raise WebSocketDisconnect(self._disconnect_code, self._disconnect_reason)
        while True:
            message = await self.receive()
            message_type = message["type"]
            if message_type == "websocket.receive":
                return message
            if message_type == "websocket.disconnect":
                raise WebSocketDisconnect(self._disconnect_code, self._disconnect_reason)
            # "websocket.connect": the app accepted through send() without
            # reading it first; the data comes next.

    async def receive_text(self) -> str:
        """Receive the next text frame.

        Raises:
            WebSocketDisconnect: the client left.
            WebSocketFrameError: the client sent a binary frame.
            WebSocketRuntimeError: not accepted yet, or already closed.
        """
        if self._open:
            message = await self._receive()
            if message.get("type") != "websocket.receive":
                self._client_move(message)
                raise WebSocketDisconnect(self._disconnect_code, self._disconnect_reason)
        else:
            message = await self._receive_slow()
        text: str | None = message.get("text")
        if text is None:
            raise WebSocketFrameError("text", "bytes")
        return text

    async def receive_bytes(self) -> bytes:
        """Receive the next binary frame.

        Raises:
            WebSocketDisconnect: the client left.
            WebSocketFrameError: the client sent a text frame.
            WebSocketRuntimeError: not accepted yet, or already closed.
        """
        if self._open:
            message = await self._receive()
            if message.get("type") != "websocket.receive":
                self._client_move(message)
                raise WebSocketDisconnect(self._disconnect_code, self._disconnect_reason)
        else:
            message = await self._receive_slow()
        data: bytes | None = message.get("bytes")
        if data is None:
            raise WebSocketFrameError("bytes", "text")
        return data

    async def receive_json(self, mode: Literal["text", "binary"] = "text") -> Any:
        """Receive the next frame and parse it as JSON.

        Args:
            mode: ``"text"`` for JSON in text frames (the default), ``"binary"``
                for UTF-8 JSON in binary frames.

        Raises:
            WebSocketDisconnect: the client left.
            WebSocketFrameError: the frame is of the other kind.
            lilya.exceptions.InvalidJSONError: not JSON (a ``ValueError``).
            WebSocketRuntimeError: bad *mode*, not accepted yet, or closed.
        """
        if mode == "text":
            key, other = "text", "bytes"
        elif mode == "binary":
            key, other = "bytes", "text"
        else:
            raise WebSocketRuntimeError(_MODE_ERROR)
        if self._open:
            message = await self._receive()
            if message.get("type") != "websocket.receive":
                self._client_move(message)
                raise WebSocketDisconnect(self._disconnect_code, self._disconnect_reason)
        else:
            message = await self._receive_slow()
        data = message.get(key)
        if data is None:
            raise WebSocketFrameError(key, other, json=True)
        return _loads(data, mode)

    async def _iter_payloads(self, key: str, other: str) -> AsyncIterator[Any]:
        # receive_text()/receive_bytes() inlined: resuming one generator is
        # cheaper than a new coroutine per message, and iterating is the seed's
        # idiom. Same fast path and fall-back as the receive_* methods.
        try:
            while True:
                if self._open:
                    message = await self._receive()
                    if message.get("type") != "websocket.receive":
                        self._client_move(message)
                        return
                elif self.application_state is _DISCONNECTED:
                    return  # the app closed it (say, on a "quit" message): done
                else:
                    message = await self._receive_slow()
                data = message.get(key)
                if data is None:
                    raise WebSocketFrameError(key, other)
                yield data
        except WebSocketDisconnect:
            return

    def iter_text(self) -> AsyncIterator[str]:
        """Yield text frames until the client disconnects, then stop cleanly.

        Raises:
            WebSocketFrameError: the client sent a binary frame.
            WebSocketRuntimeError: not accepted yet, or already closed.
        """
        return self._iter_payloads("text", "bytes")

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """Yield binary frames until the client disconnects, then stop cleanly.

        Raises:
            WebSocketFrameError: the client sent a text frame.
            WebSocketRuntimeError: not accepted yet, or already closed.
        """
        return self._iter_payloads("bytes", "text")

    async def iter_json(self, mode: Literal["text", "binary"] = "text") -> AsyncIterator[Any]:
        """Yield parsed JSON frames until the client disconnects, then stop cleanly.

        Raises:
            WebSocketRuntimeError: bad *mode* (on the first iteration).
            WebSocketFrameError, lilya.exceptions.InvalidJSONError: as
                :meth:`receive_json`.
        """
        if mode == "text":
            payloads = self._iter_payloads("text", "bytes")
        elif mode == "binary":
            payloads = self._iter_payloads("bytes", "text")
        else:
            raise WebSocketRuntimeError(_MODE_ERROR)
        async for data in payloads:
            yield _loads(data, mode)

    # -- typed send ----------------------------------------------------------
    async def send_text(self, data: str) -> None:
        """Send *data* in a text frame.

        Raises:
            WebSocketDisconnect: the client is gone.
            WebSocketRuntimeError: not accepted yet, or already closed.
        """
        message = {"type": "websocket.send", "text": data}
        if self._open:
            try:
                await self._send(message)
            except OSError:
                raise self._lost() from None
            except (TypeError, AttributeError) as exc:
                mistake = _payload_error(message)
                if mistake is None:
                    raise
                raise mistake from exc
        else:
            await self.send(message)

    async def send_bytes(self, data: bytes) -> None:
        """Send *data* in a binary frame.

        Raises:
            WebSocketDisconnect: the client is gone.
            WebSocketRuntimeError: not accepted yet, or already closed.
        """
        message = {"type": "websocket.send", "bytes": data}
        if self._open:
            try:
                await self._send(message)
            except OSError:
                raise self._lost() from None
            except (TypeError, AttributeError) as exc:
                mistake = _payload_error(message)
                if mistake is None:
                    raise
                raise mistake from exc
        else:
            await self.send(message)

    async def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        """Send *data* as compact JSON, in a text frame or (``mode="binary"``) a binary one.

        The output equals ``json.dumps(data, separators=(",", ":"),
        ensure_ascii=False)``.

        Raises:
            TypeError: *data* is not JSON-serializable.
            WebSocketRuntimeError: bad *mode*, not accepted yet, or closed.
            WebSocketDisconnect: the client is gone.
        """
        message: Message
        if mode == "text":
            message = {"type": "websocket.send", "text": _dumps_text(data)}
        elif mode == "binary":
            message = {"type": "websocket.send", "bytes": _dumps_bytes(data)}
        else:
            raise WebSocketRuntimeError(_MODE_ERROR)
        if self._open:
            try:
                await self._send(message)
            except OSError:
                raise self._lost() from None
        else:
            await self.send(message)


class WebSocketClose:
    """An ASGI app that closes the WebSocket with *code* and *reason*, and nothing else.

    Routing uses it to refuse a WebSocket no route matched (before accept, so the
    client sees HTTP 403).
    """

    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        self.reason = check_close(code, reason)
        self.code = code

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.close", "code": self.code, "reason": self.reason})
