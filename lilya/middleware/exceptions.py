"""The app's exception-handler layer: your handlers, applied inside your middleware.

A ``Lilya`` app puts it between your middleware and the router (see
:mod:`lilya.apps`). It publishes the handlers in the scope, where each route
applies them first (so route middleware sees handled answers); here they are
applied to what the middleware between this layer and the routes raise. The
flow itself (handle, answer, end) is :mod:`lilya._exception_handlers`.
"""

from __future__ import annotations

from collections.abc import Mapping

from lilya._exception_handlers import (
    HANDLERS_KEY,
    ExceptionHandler,
    HandlerKey,
    handle_or_answer,
)
from lilya._recorder import enter
from lilya.types import ASGIApp, Receive, Scope, Send
from lilya.websockets import WebSocketDisconnect

__all__ = ["ExceptionHandlerMiddleware"]


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
        try:
            await self.app(scope, receive, send)
        except WebSocketDisconnect:
            raise
        except Exception as exc:
            await handle_or_answer(scope, state, receive, send, exc)
