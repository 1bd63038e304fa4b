"""Exceptions an application raises, or that lilya raises at the application.

The split follows wsproto's, by whose fault it is:

* *you did it* (calling an operation in the wrong state, a misconfigured
  route): :class:`WebSocketRuntimeError`, :class:`ImproperlyConfigured`, raised
  where the mistake was made, as subclasses of the builtin they resemble;
* *the peer did it* (the client sent data your handler cannot take):
  :class:`WebSocketPeerError` and its kinds, :class:`WebSocketFrameError` and
  :class:`InvalidJSONError`, each carrying the close code (from
  :mod:`lilya.status`) that the routing layer and ``WebSocketController``
  answer it with. The client leaving is :class:`lilya.websockets.WebSocketDisconnect`.

Neither kind names a connection state of its own making: a
``WebSocketRuntimeError`` carries the state it was raised in, when one applies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lilya._close import check_close
from lilya.status import (
    WS_1003_UNSUPPORTED_DATA,
    WS_1007_INVALID_FRAME_PAYLOAD_DATA,
    WS_1008_POLICY_VIOLATION,
    reason_phrase,
)

__all__ = [
    "HTTPException",
    "ImproperlyConfigured",
    "InvalidJSONError",
    "NoMatchFound",
    "WebSocketException",
    "WebSocketFrameError",
    "WebSocketPeerError",
    "WebSocketRuntimeError",
]


class WebSocketRuntimeError(RuntimeError):
    """You used a WebSocket in a way its state does not allow.

    It subclasses :class:`RuntimeError` so that code written against peers that
    raise a bare ``RuntimeError`` keeps catching it.

    Attributes:
        state: name of the state the connection side was in, if it applies.
        message_type: the ASGI message type that was refused, if it applies.
    """

    def __init__(
        self, message: str, *, state: str | None = None, message_type: str | None = None
    ) -> None:
        super().__init__(message)
        self.state = state
        self.message_type = message_type


class WebSocketPeerError(ValueError):
    """The client sent data your handler cannot take: the peer's fault, not yours.

    It is not a :class:`WebSocketRuntimeError` (that one says you used the API
    wrongly). Left unhandled in a WebSocket handler, the routing layer and
    ``WebSocketController`` answer it with :attr:`close_code`, log a warning on
    ``lilya`` and raise nothing to the server: a client cannot cause a server
    error. Catch it to answer otherwise (or register an exception handler).

    Attributes:
        close_code: the close code that answers it (RFC 6455 §7.4.1); 1008,
            the generic "policy violation", unless a subclass says better.
    """

    close_code: int = WS_1008_POLICY_VIOLATION


class WebSocketFrameError(WebSocketPeerError):
    """A frame of the other kind arrived: text where you asked for bytes, or back.

    The client chose the frame kind, so it is answered with close code 1003
    (``WS_1003_UNSUPPORTED_DATA``: "a type of data it cannot accept").

    Attributes:
        expected: ``"text"`` or ``"bytes"``, what you asked for.
        received: ``"text"`` or ``"bytes"``, what arrived.
    """

    close_code = WS_1003_UNSUPPORTED_DATA

    def __init__(self, expected: str, received: str, *, json: bool = False) -> None:
        if json:
            other = f'receive_json(mode="{"text" if received == "text" else "binary"}")'
        else:
            other = "receive_text()" if received == "text" else "receive_bytes()"
        super().__init__(
            f"Expected a {expected} frame but the client sent a {received} frame; "
            f"use {other} or receive() to accept {received} frames."
        )
        self.expected = expected
        self.received = received


class InvalidJSONError(json.JSONDecodeError, WebSocketPeerError):
    """The client sent a frame that is not valid JSON (or, in binary mode, not UTF-8).

    It subclasses :class:`json.JSONDecodeError` (a :class:`ValueError`) so code
    that catches what the standard library raises keeps working. It is
    answered with close code 1007 (``WS_1007_INVALID_FRAME_PAYLOAD_DATA``: "data
    within a message that was not consistent with the type of the message").

    Attributes:
        mode: ``"text"`` or ``"binary"``, the frame kind the JSON came in.
    """

    close_code = WS_1007_INVALID_FRAME_PAYLOAD_DATA

    def __init__(self, detail: str, doc: str, pos: int, *, mode: str) -> None:
        super().__init__(f"Received invalid JSON in a {mode} frame: {detail}", doc, pos)
        self.mode = mode


class NoMatchFound(LookupError):
    """Reverse routing found no route with that name accepting those parameters."""

    def __init__(
        self, name: str, path_params: Mapping[str, Any], *, hint: str | None = None
    ) -> None:
        params = ", ".join(sorted(path_params))
        # The first sentence is Starlette's, word for word: tests match on it.
        message = (
            f'No route exists for name "{name}" and params "{params}". Check the route '
            'name ("include-name:route-name" inside an Include) and its path parameters.'
        )
        if hint:
            message += f" Closest: {hint}"
        super().__init__(message)
        self.name = name
        self.path_params = dict(path_params)
        #: What the closest route expects, when routing found one (or ``None``).
        self.hint = hint


class WebSocketException(Exception):
    """Raise this in a WebSocket handler to close the connection with *code* and *reason*.

    The routing layer catches it and sends ``websocket.close`` with these values,
    before or after the handshake (before it, servers answer HTTP 403).

    Raises:
        ValueError: *code* is not one an endpoint may send (1000-1003,
            1007-1014, 3000-4999), or *reason* is over 123 bytes of UTF-8.
    """

    def __init__(self, code: int, reason: str | None = None) -> None:
        checked = check_close(code, reason)  # a bad code fails here, where it was made
        super().__init__(code, reason)
        self.code = code
        self.reason = checked

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r})"


class HTTPException(Exception):
    """Raise this in an HTTP handler to answer with *status_code* and *detail*."""

    def __init__(
        self,
        status_code: int,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        if detail is None:
            detail = reason_phrase(status_code)
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers) if headers else None
        self.extra = extra

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, detail={self.detail!r})"


class ImproperlyConfigured(ValueError):
    """The application was set up wrongly (a bad route, middleware or setting).

    A :class:`ValueError`, as in Lilya, so that code written for Starlette,
    which raises ``ValueError`` for a bad route path, keeps catching it.
    """
