"""Exception handlers as a middleware of their own, for apps built without ``Lilya``.

``Lilya(exception_handlers=...)`` puts this layer in place for you. Use it
directly around a bare :class:`~lilya.routing.Router` (or any ASGI app), as
Starlette users use ``starlette.middleware.exceptions.ExceptionMiddleware``::

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
    ExceptionHandler,
    ExceptionHandlerMiddleware,
    HandlerKey,
    split_handlers,
)
from lilya.middleware.server_error import ServerErrorMiddleware
from lilya.types import ASGIApp

__all__ = ["ExceptionMiddleware"]


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
