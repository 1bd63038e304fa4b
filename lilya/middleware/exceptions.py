"""The exception-handler layer: your handlers, applied to what the app inside raises.

A ``Lilya`` app puts :class:`ExceptionHandlerMiddleware` between your
middleware and the router (see :mod:`lilya.apps`). It publishes the handlers in
the scope, where each route applies them first (so route middleware sees
handled answers); here they are applied to what the middleware between this
layer and the routes raise. The flow itself (handle, answer, end) is
:mod:`lilya._exception_handlers`.

For apps built without ``Lilya``, :class:`ExceptionMiddleware` is the same
layer as a middleware of its own. Use it directly around a bare
:class:`~lilya.routing.Router` (or any ASGI app), as Starlette users use
``starlette.middleware.exceptions.ExceptionMiddleware``::

    app = ExceptionMiddleware(Router(routes), handlers={KeyError: not_found})

It answers ``HTTPException`` and ``WebSocketException`` as the app does, and
each exception class or status / close code you register with its handler:
``handler(request_or_websocket, exc)``, async or plain (a plain one runs in a
worker thread). Whatever no handler takes goes on to the layer outside it.

A handler for ``Exception`` or ``500`` means here what it means on the app: it
answers *unhandled* errors (through a :class:`ServerErrorMiddleware` this
layer puts inside itself), and the error is still re-raised for the server to
log. (Starlette's ``ExceptionMiddleware`` swallows it; lilya never hides an
unhandled error.)
"""

from __future__ import annotations

from collections.abc import Mapping

from lilya._exception_handlers import (
    HANDLERS_KEY,
    ExceptionHandler,
    HandlerKey,
    handle_or_answer,
    split_handlers,
)
from lilya._recorder import enter
from lilya.middleware.server_error import ServerErrorMiddleware
from lilya.routing import Router
from lilya.types import ASGIApp, Receive, Scope, Send
from lilya.websockets import WebSocketDisconnect

__all__ = ["ExceptionHandlerMiddleware", "ExceptionMiddleware"]


class ExceptionHandlerMiddleware:
    """Apply exception *handlers* to what the app inside raises.

    Args:
        app: the app to wrap (a ``Lilya`` app's router).
        handlers: ``{ExceptionClass or status/close code: handler}``, as
            :func:`~lilya._exception_handlers.split_handlers` returns them.
    """

    def __init__(self, app: ASGIApp, handlers: Mapping[HandlerKey, ExceptionHandler]) -> None:
        self.app = app
        self.handlers = dict(handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope[HANDLERS_KEY] = self.handlers
        state, receive, send = enter(scope, receive, send)
        # A router is called through its plain serve(): its coroutine runs
        # in place of Router.__call__'s, one frame fewer per open socket.
        # Looked up per call: ExceptionMiddleware replaces self.app later.
        app = self.app
        try:
            await (app.serve if isinstance(app, Router) else app)(scope, receive, send)
        except WebSocketDisconnect:
            raise
        except Exception as exc:
            await handle_or_answer(scope, state, receive, send, exc)


class ExceptionMiddleware(ExceptionHandlerMiddleware):
    """Apply exception handlers to what *app* raises.

    Args:
        app: the app to guard (a router, usually).
        handlers: ``{ExceptionClass or status/close code: handler}``.
        debug: for the ``Exception`` / ``500`` handler's layer: put the
            traceback in a 500 it does not answer itself.

    Raises:
        ImproperlyConfigured: a key is neither an exception class nor an int.
    """

    def __init__(
        self,
        app: ASGIApp,
        handlers: Mapping[HandlerKey, ExceptionHandler] | None = None,
        debug: bool = False,
    ) -> None:
        regular, server_error = split_handlers(handlers)
        self.debug = debug
        self._guarded = app
        super().__init__(app, regular)
        if server_error is not None:
            self._answer_unhandled_with(server_error)

    def _answer_unhandled_with(self, handler: ExceptionHandler) -> None:
        self.app = ServerErrorMiddleware(self._guarded, handler=handler, debug=self.debug)

    def add_exception_handler(self, key: HandlerKey, handler: ExceptionHandler) -> None:
        """Register *handler* for an exception class or a status / close code.

        Raises:
            ImproperlyConfigured: *key* is neither an exception class nor an int.
        """
        regular, server_error = split_handlers({key: handler})
        if server_error is not None:
            self._answer_unhandled_with(server_error)
        else:
            self.handlers[key] = regular[key]
