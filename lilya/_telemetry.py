"""What a connection did, watched once for every observer (metrics, tracing), and the hooks.

Theory of operation
-------------------
An app built with ``metrics=`` or ``tracing=`` serves each WebSocket through
:func:`watch`: one pair of wrappers around the server's ``receive`` and
``send`` (outside the drain and the recorder, so they see every message the
server sees, whoever sent it) keeps the connection's facts in one
:class:`Watch` (route, handshake outcome, counts and bytes by direction,
the first close and its side). The per-message work is a few integer
additions on that object.

The wrappers cost a coroutine frame and a call per message, as much as the
rest of lilya spends on one. So when no observer needs a tick per message
(``every`` 0: ``Metrics`` in one process, which flushes when its registry is
collected) a ``WebSocket`` handed the wrappers themselves
(:attr:`Watch.receive` and :attr:`Watch.send`) talks to the server's
callables under them on its data fast paths, and counts those messages
inline there (two additions on the :class:`Watch`); everything else it
receives or sends (handshake, closes, raw ``receive()``/``send()``) still goes
through the wrappers. So each message is counted exactly once, either by a
wrapper or by the ``WebSocket``, and raw ASGI code (mounted apps, raw
handlers, lilya's own closes) is counted by the wrappers as before. Observers
are told only of the rare events:

* ``opened`` when the handshake is accepted, ``refused`` when it is denied,
* ``tick`` every ``every`` messages it asked for (both directions counted
  together: metrics flush their counters in multi-process mode, tracing
  records a sampled event; an app with one keeps its ``WebSocket`` on the
  wrappers, which count down),
* ``limit`` when lilya closes or refuses for a limit (:func:`note_limit`),
* ``dropped`` when lilya drops a client's message (:func:`note_dropped`: the
  rate limit's ``on_exceed="drop"``),
* ``ended`` once, in a ``finally``, however the connection ended (the client
  vanished, the handler raised, the handshake was denied).

Which side closed is the side whose close came first (RFC 6455 §7.1.4: the
endpoint that sent the first close frame "started the closing handshake"):
the server's ``websocket.close``, or the client's ``websocket.disconnect``
(1006 when the client vanished, or when a send failed because it had).

Two kinds of hooks live here so that lilya's other modules can call them
without importing ``prometheus_client`` or OpenTelemetry: :func:`note_route`
and :func:`note_limit` take the scope (a no-op when nothing watches), and the
channel hooks (:func:`channel_published` …) tell every live
:class:`ChannelObserver` (held weakly: an observer that is gone costs nothing).
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from lilya._connection_state import STATE_KEY, ConnectionState
from lilya.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "LIMIT_REASONS",
    "WATCH_KEY",
    "ChannelObserver",
    "ConnectionObserver",
    "Watch",
    "backend_reconnected",
    "channel_dropped",
    "channel_gap",
    "channel_observers",
    "channel_published",
    "channel_recovery",
    "message_size",
    "note_dropped",
    "note_limit",
    "note_route",
    "watch",
]

#: Where a watched connection's :class:`Watch` lives in its scope.
WATCH_KEY = "lilya.watch"

#: The reasons :func:`note_limit` takes. lilya itself notes the first four;
#: the others are for the features that close for them (send timeouts,
#: connection caps, heartbeats, idle timeouts) to call at the point they close.
LIMIT_REASONS = (
    "message_size",
    "rate",
    "origin",
    "drain",
    "send_timeout",
    "connection_cap",
    "heartbeat",
    "idle_timeout",
)


class ConnectionObserver(Protocol):
    """What :func:`watch` tells an observer (``lilya.metrics.Metrics``, ``lilya.tracing.Tracing``).

    Each method gets the connection's :class:`Watch`; ``watch.states[i]`` is
    the slot this observer (the *i*-th) may keep per-connection data in.
    """

    #: Call :meth:`tick` every this many messages (per connection, both ways);
    #: 0 for never: the observer reads the counts when it needs them, so a
    #: ``WebSocket`` may count on its own fast paths, with no countdown.
    every: int

    def started(self, watch: Watch, index: int) -> None: ...
    def opened(self, watch: Watch, index: int) -> None: ...
    def refused(self, watch: Watch, index: int) -> None: ...
    def tick(self, watch: Watch, index: int, direction: str, size: int) -> None: ...
    def limit(self, watch: Watch, index: int, reason: str) -> None: ...
    def dropped(self, watch: Watch, index: int, reason: str) -> None: ...
    def ended(self, watch: Watch, index: int, error: BaseException | None) -> None: ...


class Watch:
    """The facts of one connection, kept up to date by :func:`watch`'s wrappers.

    Attributes:
        route: the route's path template (``"/api/ws/{room}"``), built by
            :func:`note_route` as routing goes in; ``""`` if nothing matched.
        started: ``time.monotonic()`` when the connection reached the app.
        accepted: ``time.monotonic()`` of the accept, or ``None``.
        status: the handshake's answer: 101 accepted, the denial's HTTP
            status (403 for a close before accept), or ``None`` if the client
            left before one was sent.
        close_code, close_side: the first close (``"server"`` or ``"client"``).
        received, received_bytes, sent, sent_bytes: data messages and their
            payload sizes (UTF-8 bytes for text) from and to the client.
        dropped: the client's messages lilya dropped (counted in *received*).
        states: one slot per observer for its own per-connection data.
        receive, send: :func:`watch`'s wrappers, as handed to the app.
        server_receive, server_send: the server's callables under them. A
            ``WebSocket`` handed the wrappers themselves talks to these and
            counts its data messages itself (see ``lilya/websockets.py``).
    """

    __slots__ = (
        "accepted",
        "close_code",
        "close_reason",
        "close_side",
        "countdown",
        "dropped",
        "every",
        "observers",
        "receive",
        "received",
        "received_bytes",
        "route",
        "scope",
        "send",
        "sent",
        "sent_bytes",
        "server_receive",
        "server_send",
        "started",
        "states",
        "status",
    )

    def __init__(self, scope: Scope, observers: Sequence[ConnectionObserver]) -> None:
        self.scope = scope
        self.observers = observers
        self.route = ""
        self.started = time.monotonic()
        self.accepted: float | None = None
        self.status: int | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.close_side: str | None = None
        self.received = self.received_bytes = self.sent = self.sent_bytes = 0
        self.dropped = 0
        # Ticks come every gcd of what the observers asked for; each is told on its own
        # multiples. No observer asking (every 0): the countdown starts below zero,
        # never to reach it.
        self.every = math.gcd(*(observer.every for observer in observers))
        self.countdown = self.every or -1
        self.states: list[Any] = [None] * len(observers)
        self.receive: Receive | None = None
        self.send: Send | None = None
        self.server_receive: Receive | None = None
        self.server_send: Send | None = None

    def tick(self, direction: str, size: int) -> None:
        """Tell the observers ``every`` more messages have passed; start counting again."""
        self.countdown = self.every
        count = self.received + self.sent
        for index, observer in enumerate(self.observers):
            if observer.every and not count % observer.every:
                observer.tick(self, index, direction, size)

    def note_receive(self, message: Message) -> None:
        """Note a message from the server that is not data: a disconnect is the client's close."""
        if message["type"] == "websocket.disconnect" and self.close_side is None:
            self.close_side = "client"
            self.close_code = message.get("code") or 1005  # daphne may send None
            self.close_reason = message.get("reason") or ""

    def limit(self, reason: str) -> None:
        """Tell the observers lilya closed (or refused) this connection for *reason*."""
        for index, observer in enumerate(self.observers):
            observer.limit(self, index, reason)

    def drop(self, reason: str) -> None:
        """Count a client's message lilya dropped for *reason*; tell the observers."""
        self.dropped += 1
        for index, observer in enumerate(self.observers):
            observer.dropped(self, index, reason)


def message_size(message: Message) -> int:
    """The payload size of a ``websocket.receive`` / ``websocket.send``: UTF-8 bytes for text."""
    text = message.get("text")
    if text is not None:
        # isascii() is O(1) on CPython's compact strings: no encoding for ASCII.
        return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    return len(message.get("bytes") or b"")


def _serve_watched(
    observers: Sequence[ConnectionObserver], scope: Scope, receive: Receive, send: Send
) -> tuple[Watch, Receive, Send]:
    watch = Watch(scope, observers)
    scope[WATCH_KEY] = watch

    async def watched_receive() -> Message:
        message = await receive()
        if message["type"] == "websocket.receive":
            # Inline, not message_size(): this runs for every message.
            text = message.get("text")
            size = len(text) if text is not None and text.isascii() else message_size(message)
            watch.received += 1
            watch.received_bytes += size
            watch.countdown -= 1
            if not watch.countdown:
                watch.tick("received", size)
            return message
        watch.note_receive(message)
        return message

    def watched_send(message: Message) -> Awaitable[None]:
        # A plain function handing back the server's awaitable: no coroutine
        # frame of its own per message. So a message is noted as it is handed
        # to the server; a send the server fails (the client vanished) is
        # read from the connection's state at the end (see watch()).
        kind = message["type"]
        if kind == "websocket.send":
            text = message.get("text")
            size = len(text) if text is not None and text.isascii() else message_size(message)
            watch.sent += 1
            watch.sent_bytes += size
            watch.countdown -= 1
            if not watch.countdown:
                watch.tick("sent", size)
        elif kind == "websocket.accept":
            if watch.status is None:
                watch.status = 101
                watch.accepted = time.monotonic()
                for index, observer in enumerate(observers):
                    observer.opened(watch, index)
        elif kind == "websocket.close":
            if watch.status is None:
                watch.status = 403  # a close before accept: the server answers 403
                _refused(watch)
            elif watch.close_side is None:
                watch.close_side = "server"
                watch.close_code = message.get("code", 1000)
                watch.close_reason = message.get("reason") or ""
        elif kind == "websocket.http.response.start" and watch.status is None:
            watch.status = int(message.get("status", 0))
            _refused(watch)
        return send(message)

    watch.receive, watch.send = watched_receive, watched_send
    watch.server_receive, watch.server_send = receive, send
    return watch, watched_receive, watched_send


def _refused(watch: Watch) -> None:
    for index, observer in enumerate(watch.observers):
        observer.refused(watch, index)


async def watch(
    observers: Sequence[ConnectionObserver],
    serve: Callable[[ASGIApp, Scope, Receive, Send], Awaitable[None]],
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Run ``serve(app, scope, …)`` for one WebSocket, telling *observers* what it does."""
    watch, watched_receive, watched_send = _serve_watched(observers, scope, receive, send)
    for index, observer in enumerate(observers):
        observer.started(watch, index)
    error: BaseException | None = None
    try:
        await serve(app, scope, watched_receive, watched_send)
    except BaseException as exc:
        error = exc
        raise
    finally:
        if watch.accepted is not None and watch.close_side is None:
            # No close seen either way. Either a send found the client gone
            # (ASGI: an OSError, raised to here or noted in the state), or the
            # app ended without closing and the server drops the connection
            # (its client sees 1006 too).
            state: ConnectionState | None = scope.get(STATE_KEY)
            lost = isinstance(error, OSError) or (state is not None and state.lost_on_send)
            watch.close_side = "client" if lost else "server"
            watch.close_code = 1006
        for index, observer in enumerate(observers):
            observer.ended(watch, index, error)


# -- hooks for lilya's other modules -------------------------------------------------


def note_route(scope: Mapping[str, Any], template: str) -> None:
    """Append *template* to the watched connection's route (routing calls it going in)."""
    watch: Watch | None = scope.get(WATCH_KEY)
    if watch is not None:
        watch.route += template


def note_limit(scope: Mapping[str, Any], reason: str) -> None:
    """Tell the observers lilya is closing or refusing this connection for *reason*.

    Call it where the close is decided, with one of :data:`LIMIT_REASONS`;
    it does nothing when the app is not watched.
    """
    watch: Watch | None = scope.get(WATCH_KEY)
    if watch is not None:
        watch.limit(reason)


def note_dropped(scope: Mapping[str, Any], reason: str) -> None:
    """Tell the observers lilya dropped one of the client's messages for *reason* (``"rate"``).

    Call it where the message is dropped; it does nothing when the app is not watched.
    """
    watch: Watch | None = scope.get(WATCH_KEY)
    if watch is not None:
        watch.drop(reason)


class ChannelObserver(Protocol):
    """What the channel hooks tell an observer (``lilya.metrics.Metrics``)."""

    def channel_published(self, backend: str) -> None: ...
    def channel_dropped(self, policy: str, count: int) -> None: ...
    def channel_gap(self, policy: str) -> None: ...
    def channel_recovery(self, outcome: str) -> None: ...
    def backend_reconnected(self, backend: str) -> None: ...


#: Every live channel observer; held weakly, so a dropped ``Metrics`` leaves by itself.
channel_observers: weakref.WeakSet[Any] = weakref.WeakSet()


def channel_published(backend: str) -> None:
    """A message was published through a ``Channels`` of *backend* (its URL scheme)."""
    for observer in channel_observers:
        observer.channel_published(backend)


def channel_dropped(policy: str, count: int) -> None:
    """A subscription's queue *policy* discarded *count* events."""
    for observer in channel_observers:
        observer.channel_dropped(policy, count)


def channel_gap(policy: str) -> None:
    """A subscription's queue *policy* put a new ``gap`` event in its queue."""
    for observer in channel_observers:
        observer.channel_gap(policy)


def channel_recovery(outcome: str) -> None:
    """A catch-up from history was ``"recovered"`` or ended in a ``"reset"``."""
    for observer in channel_observers:
        observer.channel_recovery(outcome)


def backend_reconnected(backend: str) -> None:
    """A backend reconnected and asked for a resync (the contract's promise)."""
    for observer in channel_observers:
        observer.backend_reconnected(backend)
