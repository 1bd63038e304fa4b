"""How lilya turns an exception into an answer, for HTTP and WebSocket alike.

Theory of operation
-------------------
Every layer that may have to answer for an exception (a route, the app's
exception-handler layer, the server-error middleware) reads the connection's
:class:`~lilya._tracker.ConnectionTracker` (one per connection, shared by the
layers: :mod:`lilya._tracker`), so it knows what has already gone out: nothing
yet, an accepted WebSocket, a started response, a close. That is what decides
the answer:

* A *handled* exception (a handler is registered for its class or its status /
  close code) is given to the handler. Nothing is logged; the exception stops.
* An *unhandled* exception on a WebSocket is answered where it is first seen:
  before accept with a 500 denial response (a close, hence 403, where the server
  lacks the Denial Response extension), after accept with close 1011. Then it
  is **re-raised**, and the server logs its traceback, once (uvicorn:
  "Exception in ASGI application"); the test client raises it in the test when
  ``raise_server_exceptions`` is true. lilya does not log the traceback itself:
  that would print it twice on every server. It notes on the ``lilya`` logger,
  at INFO and without the traceback, what the client was told.
* An unhandled HTTP exception is answered by the server-error middleware with a
  500 response (if none has started), noted the same way, and re-raised.

An exception crosses several layers on its way out; two markers on it, tied to
the connection by a token in the scope, keep the layers from answering or
consulting handlers twice. (The token, not a bare flag, because an exception
instance may be raised again by a later request.)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from lilya._close import fit_reason
from lilya._handlers import call_handler
from lilya._tracker import ConnectionTracker, track
from lilya.exceptions import (
    HTTPException,
    ImproperlyConfigured,
    InvalidJSONError,
    WebSocketException,
    WebSocketFrameError,
)
from lilya.requests import Request
from lilya.responses import JSONResponse, PlainText, Response
from lilya.status import (
    WS_1003_UNSUPPORTED_DATA,
    WS_1007_INVALID_FRAME_PAYLOAD_DATA,
    WS_1008_POLICY_VIOLATION,
    WS_1011_INTERNAL_ERROR,
)
from lilya.types import ASGIApp, Message, Receive, Scope, Send
from lilya.websockets import WebSocketDisconnect, WebSocketState, supports_denial

__all__ = [
    "ESCAPED_DISCONNECT_KEY",
    "HANDLERS_KEY",
    "SERVER_ERROR_HANDLER_KEY",
    "ConnectionTracker",
    "ExceptionHandler",
    "ExceptionHandlerMiddleware",
    "HandlerKey",
    "answer_websocket_error",
    "bad_data_close_code",
    "close_websocket",
    "connection_token",
    "deny_websocket",
    "guard_websocket",
    "handle_exception",
    "note_answered",
    "settle_http_error",
    "settle_websocket_error",
    "split_handlers",
    "to_response",
]

logger = logging.getLogger("lilya")

#: ``handler(connection, exc)``, sync or async: returns a response for HTTP; for
#: a WebSocket it closes it (or returns a response to deny the handshake).
ExceptionHandler = Callable[[Any, Any], Any]
HandlerKey = type[BaseException] | int

HANDLERS_KEY: Final = "lilya.exception_handlers"
#: Set by the test client's ``raise_websocket_disconnect=True``: a callable the
#: routing layer hands a ``WebSocketDisconnect`` it treated as a normal end.
ESCAPED_DISCONNECT_KEY: Final = "lilya.testclient.escaped_disconnect"
SERVER_ERROR_HANDLER_KEY: Final = "lilya.server_error_handler"
_TOKEN_KEY: Final = "lilya.connection_token"
_SEEN: Final = "__lilya_handlers_seen__"
_ANSWERED: Final = "__lilya_answered__"


def connection_token(scope: Scope) -> object:
    """Return the object that identifies this connection in exception markers."""
    token = scope.get(_TOKEN_KEY)
    if token is None:
        token = scope[_TOKEN_KEY] = object()
    return token


def _marked(exc: BaseException, marker: str, scope: Scope) -> bool:
    return getattr(exc, marker, None) is connection_token(scope)


def _mark(exc: BaseException, marker: str, scope: Scope) -> None:
    # Some exception types refuse new attributes (__slots__); a second layer may
    # then answer again (a no-op on a finished connection) and note it twice,
    # which beats failing while reporting an error.
    with contextlib.suppress(AttributeError, TypeError):
        setattr(exc, marker, connection_token(scope))


async def close_websocket(tracker: ConnectionTracker, code: int = 1000) -> None:
    """Close the WebSocket unless it is already over; a gone client is not an error.

    A denial response left half-sent is finished instead (a close is not
    allowed once a response has started). With a WebSocket attached to the
    tracker the message goes through it, so its states stay true.
    """
    if not tracker.open:
        return
    if tracker.started and not tracker.accepted:
        message: Message = {"type": "websocket.http.response.body", "body": b""}
    else:
        message = {"type": "websocket.close", "code": code, "reason": ""}
    # OSError from the server, or WebSocketDisconnect from an attached
    # WebSocket that saw it: the client is gone, which ends the answer too.
    with contextlib.suppress(OSError, WebSocketDisconnect):
        await tracker.send(message)


async def deny_websocket(
    scope: Scope, tracker: ConnectionTracker, response: ASGIApp, fallback_code: int
) -> None:
    """Refuse the handshake with *response*, or close with *fallback_code* (403 to the client).

    The close is the fallback where the server lacks the Denial Response
    extension (daphne) or the handshake was already answered. A client that
    already left gets nothing: the server is not called once it is over.
    """
    if not tracker.started and not tracker.client_gone and supports_denial(scope):
        with contextlib.suppress(OSError, WebSocketDisconnect):
            await response(scope, tracker.receive, tracker.send)
    await close_websocket(tracker, fallback_code)


def _describe(scope: Scope) -> str:
    return f"{scope.get('type', '?')} {scope.get('method', '')} {scope.get('path', '?')}".replace(
        "  ", " "
    )


def note_answered(exc: BaseException, scope: Scope, answer: str) -> None:
    """Record, once per connection, that lilya answered the unhandled *exc*.

    The record is one line on the ``lilya`` logger at INFO, with no traceback:
    the exception is re-raised to the server, and the server logs the
    traceback. Logging it here too would print every traceback twice.

    Args:
        answer: what the client was told (``"with close 1011"``).
    """
    if _marked(exc, _ANSWERED, scope):
        return
    _mark(exc, _ANSWERED, scope)
    logger.info(
        "Answered the unhandled %s in %s %s; re-raised it to the server.",
        type(exc).__name__,
        _describe(scope),
        answer,
    )


def to_response(result: Any, handler: Any) -> ASGIApp:
    """Return what a handler returned as a response.

    A Response (any ASGI app) is kept; plain values are a convenience: ``str``
    is text/plain, ``bytes`` a raw body, ``dict``/``list`` JSON.

    Raises:
        TypeError: anything else, ``None`` included (a forgotten ``return``).
    """
    if isinstance(result, str):
        return PlainText(result)
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Response(bytes(result))
    if isinstance(result, (dict, list)):
        return JSONResponse(result)
    if callable(result):
        app: ASGIApp = result  # any ASGI app (a Response is one)
        return app
    raise TypeError(
        f"Handler {getattr(handler, '__qualname__', handler)!r} returned {result!r}; return a "
        "Response, or a str, bytes, dict or list for lilya to wrap in one."
    )


# -- the built-in handlers ----------------------------------------------------


async def _http_exception(connection: Any, exc: HTTPException) -> Any:
    # HTTP: the status and detail. WebSocket: the same as a denial response
    # before accept (close 1008 where unsupported); after accept a close, 1008
    # for a client error, 1011 for a server error.
    no_body = exc.status_code < 200 or exc.status_code in (204, 304)
    response = PlainText(None if no_body else exc.detail, exc.status_code, exc.headers)
    if isinstance(connection, Request):
        return response
    if connection.application_state is WebSocketState.CONNECTING:
        return response
    code = WS_1008_POLICY_VIOLATION if exc.status_code < 500 else WS_1011_INTERNAL_ERROR
    await connection.close(code, fit_reason(exc.detail))
    return None


async def _websocket_exception(connection: Any, exc: WebSocketException) -> None:
    if isinstance(connection, Request):
        raise exc  # an app mistake on HTTP: let it be a server error
    if connection.application_state in (WebSocketState.CONNECTING, WebSocketState.CONNECTED):
        await connection.close(exc.code, exc.reason)


def bad_data_close_code(exc: Exception) -> int:
    """1003 for a frame of the wrong kind, 1007 for a payload that is not valid (JSON).

    RFC 6455 §7.4.1: 1003 "a type of data it cannot accept", 1007 "data within a
    message that was not consistent with the type of the message".
    """
    if isinstance(exc, WebSocketFrameError):
        return WS_1003_UNSUPPORTED_DATA
    return WS_1007_INVALID_FRAME_PAYLOAD_DATA


async def _client_sent_bad_data(connection: Any, exc: Exception) -> None:
    # The client broke the app's protocol: its fault, so a warning and a close
    # code (RFC 6455 §7.4.1), not a server error.
    if isinstance(connection, Request):
        raise exc
    code = bad_data_close_code(exc)
    logger.warning("Closing %s with %d: %s", _describe(connection.scope), code, exc)
    if connection.application_state is WebSocketState.CONNECTED:
        await connection.close(code)


DEFAULT_HANDLERS: Final[Mapping[HandlerKey, ExceptionHandler]] = {
    HTTPException: _http_exception,
    WebSocketException: _websocket_exception,
    WebSocketFrameError: _client_sent_bad_data,
    InvalidJSONError: _client_sent_bad_data,
}


def split_handlers(
    handlers: Mapping[HandlerKey, ExceptionHandler] | None,
) -> tuple[dict[HandlerKey, ExceptionHandler], ExceptionHandler | None]:
    """Split user handlers into the per-exception ones and the server-error one.

    A handler for ``Exception`` or ``500`` answers unhandled errors (in the
    server-error middleware, like Starlette); it customizes the answer, the
    error is still re-raised (and logged by the server).

    Raises:
        ImproperlyConfigured: a key is neither an exception class nor an int.
    """
    regular: dict[HandlerKey, ExceptionHandler] = dict(DEFAULT_HANDLERS)
    server_error = None
    for key, handler in (handlers or {}).items():
        if key in (Exception, 500):
            server_error = handler
        elif isinstance(key, int) or (isinstance(key, type) and issubclass(key, BaseException)):
            regular[key] = handler
        else:
            raise ImproperlyConfigured(
                f"Exception handler key {key!r} must be an exception class or a status / "
                "close code (int)."
            )
    return regular, server_error


def _lookup(
    handlers: Mapping[HandlerKey, ExceptionHandler], exc: BaseException
) -> ExceptionHandler | None:
    # A status / close code handler beats a class handler: it is more specific.
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    if isinstance(exc, WebSocketException) and exc.code in handlers:
        return handlers[exc.code]
    for cls in type(exc).__mro__:
        if cls is Exception:
            break
        if cls in handlers:
            return handlers[cls]
    return None


async def handle_exception(scope: Scope, tracker: ConnectionTracker, exc: Exception) -> bool:
    """Give *exc* to its registered handler; return whether one handled it.

    Handlers come from the scope (the app puts them there); a bare router uses
    the built-in ones. A handler that raises declines: its exception goes on.

    Raises:
        RuntimeError: an HTTP response had already started, so the handler's
            response cannot be sent.
    """
    if _marked(exc, _SEEN, scope) or _marked(exc, _ANSWERED, scope):
        return False
    handler = _lookup(scope.get(HANDLERS_KEY) or DEFAULT_HANDLERS, exc)
    _mark(exc, _SEEN, scope)
    if handler is None:
        return False
    if scope["type"] == "http":
        if tracker.started:
            # The first sentence is Starlette's, word for word: tests match on it.
            raise RuntimeError(
                "Caught handled exception, but response already started. The exception "
                f"handler registered for {type(exc).__name__} cannot send its answer."
            ) from exc
        result = await call_handler(handler, Request(scope, tracker.receive, tracker.send), exc)
        await to_response(result, handler)(scope, tracker.receive, tracker.send)
        return True
    result = await call_handler(handler, tracker.websocket(scope), exc)
    if result is not None:
        await deny_websocket(scope, tracker, result, WS_1008_POLICY_VIOLATION)
    # A handler that leaves the connection open has dealt with the error.
    await close_websocket(tracker, 1000)
    return True


async def answer_websocket_error(scope: Scope, tracker: ConnectionTracker, exc: Exception) -> None:
    """Answer an unhandled exception on a WebSocket, and note the answer (once).

    Before accept: a 500 denial response, or a close (403) without the
    extension. After accept: close 1011. The caller re-raises *exc*.
    """
    if _marked(exc, _ANSWERED, scope):
        return
    handler = scope.get(SERVER_ERROR_HANDLER_KEY)
    answered_by = ""
    if handler is not None and tracker.open:
        answered_by = "through the server-error handler"
        result = await call_handler(handler, tracker.websocket(scope), exc)
        if result is not None:
            await deny_websocket(scope, tracker, result, WS_1011_INTERNAL_ERROR)
    if not tracker.open:
        answer = answered_by or "with nothing: the connection was already over"
    elif not tracker.started:
        answer = "with a 500 denial" if supports_denial(scope) else "with a close (403)"
        await deny_websocket(
            scope, tracker, PlainText("Internal Server Error", 500), WS_1011_INTERNAL_ERROR
        )
    else:
        answer = "with close 1011"
        await close_websocket(tracker, WS_1011_INTERNAL_ERROR)
    note_answered(exc, scope, answer)


async def settle_websocket_error(scope: Scope, tracker: ConnectionTracker, exc: Exception) -> None:
    """Handle *exc* if a handler wants it; else answer it and re-raise it.

    Raises:
        Exception: *exc* (or what its handler raised), when not handled.
    """
    try:
        if await handle_exception(scope, tracker, exc):
            return
    except Exception as declined:
        exc = declined
    await answer_websocket_error(scope, tracker, exc)
    raise exc


async def settle_http_error(scope: Scope, tracker: ConnectionTracker, exc: Exception) -> None:
    """Handle *exc* if a handler wants it; else re-raise it for the server-error layer.

    Raises:
        Exception: *exc* (or what its handler raised), when not handled.
    """
    if not await handle_exception(scope, tracker, exc):
        raise exc


async def guard_websocket(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run a WebSocket *app* and make sure the connection is closed when it ends.

    This is the routing layer's promise: after a normal return, close 1000 if
    still open (before accept the client sees 403); after an exception, its
    handler or the unhandled-error answer (500 denial / 1011), then re-raise; a
    client that left (``WebSocketDisconnect``) is not an error.
    """
    tracker = track(scope, receive, send)
    try:
        await app(scope, tracker.receive, tracker.send)
    except WebSocketDisconnect as exc:
        report = scope.get(ESCAPED_DISCONNECT_KEY)
        if report is not None:
            report(exc)
    except Exception as exc:
        await settle_websocket_error(scope, tracker, exc)
    await close_websocket(tracker, 1000)


class ExceptionHandlerMiddleware:
    """The app's exception-handler layer, inside the user's middleware.

    It publishes the handlers in the scope for the routes (which apply them
    first, so route middleware sees handled answers), and applies them to what
    the middleware between it and the routes raise.
    """

    def __init__(self, app: ASGIApp, handlers: Mapping[HandlerKey, ExceptionHandler]) -> None:
        self.app = app
        self.handlers = dict(handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope[HANDLERS_KEY] = self.handlers
        tracker = track(scope, receive, send)
        try:
            await self.app(scope, tracker.receive, tracker.send)
        except WebSocketDisconnect:
            raise
        except Exception as exc:
            if scope_type == "http":
                await settle_http_error(scope, tracker, exc)
            else:
                await settle_websocket_error(scope, tracker, exc)
