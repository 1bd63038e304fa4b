"""What a connection has seen and sent: one record per connection, shared by every lilya layer.

Theory of operation
-------------------
Several layers may have to answer for one connection (the server-error
middleware, the app's exception-handler layer, the route), and each must know
what has already gone out before it answers: nothing yet, an accepted
WebSocket, a started response, a close. A :class:`ConnectionTracker` wraps
``receive``/``send`` and records exactly that.

Wrapping costs a coroutine frame per message and per direction, so it is done
once per connection, not once per layer: :func:`track` leaves the tracker in
the scope, and a layer further in that is handed that tracker's own
``receive``/``send`` reuses it. (Child scopes are the same dict or shallow
copies of it, so they share it.) A middleware in between that wraps ``send``
itself hands on something else, and the next layer then wraps again:
correct, one frame slower.

Where lilya creates the :class:`~lilya.websockets.WebSocket` itself (function
handlers, ``WebSocketController``), :func:`websocket_for` builds it over the
*underlying* server callables and attaches it to the tracker: the handler talks
to the server directly, at bare-``WebSocket`` speed, and the tracker reads the
connection's state from the WebSocket's two states from then on. What the
tracker recorded before is handed to the WebSocket when it is attached, and
whatever is later sent or received through the tracker goes through the
WebSocket's state table, so the WebSocket stays the single truth (and
exception handlers are given that same object).

Raw ASGI handlers and mounted apps get the wrapped callables: lilya has no
WebSocket of theirs to read.
"""

from __future__ import annotations

from typing import Final

from lilya._close import send_with_close_fallback
from lilya.types import Message, Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketState

__all__ = ["ConnectionTracker", "track", "websocket_for"]

_TRACKER_KEY: Final = "lilya.connection_tracker"

_CONNECTING: Final = WebSocketState.CONNECTING
_CONNECTED: Final = WebSocketState.CONNECTED
_DISCONNECTED: Final = WebSocketState.DISCONNECTED
_RESPONSE: Final = WebSocketState.RESPONSE


class ConnectionTracker:
    """Wraps ``receive``/``send`` to remember what this connection has seen and sent.

    Once a WebSocket is attached (:meth:`attach`) the attributes are read from
    its ``client_state`` and ``application_state``.

    Attributes:
        connected: ``websocket.connect`` was received.
        client_gone: the client disconnected, or the server failed a send
            with ``OSError`` (ASGI 2.4's "connection closed").
        accepted: ``websocket.accept`` was sent. Once a WebSocket is attached
            this reads False again after the close (its DISCONNECTED state does
            not say whether it was accepted first): read it while ``open``.
        started: anything that answers the handshake or request was sent.
        finished: the answer is complete (a close, or a last body message).
    """

    __slots__ = (
        "_accepted",
        "_client_gone",
        "_connected",
        "_finished",
        "_receive",
        "_send",
        "_started",
        "_websocket",
    )

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._connected = self._client_gone = False
        self._accepted = self._started = self._finished = False
        self._websocket: WebSocket | None = None

    # -- the state, recorded here or read from the attached WebSocket -----------
    @property
    def connected(self) -> bool:
        websocket = self._websocket
        if websocket is None:
            return self._connected
        return websocket.client_state is not _CONNECTING

    @property
    def client_gone(self) -> bool:
        websocket = self._websocket
        if websocket is None:
            return self._client_gone
        return websocket.client_state is _DISCONNECTED

    @property
    def accepted(self) -> bool:
        websocket = self._websocket
        if websocket is None:
            return self._accepted
        return websocket.application_state is _CONNECTED

    @property
    def started(self) -> bool:
        websocket = self._websocket
        if websocket is None:
            return self._started
        return websocket.application_state is not _CONNECTING

    @property
    def finished(self) -> bool:
        websocket = self._websocket
        if websocket is None:
            return self._finished
        return websocket.application_state is _DISCONNECTED

    @property
    def open(self) -> bool:
        """Whether a message can still reach the client."""
        return not (self.finished or self.client_gone)

    # -- the wrapped callables ----------------------------------------------------
    async def receive(self) -> Message:
        """Receive from the server, noting connects and disconnects.

        Once a WebSocket is attached, this is its ``receive()``.
        """
        if self._websocket is not None:
            return await self._websocket.receive()
        message = await self._receive()
        message_type = message.get("type")
        if message_type == "websocket.connect":
            self._connected = True
        elif message_type in ("websocket.disconnect", "http.disconnect"):
            self._client_gone = True
        return message

    async def send(self, message: Message) -> None:
        """Send to the server, noting what the message answers.

        Once a WebSocket is attached, this is its ``send()``: the message goes
        through its state table, and a gone client raises
        :class:`~lilya.websockets.WebSocketDisconnect` instead of the server's
        ``OSError``.
        """
        if self._websocket is not None:
            await self._websocket.send(message)
            return
        message_type = message.get("type")
        if message_type == "websocket.accept":
            self._accepted = self._started = True
        elif message_type == "websocket.close":
            self._started = self._finished = True
        elif message_type in ("http.response.start", "websocket.http.response.start"):
            self._started = True
        elif message_type in (
            "http.response.body",
            "websocket.http.response.body",
        ) and not message.get("more_body", False):
            self._finished = True
        try:
            await send_with_close_fallback(self._send, message)
        except OSError:
            self._client_gone = True
            raise

    def owns(self, receive: Receive, send: Send) -> bool:
        """Whether *receive* and *send* are this tracker's own methods."""
        # Bound methods are made afresh on each access: compare by equality
        # (same function, same instance), not identity.
        return receive == self.receive and send == self.send

    # -- WebSockets ---------------------------------------------------------------
    def attach(self, websocket: WebSocket) -> None:
        """Let *websocket* hold this connection's state from now on.

        What this tracker recorded so far (a connect a middleware received, a
        denial it sent) moves into *websocket*'s states first.

        Raises:
            ValueError: *websocket* does not talk to the callables this tracker
                wraps (its sends would come back here, in a loop).
            RuntimeError: a WebSocket is already attached.
        """
        if websocket._receive is not self._receive or websocket._send is not self._send:
            raise ValueError(
                "Attach a WebSocket built over the callables the tracker wraps; "
                "use websocket_for(scope, receive, send) to make one."
            )
        if self._websocket is not None:
            raise RuntimeError("This connection already has a WebSocket attached.")
        self._set_states(websocket)
        self._websocket = websocket

    def websocket(self, scope: Scope) -> WebSocket:
        """Return the attached WebSocket, or one over this tracker in the state it reached."""
        if self._websocket is not None:
            return self._websocket
        websocket = WebSocket(scope, self.receive, self.send)
        self._set_states(websocket)
        return websocket

    def _set_states(self, websocket: WebSocket) -> None:
        if self._client_gone:
            websocket.client_state = _DISCONNECTED
        elif self._connected:
            websocket.client_state = _CONNECTED
        if self._finished:
            websocket.application_state = _DISCONNECTED
        elif self._accepted:
            websocket.application_state = _CONNECTED
        elif self._started:
            websocket.application_state = _RESPONSE


def track(scope: Scope, receive: Receive, send: Send) -> ConnectionTracker:
    """Return the connection's tracker for *receive* and *send*.

    If they are the methods of the tracker already in *scope*, that one is
    reused; otherwise a new tracker wraps them and takes its place in *scope*
    for the layers further in.
    """
    tracker: ConnectionTracker | None = scope.get(_TRACKER_KEY)
    if tracker is None or not tracker.owns(receive, send):
        tracker = scope[_TRACKER_KEY] = ConnectionTracker(receive, send)
    return tracker


def websocket_for(scope: Scope, receive: Receive, send: Send) -> WebSocket:
    """Return the handler's WebSocket, over the server's own callables where possible.

    When *receive* and *send* are the methods of the connection's tracker (and
    no WebSocket is attached to it yet), the WebSocket is built over the
    callables the tracker wraps and attached to it: no frame in between.
    Otherwise it is a plain ``WebSocket(scope, receive, send)``.
    """
    tracker: ConnectionTracker | None = scope.get(_TRACKER_KEY)
    if tracker is None or tracker._websocket is not None or not tracker.owns(receive, send):
        return WebSocket(scope, receive, send)
    websocket = WebSocket(scope, tracker._receive, tracker._send)
    tracker.attach(websocket)
    return websocket
