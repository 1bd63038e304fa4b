"""The WebSocket state table: every legal move of both sides of a connection.

Theory of operation
-------------------
An ASGI WebSocket has two sides. The client's moves on what the application
receives from the server, the application's on what it sends. Each row of
:data:`TRANSITIONS` is one legal move, taken from the ASGI spec ("WebSocket" in
``specs/www.rst``; "Websocket Denial Response" in ``docs/extensions.rst``):
(side, state, message type, more_body, next state). Anything without a row is
refused before any I/O. ``docs/websockets.md`` prints this table, and a test
checks that it is this one.

For the hot path the table is indexed once, at import: side -> state -> message
type -> next state.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

from lilya.exceptions import WebSocketRuntimeError

__all__ = [
    "BODY",
    "CONNECTED",
    "CONNECTING",
    "DISCONNECTED",
    "RECEIVE_MOVES",
    "RESPONSE",
    "SEND_MOVES",
    "TRANSITIONS",
    "WebSocketState",
    "refused",
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

# (side, state, message type, more_body, next state). ``more_body`` matters only
# for the denial response body (``None`` elsewhere): a body with more to come
# keeps the RESPONSE state, the last one ends the connection.
TRANSITIONS: Final[tuple[tuple[str, WebSocketState, str, bool | None, WebSocketState], ...]] = (
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

BODY: Final = "websocket.http.response.body"

# The table, indexed for the hot path: side -> state -> type -> next state. The
# body row is keyed by (type, more_body) since its next state depends on both.
Moves = dict[WebSocketState, dict[Any, WebSocketState]]


def index(side: str) -> Moves:
    """Index the rows of one side: state -> message type (or (type, more_body)) -> next."""
    moves: Moves = {state: {} for state in WebSocketState}
    for row_side, state, message_type, more_body, next_state in TRANSITIONS:
        if row_side == side:
            key = message_type if more_body is None else (message_type, more_body)
            moves[state][key] = next_state
    return moves


RECEIVE_MOVES: Final = index("receive")
SEND_MOVES: Final = index("send")


def expected_names(moves: Mapping[Any, WebSocketState]) -> str:
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
