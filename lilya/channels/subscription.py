"""One subscriber's bounded queue and what happens when it is full.

A burst is not a reason to lose anything: when a subscriber's queue reaches
``max_queue``, publishers of this process wait for it (and the Redis reader
stops reading, letting Redis buffer), as long as the subscriber keeps taking
events. Only a subscriber that takes nothing for ``stall_timeout`` seconds is
*stalled*: publishers stop waiting for it, and its policy acts on what no
longer fits, always visibly (an overflow error, or a ``gap`` event naming the
lost offsets). The waiting lives in :meth:`Channels.ready`; this module keeps
the queue, the progress count it reads, and the policies.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol
from uuid import uuid4

import anyio

from lilya import _telemetry
from lilya._wakeup import Wakeup
from lilya.channels.backend import check_max_queue, check_name, check_position
from lilya.channels.events import Event, Position
from lilya.channels.exceptions import SubscriberOverflowError

if TYPE_CHECKING:
    from types import TracebackType

    from lilya.channels.channels import Channels

__all__ = ["Policy", "Subscription"]

#: What a full queue of a stalled subscriber does with one more event: close the
#: subscription (it raises :class:`SubscriberOverflowError` at its next read; the
#: default), or discard the oldest queued event or the new one, putting a ``gap``
#: event with the lost offsets in their place.
Policy = Literal["close", "drop_oldest", "drop_newest"]

_POLICIES = ("drop_oldest", "drop_newest", "close")

#: The queue of a subscription that has not had an event yet. An empty deque
#: is 760 bytes (its first block of 64 slots), and most idle sockets of a quiet
#: channel never get an event: the deque is made at the first push instead.
_NO_EVENTS: tuple[()] = ()


class _Waiter(Protocol):
    """Who is woken when an event arrives: a parked reader's :class:`Wakeup`, or
    anything else with ``set()`` (the protocol's writer, which serves many
    subscriptions from one task, registers itself this way)."""

    def set(self) -> None: ...


class Subscription:
    """A live feed of one channel: use it with ``async with`` and ``async for``.

    You get one from :meth:`Channels.subscribe`. Entering it replays what you
    asked for with ``since=`` and starts live delivery; leaving it stops
    delivery and, if you joined with ``presence=``, announces your leave.

    Attributes:
        channel: the channel's name.
        recovered: ``False`` when ``since=`` could not be honoured (the position
            is older than the retained history or from another epoch), or when
            a reconnect to Redis could not be bridged from history: reload your
            state. ``True`` otherwise, including when you gave no ``since``.
        dropped: how many events the queue policy discarded.
        member: your presence id when you joined with ``presence=``, else ``None``.
        max_queue: the queue bound.
        policy: the queue policy.
    """

    __slots__ = (
        "_attached",
        "_closed",
        "_closed_event",
        "_error",
        "_on_close",
        "_owner",
        "_pending",
        "_queue",
        "_room",
        "_stalled",
        "_taken",
        "_waiter",
        "channel",
        "dropped",
        "info",
        "max_queue",
        "member",
        "policy",
        "recovered",
        "since",
    )

    def __init__(
        self,
        owner: Channels,
        channel: str,
        *,
        since: Position | tuple[str, int] | None,
        presence: Any,
        max_queue: int,
        policy: Policy,
    ) -> None:
        check_name(channel)
        if not isinstance(policy, str) or policy not in _POLICIES:
            raise ValueError(f"policy must be one of {', '.join(_POLICIES)}; got {policy!r:.80}.")
        check_max_queue(max_queue)
        if since is not None:
            since = check_position(since)
        self._owner = owner
        self.channel = channel
        self.since: Position | None = since
        self.info = presence
        self.member = uuid4().hex if presence is not None else None
        self.max_queue = max_queue
        self.policy = policy
        self.recovered = True
        self.dropped = 0
        self._queue: deque[Event] | tuple[()] = _NO_EVENTS
        self._waiter: _Waiter | None = None
        self._closed_event: anyio.Event | None = None
        # Called (synchronously, by whoever closes it) when the subscription
        # closes: relay() cancels a send stuck on a stalled client with it,
        # without a watcher task per socket.
        self._on_close: Callable[[], None] | None = None
        self._error: SubscriberOverflowError | None = None
        self._closed = False
        self._attached = False
        # Backpressure: how many events were taken (progress), who waits for
        # room, and whether the subscriber was found stalled.
        self._taken = 0
        self._room: anyio.Event | None = None
        self._stalled = False
        # While the subscription is catching up from history, live events wait here.
        self._pending: list[Event] = []

    def __repr__(self) -> str:
        return (
            f"<Subscription {self.channel!r} queued={len(self._queue)} dropped={self.dropped}"
            f"{' closed' if self._closed else ''}>"
        )

    async def __aenter__(self) -> Subscription:
        await self._owner._attach(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._owner._detach(self)

    def __aiter__(self) -> Subscription:
        return self

    def __anext__(self) -> Awaitable[Event]:
        # The coroutine of _next() itself, not one awaiting it: a subscriber
        # parked for its next event (every idle socket) holds one frame, not two.
        return self._next()

    def _take_nowait(self) -> Event | None:
        """Return the next queued event, or ``None`` if the queue is empty.

        What ``async for`` does without ever waiting, for a reader that drains
        several subscriptions from one task and parks on its own wake-up
        (``_waiter``) instead: the protocol's writer. ``None`` with ``closed``
        set means the subscription ended (``_error`` tells an overflow).
        """
        queue = self._queue
        if not queue:
            return None
        self._taken += 1
        if self._room is not None:
            self._wake_publishers()
        return queue.popleft()

    def _wake_publishers(self) -> None:
        # Wake waiting publishers at half the bound, not at every event: they
        # then publish a batch, and the two sides do not take turns per event.
        room = self._room
        if room is not None and len(self._queue) <= self.max_queue // 2 + 1:
            self._room = None
            room.set()

    async def _next(self) -> Event:
        # The fast path takes no lock and makes no checkpoint: a queue that has
        # events is drained in one go, and since the queue is bounded the loop
        # waits (and yields) within max_queue events.
        while True:
            if self._error is not None:
                raise self._error
            if self._queue:
                self._taken += 1
                if self._room is not None:
                    self._wake_publishers()
                return self._queue.popleft()
            if self._closed:
                raise StopAsyncIteration
            waiter = self._waiter = Wakeup()
            await waiter.wait()

    async def receive(self) -> Event:
        """Wait for the next event and return it.

        Raises:
            SubscriberOverflowError: policy ``"close"`` closed this subscription.
            StopAsyncIteration: the subscription was closed (you left it, or
                the channels disconnected).
        """
        return await self.__anext__()

    @property
    def closed(self) -> bool:
        """Whether this subscription receives no more events."""
        return self._closed

    @property
    def queued(self) -> int:
        """How many events wait in the queue."""
        return len(self._queue)

    async def wait_closed(self) -> None:
        """Return once this subscription is closed (by overflow, leaving, or disconnect).

        The WebSocket relay uses it to notice an overflow while it is blocked
        sending to a slow client.
        """
        if self._closed:
            return
        if self._closed_event is None:
            self._closed_event = anyio.Event()
        await self._closed_event.wait()

    # -- called by Channels ------------------------------------------------

    @property
    def full(self) -> bool:
        """Whether the queue holds ``max_queue`` events (publishers wait for room)."""
        return len(self._queue) >= self.max_queue

    def _push(self, event: Event) -> None:
        queue = self._queue
        if not isinstance(queue, deque):
            queue = self._queue = deque()
        if len(queue) >= self.max_queue:
            policy = self.policy
            if policy == "drop_oldest":
                # The oldest event becomes (or the gap at the front absorbs) the
                # gap; the next oldest makes room for the new event.
                gap = queue.popleft()
                dropped = self.dropped
                if gap.type != "gap":
                    gap = _merge(gap, None)
                    self.dropped += 1
                    _telemetry.channel_gap(policy)
                if queue:
                    gap = _merge(gap, queue.popleft())
                    self.dropped += 1
                queue.appendleft(gap)
                _telemetry.channel_dropped(policy, self.dropped - dropped)
            elif policy == "drop_newest":
                self.dropped += 1
                _telemetry.channel_dropped(policy, 1)
                if queue[-1].type == "gap":
                    queue[-1] = _merge(queue[-1], event)
                else:
                    # One slot over the bound, for a gap event that stands
                    # for every event dropped after it.
                    queue.append(_merge(event, None))
                    _telemetry.channel_gap(policy)
                self._wake_reader()
                return
            else:
                self._overflow()
                return
        queue.append(event)
        if len(queue) >= self.max_queue:
            self._owner._note_full(self)
        self._wake_reader()

    def _wake_reader(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    def _overflow(self) -> None:
        discarded = len(self._queue) + 1
        self._queue = _NO_EVENTS
        self.dropped += discarded
        _telemetry.channel_dropped(self.policy, discarded)
        self._error = SubscriberOverflowError(self.channel, self.max_queue, discarded)
        self._owner._evict(self)
        self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()
        room = self._room
        if room is not None:
            self._room = None
            room.set()
        if self._closed_event is not None:
            self._closed_event.set()
        if self._on_close is not None:
            self._on_close()


def _merge(lost: Event, more: Event | None) -> Event:
    """Return the ``gap`` event standing for *lost* (itself a gap, or one event) and *more*.

    A gap's ``data`` is ``{"first": …, "last": …, "dropped": …}``: the lowest
    and highest offsets of the lost messages (``None`` if only presence events
    were lost) and how many events it stands for. Its ``offset`` is ``last``,
    its epoch the lost messages'.
    """
    first: int | None
    last: int | None
    if lost.type == "gap":
        first, last, dropped = lost.data["first"], lost.data["last"], lost.data["dropped"]
    elif lost.type == "message":
        first, last, dropped = lost.offset, lost.offset, 1
    else:
        first, last, dropped = None, None, 1
    epoch = lost.epoch
    if more is not None:
        dropped += more.data["dropped"] if more.type == "gap" else 1
        if more.type in ("message", "gap"):
            lo = more.offset if more.type == "message" else more.data["first"]
            hi = more.offset if more.type == "message" else more.data["last"]
            if lo is not None:
                first = lo if first is None else min(first, lo)
                last = hi if last is None else max(last, hi)
            epoch = more.epoch
    data = {"first": first, "last": last, "dropped": dropped}
    return Event(lost.channel, last if last is not None else lost.offset, epoch, data, "gap")
