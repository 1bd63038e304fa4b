"""Small assertion helpers for channel tests (most live in the contract kit)."""

from __future__ import annotations

import anyio

from lilya.channels import Channels, Event, Subscription
from lilya.channels.testing import (
    nothing_more,
    offsets,
    take,
    take_join,
    take_leave,
    take_type,
)

__all__ = [
    "nothing_more",
    "offsets",
    "settle",
    "take",
    "take_join",
    "take_leave",
    "take_messages",
    "take_type",
]


async def take_messages(sub: Subscription, count: int, *, within: float = 5.0) -> list[Event]:
    """Read events until *count* messages came (skipping join/leave), bounded in time."""
    events: list[Event] = []
    with anyio.fail_after(within):
        while len(events) < count:
            event = await sub.receive()
            if event.type == "message":
                events.append(event)
    return events


async def settle(channels: Channels, channel: str, count: int, *, within: float = 5.0) -> None:
    """Wait until *channel*'s position reaches *count* (Redis publishes are async to readers)."""
    with anyio.fail_after(within):
        while (await channels.position(channel)).offset < count:
            await anyio.sleep(0.01)
