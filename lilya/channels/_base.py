"""The contract between :class:`~lilya.channels.Channels` and a backend.

A backend only stores and moves events between processes; everything a
subscriber sees (queues, policies, the seam between replay and live, presence
heartbeats) lives in :mod:`lilya.channels.channels`, written once, so the two
backends cannot drift apart in behaviour.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Final, NamedTuple, Protocol

from anyio.abc import TaskGroup

from lilya.channels.events import Event, Position

__all__ = [
    "MAX_OFFSET",
    "Backend",
    "HistoryPage",
    "Sink",
    "check_limit",
    "check_max_queue",
    "check_message_id",
    "check_name",
    "check_position",
]


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


#: The largest offset either backend represents exactly (Lua numbers are doubles).
MAX_OFFSET: Final = 2**53 - 1
#: Longest channel name, in UTF-8 bytes (a Redis key carries it four times over).
MAX_NAME_BYTES: Final = 1024
#: Longest epoch (lilya's are 16 hex digits) and message id, in UTF-8 bytes.
MAX_EPOCH_BYTES: Final = 64
MAX_MESSAGE_ID_BYTES: Final = 256


def _utf8_size(what: str, value: str) -> int:
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what} must be valid Unicode text, but holds a lone surrogate at index "
            f"{exc.start}; decode your input with errors='replace' or refuse it."
        ) from None


def _check_str(what: str, value: object, max_bytes: int) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}: {value!r:.80}.")
    if not value:
        raise ValueError(f"{what} must be a non-empty str, got ''.")
    size = _utf8_size(what, value)
    if size > max_bytes:
        raise ValueError(f"{what} is at most {max_bytes} bytes of UTF-8, this one is {size}.")
    return value


def _check_count(what: str, value: object, *, least: int) -> int:
    if type(value) is not int:  # bool is an int, and True is no offset
        raise TypeError(f"{what} must be an int, got {type(value).__name__}: {value!r:.80}.")
    if not least <= value <= MAX_OFFSET:
        raise ValueError(f"{what} must be between {least} and 2**53 - 1, got {value!r:.80}.")
    return value


def check_name(channel: object) -> str:
    """Return *channel* if it is a usable channel name.

    Raises:
        TypeError: *channel* is not a ``str``.
        ValueError: it is empty, longer than 1024 UTF-8 bytes, or not valid
            Unicode (a lone surrogate).
    """
    return _check_str("A channel name", channel, MAX_NAME_BYTES)


def check_position(since: object) -> Position:
    """Return *since* as a :class:`Position` if it is one ``subscribe(since=...)`` can use.

    Raises:
        TypeError: not an ``(epoch, offset)`` pair of a ``str`` and an ``int``.
        ValueError: an empty or over-long epoch, or an offset below 0 or above 2**53 - 1.
    """
    if not isinstance(since, tuple) or len(since) != 2:
        raise TypeError(
            f"since must be a Position or an (epoch, offset) pair, as event.position "
            f"gives you; got {type(since).__name__}: {since!r:.80}."
        )
    epoch = _check_str("The epoch of since", since[0], MAX_EPOCH_BYTES)
    offset = _check_count("The offset of since", since[1], least=0)
    return Position(epoch, offset)


def check_limit(limit: object) -> int | None:
    """Return a history *limit* (``None``: all) if it is usable.

    Raises:
        TypeError: not an ``int`` (or ``None``).
        ValueError: below 0. A limit above 2**53 - 1 means "all" too.
    """
    if limit is None:
        return None
    if type(limit) is not int:
        raise TypeError(f"limit must be an int or None, got {type(limit).__name__}: {limit!r:.80}.")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit!r:.80}.")
    return min(limit, MAX_OFFSET)


def check_max_queue(max_queue: object) -> int:
    """Return *max_queue* if it is a usable queue bound.

    Raises:
        TypeError: not an ``int``.
        ValueError: below 1 or above 2**53 - 1.
    """
    return _check_count("max_queue", max_queue, least=1)


def check_message_id(message_id: object) -> str | None:
    """Return a publish *message_id* (``None``: none) if it is usable.

    Raises:
        TypeError: not a ``str`` (or ``None``).
        ValueError: empty, longer than 256 UTF-8 bytes, or a lone surrogate.
    """
    if message_id is None:
        return None
    return _check_str("message_id", message_id, MAX_MESSAGE_ID_BYTES)


class Sink(Protocol):
    """Where a backend delivers live events: the :class:`Channels` that owns it."""

    def deliver(self, event: Event) -> None:
        """Take one live event, in channel order, without blocking."""

    async def ready(self, channel: str) -> None:
        """Wait until *channel*'s subscribers have room for more (backpressure, bounded)."""

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
    async def publish(
        self, channel: str, tag: str, payload: bytes, data: Any, message_id: str | None
    ) -> Event:
        """Append one message to *channel*'s history and send it to every listener.

        *tag*/*payload* are the encoded form, *data* the decoded one (so a
        backend that never leaves the process need not decode again). A
        *message_id* already published among the last ``history_size``
        messages is not published again: the first publish's event is returned.
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
