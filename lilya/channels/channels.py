"""The :class:`Channels` front: one API over every backend.

Everything a subscriber can observe is decided here, once: the seam between
replayed history and live events, the recovery verdict, queue policies and
presence heartbeats. Backends only store and carry events, so ``memory://`` and
``redis://`` cannot disagree about behaviour.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup, TaskStatus

from lilya import _telemetry
from lilya._side_task import SideTask
from lilya._wakeup import Wakeup
from lilya.channels.backend import (
    Backend,
    BackendSettings,
    HistoryPage,
    check_limit,
    check_max_queue,
    check_message_id,
    check_name,
    create_backend,
)
from lilya.channels.events import Event, Position, encode
from lilya.channels.exceptions import BackendUnavailableError, NotConnectedError
from lilya.channels.subscription import Policy, Subscription
from lilya.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Channels"]

logger = logging.getLogger("lilya.channels")

#: How long cleanup (unsubscribe, leave) may take when the backend is slow or
#: down; after that the member simply times out like a dead process's would.
_CLEANUP_TIMEOUT = 2.0


class _Local:
    """What this process knows about one channel it listens to."""

    __slots__ = (
        "_live",
        "_snapshot",
        "changes",
        "epoch",
        "flushed_at",
        "flushing",
        "full",
        "last",
        "listening",
        "lock",
        "members",
        "name",
        "refs",
        "syncing",
        "view",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        # Live subscribers in a dict (O(1) add and remove, even with 10,000 of
        # them), iterated through a tuple snapshot rebuilt only after a change:
        # deliver() may evict a subscriber (overflow) while it iterates.
        self._live: dict[Subscription, None] = {}
        self._snapshot: tuple[Subscription, ...] | None = ()
        self.syncing: list[Subscription] = []
        self.epoch: str | None = None
        self.last = 0
        self.refs = 0
        self.listening = False
        self.lock = anyio.Lock()
        self.members: dict[str, Any] = {}
        # Subscribers whose queue reached max_queue: publishers wait for them.
        self.full: set[Subscription] = set()
        # Presence as this process sees it (every member of every process),
        # and the net changes not yet sent to subscribers (member -> (joined?,
        # info)). Coalescing them is what keeps 1,000 joins from costing each
        # subscriber 1,000 frames.
        self.view: dict[str, Any] | None = None
        self.changes: dict[str, Any] = {}
        self.flushing = False
        self.flushed_at = -math.inf

    @property
    def subs(self) -> tuple[Subscription, ...]:
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._snapshot = tuple(self._live)
        return snapshot

    def add(self, sub: Subscription) -> None:
        self._live[sub] = None
        self._snapshot = None

    def remove(self, sub: Subscription) -> None:
        if self._live.pop(sub, 0) is None:
            self._snapshot = None
        self.full.discard(sub)


class Channels:
    """Publish/subscribe with history, recovery and presence, in one process or across many.

    ``Channels("memory://")`` keeps everything in this process (give it a name,
    ``memory://room-service``, to share one store between several
    ``Channels`` objects of a process, as two app instances in a test would).
    ``Channels("redis://host:6379/0")`` goes through Redis, so every process
    and host using the same URL shares channels; ``rediss://`` uses TLS, and
    the URL carries the password and database. ``Channels("postgres://…")``
    goes through PostgreSQL the same way, and can publish inside your
    transaction; ``Channels("nats://host:4222")`` through NATS JetStream.
    Backends of your own plug in by
    :func:`~lilya.channels.register_backend`.

    Args:
        url: where channels live.
        history_size: how many messages each channel retains for
            ``history()`` and ``since=`` recovery (0 keeps none).
        history_ttl: seconds after a channel's last publish at which its
            history (and so its epoch) is forgotten; ``None`` keeps it.
        max_queue: default bound of each subscriber's queue: where publishers
            of this process (and the Redis reader) start waiting for it.
        policy: what happens to events that no longer fit the queue of a
            stalled subscriber (see :data:`Policy`; default ``"close"``).
        stall_timeout: seconds a subscriber with a full queue may take no
            event before it counts as stalled: publishers stop waiting for it
            and its policy acts.
        presence_interval: seconds between two ``presence`` events of a
            channel: joins and leaves in between are sent as one diff.
        presence_ttl: seconds after which a member whose process stopped
            refreshing it (it died) is dropped and its leave announced.
        key_prefix: prefix of every Redis key and pub/sub channel (on
            Postgres: the namespace of every row), so that several apps can
            share one Redis or one database.
        reconnect_delay: ``(first, max)`` seconds between reconnect attempts
            of the live feed; the delay doubles up to ``max``.

    Raises:
        ImproperlyConfigured: the URL's scheme is neither built in nor
            registered (:func:`~lilya.channels.register_backend`), its client
            library is not installed (the message gives the ``pip install``
            line), or a setting is out of range.
    """

    def __init__(
        self,
        url: str = "memory://",
        *,
        history_size: int = 100,
        history_ttl: float | None = None,
        max_queue: int = 1000,
        policy: Policy = "close",
        stall_timeout: float = 1.0,
        presence_interval: float = 0.25,
        presence_ttl: float = 30.0,
        key_prefix: str = "lilya:ch",
        reconnect_delay: tuple[float, float] = (0.05, 2.0),
    ) -> None:
        if history_size < 0:
            raise ImproperlyConfigured(f"history_size must be >= 0, got {history_size!r}.")
        if history_ttl is not None and not history_ttl > 0:
            raise ImproperlyConfigured(f"history_ttl must be > 0 or None, got {history_ttl!r}.")
        if not presence_ttl > 0 or not math.isfinite(presence_ttl):
            raise ImproperlyConfigured(f"presence_ttl must be > 0, got {presence_ttl!r}.")
        if not stall_timeout > 0 or not math.isfinite(stall_timeout):
            raise ImproperlyConfigured(f"stall_timeout must be > 0, got {stall_timeout!r}.")
        try:
            check_max_queue(max_queue)
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(str(exc)) from None
        self.stall_timeout = stall_timeout
        if not presence_interval >= 0 or not math.isfinite(presence_interval):
            raise ImproperlyConfigured(
                f"presence_interval must be >= 0, got {presence_interval!r}."
            )
        self.presence_interval = presence_interval
        self.url = url
        self.max_queue = max_queue
        self.policy: Policy = policy
        self.presence_ttl = presence_ttl
        self._backend: Backend = create_backend(
            url, BackendSettings(history_size, history_ttl, key_prefix, reconnect_delay)
        )
        self._locals: dict[str, _Local] = {}
        self._task_group: TaskGroup | None = None
        # Made at connect(): anyio objects need a running event loop, and you
        # build Channels at import time.
        self._heartbeat_scope: anyio.CancelScope | None = None
        # The task that holds the background work's task group (lilya._side_task),
        # and what tells it to stop.
        self._holder: SideTask | None = None
        self._stop = Wakeup()

    def __repr__(self) -> str:
        state = "connected" if self._task_group is not None else "disconnected"
        return f"<Channels {self._backend.safe_url} {state}>"

    # -- lifecycle -----------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether :meth:`connect` has run and :meth:`disconnect` not yet."""
        return self._task_group is not None

    async def connect(self) -> None:
        """Open the backend and start background work (Redis reader, presence heartbeat).

        Call :meth:`disconnect` later, from any task (an app's lifespan does
        both for you). The background work runs in a task of its own, so you
        may also connect on first use inside a WebSocket handler (a server
        with no lifespan, as daphne): it outlives that handler.

        Raises:
            BackendUnavailableError: Redis cannot be reached.
            RuntimeError: already connected.
        """
        if self._task_group is not None or self._holder is not None:
            raise RuntimeError(f"{self!r} is already connected.")
        started = Wakeup()
        self._stop = Wakeup()
        holder = self._holder = SideTask(partial(self._hold, started))
        try:
            await started.wait()
        finally:
            if self._task_group is None:
                # The backend refused (or you were cancelled meanwhile): the
                # holder has ended, or ends now; its error is yours, as itself.
                self._holder = None
                holder.cancel()
                await holder.join()

    async def _hold(self, started: Wakeup) -> None:
        """The holder task: run the background work's task group until :meth:`disconnect`."""
        error: BaseException | None = None
        try:
            async with anyio.create_task_group() as task_group:
                try:
                    await self._backend.connect(self, task_group)
                except BaseException as exc:
                    # Raised after the group, not inside it: the caller of
                    # connect() catches BackendUnavailableError, not an
                    # ExceptionGroup around it.
                    error = exc
                    task_group.cancel_scope.cancel()
                else:
                    await task_group.start(self._heartbeat)
                    self._task_group = task_group
                    started.set()
                    await self._stop.wait()
                    task_group.cancel_scope.cancel()
        finally:
            started.set()
        if error is not None:
            raise error

    async def disconnect(self) -> None:
        """Close every subscription (their iteration ends), announce leaves, close the backend.

        Calling it when not connected does nothing.

        Raises:
            BaseExceptionGroup: background work failed while connected.
        """
        holder = self._holder
        if self._task_group is None or holder is None:
            return
        self._task_group = None
        self._holder = None
        with anyio.CancelScope(shield=True):
            for local in list(self._locals.values()):
                for member in list(local.members):
                    await self._best_effort(self._backend.presence_leave(local.name, member))
                local.members.clear()
                for sub in (*local.subs, *local.syncing):
                    sub._close()
            self._locals.clear()
        self._stop.set()
        try:
            await holder.join()
        finally:
            with anyio.CancelScope(shield=True):
                await self._backend.disconnect()

    async def __aenter__(self) -> Channels:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """Connect for the lifetime of *app*: ``Lilya(lifespan=channels.lifespan)``.

        Args:
            app: the application (unused; the lifespan protocol passes it).
        """
        await self.connect()
        try:
            yield
        finally:
            await self.disconnect()

    # -- the API -------------------------------------------------------------

    async def publish(
        self,
        channel: str,
        data: Any,
        *,
        message_id: str | None = None,
        connection: Any = None,
    ) -> Event:
        """Send *data* to every subscriber of *channel* and append it to its history.

        Each subscriber gets the event in its queue, in publish order. If a
        subscriber of this process has a full queue, this waits until it has
        room again (a burst slows its publisher, not its readers), or until it
        has taken nothing for ``stall_timeout`` seconds: then it counts as
        stalled, and its policy deals with what no longer fits.

        Args:
            channel: the channel's name.
            data: a ``str``, ``bytes`` or JSON-serialisable value.
            message_id: your id for this message (a UUID the client made, say).
                A publish with an id already published among the channel's
                last ``history_size`` messages delivers nothing and returns
                the first publish's event: retrying is safe.
            connection: on ``postgres://``, an asyncpg connection in an open
                transaction: the message is part of it, delivered when you
                commit and never if you roll back (the returned event is what
                subscribers get if you commit). Other backends refuse it.

        Returns:
            The published event, with its ``offset`` and ``epoch``.

        Raises:
            TypeError, ValueError: *data*, *channel* or *message_id* cannot be carried.
            BackendUnavailableError: Redis is unreachable; the event was *not* published.
            PublishOutcomeUnknownError: Redis took the command but its answer was
                lost (a stall longer than ``socket_timeout``): it may have been
                published; retry with the same *message_id*.
            NotConnectedError: :meth:`connect` has not run.
            RuntimeError: *connection* is not in a transaction.
        """
        self._require_connected()
        check_name(channel)
        check_message_id(message_id)
        tag, payload = encode(data)
        await self.ready(channel)
        if connection is not None:
            event = await self._backend.publish_in_transaction(
                connection, channel, tag, payload, data, message_id
            )
        else:
            event = await self._backend.publish(channel, tag, payload, data, message_id)
        _telemetry.channel_published(self.url.partition(":")[0])
        return event

    def subscribe(
        self,
        channel: str,
        *,
        since: Position | tuple[str, int] | None = None,
        presence: Any = None,
        max_queue: int | None = None,
        policy: Policy | None = None,
    ) -> Subscription:
        """Make a subscription to *channel*; enter it with ``async with``.

        Args:
            channel: the channel's name.
            since: a position ``(epoch, offset)`` you already have, typically
                ``event.position`` of the last event you handled: every
                retained event after it is replayed first, then live events
                follow with no gap and no duplicate. When it cannot be served,
                ``sub.recovered`` is ``False`` and delivery starts live.
            presence: any JSON-able info (``{"user": "ann"}``): you appear in
                :meth:`presence` with it, and join/leave events are published.
            max_queue: this subscription's queue bound (default: the channels').
            policy: this subscription's full-queue policy (default: the channels').

        Raises:
            ValueError: a bad channel name, ``max_queue`` or ``policy``.
        """
        return Subscription(
            self,
            channel,
            since=since,
            presence=presence,
            max_queue=self.max_queue if max_queue is None else max_queue,
            policy=self.policy if policy is None else policy,
        )

    async def history(self, channel: str, *, limit: int | None = None) -> list[Event]:
        """Return *channel*'s retained messages, oldest first (the last *limit* if given).

        Raises:
            BackendUnavailableError: Redis is unreachable.
        """
        self._require_connected()
        check_name(channel)
        limit = check_limit(limit)
        page = await self._backend.history(channel, after=None, limit=limit)
        return page.events

    async def position(self, channel: str) -> Position:
        """Return *channel*'s current position: its epoch and last message offset."""
        self._require_connected()
        check_name(channel)
        page = await self._backend.history(channel, after=None, limit=0)
        return Position(page.epoch, page.top)

    async def presence(self, channel: str) -> dict[str, Any]:
        """Return who is subscribed to *channel* with presence: ``{member id: info}``.

        Members of processes that died are dropped once ``presence_ttl`` has
        passed since their last heartbeat.

        Raises:
            BackendUnavailableError: Redis is unreachable.
        """
        self._require_connected()
        check_name(channel)
        return dict(await self._backend.presence(channel))

    # -- Sink: what backends call ---------------------------------------------

    def deliver(self, event: Event) -> None:
        """Fan one live event out to this process's subscribers (called by backends)."""
        local = self._locals.get(event.channel)
        if local is None:
            return
        if event.type in ("join", "leave"):
            self._presence_change(local, event)
            return
        if event.type == "message":
            if event.epoch == local.epoch and event.offset <= local.last:
                return  # already delivered from history while resyncing
            local.epoch = event.epoch
            local.last = event.offset
        for sub in local.subs:
            sub._push(event)
        for sub in local.syncing:
            sub._pending.append(event)

    async def ready(self, channel: str) -> None:
        """Wait until *channel*'s subscribers in this process have room (called by backends).

        A subscriber with a full queue is waited for as long as it makes
        progress; one that takes nothing for ``stall_timeout`` seconds is
        marked stalled and no longer waited for, until its queue drains.
        """
        local = self._locals.get(channel)
        if local is None or not local.full:
            return
        for sub in list(local.full):
            if not sub._stalled and sub.full and not sub.closed:
                await self._wait_for_room(sub)
            if not sub.full or sub.closed:
                local.full.discard(sub)
                sub._stalled = False

    async def _wait_for_room(self, sub: Subscription) -> None:
        limit = self.stall_timeout
        deadline = anyio.current_time() + limit
        while sub.full and not sub.closed:
            taken = sub._taken
            room = sub._room
            if room is None:
                room = sub._room = anyio.Event()
            with anyio.move_on_after(deadline - anyio.current_time()):
                await room.wait()
            if sub._taken != taken:
                deadline = anyio.current_time() + limit  # progress: it is slow, not stalled
            elif anyio.current_time() >= deadline:
                sub._stalled = True
                logger.info(
                    "A subscriber of %r took no event for %.1fs with a full queue (%d): "
                    "stalled, its policy %r acts.",
                    sub.channel,
                    limit,
                    sub.max_queue,
                    sub.policy,
                )
                return

    # -- presence, coalesced -------------------------------------------------

    def _presence_change(self, local: _Local, event: Event) -> None:
        member, info = event.data["member"], event.data["info"]
        joined = event.type == "join"
        if local.view is not None:
            if joined:
                local.view[member] = info
            else:
                local.view.pop(member, None)
        local.changes.pop(member, None)  # keep the order of the latest change
        local.changes[member] = (joined, info)
        if not local.flushing and self._task_group is not None:
            local.flushing = True
            self._task_group.start_soon(self._flush_presence, local)

    async def _flush_presence(self, local: _Local) -> None:
        """Send *local*'s net presence changes as one event, at most once per interval."""
        delay = local.flushed_at + self.presence_interval - anyio.current_time()
        if delay > 0:
            await anyio.sleep(delay)
        else:
            await anyio.lowlevel.checkpoint()  # let a burst of changes gather
        local.flushing = False
        local.flushed_at = anyio.current_time()
        changes, local.changes = local.changes, {}
        if not changes or self._locals.get(local.name) is not local:
            return
        joined = {m: info for m, (came, info) in changes.items() if came}
        left = {m: info for m, (came, info) in changes.items() if not came}
        data = {"snapshot": False, "joined": joined, "left": left}
        event = Event(local.name, local.last, local.epoch or "", data, "presence")
        for sub in local.subs:
            sub._push(event)

    def _snapshot_event(self, local: _Local) -> Event:
        data = {"snapshot": True, "joined": dict(local.view or {}), "left": {}}
        return Event(local.name, local.last, local.epoch or "", data, "presence")

    def _note_full(self, sub: Subscription) -> None:
        # Events are pushed to a subscription only while it is attached, and an
        # attached subscription holds a reference on its channel's _Local.
        self._locals[sub.channel].full.add(sub)

    async def resync(self) -> None:
        """Catch every channel up from history after the backend reconnected.

        Where history still covers the outage, the missed messages are
        delivered in order (and the live ones that follow are deduplicated by
        offset). Where it does not, each subscriber gets a ``reset`` event and
        ``recovered`` turns ``False``, so the app knows to reload.
        """
        _telemetry.backend_reconnected(self.url.partition(":")[0])
        for local in list(self._locals.values()):
            if local.epoch is None:
                continue
            page = await self._backend.history(local.name, after=local.last, limit=None)
            if page.covers(local.epoch, local.last):
                for event in page.events:
                    self.deliver(event)
                _telemetry.channel_recovery("recovered")
                continue
            logger.warning(
                "Channel %r could not be recovered after reconnecting (epoch %s -> %s, "
                "last %d, retained from %d): subscribers get a reset event.",
                local.name,
                local.epoch,
                page.epoch,
                local.last,
                page.first,
            )
            local.epoch, local.last = page.epoch, page.top
            reset = Event(local.name, page.top, page.epoch, None, "reset")
            for sub in local.subs:
                sub.recovered = False
            self.deliver(reset)
            _telemetry.channel_recovery("reset")

    # -- Subscription internals ------------------------------------------------

    async def _attach(self, sub: Subscription) -> None:
        self._require_connected()
        name = sub.channel
        local = self._locals.get(name)
        if local is None:
            local = self._locals[name] = _Local(name)
        local.refs += 1
        try:
            await self._listen(local)
            local.syncing.append(sub)
            try:
                since = sub.since
                page = await self._backend.history(
                    name, after=since.offset if since else None, limit=None if since else 0
                )
            finally:
                local.syncing.remove(sub)
        except BaseException:
            await self._release(local)
            raise
        # From here to the end nothing awaits, so no live event can slip
        # between the replay and the switch to live delivery.
        self._catch_up(local, sub, page)
        sub._attached = True
        if sub.member is not None:
            try:
                await self._backend.presence_join(name, sub.member, sub.info, self.presence_ttl)
            except BaseException:
                await self._detach(sub)
                raise
            local.members[sub.member] = sub.info

    async def _listen(self, local: _Local) -> None:
        # Once per channel, however many subscribers attach at the same time:
        # listen, and load who is present.
        async with local.lock:
            if not local.listening:
                await self._backend.listen(local.name)
                local.listening = True
            if local.view is not None:
                return
            # Once per channel and process; from here on, join and leave
            # events keep it current.
            known = dict(await self._backend.presence(local.name))
            for member, (joined, info) in local.changes.items():
                if joined:
                    known[member] = info
                else:
                    known.pop(member, None)
            local.view = known

    def _catch_up(self, local: _Local, sub: Subscription, page: HistoryPage) -> None:
        if local.epoch is None:
            local.epoch, local.last = page.epoch, page.top
        # History and live events travel on different connections, so the
        # page can be ahead of the live stream: what it holds past local.last
        # is still on its way live (the channel was listened to before the
        # read), and replaying it too would deliver it twice.
        live_from = local.last if local.epoch == page.epoch else page.top
        since = sub.since
        if since is not None:
            if page.covers(since.epoch, since.offset):
                for event in page.events:
                    if event.offset > live_from:
                        break
                    sub._push(event)
                _telemetry.channel_recovery("recovered")
            else:
                sub.recovered = False
                _telemetry.channel_recovery("reset")
        for event in sub._pending:
            if event.type == "message" and event.epoch == page.epoch and event.offset <= page.top:
                continue  # in the replay, or published before this subscription started
            sub._push(event)
        sub._pending.clear()
        if sub.member is not None:
            # Who is here now; the diffs that follow apply to it in order (a
            # change already in it, sent again in the next diff, changes nothing).
            sub._push(self._snapshot_event(local))
        if not sub.closed:
            local.add(sub)

    async def _detach(self, sub: Subscription) -> None:
        sub._close()
        local = self._locals.get(sub.channel)
        if local is None or not sub._attached:
            return
        sub._attached = False
        with anyio.CancelScope(shield=True):
            local.remove(sub)
            if sub.member is not None and local.members.pop(sub.member, None) is not None:
                await self._best_effort(self._backend.presence_leave(local.name, sub.member))
            await self._release(local)

    def _evict(self, sub: Subscription) -> None:
        local = self._locals.get(sub.channel)
        if local is not None:
            local.remove(sub)

    async def _release(self, local: _Local) -> None:
        local.refs -= 1
        if local.refs > 0:
            return
        with anyio.CancelScope(shield=True):
            async with local.lock:
                if local.refs > 0 or self._locals.get(local.name) is not local:
                    return
                del self._locals[local.name]
                if local.listening:
                    local.listening = False
                    await self._best_effort(self._backend.unlisten(local.name))

    async def _best_effort(self, operation: Any) -> None:
        """Await a cleanup step, bounded in time, logging instead of raising."""
        try:
            with anyio.fail_after(_CLEANUP_TIMEOUT):
                await operation
        except (BackendUnavailableError, TimeoutError) as exc:
            logger.warning("Channels cleanup step failed (it will time out instead): %s", exc)

    async def _heartbeat(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep this process's members alive and expire dead processes' members.

        Every ``presence_ttl / 3`` seconds, so a member survives two missed
        beats, and a dead process's members go within ``presence_ttl`` plus
        one beat of its last heartbeat.
        """
        interval = self.presence_ttl / 3
        with anyio.CancelScope() as self._heartbeat_scope:
            task_status.started()
            while True:
                await anyio.sleep(interval)
                for local in list(self._locals.values()):
                    try:
                        await self._backend.presence_refresh(
                            local.name, dict(local.members), self.presence_ttl
                        )
                    except BackendUnavailableError as exc:
                        logger.warning("Presence heartbeat of %r failed: %s", local.name, exc)

    def _require_connected(self) -> None:
        if self._task_group is None:
            raise NotConnectedError(
                f"{self!r} is not connected: pass lifespan=channels.lifespan to your app "
                "or await channels.connect() first."
            )
