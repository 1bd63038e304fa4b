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
import html
import logging
import traceback
from typing import Any

from lilya._connection_state import ConnectionState
from lilya._exception_handlers import (
    ESCAPED_DISCONNECT_KEY,
    SERVER_ERROR_HANDLER_KEY,
    ExceptionHandler,
    answer,
    end,
    note,
)
from lilya._handlers import call_handler
from lilya._recorder import enter
from lilya.middleware.origin import OriginMiddleware
from lilya.requests import Request
from lilya.responses import HTMLResponse, PlainText, Response
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
        debug: put the traceback in the HTTP 500 body: an HTML page when the
            client accepts ``text/html`` (a browser), plain text otherwise.
            Never for WebSockets: denial bodies are rarely shown; the
            server's log has it.
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
        # The origin check is called through its plain serve(): the next
        # layer's coroutine runs in place of its __call__'s, one frame fewer
        # per open socket (looked up per call: self.app may be replaced).
        app = self.app
        try:
            await (app.serve if isinstance(app, OriginMiddleware) else app)(scope, receive, send)
        except Exception as exc:
            if scope_type == "websocket" and isinstance(exc, WebSocketDisconnect):
                logger.debug("Client left %s (%d).", scope.get("path"), exc.code)
                report = scope.get(ESCAPED_DISCONNECT_KEY)
                if report is not None:
                    report(exc)
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

    def _default_response(self, request: Request, exc: Exception) -> Response:
        if not self.debug:
            return PlainText("Internal Server Error", 500)
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if "text/html" not in request.headers.get("accept", ""):
            return PlainText(trace, 500)
        # A browser asked: a page it renders, every part escaped (the
        # message may well contain what a client sent).
        title = html.escape(f"{type(exc).__name__}: {exc}")
        page = (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
            "<title>500 Internal Server Error</title></head><body>"
            f"<h1>500 Internal Server Error</h1><h2>{title}</h2>"
            f"<pre>{html.escape(trace)}</pre></body></html>\n"
        )
        return HTMLResponse(page, 500)

    async def _answer_http(
        self, scope: Scope, state: ConnectionState, receive: Receive, send: Send, exc: Exception
    ) -> None:
        if state.started:
            note(scope, state, exc, "with nothing: the response had already started")
            return
        request = Request(scope, receive, send)
        response: Any = None
        if self.handler is not None:
            response = await call_handler(self.handler, request, exc)
        if response is None:
            response = self._default_response(request, exc)
        with contextlib.suppress(OSError):  # the client left; the error is what matters
            await response(scope, receive, send)
        what = "with 500" if self.handler is None else "with the handler's response"
        note(scope, state, exc, what)
