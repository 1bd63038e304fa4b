"""The Channels front on memory://: configuration, lifecycle and misuse."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from lilya.channels import Channels, NotConnectedError, Position, SubscriberOverflowError
from lilya.channels._base import HistoryPage
from lilya.channels.events import decode, encode, encode_json
from lilya.exceptions import ImproperlyConfigured
from tests.channels.helpers import take, take_leave

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"history_size": -1}, "history_size"),
        ({"history_ttl": 0}, "history_ttl"),
        ({"presence_ttl": 0}, "presence_ttl"),
        ({"presence_ttl": float("inf")}, "presence_ttl"),
        ({"stall_timeout": 0}, "stall_timeout"),
        ({"stall_timeout": float("nan")}, "stall_timeout"),
        ({"presence_interval": -1}, "presence_interval"),
        ({"max_queue": 0}, "max_queue must be between 1"),
        ({"max_queue": 2.5}, "max_queue must be an int"),
    ],
)
def test_settings_out_of_range_are_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        Channels("memory://", **options)  # type: ignore[arg-type]


def test_an_unknown_url_scheme_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="memory://, redis:// or rediss://"):
        Channels("kafka://localhost")


def test_channels_can_be_built_outside_an_event_loop() -> None:
    # Apps build Channels at import time, before any loop runs.
    assert not Channels("memory://").connected
    assert not Channels("redis://127.0.0.1:6379/0").connected
    assert repr(Channels("redis://:pw@127.0.0.1/0")) == (
        "<Channels redis://:***@127.0.0.1/0 disconnected>"
    )


async def test_using_channels_before_connect_says_how_to_fix_it() -> None:
    channels = Channels("memory://")
    with pytest.raises(NotConnectedError, match=r"lifespan=channels\.lifespan"):
        await channels.publish("c", "x")
    with pytest.raises(NotConnectedError):
        await channels.history("c")
    with pytest.raises(NotConnectedError):
        await channels.presence("c")
    with pytest.raises(NotConnectedError):
        await channels.position("c")
    with pytest.raises(NotConnectedError):
        async with channels.subscribe("c"):
            pass  # pragma: no cover
    await channels.disconnect()  # harmless when not connected


async def test_connecting_twice_is_an_error() -> None:
    async with Channels("memory://") as channels:
        assert channels.connected
        assert "connected" in repr(channels)
        with pytest.raises(RuntimeError, match="already connected"):
            await channels.connect()


async def test_lifespan_connects_for_the_lifetime_of_the_app() -> None:
    channels = Channels("memory://")
    async with channels.lifespan(object()):
        assert channels.connected
        await channels.publish("c", "x")
    assert not channels.connected


async def test_disconnect_ends_iteration_of_every_subscription() -> None:
    seen: list[str] = []
    async with anyio.create_task_group() as group:
        channels = Channels("memory://")
        await channels.connect()
        sub = channels.subscribe("c")
        await sub.__aenter__()

        async def read() -> None:
            async for event in sub:
                seen.append(event.data)

        group.start_soon(read)
        await channels.publish("c", "last")
        await anyio.sleep(0.01)
        await channels.disconnect()
    assert seen == ["last"]
    assert sub.closed
    await sub.wait_closed()
    await sub.__aexit__(None, None, None)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("", {}, "non-empty str"),
        ("c", {"policy": "drop_everything"}, "policy must be one of"),
        ("c", {"max_queue": 0}, "max_queue must be between 1 and"),
    ],
)
async def test_bad_subscribe_arguments_are_refused(
    name: str, options: dict[str, object], message: str
) -> None:
    async with Channels("memory://") as channels:
        with pytest.raises(ValueError, match=message):
            channels.subscribe(name, **options)  # type: ignore[arg-type]


async def test_bad_channel_names_and_limits_are_refused() -> None:
    async with Channels("memory://") as channels:
        with pytest.raises(ValueError, match="non-empty str"):
            await channels.publish("", "x")
        with pytest.raises(ValueError, match="limit must be >= 0"):
            await channels.history("c", limit=-1)


async def test_a_subscription_reports_its_queue() -> None:
    channels = Channels("memory://", max_queue=2, policy="close")
    async with channels, channels.subscribe("c") as sub:
        assert "queued=0" in repr(sub)
        await channels.publish("c", 1)
        assert sub.queued == 1
        await channels.publish("c", 2)
        await channels.publish("c", 3)
        assert "closed" in repr(sub)
        await sub.wait_closed()
        with pytest.raises(SubscriberOverflowError, match="resubscribe with since="):
            async for _ in sub:
                pass  # pragma: no cover


async def test_a_replay_larger_than_the_queue_applies_the_policy() -> None:
    async with Channels("memory://") as channels:
        for i in range(10):
            last = await channels.publish("c", i)
        async with channels.subscribe(
            "c", since=(last.epoch, 0), max_queue=4, policy="drop_oldest"
        ) as sub:
            assert sub.dropped == 7
            gap, *kept = await take(sub, 4)
            assert (gap.type, gap.data) == ("gap", {"first": 1, "last": 7, "dropped": 7})
            assert [event.data for event in kept] == [7, 8, 9]
        async with channels.subscribe(
            "c", since=(last.epoch, 0), max_queue=4, policy="close"
        ) as sub:
            assert sub.closed
            with pytest.raises(SubscriberOverflowError):
                await sub.receive()


async def test_a_position_is_a_plain_pair() -> None:
    async with Channels("memory://") as channels:
        event = await channels.publish("c", "x")
        assert event.position == Position(event.epoch, 1) == (event.epoch, 1)


@pytest.mark.parametrize(
    ("epoch", "offset", "covered"),
    [
        ("e", 4, True),  # the oldest retained message (5) is the next one needed
        ("e", 7, True),  # more retained than needed
        ("e", 9, True),  # at the newest message: nothing to replay
        ("e", 3, False),  # message 4 was trimmed away
        ("e", 10, False),  # a position from the future
        ("other", 7, False),  # offsets of another history
    ],
)
def test_a_history_page_covers_a_gap_only_when_nothing_in_it_is_lost(
    epoch: str, offset: int, covered: bool
) -> None:
    # Retains messages 5..9 of epoch "e"; resync and since= both ask this.
    page = HistoryPage("e", top=9, first=5, events=[])
    assert page.covers(epoch, offset) is covered


async def test_memory_stores_are_shared_by_name_and_forgotten_with_their_last_user() -> None:
    async with (
        Channels("memory://shared-test") as first,
        Channels("memory://shared-test") as second,
    ):
        event = await first.publish("c", "x")
        assert (await second.position("c")) == event.position
    async with Channels("memory://shared-test") as again:
        assert (await again.position("c")).epoch != event.epoch


async def test_two_private_memory_stores_never_meet() -> None:
    async with Channels() as first, Channels() as second:
        await first.publish("c", "x")
        assert (await second.position("c")).offset == 0


def test_encode_falls_back_and_explains_refusals() -> None:
    assert encode(bytearray(b"ab")) == ("b", b"ab")
    assert encode({1: 2}) == ("j", b'{"1":2}')
    with pytest.raises(TypeError, match="Convert it"):
        encode({"x": float("nan"), "y": object()})
    with pytest.raises(TypeError, match="bytes are not"):
        encode_json(b"raw")
    assert encode_json("text") == b'"text"'
    with pytest.raises(ValueError, match="Unknown channel payload tag"):
        decode("z", b"")


async def test_disconnect_announces_the_leave_of_its_members() -> None:
    async with Channels("memory://leave-test") as observer_side:
        member_side = Channels("memory://leave-test")
        await member_side.connect()
        async with observer_side.subscribe("room") as observer:
            sub = member_side.subscribe("room", presence={"user": "ann"})
            await sub.__aenter__()
            await member_side.disconnect()
            # Joined and left within one presence interval: one net diff.
            assert await take_leave(observer) == sub.member
            assert await observer_side.presence("room") == {}
            await sub.__aexit__(None, None, None)


async def test_a_join_that_lands_while_the_member_list_is_read_is_not_lost() -> None:
    async with Channels("memory://race") as watcher, Channels("memory://race") as other:
        real = watcher._backend.presence
        joined: list[str] = []

        leaving = other.subscribe("room", presence={"n": "leaving"})
        await leaving.__aenter__()

        async def slow_presence(channel: str) -> Any:
            before = await real(channel)  # what the store said a moment ago...
            sub = other.subscribe(channel, presence={"n": "late"})
            await sub.__aenter__()  # ...then a join and a leave land before the answer
            await leaving.__aexit__(None, None, None)
            joined.append(sub.member or "")
            return before

        watcher._backend.presence = slow_presence  # type: ignore[method-assign]
        async with watcher.subscribe("room", presence={"n": "me"}) as me:
            snapshot = await take(me, 1)
        assert snapshot[0].type == "presence"
        assert joined[0] in snapshot[0].data["joined"]
        assert leaving.member not in snapshot[0].data["joined"]


async def test_a_presence_diff_a_stalled_subscriber_cannot_take_becomes_a_gap() -> None:
    async with (
        Channels("memory://", stall_timeout=0.05, presence_interval=0) as channels,
        channels.subscribe("c", max_queue=1, policy="drop_newest") as sub,
    ):
        await channels.publish("c", "fills the queue")
        async with channels.subscribe("c", presence={"n": 1}):
            with anyio.fail_after(5):
                while not sub.dropped:
                    await anyio.sleep(0.01)
        first, gap = await take(sub, 2)
    assert first.data == "fills the queue"
    assert (gap.type, gap.data["first"], gap.data["last"]) == ("gap", None, None)
    assert gap.data["dropped"] >= 1


async def test_two_tasks_can_wait_for_one_subscription_to_close() -> None:
    closed: list[int] = []
    async with anyio.create_task_group() as group:
        channels = Channels("memory://")
        await channels.connect()
        sub = channels.subscribe("c")
        await sub.__aenter__()

        async def wait(n: int) -> None:
            await sub.wait_closed()
            closed.append(n)

        group.start_soon(wait, 1)
        group.start_soon(wait, 2)
        await anyio.wait_all_tasks_blocked()  # both are waiting
        await channels.disconnect()  # closes every subscription
    await sub.__aexit__(None, None, None)
    assert sorted(closed) == [1, 2]


async def test_a_publisher_waiting_for_a_full_subscriber_is_released_when_it_leaves() -> None:
    async with Channels("memory://", stall_timeout=30) as channels:
        sub = channels.subscribe("c", max_queue=1)
        await sub.__aenter__()
        await channels.publish("c", "fills the queue")
        released = anyio.Event()

        async def publish_more() -> None:
            await channels.publish("c", "waits for room")
            released.set()

        async with anyio.create_task_group() as group:
            group.start_soon(publish_more)
            await anyio.wait_all_tasks_blocked()
            assert not released.is_set()  # waiting: the subscriber neither reads nor stalls yet
            await sub.__aexit__(None, None, None)  # ...and leaves instead
            with anyio.fail_after(5):
                await released.wait()


async def test_a_second_subscriber_of_a_channel_shares_its_listening_and_members() -> None:
    async with (
        Channels("memory://") as channels,
        channels.subscribe("c", presence={"n": 1}) as first,
        channels.subscribe("c", presence={"n": 2}) as second,
    ):
        await channels.publish("c", "to both")
        for sub in (first, second):
            events = [event async for event in _until_message(sub)]
            assert events[-1].data == "to both"
        assert len(await channels.presence("c")) == 2


async def _until_message(sub: Any) -> Any:
    with anyio.fail_after(5):
        while True:
            event = await sub.receive()
            yield event
            if event.type == "message":
                return


def test_a_gap_merged_with_a_lost_presence_event_keeps_its_offsets() -> None:
    from lilya.channels.events import Event
    from lilya.channels.subscription import _merge

    gap = Event("c", 3, "e", {"first": 2, "last": 3, "dropped": 2}, "gap")
    presence = Event("c", 3, "e", {"snapshot": False, "joined": {}, "left": {}}, "presence")
    merged = _merge(gap, presence)
    assert merged.data == {"first": 2, "last": 3, "dropped": 3}
    presence_gap = Event("c", 3, "e", {"first": None, "last": None, "dropped": 1}, "gap")
    merged = _merge(gap, presence_gap)
    assert merged.data == {"first": 2, "last": 3, "dropped": 3}


async def test_a_live_event_already_delivered_from_history_is_not_delivered_again() -> None:
    # A backend that resynced from history may then hand over, live, events
    # the replay already had: the offset says so, and it is dropped once.
    from lilya.channels.events import Event

    async with Channels("memory://") as channels, channels.subscribe("c") as sub:
        position = await channels.publish("c", "once")
        (first,) = await take(sub, 1)
        channels.deliver(Event("c", position.offset, position.epoch, "once", "message"))
        await channels.publish("c", "next")
        (second,) = await take(sub, 1)
    assert (first.data, second.data) == ("once", "next")
