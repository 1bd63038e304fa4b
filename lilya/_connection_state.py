"""One connection's state: the one object every lilya layer reads and moves.

Theory of operation
-------------------
An ASGI connection has two sides. The client's moves on what the application
receives from the server, the application's on what it sends. Each row of
:data:`TRANSITIONS` is one legal move of a WebSocket, taken from the ASGI spec
("WebSocket" in ``specs/www.rst``; "Websocket Denial Response" in
``docs/extensions.rst``): (side, state, message type, more_body, next state).
``docs/websockets.md`` prints this table, and a test checks that it is this one.

A :class:`ConnectionState` holds both sides for one connection, with what
follows from them (accepted, started, finished, client gone, open), the
client's close code and reason, and whether a send found the client gone. It
does no I/O: it is told what was received and what is about to be sent, and
answers whether that is allowed. There are two ways to tell it:

* **strictly** (:meth:`~ConnectionState.take_send`,
  :meth:`~ConnectionState.take_receive`), for :class:`~lilya.websockets.WebSocket`:
  a message with no row is the application's mistake and raises
  :class:`~lilya.exceptions.WebSocketRuntimeError` before any I/O;
* **leniently** (:meth:`~ConnectionState.observe_send`,
  :meth:`~ConnectionState.observe_receive`), for the recorder around raw ASGI
  code (:mod:`lilya._recorder`): whatever the app sends is its business, so a
  message with no row is noted where it says something (a disconnect, an HTTP
  response) and otherwise ignored, never refused. The observer also knows the
  HTTP messages (:data:`HTTP_TRANSITIONS`), so the error layer reads an HTTP
  connection through the same object.

Both may see one message (a ``WebSocket`` built over the recorder's callables):
the strict send moves first and the observer then finds no row, or a row that
changes nothing, so seeing a message twice is harmless. A strict receive is
judged from the state the receive *started* in, for the same reason.

The lilya layers find a connection's state in the scope
(:data:`STATE_KEY`); the first layer to see the connection puts it there.
:meth:`~ConnectionState.closing_message` is the one rule for what may still be
sent to end the connection, used by every layer that ends one.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, Final

from lilya._close import received_code
from lilya.exceptions import WebSocketRuntimeError
from lilya.status import WS_1005_NO_STATUS_RCVD, WS_1006_ABNORMAL_CLOSURE
from lilya.timeouts import DEFAULT_SEND_TIMEOUT
from lilya.types import Message, Scope

__all__ = [
    "BODY",
    "CONNECTED",
    "CONNECTING",
    "DISCONNECTED",
    "HTTP_TRANSITIONS",
    "RECEIVE_MOVES",
    "RESPONSE",
    "SEND_MOVES",
    "STATE_KEY",
    "TRANSITIONS",
    "ConnectionState",
    "WebSocketState",
    "state_of",
]


class WebSocketState(enum.Enum):
    """Where one side of a WebSocket is in its life."""

    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2
    RESPONSE = 3


CONNECTING: Final = WebSocketState.CONNECTING
CONNECTED: Final = WebSocketState.CONNECTED
DISCONNECTED: Final = WebSocketState.DISCONNECTED
RESPONSE: Final = WebSocketState.RESPONSE

Row = tuple[str, WebSocketState, str, "bool | None", WebSocketState]

# (side, state, message type, more_body, next state). ``more_body`` matters only
# for the denial response body (``None`` elsewhere): a body with more to come
# keeps the RESPONSE state, the last one ends the connection.
TRANSITIONS: Final[tuple[Row, ...]] = (
    ("receive", CONNECTING, "websocket.connect", None, CONNECTED),
    ("receive", CONNECTED, "websocket.receive", None, CONNECTED),
    ("receive", CONNECTED, "websocket.disconnect", None, DISCONNECTED),
    ("send", CONNECTING, "websocket.accept", None, CONNECTED),
    ("send", CONNECTING, "websocket.close", None, DISCONNECTED),
    ("send", CONNECTING, "websocket.http.response.start", None, RESPONSE),
    ("send", RESPONSE, "websocket.http.response.body", True, RESPONSE),
    ("send", RESPONSE, "websocket.http.response.body", False, DISCONNECTED),
    ("send", CONNECTED, "websocket.send", None, CONNECTED),
    ("send", CONNECTED, "websocket.close", None, DISCONNECTED),
)

# What the observer also knows of an HTTP connection (ASGI "HTTP" in
# ``specs/www.rst``): a response starts, then its last body ends it. The
# client's ``http.disconnect`` is a disconnect like a WebSocket's.
HTTP_TRANSITIONS: Final[tuple[Row, ...]] = (
    ("send", CONNECTING, "http.response.start", None, RESPONSE),
    ("send", RESPONSE, "http.response.body", True, RESPONSE),
    ("send", RESPONSE, "http.response.body", False, DISCONNECTED),
)

BODY: Final = "websocket.http.response.body"
_DISCONNECTS: Final = frozenset({"websocket.disconnect", "http.disconnect"})
_BODIES: Final = frozenset({BODY, "http.response.body"})

# The tables, indexed for the hot path: state -> message type -> next state. A
# body row is keyed by (type, more_body) since its next state depends on both.
Moves = dict[WebSocketState, dict[Any, WebSocketState]]


def index(side: str, rows: tuple[Row, ...]) -> Moves:
    """Index the rows of one side: state -> message type (or (type, more_body)) -> next."""
    moves: Moves = {state: {} for state in WebSocketState}
    for row_side, state, message_type, more_body, next_state in rows:
        if row_side == side:
            key = message_type if more_body is None else (message_type, more_body)
            moves[state][key] = next_state
    return moves


RECEIVE_MOVES: Final = index("receive", TRANSITIONS)
SEND_MOVES: Final = index("send", TRANSITIONS)
_OBSERVED_RECEIVE: Final = RECEIVE_MOVES
_OBSERVED_SEND: Final = index("send", TRANSITIONS + HTTP_TRANSITIONS)

STATE_KEY: Final = "lilya.connection_state"


def _send_key(message: Mapping[str, Any]) -> Any:
    message_type = message.get("type")
    if message_type in _BODIES:
        return (message_type, bool(message.get("more_body", False)))
    return message_type


def expected_names(moves: Mapping[Any, WebSocketState]) -> str:
    """The message types of *moves*, quoted and joined as SPEC's errors show them."""
    names = list(dict.fromkeys(k if isinstance(k, str) else k[0] for k in moves))
    quoted = [f'"{name}"' for name in names]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def refused(side: str, state: WebSocketState, message_type: Any) -> WebSocketRuntimeError:
    """The error for a message with no row: what was expected, what came."""
    moves = (SEND_MOVES if side == "send" else RECEIVE_MOVES)[state]
    expected = (
        f"ASGI message {expected_names(moves)}" if moves else f"no ASGI message in {state.name}"
    )
    return WebSocketRuntimeError(
        f"Expected {expected}, but got {message_type!r}.",
        state=state.name,
        message_type=message_type if isinstance(message_type, str) else None,
    )


class ConnectionState:
    """Both sides of one connection, and what every layer asks of them.

    Attributes:
        open: both sides are CONNECTED: data frames may flow. The one fact the
            data fast paths test, so it is a plain attribute the two side
            setters keep true.
        accepted: the application accepted the handshake (it stays true after
            the close, unlike ``application is CONNECTED``).
        code: the close code the client's disconnect carried (1005 when none,
            1006 when a send found the client gone).
        reason: the close reason, ``""`` when there was none.
        lost_on_send: a send found the client gone (``OSError``) before any
            disconnect was received: the peer vanished without a close frame.
        consulted: the exception the exception handlers were last consulted
            for on this connection, so an outer layer does not ask them again.
        answered: the exception lilya last answered (500 / 1011) on this
            connection, so an outer layer neither answers nor notes it again.
        closed_on_peer_error: lilya closed the connection because the client
            sent bad data (1003 / 1007): the application's own close after it
            (the seed's, after its ``iter_json()`` loop) has nothing left to do.
        drained: the close code lilya's drain closed the connection with
            (:mod:`lilya._drain`), else ``None``: the handler's next send is
            told the connection is over (``WebSocketDisconnect``), not that it
            made a mistake.
        heartbeat: the connection's :class:`~lilya.heartbeat.Pulse` when its
            route has a heartbeat, else ``None`` (``websocket.latency`` and
            the test client's pong answering read it).
        send_timeout: how long a send and the closing send may block, in
            seconds (``None``: for ever); the route sets it
            (:mod:`lilya.timeouts`).
        on_answer: called once when the application answers the handshake
            (its side leaves CONNECTING): the handshake timer's hook.
        websocket: the ``WebSocket`` lilya built for the route's handler (or
            a controller's, or the channels endpoint's), else ``None``; the
            exception handlers are given it, so they see the handler's own
            object. Kept here rather than in the scope: a 22nd key would grow
            the server's scope dict past its allocation on every connection.
    """

    __slots__ = (
        "_application",
        "_client",
        "accepted",
        "answered",
        "closed_on_peer_error",
        "code",
        "consulted",
        "drained",
        "heartbeat",
        "lost_on_send",
        "on_answer",
        "open",
        "reason",
        "send_timeout",
        "websocket",
    )

    def __init__(self) -> None:
        self._client = CONNECTING
        self._application = CONNECTING
        self.open = False
        self.accepted = False
        self.code = WS_1005_NO_STATUS_RCVD
        self.reason = ""
        self.lost_on_send = False
        self.consulted: BaseException | None = None
        self.answered: BaseException | None = None
        self.closed_on_peer_error = False
        self.drained: int | None = None
        self.heartbeat: Any = None
        self.send_timeout: float | None = DEFAULT_SEND_TIMEOUT
        self.on_answer: Callable[[], None] | None = None
        self.websocket: Any = None

    def __repr__(self) -> str:
        return (
            f"ConnectionState(client={self._client.name}, "
            f"application={self._application.name}, code={self.code})"
        )

    # -- the two sides -------------------------------------------------------------
    @property
    def client(self) -> WebSocketState:
        """The client's side, moved by what the application receives."""
        return self._client

    @client.setter
    def client(self, state: WebSocketState) -> None:
        self._client = state
        self.open = state is CONNECTED and self._application is CONNECTED

    @property
    def application(self) -> WebSocketState:
        """The application's side, moved by what it sends."""
        return self._application

    @application.setter
    def application(self, state: WebSocketState) -> None:
        self._application = state
        self.open = state is CONNECTED and self._client is CONNECTED
        if state is CONNECTED:
            self.accepted = True
        elif state is CONNECTING:
            self.accepted = False  # a refused accept moved back: it never left
            return
        if self.on_answer is not None:  # the handshake timer (lilya.timeouts)
            self.on_answer()
            self.on_answer = None

    # -- what follows from them -----------------------------------------------------
    @property
    def started(self) -> bool:
        """The application answered the handshake or request (accept, close, response)."""
        return self._application is not CONNECTING

    @property
    def finished(self) -> bool:
        """The application's answer is complete (a close, or the last body)."""
        return self._application is DISCONNECTED

    @property
    def client_gone(self) -> bool:
        """The client disconnected, or a send found it gone."""
        return self._client is DISCONNECTED

    @property
    def ended(self) -> bool:
        """Nothing more can reach the client: it left, or the application finished."""
        return self._application is DISCONNECTED or self._client is DISCONNECTED

    def closing_message(self, code: int) -> Message | None:
        """The one message that may still be sent to end this WebSocket, or ``None``.

        Nothing once it has ended (a message to a gone client is refused or
        lost, depending on the server); the last, empty body of a denial
        response left half-sent (a close is not allowed once a response has
        started); otherwise ``websocket.close`` with *code* (before accept the
        server turns it into HTTP 403).
        """
        application = self._application
        if application is DISCONNECTED or self._client is DISCONNECTED:
            return None
        if application is RESPONSE:
            return {"type": BODY, "body": b""}
        return {"type": "websocket.close", "code": code, "reason": ""}

    # -- strictly, for WebSocket --------------------------------------------------
    def check_receive(self) -> WebSocketState:
        """Return the client's state for a receive about to start.

        After a send found the client gone (``lost_on_send``) a receive is
        still allowed: the server has not handed over its disconnect yet, and
        holds what the client sent before leaving.

        Raises:
            WebSocketRuntimeError: a disconnect was already received (the server
                may never answer again).
        """
        state = self._client
        if state is DISCONNECTED and not self.lost_on_send:
            raise WebSocketRuntimeError(
                'Cannot call "receive" once a disconnect message has been received.',
                state=state.name,
            )
        return state

    def take_receive(self, message: Message, before: WebSocketState) -> None:
        """Move the client's side on *message*, received by a receive started in *before*.

        Raises:
            WebSocketRuntimeError: the table has no move for *message* there.
        """
        message_type = message.get("type")
        if self.lost_on_send and self._client is DISCONNECTED:
            # A receive was already waiting when a send found the client gone
            # (relay() and every reader/writer pair do this): the server's
            # disconnect confirms what we inferred, and knows the real code.
            # Frames the client sent before it left come first: the server
            # queued them, so they are data, not a protocol error.
            if message_type == "websocket.receive":
                return
            if message_type != "websocket.disconnect":
                raise refused("receive", DISCONNECTED, message_type)
            next_state = DISCONNECTED
        else:
            found = RECEIVE_MOVES[before].get(message_type)
            if found is None:
                raise refused("receive", before, message_type)
            next_state = found
        self.client = next_state
        if next_state is DISCONNECTED:
            self._disconnected(message)

    def take_send(self, message: Mapping[str, Any]) -> WebSocketState:
        """Move the application's side on *message*; return the state it left.

        The caller moves it back (``application = returned``) if the message
        never left: the client had gone, or the server refused it.

        Raises:
            WebSocketRuntimeError: a close was already sent, or the table has no
                move for *message* in this state.
        """
        state = self._application
        next_state = SEND_MOVES[state].get(_send_key(message))
        if next_state is None:
            message_type = message.get("type")
            if state is DISCONNECTED:
                raise WebSocketRuntimeError(
                    'Cannot call "send" once a close message has been sent.',
                    state=state.name,
                    message_type=message_type if isinstance(message_type, str) else None,
                )
            raise refused("send", state, message_type)
        self.application = next_state
        return state

    def lose(self) -> None:
        """Note that a send found the client gone (ASGI 2.4: an ``OSError``).

        The peer vanished without a close frame, which RFC 6455 §7.1.5 reports
        as 1006. If the client's leaving was already known (the heartbeat's
        reader saw its disconnect, or its pong never came: 1011), what is
        known stays.
        """
        if self._client is DISCONNECTED:
            return
        self.client = DISCONNECTED
        self.lost_on_send = True
        self.code, self.reason = WS_1006_ABNORMAL_CLOSURE, ""

    # -- leniently, for raw ASGI code ---------------------------------------------
    def observe_receive(self, message: Message) -> None:
        """Note what raw ASGI code received: a move where the table has one, a disconnect always."""
        message_type = message.get("type")
        if message_type in _DISCONNECTS:
            self.client = DISCONNECTED
            self._disconnected(message)
            return
        next_state = _OBSERVED_RECEIVE[self._client].get(message_type)
        if next_state is not None:
            self.client = next_state

    def observe_send(self, message: Message) -> None:
        """Note what raw ASGI code is sending: a move where a table has one, else nothing."""
        next_state = _OBSERVED_SEND[self._application].get(_send_key(message))
        if next_state is not None:
            self.application = next_state

    def _disconnected(self, message: Message) -> None:
        # docs/servers.md: daphne may send ``code: None`` and several servers
        # omit ``reason``; ASGI says both mean 1005 / "".
        self.code = received_code(message)
        self.reason = message.get("reason") or ""
        self.lost_on_send = False


def state_of(scope: Scope) -> ConnectionState:
    """Return the connection's state from *scope*, putting a new one there if it has none."""
    state: ConnectionState | None = scope.get(STATE_KEY)
    if state is None:
        state = scope[STATE_KEY] = ConnectionState()
    return state
