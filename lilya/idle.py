"""The idle timeout: a connection on which nothing has passed for a while is closed 1001.

Theory of operation
-------------------
A socket nobody uses still costs a slot of the connection caps, a task, and
the memory of its handler. A client that opens connections and then says
nothing (or a tab left open for a week) holds them for ever: nothing else
ends a healthy, silent TCP connection. lilya's heartbeat does not help here:
it proves the client is alive, and a live client may still be idle.

**idle_timeout** (``Lilya(idle_timeout=...)``, default ``None``: off;
``WebSocketPath(..., idle_timeout=...)`` for one route, where ``None`` or
``False`` turns it off and :data:`~lilya.timeouts.DEFAULT` means the app's):
once the handshake is accepted, a connection on which no message has passed
in either direction for that many seconds is closed with **1001** ("going
away", RFC 6455 §7.4.1: the server is done with it) and a reason naming the
setting. "A message passed" means the handler received one from the client,
or handed one to the server to send. lilya's own heartbeat frames
(``{"type":"ping"}``, ``{"type":"pong"}``, :mod:`lilya.heartbeat`) are not
messages of the application and do not count: otherwise a heartbeat would
keep every idle socket open.

When it fires, the connection ends as if the client had left with 1001: the
state says so (:meth:`~lilya._connection_state.ConnectionState.lose` with that
code), the handler's pending ``receive`` returns ``websocket.disconnect``
1001 (``receive_*`` raise ``WebSocketDisconnect(1001)``, ``iter_*`` end,
a controller's ``on_disconnect`` runs), its next sends raise
``WebSocketDisconnect(1001)``, and the close goes to the server with
:data:`~lilya.timeouts.CLOSE_GRACE` to leave: a client that does not read
it either is dropped (:func:`~lilya.timeouts.close_within`), as after a send
timeout. One INFO line is logged, and ``note_limit(scope, "idle_timeout")``
tells metrics and tracing. The slot of the connection caps is freed when the
handler returns, as always.

The costs. Off, nothing: the route adds no layer. On, one :class:`Watchdog`
per connection between the route and the handler (inside the heartbeat's
:class:`~lilya.heartbeat.Pulse` when both are on, so it never sees a ping or
a pong) and one task that sleeps until the connection's deadline, then looks
at when the last message passed and sleeps again: one wake-up per
``idle_timeout`` on a busy connection, never one per message. Per message:

* a send goes through a plain function that stores the clock
  (``time.monotonic()``) and hands back the server's awaitable, so a send
  has no coroutine frame of its own; it counts when it is handed over.
* a receive is a coroutine of its own, because a plain function could only
  note when the handler *asked* for a message, not when one *came*: a
  handler still busy with a message that came long after it asked would be
  closed as idle. On asyncio it notes its task, so the watchdog can cancel
  a receive that is waiting and turn it into the disconnect (the
  cancellation request is withdrawn, as :func:`~lilya.timeouts.finish_within`
  does); on trio it runs in a cancel scope, which costs more.

Noting the task is most of the cost on Python 3.11, where
``asyncio.current_task()`` is Python code (about 0.4 µs on a busy machine;
a C function of about 0.01 µs from 3.12 on).

The connection is closed ``idle_timeout`` seconds after the last message,
plus the time the close takes to leave (at most ``CLOSE_GRACE``). A send that
waits in the server for a client that is not reading counted when it was
handed over; if it still waits ``idle_timeout`` later, the close 1001 ends
it: uvicorn's transport is dropped after the grace and the send raises. A
server that offers no way to drop a client (hypercorn, granian, the test
client) leaves it to the send timeout (:mod:`lilya.timeouts`), which then
tells the handler the 1001 that stands rather than close again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, cast

import anyio
import anyio.abc

from lilya._connection_state import ConnectionState
from lilya._recorder import enter, server_callables
from lilya._telemetry import note_limit
from lilya.status import WS_1001_GOING_AWAY
from lilya.timeouts import STEPPED, Default, check_timeout, close_for_liveness, timer_kind
from lilya.timeouts import _uncancel as _uncancel  # the same withdrawal as a send's timer
from lilya.types import Message, Receive, Scope, Send

__all__ = [
    "IdleGone",
    "Watchdog",
    "check_idle_timeout",
    "idle_reason",
    "serve",
]

logger = logging.getLogger("lilya.idle")

_monotonic: Final = time.monotonic


def check_idle_timeout(value: Any, where: str) -> float | Default | None:
    """Return a route's ``idle_timeout=`` setting: :data:`DEFAULT`, ``None`` (off) or seconds.

    ``False`` turns it off, as ``None`` does (the heartbeat's way of saying so).

    Raises:
        ImproperlyConfigured: anything else but positive finite seconds.
    """
    if isinstance(value, Default):
        return value
    if value is False:
        return None
    return check_timeout(value, "idle_timeout", where)


def idle_reason(timeout: float) -> str:
    """The close reason of a connection idle for *timeout* seconds (at most 123 bytes)."""
    return f"idle: no message either way within idle_timeout ({timeout:g} s)"


class IdleGone(ConnectionResetError):
    """A raw handler's send after the idle timeout closed the connection (ASGI 2.4's ``OSError``).

    A ``WebSocket`` never gets here: it reads the state first and raises
    ``WebSocketDisconnect(1001)``.
    """


async def _nothing() -> None:
    # What a close after the end gets: the connection is closed already.
    return None


class Watchdog:
    """One connection's idle timer, and the handler's callables that reset it.

    Args:
        timeout: the idle timeout in seconds.
        state: the connection's state.
        receive, send: what the handler talks through.
        closer: the server's ``send`` (the one :func:`~lilya.timeouts.drop_connection`
            can drop), for the close 1001.
        where, scope: the path for the log line, the scope for ``note_limit``.

    Attributes:
        last: ``time.monotonic()`` when the last message passed (or the
            watchdog was made: before accept nothing is timed).
    """

    __slots__ = (
        "_cancelled",
        "_closer",
        "_closing",
        "_gone",
        "_receive",
        "_receiving",
        "_scope",
        "_send",
        "_state",
        "_stepped",
        "_where",
        "last",
        "timeout",
    )

    def __init__(
        self,
        timeout: float,
        state: ConnectionState,
        receive: Receive,
        send: Send,
        closer: Send,
        *,
        where: str = "?",
        scope: Scope | None = None,
    ) -> None:
        self.timeout = timeout
        self.last = _monotonic()
        self._state = state
        self._receive = receive
        self._send = send
        self._closer = closer
        self._where = where
        self._scope: Scope = scope if scope is not None else {}
        self._stepped = timer_kind() == STEPPED
        #: The disconnect 1001 once the timeout fired, else ``None``.
        self._gone: Message | None = None
        #: The task (asyncio) or cancel scope (trio) of the receive now waiting.
        self._receiving: Any = None
        #: What the watchdog cancelled: the receive it turned into the disconnect.
        self._cancelled: Any = None
        #: Set once the close 1001 has left (or was given up).
        self._closing: anyio.Event | None = None

    # -- the handler's callables ----------------------------------------------
    async def receive(self) -> Message:
        """The handler's ``receive``: the server's message, noted; the disconnect 1001 once idle."""
        gone = self._gone
        if gone is not None:
            return gone  # asked again after the end: the end again, never a hang
        if self._stepped:
            task = self._receiving = asyncio.current_task()
            try:
                message = await self._receive()
            except asyncio.CancelledError:
                if self._cancelled is not task:
                    raise  # someone else's cancellation
                self._cancelled = None
                _uncancel(task)
                return cast(Message, self._gone)  # set before the cancel
            finally:
                self._receiving = None
            # Run by the test of a swallowing server (which checks the count), but
            # Python 3.11 traces no line of a frame a cancellation went through.
            if self._cancelled is task:  # pragma: no cover
                # The message came as the watchdog cancelled, and the server's
                # receive swallowed the cancellation: withdraw it all the same.
                self._cancelled = None
                _uncancel(task)
        else:
            with anyio.CancelScope() as scope:
                self._receiving = scope
                try:
                    message = await self._receive()
                finally:
                    self._receiving = None
            if scope.cancelled_caught:
                return cast(Message, self._gone)  # set before the cancel
        gone = self._gone
        if gone is not None:
            return gone  # it came as the timeout fired: the connection is over
        self.last = _monotonic()
        return message

    def send(self, message: Message) -> Awaitable[None]:
        """The handler's ``send``: a plain function that notes the time, and the server's send.

        Raises:
            IdleGone: the idle timeout has closed the connection (a close is
                then a no-op).
        """
        if self._gone is not None:
            if message.get("type") == "websocket.close":
                return _nothing()
            raise IdleGone(f"the connection was closed: {self._gone['reason']}")
        self.last = _monotonic()
        return self._send(message)

    # -- the timer --------------------------------------------------------------
    async def watch(self) -> None:
        """Sleep until the deadline; close the connection if nothing passed meanwhile.

        Before the handshake is accepted nothing is timed (the handshake
        timeout's business); once the connection has ended otherwise, the
        watch is over.
        """
        state = self._state
        timeout = self.timeout
        while True:
            wait = self.last + timeout - _monotonic()
            if wait > 0:
                await anyio.sleep(wait)
                continue
            if state.ended:
                return
            if state.accepted:
                break
            await anyio.sleep(timeout)  # not accepted yet: look again later
        await self._expire()

    async def _expire(self) -> None:
        state = self._state
        closing = self._closing = anyio.Event()
        reason = idle_reason(self.timeout)
        self._gone = {"type": "websocket.disconnect", "code": WS_1001_GOING_AWAY, "reason": reason}
        note_limit(self._scope, "idle_timeout")
        # As if the client had left with 1001: the handler's sends raise, and
        # no layer sends a close of its own after this one.
        state.lose()
        state.code, state.reason = WS_1001_GOING_AWAY, reason
        receiving = self._receiving
        if receiving is not None:
            self._cancelled = receiving
            receiving.cancel()
        try:
            await close_for_liveness(
                self._closer, WS_1001_GOING_AWAY, reason, where=self._where, log=logger
            )
        finally:
            closing.set()

    async def settle(self) -> None:
        """Wait until the close 1001 has left, if one is leaving (the handler may end first)."""
        if self._closing is not None:
            await self._closing.wait()


async def serve(
    app: Callable[[Scope, Receive, Send], Awaitable[None]],
    seconds: float,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    closer: Send,
    observe: bool = False,
) -> None:
    """Run *app* for one WebSocket under an idle timeout (see the module's theory of operation).

    Args:
        seconds: the idle timeout.
        closer: the server's ``send`` for the close 1001 (*send* may lead
            through a heartbeat's pulse, which cannot drop the connection).
        observe: the handler is raw ASGI code: it talks through the
            connection's recorder, which notes its messages in the state (a
            ``WebSocket`` moves the state itself, straight to the server).
    """
    state, receive, send = enter(scope, receive, send)
    if not observe:
        receive, send = server_callables(receive, send)
    where = str(scope.get("path", "?"))
    dog = Watchdog(seconds, state, receive, send, closer, where=where, scope=scope)
    # The handler's error leaves the task group as itself (every layer
    # outside catches by type), as in lilya.heartbeat.serve.
    error: Exception | None = None
    group: anyio.abc.TaskGroup
    async with anyio.create_task_group() as group:
        group.start_soon(dog.watch)
        try:
            await app(scope, dog.receive, dog.send)
        except Exception as exc:
            error = exc
        finally:
            await dog.settle()
            group.cancel_scope.cancel()
    if error is not None:
        raise error
