"""How lilya turns an exception into an answer, for HTTP and WebSocket alike.

Theory of operation
-------------------
Every layer that may have to answer for an exception (a route, the app's
exception-handler layer, the server-error middleware) reads the connection's
one :class:`~lilya._connection_state.ConnectionState`, so it knows what has
already gone out: nothing yet, an accepted WebSocket, a started response, a
close. The flow has three steps, each with one verb:

1. **handle**: the exception's registered handler (for its class or its status
   / close code, else a built-in one) gives the answer. Nothing is logged; the
   exception stops.
2. **answer**: an unhandled exception on a WebSocket is answered where it is
   first seen: before accept with a 500 denial response (a close, hence 403,
   where the server lacks the Denial Response extension), after accept with
   close 1011. Then the layer **re-raises** it, and the server logs its
   traceback, once (uvicorn: "Exception in ASGI application"); the test client
   raises it in the test when ``raise_server_exceptions`` is true. lilya does
   not log the traceback itself: that would print it twice on every server. It
   **notes** on the ``lilya`` logger, at INFO and without the traceback, what
   the client was told. (An unhandled HTTP exception is answered by the
   server-error middleware with a 500 response.)
3. **end**: whatever happened, a WebSocket is ended with the one message its
   state still allows (:meth:`ConnectionState.closing_message`), sent straight
   to the server.

An exception crosses several layers on its way out; the state notes which one
was handled and which was answered (``consulted`` and ``answered``), so no
layer consults the handlers or answers twice.

The peer's bad data (:class:`~lilya.exceptions.WebSocketPeerError`) is the one
policy shared with ``WebSocketController``: :func:`close_for_peer_error`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from lilya._close import fit_reason
from lilya._connection_state import ConnectionState
from lilya._handlers import call_handler
from lilya._recorder import Recorder, enter, server_send
from lilya.exceptions import (
    HTTPException,
    ImproperlyConfigured,
    WebSocketException,
    WebSocketPeerError,
)
from lilya.requests import Request
from lilya.responses import PlainText, to_response
from lilya.status import (
    WS_1000_NORMAL_CLOSURE,
    WS_1008_POLICY_VIOLATION,
    WS_1011_INTERNAL_ERROR,
)
from lilya.timeouts import close_within
from lilya.types import ASGIApp, Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect, WebSocketState, supports_denial

__all__ = [
    "ESCAPED_DISCONNECT_KEY",
    "HANDLERS_KEY",
    "SERVER_ERROR_HANDLER_KEY",
    "ExceptionHandler",
    "HandlerKey",
    "answer",
    "close_for_peer_error",
    "deny",
    "end",
    "guard",
    "handle",
    "handle_or_answer",
    "note",
    "split_handlers",
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


# -- end and deny: what goes out -------------------------------------------------------


async def end(state: ConnectionState, send: Send, code: int = WS_1000_NORMAL_CLOSURE) -> None:
    """End the WebSocket with the one message its *state* still allows, if any.

    The message moves *state* and goes to *send* (the server's own under a
    recorder); a server that finds the client gone (``OSError``) has ended it
    too.
    """
    message = state.closing_message(code)
    if message is None:
        return
    state.take_send(message)
    try:
        # At most the send timeout: a client that does not read is dropped
        # rather than holding this task for ever (lilya.timeouts).
        await close_within(server_send(send), message, state.send_timeout)
    except OSError:
        state.lose()


async def deny(
    scope: Scope,
    state: ConnectionState,
    receive: Receive,
    send: Send,
    response: ASGIApp,
    fallback_code: int,
) -> None:
    """Refuse the handshake with *response*, or close with *fallback_code* (403 to the client).

    The close is the fallback where the server lacks the Denial Response
    extension (daphne) or the handshake was already answered. A client that
    already left gets nothing: the server is not called once it is over.
    """
    if not state.started and not state.client_gone and supports_denial(scope):
        # The response is raw ASGI code: record what it sends. (If *send*
        # already leads through the connection's recorder, it notes each
        # message twice, which changes nothing.)
        recorder = Recorder(state, receive, send)
        with contextlib.suppress(OSError):
            await response(scope, recorder.receive, recorder.send)
    await end(state, send, fallback_code)


# -- note: what the log says --------------------------------------------------------


def _describe(scope: Scope) -> str:
    return f"{scope.get('type', '?')} {scope.get('method', '')} {scope.get('path', '?')}".replace(
        "  ", " "
    )


def note(scope: Scope, state: ConnectionState, exc: BaseException, what: str) -> None:
    """Record, once per connection, that lilya answered the unhandled *exc* with *what*.

    The record is one line on the ``lilya`` logger at INFO, with no traceback:
    the exception is re-raised to the server, and the server logs the
    traceback. Logging it here too would print every traceback twice.

    Args:
        what: what the client was told (``"with close 1011"``).
    """
    if state.answered is exc:
        return
    state.answered = exc
    logger.info(
        "Answered the unhandled %s in %s %s; re-raised it to the server.",
        type(exc).__name__,
        _describe(scope),
        what,
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


async def close_for_peer_error(websocket: WebSocket, exc: WebSocketPeerError) -> None:
    """Close with *exc*'s close code (if still open) and log a warning: the peer's fault.

    The client broke the app's protocol, so this is a warning and a close code
    (RFC 6455 §7.4.1), never a server error.
    """
    code = exc.close_code
    logger.warning("Closing %s with %d: %s", _describe(websocket.scope), code, exc)
    if websocket.application_state is WebSocketState.CONNECTED:
        await websocket.close(code)


async def _peer_error(connection: Any, exc: WebSocketPeerError) -> None:
    if isinstance(connection, Request):
        raise exc
    await close_for_peer_error(connection, exc)


DEFAULT_HANDLERS: Final[Mapping[HandlerKey, ExceptionHandler]] = {
    HTTPException: _http_exception,
    WebSocketException: _websocket_exception,
    WebSocketPeerError: _peer_error,
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
    # The classes up to Exception: a handler for Exception (or 500) is the
    # server-error handler, applied by the server-error middleware instead.
    mro = type(exc).__mro__
    for cls in mro[: mro.index(Exception)]:
        if cls in handlers:
            return handlers[cls]
    return None


def _websocket(scope: Scope, state: ConnectionState, receive: Receive, send: Send) -> WebSocket:
    # The handler's own WebSocket when lilya built one (ConnectionState.websocket),
    # else one over the connection's state (the scope's): both read the same truth.
    websocket: WebSocket | None = state.websocket
    return WebSocket(scope, receive, send) if websocket is None else websocket


# -- handle and answer: the steps -------------------------------------------------------


async def handle(
    scope: Scope, state: ConnectionState, receive: Receive, send: Send, exc: Exception
) -> bool:
    """Give *exc* to its registered handler; return whether one handled it.

    Handlers come from the scope (the app puts them there); a bare router uses
    the built-in ones. A handler that raises declines: its exception goes on.
    A WebSocket that the handler leaves open is then ended (1000).

    Raises:
        RuntimeError: an HTTP response had already started, so the handler's
            response cannot be sent.
    """
    if state.consulted is exc or state.answered is exc:
        return False
    state.consulted = exc
    handler = _lookup(scope.get(HANDLERS_KEY) or DEFAULT_HANDLERS, exc)
    if handler is None:
        return False
    if scope["type"] == "http":
        if state.started:
            # The first sentence is Starlette's, word for word: tests match on it.
            raise RuntimeError(
                "Caught handled exception, but response already started. The exception "
                f"handler registered for {type(exc).__name__} cannot send its answer."
            ) from exc
        result = await call_handler(handler, Request(scope, receive, send), exc)
        await to_response(result, handler)(scope, receive, send)
        return True
    result = await call_handler(handler, _websocket(scope, state, receive, send), exc)
    if result is not None:
        await deny(scope, state, receive, send, result, WS_1008_POLICY_VIOLATION)
    # A handler that leaves the connection open has dealt with the error.
    await end(state, send)
    return True


async def answer(
    scope: Scope,
    state: ConnectionState,
    receive: Receive,
    send: Send,
    exc: Exception,
) -> None:
    """Answer an unhandled exception on a WebSocket, and note the answer (once).

    The app's handler for ``Exception`` / 500, if any, may answer first.
    Then, if it did not end the connection: before accept a 500 denial
    response, or a close (403) without the extension; after accept close 1011.
    The caller re-raises *exc*.
    """
    if state.answered is exc:
        return
    answered_by = ""
    handler = scope.get(SERVER_ERROR_HANDLER_KEY)
    if handler is not None and not state.ended:
        answered_by = "through the server-error handler"
        result = await call_handler(handler, _websocket(scope, state, receive, send), exc)
        if result is not None:
            await deny(scope, state, receive, send, result, WS_1011_INTERNAL_ERROR)
    if state.ended:
        what = answered_by or "with nothing: the connection was already over"
    elif not state.started:
        what = "with a 500 denial" if supports_denial(scope) else "with a close (403)"
        denial = PlainText("Internal Server Error", 500)
        await deny(scope, state, receive, send, denial, WS_1011_INTERNAL_ERROR)
    else:
        what = "with close 1011"
        await end(state, send, WS_1011_INTERNAL_ERROR)
    note(scope, state, exc, what)


# -- guard: the routing layer's promise ---------------------------------------------------


async def handle_or_answer(
    scope: Scope, state: ConnectionState, receive: Receive, send: Send, exc: Exception
) -> None:
    """Handle *exc*; if no handler did, answer it (a WebSocket) and re-raise it.

    Raises:
        Exception: *exc*, or what its handler raised instead, when not handled.
    """
    try:
        if await handle(scope, state, receive, send, exc):
            return
    except Exception as declined:  # the handler raised: its error goes on
        exc = declined
    if scope["type"] == "websocket":
        await answer(scope, state, receive, send, exc)
    raise exc


async def guard(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run a WebSocket *app* and make sure the connection is ended when it ends.

    This is the routing layer's promise: after a normal return, close 1000 if
    still open (before accept the client sees 403); after an exception, its
    handler or the unhandled-error answer (500 denial / 1011), then re-raise; a
    client that left (``WebSocketDisconnect``) is not an error.

    Raises:
        Exception: the app's unhandled exception, once answered.
    """
    state, receive, send = enter(scope, receive, send)
    try:
        await app(scope, receive, send)
    except WebSocketDisconnect as exc:
        report = scope.get(ESCAPED_DISCONNECT_KEY)
        if report is not None:
            report(exc)
    except Exception as exc:
        await handle_or_answer(scope, state, receive, send, exc)
    await end(state, send)
