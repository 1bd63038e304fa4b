"""``Wakeup``: one parked task woken once, on asyncio and trio, cancellation included."""

from __future__ import annotations

import anyio
import pytest

from lilya._wakeup import Wakeup

pytestmark = pytest.mark.anyio


async def test_wait_returns_once_another_task_sets_it() -> None:
    wakeup = Wakeup()
    woken: list[bool] = []

    async def sleeper() -> None:
        await wakeup.wait()
        woken.append(wakeup.is_set())

    async with anyio.create_task_group() as group:
        group.start_soon(sleeper)
        await anyio.wait_all_tasks_blocked()
        assert woken == [] and not wakeup.is_set()
        wakeup.set()
    assert woken == [True]


async def test_a_wait_after_set_returns_at_once_and_setting_twice_is_harmless() -> None:
    wakeup = Wakeup()
    wakeup.set()
    wakeup.set()
    with anyio.fail_after(1):
        await wakeup.wait()
    assert wakeup.is_set()


async def test_a_wait_after_set_is_still_a_cancellation_point() -> None:
    wakeup = Wakeup()
    wakeup.set()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await wakeup.wait()
        pytest.fail("the wait did not checkpoint")  # pragma: no cover
    assert scope.cancelled_caught


async def test_a_cancelled_waiter_is_not_woken_later_and_set_still_works() -> None:
    wakeup = Wakeup()

    async def waiter() -> None:
        await wakeup.wait()  # what to await, not a coroutine function itself

    async with anyio.create_task_group() as group:
        group.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        group.cancel_scope.cancel()
    # The waiter has gone: setting now must neither raise nor wake anything.
    wakeup.set()
    assert wakeup.is_set()
    with anyio.fail_after(1):
        await wakeup.wait()
