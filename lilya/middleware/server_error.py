"""The outermost middleware: whatever nothing else handled gets an answer here.

HTTP: a 500 response if none has started (the traceback in its body when
``debug`` is on). WebSocket: a 500 denial response before accept (a close,
seen as 403, where the server lacks the extension), close 1011 after. Either
way the error is then **re-raised**, as Starlette's middleware does: the server
logs its traceback, once (uvicorn: "Exception in ASGI application"), and the
test client raises it in your test. lilya does not log the traceback too; it
notes at INFO on the ``lilya`` logger what it answered. A client that
disconnects is not an error: a ``WebSocketDisconnect`` that reaches this layer
is logged at DEBUG and ends the connection quietly.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from typing import Any

from lilya._connection_state import ConnectionState
from lilya._exception_handlers import SERVER_ERROR_HANDLER_KEY, ExceptionHandler, answer, end, note
from lilya._handlers import call_maybe_async
from lilya._recorder import enter
from lilya.requests import Request
from lilya.responses import PlainText
from lilya.types import ASGIApp, Receive, Scope, Send
from lilya.websockets import WebSocketDisconnect

__all__ = ["ServerErrorMiddleware"]

logger = logging.getLogger("lilya")


class ServerErrorMiddleware:
    """Answer unhandled errors with 500 / 1011 and re-raise them for the server to log.

    Args:
        app: the app to guard.
        handler: ``handler(connection, exc)`` to customize the answer (a
            response for HTTP; for a WebSocket it may close it or return a
            denial response). The error is still re-raised.
        debug: put the traceback in the HTTP 500 body. Never for WebSockets:
            denial bodies are rarely shown; the server's log has it.
    """

    def __init__(
        self, app: ASGIApp, handler: ExceptionHandler | None = None, debug: bool = False
    ) -> None:
        self.app = app
        self.handler = handler
        self.debug = debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self.handler is not None:
            scope[SERVER_ERROR_HANDLER_KEY] = self.handler
        # The outermost lilya layer: the connection's state starts here, and
        # what raw code inside sends is recorded on its way out.
        state, receive, send = enter(scope, receive, send)
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if scope_type == "websocket" and isinstance(exc, WebSocketDisconnect):
                logger.debug("Client left %s (%d).", scope.get("path"), exc.code)
                return
            if scope_type == "websocket":
                await answer(scope, state, receive, send, exc)
            else:
                await self._answer_http(scope, state, receive, send, exc)
            raise
        if scope_type == "websocket":
            # Whatever returned without closing (a middleware that did not call
            # the app, say): end it, as the routing layer would.
            await end(state, send)

    async def _answer_http(
        self, scope: Scope, state: ConnectionState, receive: Receive, send: Send, exc: Exception
    ) -> None:
        if state.started:
            note(scope, state, exc, "with nothing: the response had already started")
            return
        request = Request(scope, receive, send)
        response: Any = None
        if self.handler is not None:
            response = await call_maybe_async(self.handler, request, exc)
        if response is None:
            body = "Internal Server Error"
            if self.debug:
                body = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            response = PlainText(body, 500)
        with contextlib.suppress(OSError):  # the client left; the error is what matters
            await response(scope, receive, send)
        what = "with 500" if self.handler is None else "with the handler's response"
        note(scope, state, exc, what)
