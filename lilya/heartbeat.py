"""Heartbeats of lilya's own: a ping the application sends, a pong the client owes.

Theory of operation
-------------------
Servers disagree on liveness (``docs/servers.md``): uvicorn pings and closes a
silent client with 1011, daphne drops TCP without a close frame, hypercorn
and granian never ping. And a handler that only sends is not told on most of
them that its client vanished: its sends succeed into the void. So a route
(or the whole app) may ask for a heartbeat at the application level, with a
frame every client can answer from JavaScript (the protocol's "Heartbeat",
``docs/operations.md``)::

    server -> client   {"type":"ping"}     every ``interval`` seconds
    client -> server   {"type":"pong"}     within ``timeout`` seconds, or close 1011

One :class:`Pulse` per connection sits between the route and the handler, on
the handler's ``receive`` and ``send``. Until the handshake is accepted it
passes everything through. Once the handler sends ``websocket.accept`` it
starts two tasks in the connection's task group:

* a **reader**, the only caller of the server's ``receive`` from then on. It
  consumes the pongs that answer a ping (the handler never sees them) and
  queues everything else, in order, for the handler's ``receive``. It stops at
  the server's ``websocket.disconnect``: the server is never asked again
  (``docs/servers.md``: several hang). Reading in the background is what lets
  a handler that never calls ``receive`` still learn its client is gone. The
  queue holds at most :data:`INBOX_SIZE` messages: then the reader waits for
  the handler, so the server's own flow control still applies.
* a **pinger**: every ``interval`` s it sends the ping and waits ``timeout`` s
  for the pong, then notes the round trip (``websocket.latency``). Without a
  pong it ends the connection as the client's doing: the state says the
  client left with 1011 (:meth:`~lilya._connection_state.ConnectionState.lose`
  with that code), a send the handler has pending in the server is cancelled,
  the handler's pending or next ``receive`` gets ``websocket.disconnect``
  1011, its next send raises ``WebSocketDisconnect(1011)`` (through the
  ``OSError`` ASGI 2.4 defines for a send to a gone client), and the server
  gets the close 1011. A client that closes first is handled the same way
  with its own code: the handler's sends raise instead of vanishing.

The compromise: while the handler leaves the queue full (it is not reading),
the pong may be stuck behind the messages the handler has not taken. The
pinger then waits for the handler to read before it gives the client another
``timeout``: a handler that does not read is not its client's fault.
"""

from __future__ import annotations

import collections
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Final, Literal

import anyio
import anyio.abc

from lilya._connection_state import DISCONNECTED, ConnectionState
from lilya._recorder import enter, server_callables
from lilya._telemetry import note_limit
from lilya.exceptions import ImproperlyConfigured
from lilya.status import WS_1011_INTERNAL_ERROR
from lilya.timeouts import close_for_liveness
from lilya.types import Message, Receive, Scope, Send

__all__ = [
    "INBOX_SIZE",
    "PING",
    "PING_TEXT",
    "PONG_TEXT",
    "Heartbeat",
    "HeartbeatGone",
    "Pulse",
    "check_heartbeat",
    "is_ping",
    "serve",
]

#: ``(interval, timeout)`` in seconds.
Heartbeat = tuple[float, float]

#: The ping frame's text, exactly as the protocol fixes it.
PING_TEXT: Final = '{"type":"ping"}'
#: The pong frame's text as lilya's clients send it (any JSON object of type "pong" counts).
PONG_TEXT: Final = '{"type":"pong"}'
PING: Final[Message] = {"type": "websocket.send", "text": PING_TEXT}

#: How many received messages wait for a handler that is not reading before
#: the reader waits too (and the server's flow control takes over).
INBOX_SIZE: Final = 64

#: The longest a pong frame can be and still be looked at (whitespace, a key order).
_PONG_MAX_CHARS: Final = 64

logger = logging.getLogger("lilya.heartbeat")


def check_heartbeat(value: object, where: str) -> Heartbeat | Literal[False] | None:
    """Return *value* as a ``heartbeat=`` setting, or say what is wrong with it.

    ``None`` means "the app's" on a route and "off" on the app; ``False``
    turns a route's heartbeat off whatever the app says.

    Raises:
        ImproperlyConfigured: not ``None``, ``False`` nor a pair of finite
            positive seconds.
    """
    if value is None:
        return None
    if value is False:
        return False
    if not isinstance(value, tuple) or len(value) != 2:
        raise ImproperlyConfigured(
            f"{where}: heartbeat must be (interval, timeout) in seconds, e.g. (25, 10), "
            f"None or False; got {value!r}."
        )
    for name, seconds in zip(("interval", "timeout"), value, strict=True):
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise ImproperlyConfigured(
                f"{where}: the heartbeat {name} must be a finite number of seconds > 0, "
                f"got {seconds!r}."
            )
    return (float(value[0]), float(value[1]))


def is_ping(message: Message) -> bool:
    """Whether *message* (an app's ``websocket.send``) is the heartbeat's ping."""
    return message.get("type") == "websocket.send" and message.get("text") == PING_TEXT


class HeartbeatGone(ConnectionResetError):
    """A send on a connection the heartbeat knows is over (ASGI 2.4's ``OSError``).

    The client closed (the reader saw its disconnect) or stopped answering
    pings; the server is not called. A ``WebSocket`` turns it into
    ``WebSocketDisconnect`` with the code the state holds.
    """


def _is_pong(text: object) -> bool:
    if not isinstance(text, str) or len(text) > _PONG_MAX_CHARS or "pong" not in text:
        return False
    try:
        frame = json.loads(text)
    except ValueError:
        return False
    return isinstance(frame, dict) and frame.get("type") == "pong"


class Pulse:
    """One connection's heartbeat: its reader, its pinger, and the handler's callables.

    Args:
        heartbeat: ``(interval, timeout)`` in seconds.
        group: the task group the reader and the pinger run in (the handler's).
        state: the connection's state.
        receive, send: what the handler would have got.
        observe: the handler is raw ASGI code: the messages it receives are
            noted in *state* (a ``WebSocket`` moves the state itself).

    Attributes:
        latency: the last ping's round trip in seconds; ``None`` before the
            first pong.
    """

    def __init__(
        self,
        heartbeat: Heartbeat,
        group: anyio.abc.TaskGroup,
        state: ConnectionState,
        receive: Receive,
        send: Send,
        *,
        observe: bool,
        where: str = "?",
        scope: Scope | None = None,
    ) -> None:
        self.interval, self.timeout = heartbeat
        self._where = where
        self._scope: Scope = scope if scope is not None else {}
        self.latency: float | None = None
        self._state = state
        self._observe = observe
        self._server_receive, self._server_send = server_callables(receive, send)
        # Raw code talks through the recorder (it notes what raw code does); a
        # WebSocket straight to the server, as the route would have it.
        self._receive, self._send = (receive, send) if observe else server_callables(receive, send)
        self._group = group
        self._started = False
        self._inbox: collections.deque[Message] = collections.deque()
        self._arrived: anyio.Event | None = None
        self._room: anyio.Event | None = None
        self._pong: anyio.Event | None = None
        self._ping_sent = 0.0
        #: The disconnect that ended the connection (the client's, or the 1011).
        self._gone: Message | None = None
        self._reader = anyio.CancelScope()
        #: Set once the close 1011 has left (or was given up).
        self._closing: anyio.Event | None = None
        self._sending: set[anyio.CancelScope] = set()

    # -- the handler's callables ----------------------------------------------
    async def receive(self) -> Message:
        """The handler's ``receive``: the reader's queue once accepted, the server's before."""
        if not self._started:
            return await self._receive()
        while not self._inbox:
            if self._gone is not None:
                message = self._gone  # asked again after the end: the end again, never a hang
                break
            arrived = self._arrived = anyio.Event()
            await arrived.wait()
        else:
            message = self._inbox.popleft()
            room, self._room = self._room, None
            if room is not None:
                room.set()
        if self._observe:
            self._state.observe_receive(message)
        return message

    async def send(self, message: Message) -> None:
        """The handler's ``send``: refused with :class:`HeartbeatGone` once the connection is over.

        Raises:
            HeartbeatGone: the client closed, or stopped answering pings
                (including while this send waited in the server).
        """
        gone = self._gone
        if gone is not None:
            if message.get("type") == "websocket.close":
                return  # the connection is closed already: done
            self._tell_state(gone)
            raise HeartbeatGone(f"the client is gone ({gone.get('reason') or gone.get('code')})")
        with anyio.CancelScope() as sending:
            self._sending.add(sending)
            try:
                await self._send(message)
            finally:
                self._sending.discard(sending)
        if sending.cancelled_caught:
            raise HeartbeatGone("the client stopped answering pings")
        if not self._started and message.get("type") == "websocket.accept":
            self._start()

    def _tell_state(self, gone: Message) -> None:
        # The client's leaving is known before the handler received it: say
        # so, with its code, as a send that found the client gone would.
        state = self._state
        if state.client is not DISCONNECTED:
            state.lose()
            state.code, state.reason = gone.get("code") or 1005, gone.get("reason") or ""

    # -- the two tasks --------------------------------------------------------
    def _start(self) -> None:
        self._started = True
        self._group.start_soon(self._read)
        self._group.start_soon(self._beat)

    async def _read(self) -> None:
        with self._reader:
            while True:
                message = await self._server_receive()
                message_type = message.get("type")
                if message_type == "websocket.receive":
                    pong = self._pong
                    if pong is not None and not pong.is_set() and _is_pong(message.get("text")):
                        self.latency = anyio.current_time() - self._ping_sent
                        pong.set()
                        continue
                elif message_type == "websocket.disconnect":
                    self._end(message)
                    return
                while len(self._inbox) >= INBOX_SIZE:
                    room = self._room = self._room or anyio.Event()
                    await room.wait()
                self._deliver(message)

    def _deliver(self, message: Message) -> None:
        self._inbox.append(message)
        arrived, self._arrived = self._arrived, None
        if arrived is not None:
            arrived.set()

    def _end(self, disconnect: Message) -> None:
        self._gone = disconnect
        arrived, self._arrived = self._arrived, None
        if arrived is not None:
            arrived.set()

    async def _beat(self) -> None:
        state = self._state
        while True:
            await anyio.sleep(self.interval)
            if not state.open or self._gone is not None:
                return  # someone ended it: whoever did says why
            pong = self._pong = anyio.Event()
            self._ping_sent = anyio.current_time()
            deadline = self._ping_sent + self.timeout
            try:
                with anyio.move_on_after(self.timeout):
                    await self._server_send(PING)
            except Exception:
                return  # the server refused it: the connection is ending anyway
            while True:
                with anyio.move_on_after(deadline - anyio.current_time()):
                    await pong.wait()
                if pong.is_set():
                    break
                if state.ended:
                    return  # ended while the pong was due (an idle timeout's 1001): that stands
                room = self._room
                if room is None:
                    await self._expire()
                    return
                # The handler is not reading and the pong may be queued
                # behind what it has not taken: not the client's fault.
                await room.wait()
                deadline = anyio.current_time() + self.timeout

    async def _expire(self) -> None:
        closing = self._closing = anyio.Event()
        reason = f"heartbeat: no pong within {self.timeout:g} s"
        disconnect = {
            "type": "websocket.disconnect",
            "code": WS_1011_INTERNAL_ERROR,
            "reason": reason,
        }
        note_limit(self._scope, "heartbeat")
        self._tell_state(disconnect)
        self._end(disconnect)
        self._reader.cancel()
        for sending in list(self._sending):
            sending.cancel()
        try:
            await close_for_liveness(
                self._server_send, WS_1011_INTERNAL_ERROR, reason, where=self._where, log=logger
            )
        finally:
            closing.set()

    async def settle(self) -> None:
        """Wait until the close 1011 has left, if one is leaving (the handler may end first)."""
        if self._closing is not None:
            await self._closing.wait()


async def serve(
    app: Callable[[Scope, Receive, Send], Awaitable[None]],
    heartbeat: Heartbeat,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    observe: bool = False,
) -> None:
    """Run *app* for one WebSocket with a heartbeat (see the module's theory of operation).

    The connection's :class:`Pulse` is in its state (``state.heartbeat``), so
    ``websocket.latency`` and the test client find it.
    """
    state, receive, send = enter(scope, receive, send)
    where = str(scope.get("path", "?"))
    # The handler's error leaves the task group as itself: a task group would
    # wrap it in an ExceptionGroup, and every layer outside catches by type.
    error: Exception | None = None
    async with anyio.create_task_group() as group:
        pulse = Pulse(
            heartbeat, group, state, receive, send, observe=observe, where=where, scope=scope
        )
        state.heartbeat = pulse
        try:
            await app(scope, pulse.receive, pulse.send)
        except Exception as exc:
            error = exc
        finally:
            await pulse.settle()
            group.cancel_scope.cancel()
    if error is not None:
        raise error
