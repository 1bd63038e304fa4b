"""The ASGI lifespan protocol: startup and shutdown hooks, and the lifespan context.

ASGI "Lifespan Protocol" (``specs/lifespan.rst``): the server sends
``lifespan.startup``, we answer ``.complete`` or ``.failed`` with a message;
then the same for ``lifespan.shutdown``. What the lifespan context yields goes
into the lifespan ``state``, which servers copy into every connection's scope.
"""

from __future__ import annotations

import contextlib
import inspect
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from lilya._handlers import call_maybe_async
from lilya.exceptions import ImproperlyConfigured
from lilya.types import Receive, Scope, Send

__all__ = ["lifespan_context", "run_lifespan"]


#: What :func:`lifespan_context` makes of any accepted lifespan.
ContextLifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]


class _SyncContext(contextlib.AbstractAsyncContextManager[Any]):
    """A sync context manager entered and exited from async code, in the loop.

    Startup and shutdown run once per process, so a blocking step there costs
    nothing that a worker thread would save (Starlette runs them so too).
    """

    def __init__(self, manager: contextlib.AbstractContextManager[Any]) -> None:
        self._manager = manager

    async def __aenter__(self) -> Any:
        return self._manager.__enter__()

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        return self._manager.__exit__(*exc_info)


def lifespan_context(lifespan: Any) -> ContextLifespan | None:
    """Return *lifespan* as ``lifespan(app) -> async context manager``, checked now.

    You may pass what both peers accept: a function returning an async
    context manager (``@asynccontextmanager``), or a bare generator function,
    async or sync, that yields once (it is wrapped as a context manager).

    Raises:
        ImproperlyConfigured: *lifespan* is not callable (a generator *object*
            is a common slip: pass the function, not its call).
    """
    if lifespan is None:
        return None
    if not callable(lifespan):
        raise ImproperlyConfigured(
            f"lifespan must be a function lifespan(app) returning an async context manager "
            f"(e.g. decorated with @contextlib.asynccontextmanager), got {lifespan!r}; pass "
            "the function itself, not the result of calling it."
        )
    if inspect.isasyncgenfunction(lifespan):
        return contextlib.asynccontextmanager(lifespan)
    if inspect.isgeneratorfunction(lifespan):
        sync_manager = contextlib.contextmanager(lifespan)

        def lifted(app: Any) -> contextlib.AbstractAsyncContextManager[Any]:
            return _SyncContext(sync_manager(app))

        return lifted
    checked: ContextLifespan = lifespan
    return checked


@contextlib.asynccontextmanager
async def _combined(
    app: Any,
    on_startup: Sequence[Callable[[], Any]],
    on_shutdown: Sequence[Callable[[], Any]],
    context: ContextLifespan | None,
) -> AsyncIterator[Any]:
    for hook in on_startup:
        await call_maybe_async(hook)
    if context is None:
        yield None
    else:
        async with context(app) as state:
            yield state
    for hook in on_shutdown:
        await call_maybe_async(hook)


async def run_lifespan(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    on_startup: Sequence[Callable[[], Any]],
    on_shutdown: Sequence[Callable[[], Any]],
    context: ContextLifespan | None,
    app: Any,
) -> None:
    """Run startup hooks, enter *context*, wait for shutdown, exit it, run shutdown hooks.

    Raises:
        Exception: what a hook or the context raised, after telling the
            server with ``lifespan.startup.failed`` / ``lifespan.shutdown.failed``
            (the traceback as the message: uvicorn prints it).
    """
    started = False
    await receive()  # lifespan.startup
    try:
        async with _combined(app, on_startup, on_shutdown, context) as state:
            if state is not None:
                if "state" not in scope:
                    # The first sentence is Starlette's, word for word.
                    raise RuntimeError(
                        'The server does not support "state" in the lifespan scope. The '
                        "lifespan yielded state; keep it on app.state instead."
                    )
                scope["state"].update(state)
            await send({"type": "lifespan.startup.complete"})
            started = True
            await receive()  # lifespan.shutdown
    except Exception:
        phase = "shutdown" if started else "startup"
        await send({"type": f"lifespan.{phase}.failed", "message": traceback.format_exc()})
        raise
    await send({"type": "lifespan.shutdown.complete"})
