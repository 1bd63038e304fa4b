"""Small assertion helpers for channel tests."""

from __future__ import annotations

from typing import Any

import anyio

from lilya.channels import Channels, Event, Subscription


async def take(sub: Subscription, count: int, *, within: float = 5.0) -> list[Event]:
    """Read exactly *count* events from *sub*, failing after *within* seconds."""
    events: list[Event] = []
    with anyio.fail_after(within):
        while len(events) < count:
            events.append(await sub.receive())
    return events


async def take_messages(sub: Subscription, count: int, *, within: float = 5.0) -> list[Event]:
    """Read events until *count* messages came (skipping join/leave), bounded in time."""
    events: list[Event] = []
    with anyio.fail_after(within):
        while len(events) < count:
            event = await sub.receive()
            if event.type == "message":
                events.append(event)
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
        raise AssertionError(f"unexpected event {event!r}")


async def settle(channels: Channels, channel: str, count: int, *, within: float = 5.0) -> None:
    """Wait until *channel*'s position reaches *count* (Redis publishes are async to readers)."""
    with anyio.fail_after(within):
        while (await channels.position(channel)).offset < count:
            await anyio.sleep(0.01)


def offsets(events: list[Event]) -> list[int]:
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
