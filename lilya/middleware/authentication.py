"""Authenticate every connection once, before routing: ``connection.user`` and ``.auth``.

You write a backend that looks at the connection (headers, cookies, query) and
returns ``(auth, user)``, or ``None`` for an anonymous client, or raises
:class:`AuthenticationError` to refuse it. The middleware stores the result in
``scope["auth"]`` and ``scope["user"]`` (read them as ``request.user``,
``websocket.auth``).

A refusal is an HTTP response with the error's status (401 unless you say
403), for WebSockets too: a **denial response** before the handshake, which a
browser or client sees as that status, not a connection that opens and then
closes with 1000. Where the server lacks the Denial Response extension
(daphne), the handshake is closed instead, which the server answers with 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from lilya._exception_handlers import deny
from lilya._handlers import call_maybe_async
from lilya._recorder import enter
from lilya.requests import Request
from lilya.responses import PlainText
from lilya.status import WS_1008_POLICY_VIOLATION
from lilya.types import ASGIApp, Receive, Scope, Send
from lilya.websockets import WebSocket

__all__ = [
    "AnonymousUser",
    "AuthenticationBackend",
    "AuthenticationError",
    "AuthenticationMiddleware",
]


class AuthenticationError(Exception):
    """Raise it in a backend to refuse the connection.

    Args:
        detail: what went wrong, sent to the client as the response body.
        status_code: 401 (who are you?) or 403 (you may not).
        headers: extra response headers, e.g. ``WWW-Authenticate``.
    """

    def __init__(
        self,
        detail: str = "Authentication failed",
        status_code: int = 401,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code
        self.headers = dict(headers or {})


class AnonymousUser:
    """The ``user`` of a connection the backend did not authenticate (it returned ``None``)."""

    is_authenticated = False
    display_name = ""

    def __repr__(self) -> str:
        return "AnonymousUser()"


class AuthenticationBackend(Protocol):
    """What the middleware asks of a backend (a plain async function works too)."""

    async def authenticate(self, connection: Any) -> tuple[Any, Any] | None:
        """Return ``(auth, user)``, ``None`` for anonymous, or raise AuthenticationError."""


OnError = Callable[[Any, AuthenticationError], Any]


class AuthenticationMiddleware:
    """Run *backend* on every HTTP request and WebSocket handshake.

    Args:
        app: the app to guard.
        backend: an object with ``async authenticate(connection)``, or such a
            function. *connection* is a :class:`~lilya.requests.Request` or a
            :class:`~lilya.websockets.WebSocket` (read it; do not accept it).
        on_error: ``on_error(connection, exc)`` returning the response that
            refuses the connection (sync or async). Default: the error's
            status and detail as plain text.
    """

    def __init__(self, app: ASGIApp, backend: Any, on_error: OnError | None = None) -> None:
        self.app = app
        authenticate = getattr(backend, "authenticate", backend)
        self.authenticate: Callable[[Any], Awaitable[tuple[Any, Any] | None]] = authenticate
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        connection: Request | WebSocket
        if scope_type == "http":
            connection = Request(scope, receive, send)
        else:
            connection = WebSocket(scope, receive, send)
        try:
            result = await self.authenticate(connection)
        except AuthenticationError as exc:
            await self._refuse(connection, exc, scope, receive, send)
            return
        if result is None:
            scope["auth"], scope["user"] = None, AnonymousUser()
        else:
            scope["auth"], scope["user"] = result
        await self.app(scope, receive, send)

    async def _refuse(
        self,
        connection: Request | WebSocket,
        exc: AuthenticationError,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        if self.on_error is not None:
            response = await call_maybe_async(self.on_error, connection, exc)
        else:
            response = PlainText(exc.detail, exc.status_code, exc.headers)
        if scope["type"] == "http":
            await response(scope, receive, send)
        else:
            state, receive, send = enter(scope, receive, send)
            await deny(scope, state, receive, send, response, WS_1008_POLICY_VIOLATION)
