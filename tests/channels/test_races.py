"""The Channels front where backend calls interleave with live events, on a scripted memory://.

Each test swaps in a memory backend that does one thing at an awkward moment
(publishes while a subscriber reads history, refuses a presence join), so the
front's bookkeeping for that moment runs deterministically.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from lilya.channels import Channels
from lilya.channels._base import HistoryPage
from lilya.channels.events import TAG_TEXT, Event
from lilya.channels.memory import MemoryBackend
from tests.channels.helpers import take

pytestmark = pytest.mark.anyio


class Scripted(MemoryBackend):
    """memory:// with hooks: a publish during the next history read, a failing join."""

    publish_during_history: list[Any]
    publish_after_history: list[Any]
    refuse_join: bool

    async def history(self, channel: str, *, after: int | None, limit: int | None) -> HistoryPage:
        while self.publish_during_history:
            # Arrives live while the subscriber is still catching up, and is
            # in the page read right after: it must be delivered once.
            await self.publish(channel, TAG_TEXT, b"", self.publish_during_history.pop(0), None)
        page = await super().history(channel, after=after, limit=limit)
        while self.publish_after_history:
            # Arrives live after the page was read: not in it, so delivered live.
            await self.publish(channel, TAG_TEXT, b"", self.publish_after_history.pop(0), None)
        return page

    async def presence_join(self, channel: str, member: str, info: Any, ttl: float) -> None:
        if self.refuse_join:
            raise ConnectionError("join refused")
        await super().presence_join(channel, member, info, ttl)


def scripted(channels: Channels) -> Scripted:
    backend = Scripted("memory://", history_size=10, history_ttl=None)
    backend.publish_during_history = []
    backend.publish_after_history = []
    backend.refuse_join = False
    channels._backend = backend
    return backend


async def test_an_event_published_while_a_subscriber_reads_history_arrives_once() -> None:
    channels = Channels("memory://")
    backend = scripted(channels)
    async with channels:
        before = await channels.publish("c", "before")
        backend.publish_during_history = ["during", "after"]
        async with channels.subscribe("c", since=before.position) as sub:
            assert [event.data for event in await take(sub, 2)] == ["during", "after"]
            await channels.publish("c", "live")
            assert [event.data for event in await take(sub, 1)] == ["live"]


async def test_an_event_published_after_the_history_read_follows_the_replay() -> None:
    channels = Channels("memory://")
    backend = scripted(channels)
    async with channels:
        first = await channels.publish("c", "first")
        await channels.publish("c", "second")
        backend.publish_after_history = ["third"]
        async with channels.subscribe("c", since=first.position) as sub:
            assert [event.data for event in await take(sub, 2)] == ["second", "third"]


async def test_a_second_subscriber_shares_the_channels_listening() -> None:
    channels = Channels("memory://")
    async with channels, channels.subscribe("c") as one, channels.subscribe("c") as two:
        await channels.publish("c", "x")
        assert [event.data for event in await take(one, 1)] == ["x"]
        assert [event.data for event in await take(two, 1)] == ["x"]


async def test_a_refused_presence_join_leaves_no_subscriber_behind() -> None:
    channels = Channels("memory://")
    backend = scripted(channels)
    async with channels:
        backend.refuse_join = True
        with pytest.raises(ConnectionError, match="join refused"):
            async with channels.subscribe("c", presence={"user": "ann"}):
                pass  # pragma: no cover - the join fails on entering
        assert channels._locals == {}


async def test_resync_skips_a_channel_that_has_not_caught_up_yet() -> None:
    async with Channels("memory://") as channels, channels.subscribe("c") as sub:
        channels._locals["c"].epoch = None  # as while its first history read is pending
        await channels.resync()
        await channels.publish("c", "x")
        assert [event.data for event in await take(sub, 1)] == ["x"]
        assert sub.recovered


async def test_a_live_event_for_a_channel_nobody_here_follows_is_dropped() -> None:
    async with Channels("memory://") as channels:
        channels.deliver(Event("nobody", 1, "e", "x"))
        assert channels._locals == {}


async def test_evicting_a_subscription_whose_channel_is_gone_is_harmless() -> None:
    async with Channels("memory://") as channels:
        channels._evict(channels.subscribe("never-entered"))
        assert channels._locals == {}


async def test_a_channel_released_while_a_new_subscriber_arrives_stays_listening() -> None:
    async with Channels("memory://") as channels, channels.subscribe("c") as sub:
        local = channels._locals["c"]
        async with anyio.create_task_group() as group, local.lock:
            # The release must wait for the lock while a new subscriber attaches.
            group.start_soon(channels._release, local)
            await anyio.wait_all_tasks_blocked()
            local.refs += 1
        assert channels._locals["c"] is local
        assert local.listening
        await channels.publish("c", "still live")
        assert [event.data for event in await take(sub, 1)] == ["still live"]
