"""Middleware: ``DefineMiddleware`` to declare it, and the built-in middleware modules.

Declare middleware on the app, on an ``Include`` or on a single route::

    Lilya(routes, middleware=[DefineMiddleware(TrustedHostMiddleware, allowed_hosts=["x.org"])])

A middleware class takes the ASGI app it wraps as its first argument, then your
arguments, and is itself an ASGI app. In every list, the **first** entry is the
**outermost**: it sees the connection first and the answer last. Around all of
them, the app puts the server-error middleware; inside them, its
exception-handler layer, then the router.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from lilya.exceptions import ImproperlyConfigured
from lilya.types import ASGIApp

__all__ = ["DefineMiddleware", "wrap_middleware"]


class DefineMiddleware:
    """A middleware declared with its arguments, built when the app is.

    Args:
        cls: a class (or factory) called as ``cls(app, *args, **kwargs)`` that
            returns an ASGI app.
        *args, **kwargs: passed on after the wrapped app.
    """

    def __init__(self, cls: Any, /, *args: Any, **kwargs: Any) -> None:
        if not callable(cls):
            raise ImproperlyConfigured(
                f"DefineMiddleware needs a middleware class or factory, got {cls!r}."
            )
        self.cls = cls
        self.args = args
        self.kwargs = kwargs

    def __call__(self, app: ASGIApp) -> ASGIApp:
        """Build the middleware around *app*."""
        middleware: ASGIApp = self.cls(app, *self.args, **self.kwargs)
        return middleware

    def __iter__(self) -> Iterator[Any]:
        # Unpacks as (cls, args, kwargs), like Starlette's Middleware.
        return iter((self.cls, self.args, self.kwargs))

    def __repr__(self) -> str:
        parts = [getattr(self.cls, "__name__", repr(self.cls))]
        parts += [repr(arg) for arg in self.args]
        parts += [f"{key}={value!r}" for key, value in self.kwargs.items()]
        return f"DefineMiddleware({', '.join(parts)})"


def wrap_middleware(app: ASGIApp, middleware: Sequence[DefineMiddleware] | None) -> ASGIApp:
    """Wrap *app* in *middleware*, the first entry outermost.

    Raises:
        ImproperlyConfigured: an entry is not a :class:`DefineMiddleware`.
    """
    for entry in reversed(middleware or ()):
        if not isinstance(entry, DefineMiddleware):
            raise ImproperlyConfigured(
                f"Middleware entries must be DefineMiddleware(cls, ...), got {entry!r}."
            )
        app = entry(app)
    return app
