"""How lilya calls a route handler: a function (connection and path params) or an ASGI app.

A function handler is called with the connection and the path parameters it
names; anything else (a class, an instance, a function of exactly
``(scope, receive, send)``) is an ASGI app. The signature is read once, when
the route is built.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread

__all__ = [
    "HandlerCall",
    "call_handler",
    "call_maybe_async",
    "is_async_callable",
    "is_function_handler",
    "name_of",
    "unwrap",
]


async def call_maybe_async(func: Callable[..., Any], *args: Any) -> Any:
    """Call *func* with *args*; await the result if it is awaitable, and return it.

    Hooks and handlers users hand lilya (lifespan hooks, exception handlers,
    ``on_error``) may be plain or ``async`` functions alike.
    """
    result = func(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def is_async_callable(func: Any) -> bool:
    """Whether calling *func* runs ``async`` code: a coroutine function, or an object with one."""
    target = unwrap(func)
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004  # an object with an async __call__
    )


async def call_handler(func: Callable[..., Any], *args: Any) -> Any:
    """Call an exception handler: ``async`` ones in the loop, plain ones in a worker thread.

    A plain handler may block (a database write, a log shipper) without
    stalling every other connection, and may reach back into the loop with
    ``anyio.from_thread.run(...)``, as under Starlette. What it returns is
    awaited if awaitable.
    """
    if is_async_callable(func):
        return await func(*args)

    def in_thread() -> list[Any]:
        # Boxed: trio refuses a worker function that returns a coroutine
        # (``lambda r, e: handle(r, e)`` over an async ``handle``).
        return [func(*args)]

    (result,) = await anyio.to_thread.run_sync(in_thread)
    if inspect.isawaitable(result):
        result = await result
    return result


def unwrap(handler: Any) -> Any:
    while isinstance(handler, functools.partial):
        handler = handler.func
    return handler


def is_function_handler(handler: Any) -> bool:
    # A function handler gets the connection and path params; anything else,
    # and a function whose parameters are exactly (scope, receive, send), is
    # an ASGI app.
    target = unwrap(handler)
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        return False
    return list(inspect.signature(handler).parameters) != ["scope", "receive", "send"]


class HandlerCall:
    """How to call a function handler: where the connection goes, which params it takes.

    The first parameter whose name is not one of the route's path parameters
    receives the connection (``request`` / ``websocket``); the others receive
    the path parameters of the same name (the route's or an enclosing
    ``Include``'s); ``**kwargs`` receives them all.
    """

    def __init__(self, handler: Callable[..., Any], param_names: frozenset[str]) -> None:
        self.handler = handler
        self.connection_by_name: str | None = None
        self.pass_connection = False
        self.takes_all = False
        names: set[str] = set()
        for parameter in inspect.signature(handler).parameters.values():
            kind = parameter.kind
            if kind is parameter.VAR_KEYWORD:
                self.takes_all = True
            elif kind is parameter.VAR_POSITIONAL:
                continue
            elif parameter.name not in param_names and not self.pass_connection:
                self.pass_connection = True
                if kind is not parameter.POSITIONAL_ONLY:
                    self.connection_by_name = parameter.name
            else:
                # The route's own params, or an enclosing Include's: which
                # ones those are is only known per connection.
                names.add(parameter.name)
        self.names = frozenset(names)

    def __call__(self, connection: Any, path_params: Mapping[str, Any]) -> Any:
        if self.takes_all:
            kwargs = dict(path_params)
        else:
            kwargs = {name: path_params[name] for name in self.names if name in path_params}
        if not self.pass_connection:
            return self.handler(**kwargs)
        if self.connection_by_name is not None:
            kwargs[self.connection_by_name] = connection
            return self.handler(**kwargs)
        return self.handler(connection, **kwargs)


def name_of(handler: Any) -> str:
    """A route's default name: a function's or class's name, else its class's (Starlette's rule)."""
    target = unwrap(handler)
    if inspect.isroutine(target) or inspect.isclass(target):
        return str(target.__name__)
    return type(target).__name__
