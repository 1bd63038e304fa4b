"""The WebSocket connection: the seed's ``WebSocket`` class and its companions.

Theory of operation
-------------------
An ASGI WebSocket has two sides, and a :class:`WebSocket` moves both through
the connection's one :class:`~lilya._connection_state.ConnectionState` (the
state table, :data:`TRANSITIONS`, lives there with how it is read):

* ``client_state`` moves on what :meth:`WebSocket.receive` gets from the server
  (``websocket.connect``, ``websocket.receive``, ``websocket.disconnect``);
* ``application_state`` moves on what :meth:`WebSocket.send` gives the server
  (``websocket.accept``, ``websocket.send``, ``websocket.close`` and the
  Denial Response extension's ``websocket.http.response.*``).

``send()`` and ``receive()`` ask the state *before* any I/O; a message with no
row is the application's mistake and raises
:class:`~lilya.exceptions.WebSocketRuntimeError` naming what was expected.
Inside a lilya app the state is the one in the scope, which the routing and
error layers read too; a bare ``WebSocket`` over a scope without one has its
own.

Servers differ (``docs/servers.md``): some hang if ``receive`` is called
after a disconnect, some raise, some ignore a send to a gone client. We never
call the server after we know the connection is over, so every server looks
the same from here.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Final, Literal, NoReturn, cast

from lilya._close import check_close
from lilya._connection import Connection
from lilya._connection_state import CONNECTED as _CONNECTED
from lilya._connection_state import CONNECTING as _CONNECTING
from lilya._connection_state import DISCONNECTED as _DISCONNECTED
from lilya._connection_state import STATE_KEY as _STATE_KEY
from lilya._connection_state import TRANSITIONS, ConnectionState, WebSocketState
from lilya._json import dumps_bytes as _dumps_bytes
from lilya._json import dumps_text as _dumps_text
from lilya._json import loads as _loads
from lilya._telemetry import WATCH_KEY, Watch, message_size, note_dropped, note_limit
from lilya.datastructures import encode_headers
from lilya.exceptions import (
    InvalidJSONError,
    WebSocketFrameError,
    WebSocketPeerError,
    WebSocketRuntimeError,
)
from lilya.limits import (
    MAX_MESSAGE_SIZE_KEY,
    RATE_LIMIT_KEY,
    RateLimit,
    TokenBucket,
    too_big_reason,
)
from lilya.status import (
    WS_1000_NORMAL_CLOSURE,
    WS_1008_POLICY_VIOLATION,
    WS_1009_MESSAGE_TOO_BIG,
    WS_1013_TRY_AGAIN_LATER,
)
from lilya.timeouts import (
    CLOSE_GRACE,
    DEFAULT,
    SCOPED,
    Default,
    await_within,
    check_call_timeout,
    close_within,
    finish_within,
    send_timeout_reason,
    send_within,
    timer_kind,
)
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

    def __init__(self, code: int = WS_1000_NORMAL_CLOSURE, reason: str | None = None) -> None:
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


logger = logging.getLogger("lilya.websockets")

_NOT_CONNECTED: Final = 'WebSocket is not connected. Need to call "accept" first.'

# The mode rule of every JSON operation: mode -> (the key of the frame it reads
# and writes, the other key). Anything else is refused with _mode_error(). The
# per-message operations look it up inline (a subscript inside a zero-cost
# ``try``), a third of the cost of a helper call.
_MODES: Final = {"text": ("text", "bytes"), "binary": ("bytes", "text")}


#: "No limit" as a number, so the per-message check is one comparison either way.
_NO_LIMIT: Final = sys.maxsize


def _mode_error() -> WebSocketRuntimeError:
    return WebSocketRuntimeError('The "mode" argument should be "text" or "binary".')


def supports_denial(scope: Scope) -> bool:
    """Whether the server offers the Websocket Denial Response extension.

    Servers that do put ``"websocket.http.response"`` in ``scope["extensions"]``;
    daphne has no ``extensions`` key at all (``docs/servers.md``).
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
        # Under watch() (metrics=, tracing=) and handed its wrappers as they
        # are, the fast paths below go past them to the server and count their
        # data messages inline (no wrapper's frame or call per message); every
        # other message still goes through the wrappers ("noted"), so each
        # message is counted exactly once. Handed anything else (a middleware's
        # callables, a heartbeat's reader), the wrappers further out count.
        watch: Watch | None = scope.get(WATCH_KEY)
        self._receive_noted = receive
        self._send_noted = send
        if (
            watch is not None
            and not watch.every
            and receive is watch.receive
            and send is watch.send
        ):
            self._watch: Watch | None = watch
            self._receive = cast(Receive, watch.server_receive)
            self._send = cast(Send, watch.server_send)
        else:
            self._watch = None
            self._receive = receive
            self._send = send
        # The connection's state if a lilya layer keeps one in the scope (the
        # layers read it too), else this WebSocket's own.
        state: ConnectionState | None = scope.get(_STATE_KEY)
        self._state = ConnectionState() if state is None else state
        # The route's max_message_size (lilya.limits); a bare WebSocket has
        # none but the server's. A text message of at most a quarter of it in
        # characters is within it in UTF-8 bytes, so only longer text is
        # encoded to be measured.
        limit: int | None = scope.get(MAX_MESSAGE_SIZE_KEY)
        self._max_size = _NO_LIMIT if limit is None else limit
        self._max_chars = self._max_size // 4
        # The route's rate_limit: tokens are counted here, one subtraction per
        # message; the bucket refills them only once they run out.
        rate: RateLimit | None = scope.get(RATE_LIMIT_KEY)
        self._bucket = None if rate is None else TokenBucket(rate)
        self._tokens: float = _NO_LIMIT if rate is None else rate.burst
        # The route's send_timeout (lilya.timeouts), kept here for the fast path.
        self._send_timeout = self._state.send_timeout
        # How this loop times a send (0: no loop, nothing to time; see timer_kind()).
        self._timer = timer_kind()

    @property
    def client_state(self) -> WebSocketState:
        """The client's side, moved by what :meth:`receive` gets."""
        return self._state.client

    @client_state.setter
    def client_state(self, state: WebSocketState) -> None:
        self._state.client = state

    @property
    def application_state(self) -> WebSocketState:
        """The application's side, moved by what :meth:`send` sends."""
        return self._state.application

    @application_state.setter
    def application_state(self, state: WebSocketState) -> None:
        self._state.application = state

    @property
    def latency(self) -> float | None:
        """The last heartbeat round trip in seconds (ping sent to pong received).

        ``None`` before the first pong, and always on a route without a
        heartbeat (``heartbeat=`` on the route or the app; :mod:`lilya.heartbeat`).
        """
        pulse = self._state.heartbeat
        return None if pulse is None else cast("float | None", pulse.latency)

    def _disconnect(self) -> WebSocketDisconnect:
        state = self._state
        return WebSocketDisconnect(state.code, state.reason)

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
        # _receive_unlimited's body, inline: one frame fewer held by every
        # connection parked in a receive.
        # _receive_noted: a raw receive is counted by watch()'s wrapper (see __init__).
        state = self._state
        before = state.check_receive()
        message = await self._receive_noted()
        state.take_receive(message, before)
        if message.get("type") == "websocket.receive":
            self._tokens -= 1
            if self._tokens < 0:
                message = await self._over_rate(message)
                if message["type"] != "websocket.receive":
                    return message
            payload = message.get("text")
            if payload is None:
                payload = message.get("bytes") or b""
            size = self._size(payload)
            if size > self._max_size:
                return await self._close_too_big(size)
        return message

    async def _receive_unlimited(self) -> Message:
        state = self._state
        # After a send found the client gone (``lost_on_send``) the server has
        # not yet handed over its disconnect, so asking it again is safe: what
        # the client sent before leaving is still queued there (relay() drains
        # it); check_receive() allows exactly that.
        before = state.check_receive()
        message = await self._receive_noted()
        state.take_receive(message, before)
        return message

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
        state = self._state
        # The state moves before the await, so a second task sending at the
        # same time already sees it (no frame after our close); it moves back
        # if the message never leaves.
        try:
            before = state.take_send(message)
        except WebSocketRuntimeError:
            if state.drained is None:
                raise
            # lilya's drain closed it (the app is stopping): not your mistake.
            # A close is then done; anything else is told the connection is over.
            if message.get("type") == "websocket.close":
                return
            raise WebSocketDisconnect(state.drained, "the server is shutting down") from None
        is_close = message.get("type") == "websocket.close"
        if state.client is _DISCONNECTED:
            # The client left; servers would raise, hang or drop it silently,
            # so we never call them. A close just ends our side; anything else
            # tells the app the client is gone (and leaves close() legal).
            if is_close:
                return
            state.application = before
            raise self._disconnect()
        limit = self._send_timeout
        try:
            if is_close:
                # Bounded too: a client that does not read is dropped, not waited for.
                await close_within(self._send_noted, message, limit)
                return
            # A data frame waits at most the limit; the handshake's answer is not
            # held up by a client's reading (it has sent nothing yet to stall on).
            data = message.get("type") == "websocket.send"
            await send_within(self._send_noted, message, limit if data else None, self._time_out)
        except WebSocketDisconnect:
            raise  # it timed out: lilya closed it (1013)
        except OSError:
            state.lose()
            if is_close:
                return  # closing a connection that is already gone is done
            # Our side stays where it was (the message never left), so a
            # following close() is the silent no-op it is after any disconnect.
            state.application = before
            raise self._disconnect() from None
        except Exception as exc:
            state.application = before  # the server refused it: it never left
            mistake = _payload_error(message) if message.get("type") == "websocket.send" else None
            if mistake is not None:
                raise mistake from exc
            raise

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
        if self._state.client is _CONNECTING:
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

    async def close(self, code: int = WS_1000_NORMAL_CLOSURE, reason: str | None = None) -> None:
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
        state = self._state
        if state.closed_on_peer_error and state.application is _DISCONNECTED:
            # lilya closed it (1003/1007) when the client sent bad data; your
            # close, like the seed's after its iter_json() loop, has nothing left to do.
            return
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
        application = self._state.application
        if application is not _CONNECTING:
            raise WebSocketRuntimeError(
                "A denial response can only be sent before the connection is accepted; "
                f"the application side is {application.name}.",
                state=application.name,
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
        state = self._state
        application = state.application
        if application is not _CONNECTED:
            if application is _DISCONNECTED:
                raise WebSocketRuntimeError(
                    "Cannot receive once the application has closed the connection; "
                    "the client's close is not delivered as data.",
                    state=application.name,
                )
            raise WebSocketRuntimeError(_NOT_CONNECTED, state=application.name)
        if state.lost_on_send:
            # A send found the client gone before the app ever read a
            # disconnect: that is the peer's doing, so tell it as one.
            raise self._disconnect()
        while True:
            message = await self.receive()
            message_type = message["type"]
            if message_type == "websocket.receive":
                return message
            if message_type == "websocket.disconnect":
                raise self._disconnect()
            # "websocket.connect": the app accepted through send() without
            # reading it first; the data comes next.

    async def receive_text(self) -> str:
        """Receive the next text frame.

        Raises:
            WebSocketDisconnect: the client left.
            WebSocketFrameError: the client sent a binary frame.
            WebSocketRuntimeError: not accepted yet, or already closed.
        """
        state = self._state
        if state.open:
            message = await self._receive()
            if message.get("type") != "websocket.receive":
                if self._watch:
                    self._watch.note_receive(message)
                state.take_receive(message, _CONNECTED)
                raise self._disconnect()
            text: str | None = message.get("text")
            if self._watch:
                watch = self._watch
                watch.received += 1
                watch.received_bytes += (
                    len(text) if text is not None and text.isascii() else message_size(message)
                )
            self._tokens -= 1
            if self._tokens < 0:
                message = await self._over_rate(message)
                if message["type"] != "websocket.receive":
                    raise self._disconnect()
                text = message.get("text")
        else:
            message = await self._receive_slow()
            text = message.get("text")
        if text is None:
            raise await self._refuse(WebSocketFrameError("text", "bytes"))
        if len(text) > self._max_chars:
            await self._limit(text)
        return text

    async def receive_bytes(self) -> bytes:
        """Receive the next binary frame.

        Raises:
            WebSocketDisconnect: the client left.
            WebSocketFrameError: the client sent a text frame.
            WebSocketRuntimeError: not accepted yet, or already closed.
        """
        state = self._state
        if state.open:
            message = await self._receive()
            if message.get("type") != "websocket.receive":
                if self._watch:
                    self._watch.note_receive(message)
                state.take_receive(message, _CONNECTED)
                raise self._disconnect()
            data: bytes | None = message.get("bytes")
            if self._watch:
                watch = self._watch
                watch.received += 1
                # bytes.isascii() too: its size is its len() either way.
                watch.received_bytes += (
                    len(data) if data is not None and data.isascii() else message_size(message)
                )
            self._tokens -= 1
            if self._tokens < 0:
                message = await self._over_rate(message)
                if message["type"] != "websocket.receive":
                    raise self._disconnect()
                data = message.get("bytes")
        else:
            message = await self._receive_slow()
            data = message.get("bytes")
        if data is None:
            raise await self._refuse(WebSocketFrameError("bytes", "text"))
        if len(data) > self._max_size:
            await self._limit(data)
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
        try:
            key, other = _MODES[mode]
        except (KeyError, TypeError):
            raise _mode_error() from None
        state = self._state
        if state.open:
            message = await self._receive()
            if message.get("type") != "websocket.receive":
                if self._watch:
                    self._watch.note_receive(message)
                state.take_receive(message, _CONNECTED)
                raise self._disconnect()
            data = message.get(key)
            if self._watch:
                watch = self._watch
                watch.received += 1
                # bytes.isascii() too: its size is its len() either way.
                watch.received_bytes += (
                    len(data) if data is not None and data.isascii() else message_size(message)
                )
            self._tokens -= 1
            if self._tokens < 0:
                message = await self._over_rate(message)
                if message["type"] != "websocket.receive":
                    raise self._disconnect()
                data = message.get(key)
        else:
            message = await self._receive_slow()
            data = message.get(key)
        if data is None:
            raise await self._refuse(WebSocketFrameError(key, other, json=True))
        if len(data) > self._max_chars:
            await self._limit(data)
        try:
            return _loads(data, mode)
        except InvalidJSONError as exc:
            raise await self._refuse(exc) from None

    async def _iter_payloads(self, key: str, other: str) -> AsyncGenerator[Any, None]:
        # receive_text()/receive_bytes() inlined: resuming one generator is
        # cheaper than a new coroutine per message, and iterating is the seed's
        # idiom. Same fast path and fall-back as the receive_* methods.
        state = self._state
        watch = self._watch
        quick = self._max_chars if key == "text" else self._max_size
        try:
            while True:
                if state.open:
                    message = await self._receive()
                    if message.get("type") != "websocket.receive":
                        if watch:
                            watch.note_receive(message)
                        state.take_receive(message, _CONNECTED)
                        return
                    data = message.get(key)
                    if watch:
                        watch.received += 1
                        watch.received_bytes += (
                            len(data)
                            if data is not None and data.isascii()
                            else message_size(message)
                        )
                    self._tokens -= 1
                    if self._tokens < 0:
                        message = await self._over_rate(message)
                        if message["type"] != "websocket.receive":
                            return
                        data = message.get(key)
                elif state.application is _DISCONNECTED:
                    return  # the app closed it (say, on a "quit" message): done
                else:
                    message = await self._receive_slow()
                    data = message.get(key)
                if data is None:
                    await self._refuse(WebSocketFrameError(key, other), log=True)
                    return
                if len(data) > quick:
                    await self._limit(data)  # over it: a WebSocketDisconnect, so we end
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
        try:
            key, other = _MODES[mode]
        except (KeyError, TypeError):
            raise _mode_error() from None
        payloads = self._iter_payloads(key, other)
        async for data in payloads:
            try:
                value = _loads(data, mode)
            except InvalidJSONError as exc:
                await payloads.aclose()  # finished here, not left to the garbage collector
                await self._refuse(exc, log=True)
                return
            yield value

    @staticmethod
    def _size(payload: str | bytes) -> int:
        # RFC 6455 §5.6: a text message's payload is its UTF-8 bytes.
        if isinstance(payload, str):
            return len(payload.encode("utf-8", "surrogatepass"))
        return len(payload)

    async def _limit(self, payload: str | bytes) -> None:
        """Close 1009 and raise ``WebSocketDisconnect`` if *payload* is over the limit."""
        size = self._size(payload)
        if size > self._max_size:
            await self._close_too_big(size)
            raise self._disconnect()

    async def _close_too_big(self, size: int) -> Message:
        return await self._close_over_limit(
            WS_1009_MESSAGE_TOO_BIG, too_big_reason(size, self._max_size)
        )

    async def _over_rate(self, message: Message) -> Message:
        """The client ran out of tokens with *message*: refill, then allow, close or drop.

        Returns *message* if tokens came back for it; else, on ``"close"``,
        the disconnect 1008 (see :meth:`_close_over_limit`); on ``"drop"``,
        the first message after the dropped ones that has a token (or the
        disconnect that came instead), each dropped one answered with the
        error frame.
        """
        bucket = cast(TokenBucket, self._bucket)  # tokens only run out under a limit
        limit = bucket.limit
        while True:
            self._tokens = bucket.refill(self._tokens)
            if self._tokens >= 0:
                return message
            if limit.on_exceed == "close":
                return await self._close_over_limit(WS_1008_POLICY_VIOLATION, limit.reason())
            self._tokens += 1  # a dropped message takes no token
            note_dropped(self.scope, "rate")
            try:
                await self.send_text(limit.error_frame)
            except WebSocketDisconnect:
                state = self._state
                return {"type": "websocket.disconnect", "code": state.code, "reason": state.reason}
            message = await self._receive_unlimited()
            if message.get("type") != "websocket.receive":
                return message
            self._tokens -= 1

    async def _close_over_limit(self, code: int, reason: str) -> Message:
        """Close with *code* (1008, 1009) and *reason*; return the disconnect the app now sees.

        The peer's fault (lilya.limits): a close code naming the setting, the
        state moved as if the client had left with it, so ``receive_*`` raise
        ``WebSocketDisconnect(code)``, ``iter_*`` end, ``receive()`` returns
        the disconnect, and your own close after it does nothing.
        """
        logger.warning("Closing %s with %d: %s", self.scope.get("path", "?"), code, reason)
        note_limit(self.scope, "message_size" if code == WS_1009_MESSAGE_TOO_BIG else "rate")
        state = self._state
        disconnect: Message = {"type": "websocket.disconnect", "code": code, "reason": reason}
        if state.application is _CONNECTED:
            await self.close(code, reason)
            state.closed_on_peer_error = True
        # As if the client had left with it (after a send found it gone, the
        # state already says so, and takes this as the disconnect that confirms it).
        state.take_receive(disconnect, state.client)
        return disconnect

    async def _refuse(self, error: WebSocketPeerError, *, log: bool = False) -> Exception:
        """Close because the client sent bad data, with the code naming it; return *error*.

        The peer's fault, so a close code (``error.close_code``, RFC 6455
        §7.4.1: 1003 for a frame kind the app does not take, 1007 for a
        payload that is not what its type promises), not a server error: the
        client learns why, and a bare ASGI app like the seed's ends cleanly
        instead of dropping TCP with a traceback. ``receive_*`` then raise
        *error* (``log=False``: whoever catches it decides); ``iter_*`` end,
        and say so in the log.
        """
        code = error.close_code
        if isinstance(error, WebSocketFrameError):
            reason = f"expected a {error.expected} frame"
        else:
            reason = "invalid JSON"
        if log:
            logger.warning("Closing %s with %d: %s", self.scope.get("path", "?"), code, error)
        state = self._state
        if state.application is _CONNECTED:
            await self.close(code, reason)
            state.closed_on_peer_error = True
        return error

    async def _time_out(self, timeout: float) -> NoReturn:
        """A send waited *timeout* s: close 1013, and raise what the handler is told.

        The peer's doing (it stopped reading), so a close code naming the
        setting rather than an exception of yours. The close gets
        :data:`~lilya.timeouts.CLOSE_GRACE`; a client that does not take it
        either is dropped (:func:`~lilya.timeouts.close_within`), so no socket
        is left half-open. The state then reads as if the client had left
        with 1013: ``iter_*`` end, and your close does nothing.
        """
        state = self._state
        reason = send_timeout_reason(timeout)
        if state.application is _DISCONNECTED:
            # Closed while this send waited behind the client (lilya's drain, a
            # limit's close, another task of yours): that close stands, and
            # this send ends as any send after it would.
            if state.drained is not None:
                raise WebSocketDisconnect(state.drained, "the server is shutting down")
            raise WebSocketDisconnect(WS_1013_TRY_AGAIN_LATER, reason)
        if state.client is _DISCONNECTED:
            # Ended while this send waited (lilya's idle timeout closed it
            # 1001 on a server that could not drop the client): that close
            # stands, and nothing more is sent to a connection that is over.
            raise self._disconnect()
        logger.warning("Closing %s with 1013: %s", self.scope.get("path", "?"), reason)
        note_limit(self.scope, "send_timeout")
        close: Message = {
            "type": "websocket.close",
            "code": WS_1013_TRY_AGAIN_LATER,
            "reason": reason,
        }
        state.take_send(close)
        state.closed_on_peer_error = True
        with contextlib.suppress(OSError):  # gone meanwhile: nothing left to close
            await close_within(self._send_noted, close, min(CLOSE_GRACE, timeout))
        disconnect: Message = {
            "type": "websocket.disconnect",
            "code": WS_1013_TRY_AGAIN_LATER,
            "reason": reason,
        }
        state.take_receive(disconnect, state.client)
        raise self._disconnect()

    # -- typed send ----------------------------------------------------------
    # The three sends repeat their fast path rather than share a helper: a
    # helper coroutine would cost a frame per message (benchmarks/inproc.py).
    async def send_text(self, data: str, *, timeout: float | Default | None = DEFAULT) -> None:
        """Send *data* in a text frame.

        Args:
            data: the text.
            timeout: the longest this send may wait for a client that is not
                reading, in seconds; :data:`~lilya.timeouts.DEFAULT` is the
                route's ``send_timeout``, ``None`` waits for ever.

        Raises:
            WebSocketDisconnect: the client is gone, or (1013) the send did
                not complete in time: lilya has closed the connection.
            WebSocketRuntimeError: not accepted yet, or already closed.
            TypeError, ValueError: a *timeout* that is not positive seconds.
        """
        message = {"type": "websocket.send", "text": data}
        if self._state.open:
            limit = self._send_timeout if timeout is DEFAULT else check_call_timeout(timeout)
            try:
                if self._watch:
                    watch = self._watch
                    watch.sent += 1
                    watch.sent_bytes += len(data) if data.isascii() else message_size(message)
                if limit is None or not self._timer:
                    await self._send(message)
                elif self._timer == SCOPED:
                    await await_within(self._send(message), limit, self._time_out)
                else:
                    # The send's first step taken here: a timer only if it waits.
                    step = self._send(message).__await__()
                    try:
                        pending = next(step)
                    except StopIteration:
                        return
                    await finish_within(step, pending, limit, self._time_out)
            except OSError:
                self._state.lose()
                raise self._disconnect() from None
            except (TypeError, AttributeError) as exc:
                mistake = _payload_error(message)
                if mistake is None:
                    raise
                raise mistake from exc
        else:
            await self.send(message)

    async def send_bytes(self, data: bytes, *, timeout: float | Default | None = DEFAULT) -> None:
        """Send *data* in a binary frame.

        Args:
            data: the bytes.
            timeout: as for :meth:`send_text`.

        Raises:
            WebSocketDisconnect: the client is gone, or (1013) the send did
                not complete in time.
            WebSocketRuntimeError: not accepted yet, or already closed.
            TypeError, ValueError: a *timeout* that is not positive seconds.
        """
        message = {"type": "websocket.send", "bytes": data}
        if self._state.open:
            limit = self._send_timeout if timeout is DEFAULT else check_call_timeout(timeout)
            try:
                if self._watch:
                    watch = self._watch
                    watch.sent += 1
                    watch.sent_bytes += len(data)
                if limit is None or not self._timer:
                    await self._send(message)
                elif self._timer == SCOPED:
                    await await_within(self._send(message), limit, self._time_out)
                else:
                    step = self._send(message).__await__()
                    try:
                        pending = next(step)
                    except StopIteration:
                        return
                    await finish_within(step, pending, limit, self._time_out)
            except OSError:
                self._state.lose()
                raise self._disconnect() from None
            except (TypeError, AttributeError) as exc:
                mistake = _payload_error(message)
                if mistake is None:
                    raise
                raise mistake from exc
        else:
            await self.send(message)

    async def send_json(
        self,
        data: Any,
        mode: Literal["text", "binary"] = "text",
        *,
        timeout: float | Default | None = DEFAULT,
    ) -> None:
        """Send *data* as compact JSON, in a text frame or (``mode="binary"``) a binary one.

        The output equals ``json.dumps(data, separators=(",", ":"),
        ensure_ascii=False)``. *timeout* is as for :meth:`send_text`.

        Raises:
            TypeError: *data* is not JSON-serializable, or a bad *timeout*.
            ValueError: a *timeout* that is not positive and finite.
            WebSocketRuntimeError: bad *mode*, not accepted yet, or closed.
            WebSocketDisconnect: the client is gone, or (1013) the send did
                not complete in time.
        """
        try:
            key, _ = _MODES[mode]
        except (KeyError, TypeError):
            raise _mode_error() from None
        # Two literals rather than one with a computed key: a constant-key
        # dict is the cheaper one to build, once per message.
        message: Message
        if key == "text":
            message = {"type": "websocket.send", "text": _dumps_text(data)}
        else:
            message = {"type": "websocket.send", "bytes": _dumps_bytes(data)}
        if self._state.open:
            limit = self._send_timeout if timeout is DEFAULT else check_call_timeout(timeout)
            try:
                if self._watch:
                    watch = self._watch
                    payload = message.get("text")
                    watch.sent += 1
                    watch.sent_bytes += (
                        len(payload)
                        if payload is not None and payload.isascii()
                        else message_size(message)
                    )
                if limit is None or not self._timer:
                    await self._send(message)
                elif self._timer == SCOPED:
                    await await_within(self._send(message), limit, self._time_out)
                else:
                    step = self._send(message).__await__()
                    try:
                        pending = next(step)
                    except StopIteration:
                        return
                    await finish_within(step, pending, limit, self._time_out)
            except OSError:
                self._state.lose()
                raise self._disconnect() from None
        else:
            await self.send(message)

    async def _send_encoded(self, encode: Callable[[Any], bytes], value: Any) -> None:
        """Send ``encode(value)``, JSON as UTF-8 bytes, in a text frame, as send_text() would.

        The coroutine a typed send returns (``TypedWebSocket.send_message``
        is a plain method that hands this back): one coroutine per message,
        as for :meth:`send_json`, where awaiting :meth:`send_text` from a
        coroutine of its own cost two (~1,400 instructions more). *encode*
        runs here, when the send is awaited, so what it raises (the message
        does not fit its type) comes out of the ``await`` and nothing is sent.
        The fast path is send_text's (the route's ``send_timeout``, the same
        state checks); the frame is always a ``str``, so the server cannot
        refuse its payload's type.
        """
        text = encode(value).decode()
        message = {"type": "websocket.send", "text": text}
        if self._state.open:
            limit = self._send_timeout
            try:
                if self._watch:  # counted here, past watch()'s send (see __init__)
                    watch = self._watch
                    watch.sent += 1
                    watch.sent_bytes += len(text) if text.isascii() else message_size(message)
                if limit is None or not self._timer:
                    await self._send(message)
                elif self._timer == SCOPED:
                    await await_within(self._send(message), limit, self._time_out)
                else:
                    step = self._send(message).__await__()
                    try:
                        pending = next(step)
                    except StopIteration:
                        return
                    await finish_within(step, pending, limit, self._time_out)
            except OSError:
                self._state.lose()
                raise self._disconnect() from None
        else:
            await self.send(message)


class WebSocketClose:
    """An ASGI app that closes the WebSocket with *code* and *reason*, and nothing else.

    Routing uses it to refuse a WebSocket no route matched (before accept, so the
    client sees HTTP 403).
    """

    def __init__(self, code: int = WS_1000_NORMAL_CLOSURE, reason: str | None = None) -> None:
        self.reason = check_close(code, reason)
        self.code = code

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.close", "code": self.code, "reason": self.reason})
