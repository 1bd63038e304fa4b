"""The backend contract suite, as a kit you run against your own backend.

Every built-in backend passes these checks against its real server; a backend
you write (see :class:`~lilya.channels.Backend`) should too. They drive the
public :class:`~lilya.channels.Channels` API only, through several
``Channels`` objects on one URL (the way several processes share a server),
so they test what your users will see: order, offsets and epochs, history,
recovery, presence and expiry, backpressure and drop policies, deduplication
by ``message_id``, and one table of hostile arguments that must get the same
specific error everywhere.

Two ways in, both needing pytest (the checks use ``pytest.raises``):

- With pytest, subclass :class:`BackendContract` in a test module and give it
  your URL; every check becomes one test::

      from lilya.channels.testing import BackendContract

      class TestMyBackend(BackendContract):
          url = "mydb://127.0.0.1:7000"

- Without a test runner: ``await run_contract("mydb://127.0.0.1:7000")`` runs
  every check, raises :class:`ContractFailure` naming each one that failed,
  and returns the names that passed.

A few checks wait on timers (TTLs of 0.2 to 0.6 seconds, stall timeouts), with
generous bounds; the whole suite takes about half a minute.
"""

from __future__ import annotations

import functools
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.lowlevel
import pytest

from lilya.channels.channels import Channels
from lilya.channels.events import Event, Position
from lilya.channels.exceptions import SubscriberOverflowError
from lilya.channels.subscription import Policy, Subscription

__all__ = [
    "CHECKS",
    "HOSTILE",
    "BackendContract",
    "Check",
    "ContractFailure",
    "Make",
    "channels_maker",
    "nothing_more",
    "offsets",
    "run_contract",
    "take",
    "take_join",
    "take_leave",
    "take_type",
]

#: ``await make(**options)``: a connected :class:`Channels` on the URL under
#: test, with *options* (``history_size=5``, ``presence_ttl=0.3``, …) over the
#: suite's own; everything made is disconnected when the check ends.
Make = Callable[..., Awaitable[Channels]]
#: One check of the contract: ``await check(make)`` raises if the backend breaks it.
Check = Callable[[Make], Awaitable[None]]

#: Every check by name, in the order they run.
CHECKS: dict[str, Check] = {}

_F = TypeVar("_F", bound=Callable[..., Awaitable[None]])


def _check(func: _F) -> _F:
    CHECKS[func.__name__.removeprefix("check_")] = func
    return func


def _check_cases(**cases: dict[str, Any]) -> Callable[[_F], _F]:
    def register(func: _F) -> _F:
        name = func.__name__.removeprefix("check_")
        for case, arguments in cases.items():
            CHECKS[f"{name}[{case}]"] = functools.partial(func, **arguments)
        return func

    return register


# -- helpers a backend's own tests can use too -----------------------------------------


async def take(sub: Subscription, count: int, *, within: float = 5.0) -> list[Event]:
    """Read exactly *count* events from *sub*, failing after *within* seconds."""
    events: list[Event] = []
    with anyio.fail_after(within):
        while len(events) < count:
            events.append(await sub.receive())
    return events


async def take_type(sub: Subscription, kind: str, *, within: float = 5.0) -> Event:
    """Read events until one of type *kind* arrives; return it."""
    with anyio.fail_after(within):
        while True:
            event = await sub.receive()
            if event.type == kind:
                return event


async def nothing_more(sub: Subscription, *, within: float = 0.2) -> None:
    """Assert that *sub* gets no event for *within* seconds."""
    with anyio.move_on_after(within):
        event = await sub.receive()
        raise AssertionError(f"unexpected event {event!r}")  # pragma: no cover - a failing backend


def offsets(events: list[Event]) -> list[int]:
    """The offsets of *events*, for comparing with a ``range``."""
    return [event.offset for event in events]


async def take_join(sub: Subscription, *, within: float = 5.0) -> tuple[str, Any]:
    """Wait for a ``presence`` diff that announces a join; return its first (member, info)."""
    with anyio.fail_after(within):
        while True:
            event = await sub.receive()
            if event.type == "presence" and not event.data["snapshot"] and event.data["joined"]:
                member, info = next(iter(event.data["joined"].items()))
                return str(member), info


async def take_leave(sub: Subscription, *, within: float = 5.0) -> str:
    """Wait for a ``presence`` diff that announces a leave; return the first member who left."""
    with anyio.fail_after(within):
        while True:
            event = await sub.receive()
            if event.type == "presence" and event.data["left"]:
                return str(next(iter(event.data["left"])))


# -- the checks -----------------------------------------------------------------------


@_check
async def check_each_subscriber_gets_a_channels_events_in_publish_order(make: Make) -> None:
    publisher, reader = await make(), await make()
    async with reader.subscribe("c") as first, reader.subscribe("c") as second:
        for i in range(200):
            await publisher.publish("c", {"i": i})
        for sub in (first, second):
            events = await take(sub, 200)
            assert [event.data["i"] for event in events] == list(range(200))
            assert offsets(events) == list(range(1, 201))
            assert len({event.epoch for event in events}) == 1


@_check
async def check_offsets_count_per_channel(make: Make) -> None:
    channels = await make()
    a1 = await channels.publish("a", "x")
    b1 = await channels.publish("b", "x")
    a2 = await channels.publish("a", "y")
    assert (a1.offset, b1.offset, a2.offset) == (1, 1, 2)
    assert a1.epoch == a2.epoch
    assert await channels.position("a") == Position(a1.epoch, 2)


@_check
async def check_str_bytes_and_json_come_back_as_published(make: Make) -> None:
    channels = await make()
    async with channels.subscribe("c") as sub:
        await channels.publish("c", "text ✓")
        await channels.publish("c", b"\x00\xff")
        await channels.publish("c", {"list": (1, 2), "nested": {"ok": True}, "n": None})
        await channels.publish("c", {1: "int keys", "big": 2**70})
        events = await take(sub, 4)
    assert [event.data for event in events] == [
        "text ✓",
        b"\x00\xff",
        {"list": [1, 2], "nested": {"ok": True}, "n": None},
        {"1": "int keys", "big": 2**70},
    ]


@_check
async def check_publishing_what_json_cannot_carry_is_refused(make: Make) -> None:
    channels = await make()
    with pytest.raises(TypeError, match="JSON-serialisable"):
        await channels.publish("c", {"when": object()})
    assert (await channels.position("c")).offset == 0


@_check
async def check_history_keeps_the_last_history_size_messages(make: Make) -> None:
    channels = await make(history_size=5)
    for i in range(8):
        await channels.publish("c", i)
    assert [event.data for event in await channels.history("c")] == [3, 4, 5, 6, 7]
    assert offsets(await channels.history("c")) == [4, 5, 6, 7, 8]
    assert [event.data for event in await channels.history("c", limit=2)] == [6, 7]
    assert await channels.history("c", limit=0) == []
    assert await channels.history("never-used") == []


@_check
async def check_history_size_zero_keeps_nothing_but_counts(make: Make) -> None:
    channels = await make(history_size=0)
    await channels.publish("c", 1)
    event = await channels.publish("c", 2)
    assert event.offset == 2
    assert await channels.history("c") == []


@_check
async def check_history_ttl_forgets_history_and_starts_a_new_epoch(make: Make) -> None:
    channels = await make(history_ttl=0.2)
    first = await channels.publish("c", "old")
    await anyio.sleep(0.35)
    assert await channels.history("c") == []
    second = await channels.publish("c", "new")
    assert second.epoch != first.epoch
    assert second.offset == 1


@_check
async def check_recovery_replays_after_since_then_goes_live_without_gap_or_duplicate(
    make: Make,
) -> None:
    publisher, reader = await make(history_size=1000), await make(history_size=1000)
    for i in range(1, 11):
        last = await publisher.publish("c", i)
    since = Position(last.epoch, 4)
    done = anyio.Event()

    async def keep_publishing() -> None:
        # Publishes race with the subscribe, so some events are both in the
        # replay and live: the seam must show each exactly once.
        for i in range(11, 211):
            await publisher.publish("c", i)
            if i % 10 == 0:
                await anyio.lowlevel.checkpoint()
        done.set()

    async with anyio.create_task_group() as group:
        group.start_soon(keep_publishing)
        async with reader.subscribe("c", since=since) as sub:
            assert sub.recovered is True
            events = await take(sub, 206)
    assert [event.data for event in events] == list(range(5, 211))
    assert offsets(events) == list(range(5, 211))
    assert done.is_set()


@_check
async def check_since_at_the_newest_offset_recovers_with_nothing_to_replay(make: Make) -> None:
    channels = await make()
    last = await channels.publish("c", "a")
    async with channels.subscribe("c", since=last.position) as sub:
        assert sub.recovered is True
        await nothing_more(sub, within=0.1)
        await channels.publish("c", "b")
        assert [event.data for event in await take(sub, 1)] == ["b"]


@_check
async def check_recovery_is_refused_when_the_position_is_older_than_history(make: Make) -> None:
    channels = await make(history_size=3)
    for i in range(1, 11):
        last = await channels.publish("c", i)
    async with channels.subscribe("c", since=(last.epoch, 2)) as sub:
        assert sub.recovered is False
        await nothing_more(sub, within=0.1)
        await channels.publish("c", 11)
        assert [event.data for event in await take(sub, 1)] == [11]


@_check
async def check_recovery_is_refused_after_an_epoch_change(make: Make) -> None:
    channels = await make(history_ttl=0.2)
    old = await channels.publish("c", "before the loss")
    await anyio.sleep(0.35)
    await channels.publish("c", "after the loss")
    async with channels.subscribe("c", since=old.position) as sub:
        assert sub.recovered is False
    async with channels.subscribe("c", since=("not-an-epoch", 0)) as sub:
        assert sub.recovered is False


@_check
async def check_a_position_beyond_the_newest_offset_is_refused(make: Make) -> None:
    channels = await make()
    last = await channels.publish("c", "a")
    async with channels.subscribe("c", since=(last.epoch, 99)) as sub:
        assert sub.recovered is False


@_check
async def check_without_since_a_subscription_is_live_only(make: Make) -> None:
    channels = await make()
    await channels.publish("c", "before")
    async with channels.subscribe("c") as sub:
        assert sub.recovered is True
        await channels.publish("c", "after")
        assert [event.data for event in await take(sub, 1)] == ["after"]


@_check
async def check_presence_lists_members_and_publishes_join_and_leave(make: Make) -> None:
    observer_side, member_side = await make(), await make()
    async with observer_side.subscribe("room") as observer:
        async with member_side.subscribe("room", presence={"user": "ann"}) as ann:
            assert await take_join(observer) == (ann.member, {"user": "ann"})
            assert await observer_side.presence("room") == {ann.member: {"user": "ann"}}
        assert await take_leave(observer) == ann.member
        assert await observer_side.presence("room") == {}


@_check
async def check_a_member_gets_a_snapshot_first_then_coalesced_diffs(make: Make) -> None:
    first_side, other_side = await make(presence_interval=0.2), await make(presence_interval=0.2)
    async with first_side.subscribe("room", presence={"n": 0}) as first:
        snapshot = await take_type(first, "presence")
        assert snapshot.data == {"snapshot": True, "joined": {}, "left": {}}
        assert await take_join(first) == (first.member, {"n": 0})  # its own join, as a diff
        subs = [other_side.subscribe("room", presence={"n": i}) for i in range(1, 21)]
        for sub in subs:
            await sub.__aenter__()
        await subs[-1].__aexit__(None, None, None)
        # Twenty joins and a leave, in a burst: a handful of presence events,
        # not twenty-one, whose net effect is exact.
        members = {first.member: {"n": 0}}
        events = 0
        expected = {first.member: {"n": 0}, **{s.member: {"n": i + 1} for i, s in enumerate(subs)}}
        del expected[subs[-1].member]
        with anyio.fail_after(10):
            while members != expected:
                event = await first.receive()
                assert event.type == "presence", event  # nothing is published to "room"
                events += 1
                members.update(event.data["joined"])
                for gone in event.data["left"]:
                    members.pop(gone, None)
        assert events <= 4
        assert members == await first_side.presence("room")
        # A late joiner's snapshot already holds everyone.
        async with first_side.subscribe("room", presence={"n": 99}) as late:
            snap = await take_type(late, "presence")
            assert snap.data["snapshot"] is True
            assert set(snap.data["joined"]) == set(expected)
        for sub in subs[:-1]:
            await sub.__aexit__(None, None, None)


@_check
async def check_join_and_leave_do_not_enter_history(make: Make) -> None:
    channels = await make()
    async with channels.subscribe("room", presence={"user": "bob"}):
        pass
    assert await channels.history("room") == []
    assert (await channels.position("room")).offset == 0


@_check
async def check_a_dead_process_drops_out_of_presence_within_the_ttl(make: Make) -> None:
    ttl = 0.6
    observer_side, doomed = await make(presence_ttl=ttl), await make(presence_ttl=ttl)
    async with observer_side.subscribe("room") as observer:
        sub = doomed.subscribe("room", presence={"user": "zed"})
        await sub.__aenter__()
        await take_join(observer)
        assert sub.member in await observer_side.presence("room")
        crash(doomed)
        started = time.monotonic()
        left = await take_leave(observer, within=ttl * 4)
        elapsed = time.monotonic() - started
        assert left == sub.member
        assert elapsed <= ttl + ttl / 3 + 0.5
        assert await observer_side.presence("room") == {}


@_check
async def check_presence_of_a_dead_process_expires_even_with_nobody_listening(make: Make) -> None:
    ttl = 0.3
    reader, doomed = await make(presence_ttl=ttl), await make(presence_ttl=ttl)
    sub = doomed.subscribe("room", presence={"user": "zed"})
    await sub.__aenter__()
    assert len(await reader.presence("room")) == 1
    crash(doomed)
    await anyio.sleep(ttl + 0.2)
    assert await reader.presence("room") == {}


@_check
async def check_live_members_stay_present_past_the_ttl(make: Make) -> None:
    channels = await make(presence_ttl=0.3)
    async with channels.subscribe("room", presence={"user": "amy"}) as sub:
        await anyio.sleep(0.8)
        assert await channels.presence("room") == {sub.member: {"user": "amy"}}


@_check
async def check_a_burst_beyond_max_queue_reaches_a_reader_that_keeps_up_whole_and_in_order(
    make: Make,
) -> None:
    # The publisher waits for room at max_queue instead of dropping: a burst
    # is not a stall.
    channels = await make()
    count = 2000
    async with channels.subscribe("c", max_queue=10) as reader:
        async with anyio.create_task_group() as group:

            async def publish_all() -> None:
                for i in range(count):
                    await channels.publish("c", i)

            group.start_soon(publish_all)
            events = await take(reader, count, within=30)
        assert [event.data for event in events] == list(range(count))
        assert reader.dropped == 0


@_check
async def check_a_slow_subscriber_that_keeps_taking_events_is_waited_for_not_dropped(
    make: Make,
) -> None:
    # One event per 0.1 s never empties a queue of 4 to its half within the
    # 0.3 s stall_timeout, but it is progress: the publisher keeps waiting.
    channels = await make(stall_timeout=0.3)
    async with channels.subscribe("c", max_queue=4) as slow:
        got: list[int] = []

        async def read_slowly() -> None:
            while len(got) < 12:
                got.append((await slow.receive()).data)
                await anyio.sleep(0.1)

        async with anyio.create_task_group() as group:
            group.start_soon(read_slowly)
            for i in range(12):
                await channels.publish("c", i)
        assert got == list(range(12))
        assert slow.dropped == 0
        assert not slow.closed


@_check
async def check_a_queue_of_one_still_names_what_drop_oldest_lost(make: Make) -> None:
    channels = await make(stall_timeout=0.1)
    async with (
        channels.subscribe("c", max_queue=1, policy="drop_oldest") as sub,
        channels.subscribe("c") as witness,
    ):
        for i in range(4):
            await channels.publish("c", i)
        # Live delivery may lag the publish (a Redis reader): once the witness
        # has all four, so has sub, for one delivery reaches both.
        await take(witness, 4)
        gap, last = await take(sub, 2)
        assert (gap.type, gap.data) == ("gap", {"first": 1, "last": 3, "dropped": 3})
        assert (last.type, last.data) == ("message", 3)


@_check_cases(
    drop_oldest={"policy": "drop_oldest", "expected": ["gap:1-8:8", 8, 9]},
    drop_newest={"policy": "drop_newest", "expected": [0, 1, 2, "gap:4-10:7"]},
)
async def check_a_dropping_policy_tells_the_stalled_subscriber_which_offsets_it_lost(
    make: Make, policy: Policy, expected: list[Any]
) -> None:
    channels = await make(stall_timeout=0.2)
    async with (
        channels.subscribe("c", max_queue=3, policy=policy) as slow,
        channels.subscribe("c") as fast,
    ):
        for i in range(10):
            await channels.publish("c", i)
        await take(fast, 10)
        events = await take(slow, len(expected))
        seen = [
            f"gap:{e.data['first']}-{e.data['last']}:{e.data['dropped']}"
            if e.type == "gap"
            else e.data
            for e in events
        ]
        assert seen == expected
        gap = next(e for e in events if e.type == "gap")
        assert slow.dropped == gap.data["dropped"]
    # The gap is recoverable: since=(epoch, first - 1) replays what was lost.
    first, last = gap.data["first"], gap.data["last"]
    async with channels.subscribe("c", since=(gap.epoch, first - 1)) as again:
        assert again.recovered
        assert offsets(await take(again, last - first + 1)) == list(range(first, last + 1))


@_check
async def check_close_policy_ends_the_slow_subscription_only(make: Make) -> None:
    channels = await make(stall_timeout=0.2)
    async with (
        channels.subscribe("c", max_queue=3, policy="close") as slow,
        channels.subscribe("c") as fast,
    ):
        for i in range(10):
            await channels.publish("c", i)
        assert [event.data for event in await take(fast, 10)] == list(range(10))
        assert slow.closed
        assert slow.dropped == 4  # three queued and the one that did not fit
        with pytest.raises(SubscriberOverflowError) as caught:
            await slow.receive()
        assert (caught.value.channel, caught.value.max_queue) == ("c", 3)
        await channels.publish("c", "later")
        assert [event.data for event in await take(fast, 1)] == ["later"]


@_check
async def check_a_stalled_subscriber_does_not_delay_the_publisher_or_others(make: Make) -> None:
    channels = await make(stall_timeout=0.2)
    count = 300
    async with (
        channels.subscribe("c", max_queue=10, policy="drop_newest") as _stalled,
        channels.subscribe("c") as reader,
    ):
        started = time.monotonic()
        for i in range(count):
            await channels.publish("c", i)
        publish_time = time.monotonic() - started
        events = await take(reader, count)
        delivery_time = time.monotonic() - started
    assert [event.data for event in events] == list(range(count))
    assert _stalled.dropped == count - 10
    # The publisher waits for the stalled reader once, stall_timeout, and never
    # again. Waiting on every publish past its queue would take
    # (count - 10) * stall_timeout = 58 s: the bound is a third of that, so a
    # loaded machine does not fail it and a backend that waits each time does.
    waiting_every_time = (count - 10) * 0.2
    assert publish_time < waiting_every_time / 3
    assert delivery_time < waiting_every_time / 3


def crash(channels: Channels) -> None:
    """Make *channels* behave like a process that died: no heartbeat, no cleanup.

    Its heartbeat stops and it forgets its members, so nothing announces
    their leave; only the TTL can drop them.
    """
    assert channels._heartbeat_scope is not None
    channels._heartbeat_scope.cancel()
    for local in channels._locals.values():
        local.members.clear()


# -- hostile input: one table, the same answer from every backend ------------------------

#: (what is called, its arguments, the exception, a fragment of its message). Every
#: row runs on every backend, so they all answer each bad call identically.
HOSTILE: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("publish", {"channel": ""}, ValueError, "A channel name must be a non-empty str"),
    ("publish", {"channel": 7}, TypeError, "A channel name must be a str, got int"),
    ("publish", {"channel": b"c"}, TypeError, "A channel name must be a str, got bytes"),
    ("publish", {"channel": None}, TypeError, "A channel name must be a str, got NoneType"),
    ("publish", {"channel": "a\ud800"}, ValueError, "lone surrogate at index 1"),
    ("publish", {"channel": "x" * 1025}, ValueError, "at most 1024 bytes of UTF-8"),
    ("publish", {"channel": "é" * 513}, ValueError, "at most 1024 bytes of UTF-8"),
    ("publish", {"data": "\udfff"}, ValueError, "lone surrogate at index 0"),
    ("publish", {"data": {"a": ["\ud800"]}}, ValueError, "lone surrogate"),
    ("publish", {"data": object()}, TypeError, "JSON-serialisable"),
    ("publish", {"data": {1j: 1}}, TypeError, "JSON-serialisable"),
    ("publish", {"message_id": ""}, ValueError, "message_id must be a non-empty str"),
    ("publish", {"message_id": 5}, TypeError, "message_id must be a str, got int"),
    ("publish", {"message_id": "m" * 257}, ValueError, "at most 256 bytes of UTF-8"),
    ("publish", {"message_id": "\ud800"}, ValueError, "lone surrogate"),
    ("history", {"channel": ""}, ValueError, "A channel name must be a non-empty str"),
    ("history", {"limit": -1}, ValueError, "limit must be >= 0"),
    ("history", {"limit": 1.5}, TypeError, "limit must be an int or None, got float"),
    ("history", {"limit": "5"}, TypeError, "limit must be an int or None, got str"),
    ("history", {"limit": True}, TypeError, "limit must be an int or None, got bool"),
    ("position", {"channel": 3.0}, TypeError, "A channel name must be a str, got float"),
    ("presence", {"channel": "\ud800"}, ValueError, "lone surrogate"),
    ("subscribe", {"channel": ""}, ValueError, "A channel name must be a non-empty str"),
    ("subscribe", {"since": ("e",)}, TypeError, "since must be a Position or an (epoch"),
    ("subscribe", {"since": ("e", 1, 2)}, TypeError, "since must be a Position or an (epoch"),
    ("subscribe", {"since": "e:1"}, TypeError, "since must be a Position or an (epoch"),
    ("subscribe", {"since": ["e", 1]}, TypeError, "since must be a Position or an (epoch"),
    ("subscribe", {"since": ("", 1)}, ValueError, "The epoch of since must be a non-empty"),
    ("subscribe", {"since": (1, 1)}, TypeError, "The epoch of since must be a str, got int"),
    ("subscribe", {"since": ("\ud800", 1)}, ValueError, "lone surrogate"),
    ("subscribe", {"since": ("e" * 65, 1)}, ValueError, "at most 64 bytes"),
    ("subscribe", {"since": ("e", -1)}, ValueError, "between 0 and 2**53 - 1, got -1"),
    ("subscribe", {"since": ("e", 10**30)}, ValueError, "between 0 and 2**53 - 1"),
    ("subscribe", {"since": ("e", 2**53)}, ValueError, "between 0 and 2**53 - 1"),
    ("subscribe", {"since": ("e", 1.5)}, TypeError, "offset of since must be an int, got float"),
    ("subscribe", {"since": ("e", "1")}, TypeError, "offset of since must be an int, got str"),
    ("subscribe", {"since": ("e", True)}, TypeError, "offset of since must be an int, got bool"),
    ("subscribe", {"max_queue": 0}, ValueError, "max_queue must be between 1 and"),
    ("subscribe", {"max_queue": -5}, ValueError, "max_queue must be between 1 and"),
    ("subscribe", {"max_queue": 10**30}, ValueError, "max_queue must be between 1 and"),
    ("subscribe", {"max_queue": 1.5}, TypeError, "max_queue must be an int, got float"),
    ("subscribe", {"max_queue": True}, TypeError, "max_queue must be an int, got bool"),
    ("subscribe", {"policy": "drop_all"}, ValueError, "policy must be one of"),
    ("subscribe", {"policy": 1}, ValueError, "policy must be one of"),
    ("subscribe", {"presence": object()}, TypeError, "JSON-serialisable"),
    ("subscribe", {"presence": b"bytes"}, TypeError, "bytes are not"),
    ("subscribe", {"presence": {"nick": "\ud800"}}, ValueError, "lone surrogate"),
]


async def _call_hostile(channels: Channels, operation: str, arguments: dict[str, Any]) -> None:
    arguments = {"channel": "hostile", **arguments}
    channel = arguments.pop("channel")
    if operation == "publish":
        await channels.publish(
            channel, arguments.get("data", "x"), message_id=arguments.get("message_id")
        )
    elif operation == "history":
        await channels.history(channel, **arguments)
    elif operation == "position":
        await channels.position(channel)
    elif operation == "presence":
        await channels.presence(channel)
    else:
        async with channels.subscribe(channel, **arguments):
            pass  # pragma: no cover - every row is refused


async def check_hostile_arguments_get_the_same_specific_error_on_every_backend(
    make: Make, operation: str, arguments: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    channels = await make()
    with pytest.raises(error) as info:
        await _call_hostile(channels, operation, arguments)
    assert type(info.value) is error  # not a subclass such as UnicodeEncodeError
    assert fragment in str(info.value)
    # Nothing was half done: the channel is as it was.
    assert await channels.position("hostile") == Position(
        (await channels.position("hostile"))[0], 0
    )


@_check_cases(
    unknown_epoch={"arguments": {"since": ("no-such-epoch", 99_999_999_999_999)}},
    largest_offset={"arguments": {"since": ("e", 2**53 - 1)}},
    another_epoch_at_zero={"arguments": {"since": Position("e", 0)}},
)
async def check_positions_at_the_edge_of_the_range_are_refused_as_recovery_not_as_errors(
    make: Make, arguments: dict[str, Any]
) -> None:
    channels = await make()
    await channels.publish("edge", "x")
    async with channels.subscribe("edge", **arguments) as sub:
        assert not sub.recovered


@_check
async def check_a_limit_beyond_anything_retained_returns_all_of_history(make: Make) -> None:
    channels = await make()
    for i in range(3):
        await channels.publish("all", i)
    assert [event.data for event in await channels.history("all", limit=10**30)] == [0, 1, 2]


# -- idempotent publishing -----------------------------------------------------------


@_check
async def check_a_retry_with_the_same_message_id_is_delivered_once(make: Make) -> None:
    publisher, reader = await make(), await make()
    async with reader.subscribe("c") as sub:
        first = await publisher.publish("c", {"text": "hi"}, message_id="m-1")
        again = await publisher.publish("c", {"text": "hi"}, message_id="m-1")
        other = await publisher.publish("c", {"text": "hi"}, message_id="m-2")
        plain = await publisher.publish("c", {"text": "hi"})
        assert (first.offset, again.offset, other.offset, plain.offset) == (1, 1, 2, 3)
        assert again.epoch == first.epoch
        assert offsets(await take(sub, 3)) == [1, 2, 3]
        await nothing_more(sub)
    assert offsets(await publisher.history("c")) == [1, 2, 3]


@_check
async def check_message_ids_are_remembered_for_the_history_window_only(make: Make) -> None:
    channels = await make(history_size=3)
    assert (await channels.publish("c", "x", message_id="a")).offset == 1
    assert (await channels.publish("c", "x", message_id="a")).offset == 1
    for i in range(3):
        await channels.publish("c", i)
    # "a" left the window (it is no longer in history either): a new message.
    assert (await channels.publish("c", "x", message_id="a")).offset == 5
    assert (await channels.publish("other", "x", message_id="a")).offset == 1  # per channel
    for name in "bcde":  # four ids in a window of three: "b" is forgotten
        await channels.publish("ids", name, message_id=name)
    assert (await channels.publish("ids", "b", message_id="b")).offset == 5
    assert (await channels.publish("ids", "e", message_id="e")).offset == 4


@_check
async def check_without_history_message_ids_deduplicate_nothing(make: Make) -> None:
    channels = await make(history_size=0)
    await channels.publish("c", "x", message_id="a")
    assert (await channels.publish("c", "x", message_id="a")).offset == 2


for _index, _row in enumerate(HOSTILE):
    CHECKS[
        f"hostile_arguments_get_the_same_specific_error_on_every_backend[{_row[0]}-{_index}]"
    ] = functools.partial(
        check_hostile_arguments_get_the_same_specific_error_on_every_backend,
        operation=_row[0],
        arguments=_row[1],
        error=_row[2],
        fragment=_row[3],
    )


# -- running it -------------------------------------------------------------------------


@asynccontextmanager
async def channels_maker(url: str, **options: Any) -> AsyncIterator[Make]:
    """Yield a :data:`Make` for *url*; every ``Channels`` it made is disconnected at exit.

    Args:
        url: the backend under test.
        options: ``Channels`` options for every object made (a ``key_prefix``
            unique to the run, say); a check's own options win over them.
    """
    opened: list[Channels] = []

    async def make(**overrides: Any) -> Channels:
        channels = Channels(url, **{**options, **overrides})
        await channels.connect()
        opened.append(channels)
        return channels

    try:
        yield make
    finally:
        for channels in reversed(opened):
            await channels.disconnect()


class ContractFailure(AssertionError):
    """Some checks of the contract failed against your backend.

    Attributes:
        failures: ``{check name: the traceback of its failure}``.
    """

    def __init__(self, url: str, failures: dict[str, str]) -> None:
        names = "\n".join(f"  - {name}" for name in failures)
        super().__init__(
            f"{len(failures)} of the backend contract's checks failed on {url}:\n{names}\n"
            "The first one's traceback:\n" + next(iter(failures.values()))
        )
        self.failures = failures


async def run_contract(url: str, *, only: Iterable[str] | None = None, **options: Any) -> list[str]:
    """Run every check (or those named in *only*) against *url*, without pytest's runner.

    Each check gets fresh ``Channels`` objects with a ``key_prefix`` of its
    own (unless *options* sets one), so checks never see each other's data.

    Args:
        url: the backend under test.
        only: names from :data:`CHECKS` to run.
        options: ``Channels`` options for every object made.

    Returns:
        The names of the checks that passed (all of them, when it returns).

    Raises:
        ContractFailure: one or more checks failed; it names them all.
        KeyError: a name in *only* is not a check.
    """
    names = list(CHECKS) if only is None else list(only)
    for name in names:
        if name not in CHECKS:
            raise KeyError(f"No contract check named {name!r}; see lilya.channels.testing.CHECKS.")
    failures: dict[str, str] = {}
    # The tests run every line from here on (a passing and a failing run), but
    # coverage (7.x, Python 3.11) stops recording a frame once it has awaited
    # Channels.disconnect() in channels_maker's exit; hence the pragmas.
    for name in names:
        failure = await _run_check(url, name, options)
        if failure is not None:  # pragma: no cover
            failures[name] = failure
    if failures:  # pragma: no cover
        raise ContractFailure(url, failures)
    return names  # pragma: no cover - asserted by tests/channels/test_contract.py


async def _run_check(url: str, name: str, options: dict[str, Any]) -> str | None:
    """Run one check on fresh ``Channels``; return its failure's traceback, or ``None``."""
    prefix = {"key_prefix": f"lilya-contract:{uuid.uuid4().hex}"}
    try:
        async with channels_maker(url, **{**prefix, **options}) as make:
            await CHECKS[name](make)
    # See run_contract: traced by the tests, not recorded by coverage.
    except Exception:  # pragma: no cover
        return traceback.format_exc()
    return None  # pragma: no cover


class BackendContract:
    """Subclass it in a pytest module to run the whole contract against your backend.

    Set :attr:`url`, or override the ``channels_url`` fixture when the URL is
    only known at run time (a server a fixture starts). Each check runs as
    ``test_backend_contract[<check name>]`` with a ``key_prefix`` of its own;
    override :meth:`cleanup` to delete what a check left on the server. The
    tests are anyio tests: they run on the ``anyio_backend`` fixture in scope
    (anyio's default is asyncio; override it in the subclass for trio).
    """

    #: The backend under test.
    url: ClassVar[str] = ""
    #: ``Channels`` options for every object the checks make.
    options: ClassVar[dict[str, Any]] = {}

    @pytest.fixture
    def channels_url(self) -> str:
        """The URL under test: :attr:`url` unless you override this fixture."""
        if not self.url:
            raise TypeError(
                f"{type(self).__name__} must set url = '<scheme>://...' or override the "
                "channels_url fixture."
            )
        return self.url

    @pytest.fixture
    async def contract_make(self, channels_url: str) -> AsyncIterator[Make]:
        """The :data:`Make` of one check, on its own key prefix."""
        prefix = f"lilya-contract:{uuid.uuid4().hex}"
        try:
            async with channels_maker(
                channels_url, **{"key_prefix": prefix, **self.options}
            ) as make:
                yield make
        finally:
            self.cleanup(channels_url, prefix)

    def cleanup(self, url: str, key_prefix: str) -> None:
        """Delete what one check wrote under *key_prefix* (by default: nothing)."""

    @pytest.mark.anyio
    @pytest.mark.parametrize("check", list(CHECKS))
    async def test_backend_contract(self, contract_make: Make, check: str) -> None:
        """One check of the contract, named by the test's parameter."""
        await CHECKS[check](contract_make)
