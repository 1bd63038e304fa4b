"""One task beside the current one, outside its cancel scopes: started, ended and joined by hand.

Why not an ``anyio`` task group: a group is the right tool when the tasks'
lifetimes nest in the caller's, but two places in lilya need less, or other:

- :func:`~lilya.channels.relay` runs one side of a socket in a second task for
  the whole life of the connection. On anyio 4.16 a task group and its
  ``start_soon`` cost about 4 KB per socket (a cancel scope for the group and
  one for the task's handle, an ``Event`` and its deque, a coroutine wrapper,
  weak sets); at 10,000 idle sockets that is 40 MB for bookkeeping. A bare
  asyncio task is a tenth of it.
- :meth:`~lilya.channels.Channels.connect` may be called first inside a
  WebSocket handler (connected on first use, where the server runs no
  lifespan). A task group entered there belongs to the handler's task, whose
  cancel scopes it then crosses when the handler returns: anyio refuses that
  ("Attempted to exit a cancel scope that isn't the current task's current
  cancel scope"). The channels' background work must live in a task of its
  own, which no handler's scopes contain.

:class:`SideTask` is that task: on asyncio a plain ``loop.create_task`` (no
anyio bookkeeping), on trio a system task (trio's only task without a
nursery) running in a cancel scope of its own. It has no parent scope, so
whoever starts it owns it: :meth:`SideTask.cancel` ends it, and
:meth:`SideTask.join` waits for it however the caller is being cancelled
(a task left running would outlive the connection it serves), then raises
what the function raised, as itself. The function runs in a copy of the
caller's context variables, as in any new task.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any

from lilya._wakeup import Wakeup

__all__ = ["SideTask"]


class SideTask:
    """Run ``function()`` in a task of its own, now; see the module docstring for why.

    Args:
        function: what the task runs (an ``async def``), called with *args*.
    """

    __slots__ = ("_args", "_cancelled", "_done", "_error", "_function", "_handle")

    def __init__(self, function: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        self._cancelled = False
        self._error: BaseException | None = None
        self._done = Wakeup()
        #: The asyncio task, or the trio cancel scope the function runs in (once it runs).
        self._handle: Any = None
        loop = asyncio._get_running_loop()
        if loop is not None:
            # The function's own coroutine is the task: no wrapper frame per task.
            task = loop.create_task(function(*args))
            task.add_done_callback(self._finished)
            self._handle = task
        else:
            import trio

            self._function: Callable[..., Coroutine[Any, Any, None]] = function
            self._args: tuple[Any, ...] = args
            trio.lowlevel.spawn_system_task(self._run_trio, context=contextvars.copy_context())

    @property
    def done(self) -> bool:
        """Whether the function has ended (returned, raised or was cancelled)."""
        return self._done.is_set()

    def cancel(self) -> None:
        """Cancel the function where it waits; nothing if it has ended. Any task may call it."""
        if self._cancelled or self.done:
            return
        self._cancelled = True
        if self._handle is not None:
            # asyncio: a task that has not run yet never runs the function.
            self._handle.cancel()
        # else (trio): it has not run yet, and it returns as soon as it starts.

    async def wait(self) -> None:
        """Wait until the function has ended, without cancelling it; you may cancel this wait."""
        await self._done.wait()

    async def join(self) -> None:
        """Wait until the function has ended, even while you are being cancelled; raise its error.

        A cancellation that reaches you meanwhile is raised once the task has
        ended. Cancel the task first unless you know it ends by itself.

        Raises:
            BaseException: what the function raised (its cancellation excepted).
        """
        interrupted: BaseException | None = None
        while not self.done:
            try:
                await self._wait_shielded()
            except BaseException as exc:  # a cancellation of yours: kept for later
                interrupted = interrupted or exc
        if interrupted is not None:
            raise interrupted
        error, self._error = self._error, None
        if error is not None:
            raise error

    async def _wait_shielded(self) -> None:
        if isinstance(self._handle, asyncio.Task):
            # asyncio.wait() never cancels what it waits for.
            await asyncio.wait((self._handle,))
            return
        import trio

        with trio.CancelScope(shield=True):
            await self._done.wait()

    def _finished(self, task: asyncio.Task[None]) -> None:
        # Cancelled: by cancel(), or by the loop as it shuts down; the task just ends.
        if not task.cancelled():
            self._error = task.exception()
        self._done.set()

    async def _run_trio(self) -> None:
        import trio

        try:
            with trio.CancelScope() as self._handle:
                if not self._cancelled:
                    await self._function(*self._args)
        except trio.Cancelled:
            pass  # the system nursery's, as the run ends
        except BaseException as exc:  # a system task must not raise: the caller gets it
            self._error = exc
        finally:
            self._done.set()
