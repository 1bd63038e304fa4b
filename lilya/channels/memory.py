"""The in-process backend: ``memory://``.

Publishing is a synchronous fan-out into each subscriber's bounded queue, so
one process gets order, history, recovery and presence with no I/O at all.
``memory://`` gives each :class:`~lilya.channels.Channels` a private store;
``memory://NAME`` shares one store between every ``Channels`` of the process
that uses the same name (two app instances in a test, say). A store is
forgotten when its last user disconnects, like a Redis restarted empty: the
next use starts a new epoch.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from anyio.abc import TaskGroup

from lilya._json import loads
from lilya.channels.backend import Backend, BackendSettings, HistoryPage, Sink
from lilya.channels.events import TAG_TEXT, Event, decode, encode_json

__all__ = ["MemoryBackend"]


class _History:
    __slots__ = ("epoch", "events", "expires_at", "ids", "top")

    def __init__(self, size: int) -> None:
        self.epoch = secrets.token_hex(8)
        self.top = 0
        self.events: deque[Event] = deque(maxlen=size)
        self.expires_at: float | None = None
        # message_id -> its event, for the last ``size`` messages that had one.
        self.ids: dict[str, Event] = {}


class _Store:
    """One ``memory://`` namespace: histories, presence and who listens."""

    def __init__(self) -> None:
        self.histories: dict[str, _History] = {}
        self.members: dict[str, dict[str, tuple[Any, float]]] = {}
        self.listeners: dict[str, list[Sink]] = {}
        self.users = 0


# Named stores of this process; private ones (memory://) are never registered.
_NAMED: dict[str, _Store] = {}


class MemoryBackend(Backend):
    """Channels kept in this process (see the module docstring for sharing by name)."""

    def __init__(self, url: str, settings: BackendSettings) -> None:
        self.safe_url = url
        self._name = urlsplit(url).netloc + urlsplit(url).path.strip("/")
        self._size = settings.history_size
        self._ttl = settings.history_ttl
        self._store = _Store()
        self._sink: Sink | None = None

    async def connect(self, sink: Sink, task_group: TaskGroup) -> None:
        if self._name:
            self._store = _NAMED.setdefault(self._name, _Store())
        else:
            self._store = _Store()
        self._store.users += 1
        self._sink = sink

    async def disconnect(self) -> None:
        store = self._store
        sink = self._sink
        for sinks in store.listeners.values():
            while sink in sinks:
                sinks.remove(sink)
        self._sink = None
        store.users -= 1
        if store.users <= 0 and _NAMED.get(self._name) is store:
            del _NAMED[self._name]

    def _history(self, channel: str) -> _History:
        history = self._store.histories.get(channel)
        if history is None or (
            history.expires_at is not None and time.monotonic() >= history.expires_at
        ):
            history = self._store.histories[channel] = _History(self._size)
        return history

    def _announce(self, event: Event) -> None:
        for sink in self._store.listeners.get(event.channel, ()):
            sink.deliver(event)

    async def publish(
        self, channel: str, tag: str, payload: bytes, data: Any, message_id: str | None
    ) -> Event:
        # Every Channels of the store listening to the channel gets a say, as
        # a Redis reader does by not reading; from here on nothing awaits.
        for sink in list(self._store.listeners.get(channel, ())):
            if sink is not self._sink:
                await sink.ready(channel)
        history = self._history(channel)
        if message_id is not None and self._size:
            first = history.ids.get(message_id)
            if first is not None and first.offset > history.top - self._size:
                return first  # a retry: delivered once already
        history.top += 1
        # Deliver what Redis would: a JSON round trip (tuples become lists, and
        # the subscriber never shares the publisher's mutable object).
        value = data if tag == TAG_TEXT else decode(tag, payload)
        event = Event(channel, history.top, history.epoch, value)
        if self._size:
            history.events.append(event)
            if message_id is not None:
                ids = history.ids
                ids[message_id] = event
                # The same window as Redis': ids of the last ``size`` messages.
                while len(ids) > self._size or next(iter(ids.values())).offset <= (
                    history.top - self._size
                ):
                    del ids[next(iter(ids))]
        if self._ttl is not None:
            history.expires_at = time.monotonic() + self._ttl
        self._announce(event)
        return event

    async def history(self, channel: str, *, after: int | None, limit: int | None) -> HistoryPage:
        history = self._history(channel)
        retained = history.events
        first = retained[0].offset if retained else history.top + 1
        if limit == 0:
            events: list[Event] = []
        elif after is not None:
            events = [event for event in retained if event.offset > after]
            if limit is not None:
                events = events[:limit]
        else:
            events = list(retained)
            if limit is not None:
                events = events[-limit:]
        return HistoryPage(history.epoch, history.top, first, events)

    async def listen(self, channel: str) -> None:
        if self._sink is None:
            raise RuntimeError("MemoryBackend.listen() called before connect().")
        self._store.listeners.setdefault(channel, []).append(self._sink)

    async def unlisten(self, channel: str) -> None:
        sinks = self._store.listeners.get(channel, [])
        if self._sink in sinks:
            sinks.remove(self._sink)
        if not sinks:
            self._store.listeners.pop(channel, None)

    def _member_event(self, channel: str, kind: str, member: str, info: Any) -> Event:
        history = self._history(channel)
        data = {"member": member, "info": info}
        # ``kind`` is "join" or "leave" here; Event.type is a Literal of all kinds.
        return Event(channel, history.top, history.epoch, data, kind)  # type: ignore[arg-type]

    async def presence_join(self, channel: str, member: str, info: Any, ttl: float) -> None:
        info = loads(encode_json(info), "binary")
        self._store.members.setdefault(channel, {})[member] = (info, time.monotonic() + ttl)
        self._announce(self._member_event(channel, "join", member, info))

    async def presence_leave(self, channel: str, member: str) -> None:
        members = self._store.members.get(channel, {})
        entry = members.pop(member, None)
        if entry is not None:
            self._announce(self._member_event(channel, "leave", member, entry[0]))

    async def presence_refresh(self, channel: str, members: Mapping[str, Any], ttl: float) -> None:
        now = time.monotonic()
        present = self._store.members.setdefault(channel, {})
        for member, info in members.items():
            present[member] = (present.get(member, (info, 0.0))[0], now + ttl)
        self._sweep(channel, now)

    def _sweep(self, channel: str, now: float) -> None:
        present = self._store.members.get(channel, {})
        for member, (info, expires_at) in list(present.items()):
            if expires_at <= now:
                del present[member]
                self._announce(self._member_event(channel, "leave", member, info))

    async def presence(self, channel: str) -> Mapping[str, Any]:
        self._sweep(channel, time.monotonic())
        return {member: info for member, (info, _) in self._store.members.get(channel, {}).items()}
