"""A one-shot wake-up for one parked task: the part of ``anyio.Event`` the hot paths use.

Why not ``anyio.Event``: a channel subscriber parks once per event it waits
for, so at one publication per wake-up (the common case of a live chat) the
cost of the event object *is* the cost of fan-out. ``anyio.Event()`` asks
sniffio which library runs (a context-variable lookup and a task lookup),
builds anyio's wrapper and an ``asyncio.Event`` inside it, and its ``wait``
makes a Future besides; profiled at 1,000 subscribers, that was a fifth of
lilya's time per delivered frame. :class:`Wakeup` finds the running asyncio
loop with one C call and parks on one Future; under trio (no asyncio loop
runs) it parks the task itself with trio's low-level API. There is nothing
else: exactly one task may wait, and a wake-up cannot be un-set, which is all
a subscriber's queue and a publisher waiting for room need.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import anyio.lowlevel

__all__ = ["Wakeup"]


class Wakeup:
    """Wake one task once; :meth:`set` may come before or after :meth:`wait`."""

    __slots__ = ("_future", "_set", "_task")

    def __init__(self) -> None:
        self._set = False
        self._future: asyncio.Future[None] | None = None
        self._task: Any = None  # the parked trio task

    def is_set(self) -> bool:
        """Whether :meth:`set` was called."""
        return self._set

    def set(self) -> None:
        """Wake the waiting task, if any; later waits return at once."""
        if self._set:
            return
        self._set = True
        future = self._future
        if future is not None:
            if not future.done():  # a cancelled waiter left a cancelled future behind
                future.set_result(None)
        elif self._task is not None:
            import trio

            task, self._task = self._task, None
            trio.lowlevel.reschedule(task)

    def wait(self) -> Awaitable[None]:
        """Await this: it returns once :meth:`set` has been called (a checkpoint if it already was).

        A plain method that returns what to await, not a coroutine: on
        asyncio that is the Future itself, so a parked subscriber (every idle
        socket) holds no frame of this method while it waits.
        """
        if self._set:
            return anyio.lowlevel.checkpoint()
        loop = asyncio._get_running_loop()
        if loop is not None:
            future: asyncio.Future[None] = loop.create_future()
            self._future = future
            return future
        return self._park_trio()

    async def _park_trio(self) -> None:
        import trio

        self._task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            # Cancelled while parked: forget the task so that a later set()
            # does not reschedule a task that has moved on.
            self._task = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
