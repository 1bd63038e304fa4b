"""The contract between :class:`~lilya.channels.Channels` and a backend.

A backend only stores and moves events between processes; everything a
subscriber sees (queues, policies, the seam between replay and live, presence
heartbeats) lives in :mod:`lilya.channels.channels`, written once, so the two
backends cannot drift apart in behaviour.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from anyio.abc import TaskGroup

from lilya.channels.events import Event

__all__ = ["Backend", "HistoryPage", "Sink", "check_name"]


class HistoryPage(NamedTuple):
    """A slice of a channel's history, with what you need to judge recovery.

    Attributes:
        epoch: the channel's current epoch (created if the channel was unknown).
        top: offset of the last message published in this epoch (0 if none).
        first: offset of the oldest retained message (``top + 1`` if none is).
        events: the retained messages asked for, oldest first.
    """

    epoch: str
    top: int
    first: int
    events: list[Event]

    def covers(self, epoch: str, offset: int) -> bool:
        """Say whether this page holds everything after *offset* of *epoch*.

        True when the epoch is the same one (offsets of another history mean
        nothing here), nothing after *offset* has been trimmed away, and
        *offset* is not ahead of the channel (a position from the future).
        Both resuming a subscription (``since=``) and catching up after a
        reconnect go by this one rule.
        """
        return epoch == self.epoch and self.first <= offset + 1 <= self.top + 1


def check_name(channel: str) -> None:
    """Refuse a channel name that is not a non-empty ``str``.

    Raises:
        ValueError: *channel* is not a ``str``, or is empty.
    """
    if not isinstance(channel, str) or not channel:
        raise ValueError(f"A channel name is a non-empty str, got {channel!r}.")


class Sink(Protocol):
    """Where a backend delivers live events: the :class:`Channels` that owns it."""

    def deliver(self, event: Event) -> None:
        """Take one live event, in channel order, without blocking."""

    async def resync(self) -> None:
        """Called after the backend reconnected and listens again: catch up from history."""


class Backend(ABC):
    """Storage and transport of one channel system (one URL).

    Live events arrive through :meth:`Sink.deliver` for every channel this
    backend :meth:`listen`s to; join and leave events too. Methods raise
    :class:`~lilya.channels.exceptions.BackendUnavailableError` when the store
    cannot be reached.
    """

    #: The URL with any password masked, for messages and logs.
    safe_url: str

    @abstractmethod
    async def connect(self, sink: Sink, task_group: TaskGroup) -> None:
        """Open connections and start delivering live events to *sink*.

        Background work (a Redis reader) runs in *task_group*, which the owning
        :class:`Channels` cancels at disconnect.
        """

    @abstractmethod
    async def disconnect(self) -> None:
        """Stop delivering and close every connection."""

    @abstractmethod
    async def publish(self, channel: str, tag: str, payload: bytes, data: Any) -> Event:
        """Append one message to *channel*'s history and send it to every listener.

        *tag*/*payload* are the encoded form, *data* the decoded one (so a
        backend that never leaves the process need not decode again).
        """

    @abstractmethod
    async def history(self, channel: str, *, after: int | None, limit: int | None) -> HistoryPage:
        """Read retained messages: those after offset *after*, or the last *limit*."""

    @abstractmethod
    async def listen(self, channel: str) -> None:
        """Start live delivery of *channel*; return once nothing published later can be missed."""

    @abstractmethod
    async def unlisten(self, channel: str) -> None:
        """Stop live delivery of *channel*."""

    @abstractmethod
    async def presence_join(self, channel: str, member: str, info: Any, ttl: float) -> None:
        """Record *member* as present for *ttl* seconds and announce a join."""

    @abstractmethod
    async def presence_leave(self, channel: str, member: str) -> None:
        """Forget *member* and announce a leave (only if it was still present)."""

    @abstractmethod
    async def presence_refresh(self, channel: str, members: Mapping[str, Any], ttl: float) -> None:
        """Extend (or restore) *members*' lifetimes; expire the dead, announcing their leave."""

    @abstractmethod
    async def presence(self, channel: str) -> Mapping[str, Any]:
        """Return ``{member: info}`` of the live members, expiring the dead first."""
