"""Exception handlers as a middleware of their own, for apps built without ``Lilya``.

``Lilya(exception_handlers=...)`` puts this layer in place for you. Use it
directly around a bare :class:`~lilya.routing.Router` (or any ASGI app), as
Starlette users use ``starlette.middleware.exceptions.ExceptionMiddleware``::

    app = ExceptionMiddleware(Router(routes), handlers={KeyError: not_found})

It answers ``HTTPException`` and ``WebSocketException`` as the app does, and
each exception class or status / close code you register with its handler:
``handler(request_or_websocket, exc)``, async or plain (a plain one runs in a
worker thread). Whatever no handler takes goes on to the layer outside it.
"""

from __future__ import annotations

from collections.abc import Mapping

from lilya._exception_handlers import (
    ExceptionHandler,
    ExceptionHandlerMiddleware,
    HandlerKey,
    split_handlers,
)
from lilya.exceptions import ImproperlyConfigured
from lilya.types import ASGIApp

__all__ = ["ExceptionMiddleware"]


class ExceptionMiddleware(ExceptionHandlerMiddleware):
    """Apply exception handlers to what *app* raises.

    Args:
        app: the app to guard (a router, usually).
        handlers: ``{ExceptionClass or status/close code: handler}``.
        debug: accepted for Starlette's signature; tracebacks are the
            server-error middleware's business (``ServerErrorMiddleware(debug=True)``).

    Raises:
        ImproperlyConfigured: a key is neither an exception class nor an int,
            or it is ``Exception`` / ``500``, which belong to
            ``ServerErrorMiddleware(handler=...)``: unhandled errors are
            answered outermost, so the middleware in between sees them.
    """

    def __init__(
        self,
        app: ASGIApp,
        handlers: Mapping[HandlerKey, ExceptionHandler] | None = None,
        debug: bool = False,
    ) -> None:
        regular, server_error = split_handlers(handlers)
        if server_error is not None:
            raise ImproperlyConfigured(
                "A handler for Exception or 500 answers unhandled errors; give it to "
                "ServerErrorMiddleware(app, handler=...), the outermost layer, not to "
                "ExceptionMiddleware."
            )
        super().__init__(app, regular)
        self.debug = debug

    def add_exception_handler(self, key: HandlerKey, handler: ExceptionHandler) -> None:
        """Register *handler* for an exception class or a status / close code.

        Raises:
            ImproperlyConfigured: as for ``handlers`` in the constructor.
        """
        if key in (Exception, 500):
            raise ImproperlyConfigured(
                "A handler for Exception or 500 belongs to ServerErrorMiddleware(handler=...)."
            )
        regular, _ = split_handlers({key: handler})
        self.handlers[key] = regular[key]
