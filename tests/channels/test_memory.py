"""The memory:// backend on its own: the corners the Channels front never reaches."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from lilya.channels.events import TAG_TEXT, Event
from lilya.channels.memory import MemoryBackend

pytestmark = pytest.mark.anyio


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def deliver(self, event: Event) -> None:
        self.events.append(event)

    async def ready(self, channel: str) -> None:
        """Always room: these tests read what was delivered afterwards."""

    async def resync(self) -> None:
        """Memory never reconnects."""


def backend() -> MemoryBackend:
    return MemoryBackend("memory://", history_size=10, history_ttl=None)


async def publish(memory: MemoryBackend, *values: Any) -> None:
    for value in values:
        await memory.publish("room", TAG_TEXT, b"", value, None)


async def test_history_after_an_offset_honours_the_limit() -> None:
    memory = backend()
    async with anyio.create_task_group() as group:
        await memory.connect(Sink(), group)
        await publish(memory, "a", "b", "c", "d")
        page = await memory.history("room", after=1, limit=2)
        assert [event.data for event in page.events] == ["b", "c"]
        await memory.disconnect()


async def test_listening_before_connect_is_refused() -> None:
    with pytest.raises(RuntimeError, match="before connect"):
        await backend().listen("room")


async def test_unlistening_twice_or_leaving_twice_is_harmless() -> None:
    memory = backend()
    sink = Sink()
    async with anyio.create_task_group() as group:
        await memory.connect(sink, group)
        await memory.listen("room")
        await memory.unlisten("room")
        await memory.unlisten("room")
        await memory.presence_join("room", "ann", {}, 30.0)
        await memory.presence_leave("room", "ann")
        await memory.presence_leave("room", "ann")  # no second "leave" event
        assert [event.type for event in sink.events] == []  # not listening any more
        assert await memory.presence("room") == {}
        await memory.disconnect()
