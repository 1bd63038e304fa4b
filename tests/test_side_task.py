"""SideTask: a task outside the caller's cancel scopes, ended and joined by hand."""

from __future__ import annotations

import contextvars

import anyio
import pytest
import trio

from lilya._side_task import SideTask

pytestmark = pytest.mark.anyio

COLOUR: contextvars.ContextVar[str] = contextvars.ContextVar("colour", default="none")


async def test_join_waits_for_the_function_and_it_saw_the_callers_context() -> None:
    seen: list[str] = []

    async def work() -> None:
        await anyio.sleep(0.01)
        seen.append(COLOUR.get())

    COLOUR.set("blue")
    side = SideTask(work)
    running = not side.done
    await side.join()
    assert running
    assert side.done
    assert seen == ["blue"]


async def test_join_raises_the_functions_error_as_itself_and_only_once() -> None:
    async def work() -> None:
        raise LookupError("no such room")

    side = SideTask(work)
    with pytest.raises(LookupError, match="no such room"):
        await side.join()
    await side.join()  # the error was handed over once


async def test_a_task_cancelled_before_it_ran_never_runs_its_function() -> None:
    ran: list[bool] = []

    async def work() -> None:
        ran.append(True)

    side = SideTask(work)
    side.cancel()
    side.cancel()  # twice is once
    await side.join()
    assert ran == []


async def test_cancel_ends_a_waiting_function_and_join_raises_nothing() -> None:
    started = anyio.Event()

    async def work() -> None:
        started.set()
        await anyio.sleep_forever()

    side = SideTask(work)
    await started.wait()
    side.cancel()
    await side.join()
    assert side.done
    side.cancel()  # after the end: nothing


async def test_wait_can_be_cancelled_without_ending_the_task() -> None:
    release = anyio.Event()

    async def work() -> None:
        await release.wait()

    side = SideTask(work)
    with anyio.move_on_after(0.02):
        await side.wait()
    assert not side.done
    release.set()
    await side.wait()
    assert side.done


async def test_join_outlasts_the_callers_cancellation_until_the_task_has_ended() -> None:
    """A caller cancelled while it joins still waits: no task outlives the one that owns it."""
    ended: list[bool] = []
    started = anyio.Event()

    async def slow_to_end() -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.1)
            ended.append(True)

    side = SideTask(slow_to_end)
    await started.wait()
    with anyio.move_on_after(0.02):
        side.cancel()
        await side.join()
    assert ended == [True]


def test_a_trio_side_task_still_running_when_the_run_ends_is_cancelled_quietly() -> None:
    sides: list[SideTask] = []

    async def main() -> None:
        sides.append(SideTask(trio.sleep_forever))
        await trio.sleep(0)  # it starts, and waits

    trio.run(main)
    assert sides[0].done
