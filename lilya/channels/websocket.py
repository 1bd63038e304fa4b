"""Glue between a subscription and a :class:`~lilya.websockets.WebSocket`.

:func:`relay` is the loop every fan-out handler would otherwise write by hand,
with the parts that are easy to get wrong done once: it reads the client
while it writes to it (or a disconnect goes unnoticed until the next event),
ends both directions when either ends, and closes a socket that cannot keep up
with 1013 instead of letting it stall or grow a queue without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from lilya import status
from lilya._side_task import SideTask
from lilya.channels.events import Event
from lilya.channels.exceptions import SubscriberOverflowError
from lilya.channels.subscription import Subscription
from lilya.exceptions import WebSocketRuntimeError
from lilya.websockets import WebSocket, WebSocketDisconnect, WebSocketState

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["default_encode", "relay"]

#: Turns an event into what is sent: ``str`` (text frame), ``bytes`` (binary
#: frame), another value (JSON text frame), or ``None`` to send nothing.
Encoder = Callable[[Event], Any]
Receiver = Callable[[Any], Awaitable[None]]


def default_encode(event: Event) -> Any:
    """Send a message's data as it was published, and a gap as a JSON frame; skip the rest.

    A ``gap`` event (a drop policy discarded events of a stalled subscriber)
    becomes ``{"type": "gap", "epoch": …, "first": …, "last": …, "dropped": …}``,
    so that the client can tell it lost messages and fetch them again with
    ``since=(epoch, first - 1)``; join, leave and reset events are skipped.
    Pass your own ``encode`` to :func:`relay` to forward those too, or to wrap
    data with its position (``{"offset": event.offset, "epoch": event.epoch,
    ...}``) so that a reconnecting client can ask for ``since=``.
    """
    if event.type == "message":
        return event.data
    if event.type == "gap":
        return {"type": "gap", "epoch": event.epoch, **event.data}
    return None


async def _send(websocket: WebSocket, event: Event, payload: Any) -> None:
    if isinstance(payload, str):
        await websocket.send_text(payload)
    elif isinstance(payload, bytes):
        await websocket.send_bytes(payload)
    elif payload is event.data:
        # The common case (``default_encode``): every subscriber of the process
        # shares this event, so its JSON is made once and reused, the same text
        # ``send_json`` would make.
        await websocket.send_text(event._json_text())
    else:
        await websocket.send_json(payload)


async def relay(
    websocket: WebSocket,
    subscription: Subscription,
    *,
    on_receive: Receiver | None = None,
    encode: Encoder = default_encode,
    close_timeout: float = 1.0,
    drain_timeout: float = 5.0,
) -> None:
    """Relay *subscription* into *websocket*, handing what the client sends to *on_receive*.

    It returns when either side ends:

    - the client disconnects: sending stops (nothing to close);
    - a send fails because the client has gone: what the client sent before it
      left is still read and handed to *on_receive*, until the server reports
      the disconnect (at most *drain_timeout* seconds);
    - the subscription overflows (policy ``"close"``, the default): the socket
      is closed with 1013 (try again later), even if a send to the stalled
      client is stuck; the client should reconnect with ``since=`` its last
      position. What it sent before our close is still handled, as above;
    - the subscription is closed (the channels disconnected at shutdown):
      the socket is closed with 1001 (going away).

    A ``gap`` event (a drop policy discarded events) is sent like any other,
    by default as ``{"type": "gap", "epoch": …, "first": …, "last": …}``, so
    the client can recover that range with ``since=``.

    The socket is accepted first if you have not accepted it yet. Events are
    sent from your task; the client is read, and *on_receive* awaited, in one
    task beside it (with a copy of your context variables, as any new task
    gets), which has ended by the time this returns or raises.

    Args:
        websocket: the connection.
        subscription: an entered subscription (``async with channels.subscribe(...)``).
        on_receive: awaited with each client message (``str`` for a text frame,
            ``bytes`` for a binary one), one at a time, in order. Without it,
            client messages are read and discarded, so a disconnect is noticed.
            If it raises :class:`WebSocketDisconnect` (it replied to a client
            that has gone) the relay goes on reading.
        encode: what to send for an event (see :data:`Encoder`).
        close_timeout: how long a closing handshake may take with a client that
            stopped reading, before giving up on it.
        drain_timeout: how long to keep reading the client's last messages
            once sending has ended (it left, or was closed for being too slow).

    Raises:
        Exception: whatever *on_receive* or *encode* raised (sending stops first).
    """
    if websocket.application_state is WebSocketState.CONNECTING:
        await websocket.accept()
    sides = _Sides(subscription)
    reader = SideTask(_read_side, websocket, on_receive, sides)
    # How sending ended: "gone" (the client left, your code closed the socket,
    # or the reader ended), "ended" (the channels closed the subscription) or
    # "overflow". Sent from this frame, not a helper's: one frame fewer per socket.
    outcome = "gone"
    try:
        with sides:
            subscription._on_close = sides.on_close
            # The reader keeps running meanwhile, and after: cancelling it would
            # drop what the client sent before leaving (the server still holds
            # those frames), or cut an on_receive short in the middle of a publish.
            try:
                async for event in subscription:
                    payload = encode(event)
                    if payload is not None:
                        await _send(websocket, event, payload)
                outcome = "ended"
            except (SubscriberOverflowError, WebSocketDisconnect):
                pass  # the overflow is told apart below, however it was noticed
            except Exception as exc:
                if not (
                    isinstance(exc, WebSocketRuntimeError)
                    and websocket.application_state is WebSocketState.DISCONNECTED
                ):
                    sides.failure.append(exc)
                # else: your code closed the socket (in on_receive, say): sending
                # ends, and the client's last messages are still read, as below.
            finally:
                subscription._on_close = None
        if subscription._error is not None:
            outcome = "overflow"
        if not reader.done and not sides.failure:
            await _finish(websocket, reader, outcome, sides, close_timeout, drain_timeout)
    finally:
        reader.cancel()
        await reader.join()
    if sides.failure:
        # The first error of either side, as itself (not an ExceptionGroup).
        raise sides.failure[0]


class _Sides:
    """What the two sides of one relay share, and the writer's stop (a context manager).

    Theory of operation: one writer per socket, and it is your task (sending,
    then closing); the reader runs beside it in a bare task
    (:class:`~lilya._side_task.SideTask`: a task group and its ``start_soon``
    cost about ten times as much per idle socket). The reader, when it ends
    (the client left, or *on_receive* raised), stops the writer at once, even
    in a send stuck on a client that stopped reading; so does an overflow
    (:meth:`on_close`). The writer ends the reader with ``cancel()`` and
    always joins it, so no task outlives the relay.

    How the writer is stopped: while it sends (``with sides:``), on asyncio by
    cancelling its task, withdrawn on the way out as ``asyncio.timeout()``
    withdraws its own (an anyio cancel scope held by every idle socket for
    its whole life is 0.6 KB; a cancellation of someone else's, alone or
    with ours, goes on up); on trio, and while it closes, by cancelling the
    anyio scope it is in (:attr:`scope`).
    """

    __slots__ = ("failure", "scope", "stops", "subscription", "task")

    def __init__(self, subscription: Subscription | None = None) -> None:
        self.subscription = subscription
        self.failure: list[Exception] = []
        self.scope: anyio.CancelScope | None = None
        self.task: asyncio.Task[Any] | None = None
        self.stops = 0  # how many cancellations of self.task are ours

    def __enter__(self) -> None:
        if asyncio._get_running_loop() is not None:
            self.task = asyncio.current_task()
        else:
            self.scope = anyio.CancelScope()
            self.scope.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        scope, self.scope = self.scope, None
        if scope is not None:
            return bool(scope.__exit__(exc_type, exc, tb))
        task, self.task = self.task, None
        stops, self.stops = self.stops, 0
        if task is None or stops == 0:
            return False
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+ counts requests
        others = 0
        for _ in range(stops):
            others = uncancel() if uncancel is not None else 0
        # Ours alone: swallowed. With someone else's: it goes on up.
        return others == 0 and isinstance(exc, asyncio.CancelledError)

    def stop_writer(self) -> None:
        scope = self.scope
        if scope is not None:
            scope.cancel()
            return
        task = self.task
        if task is not None:
            self.stops += 1
            task.cancel()

    def on_close(self) -> None:
        # Called by whoever closes the subscription. A send to a client that
        # stopped reading can block indefinitely; an overflow (closed by the
        # publisher, from its own task) must still end it, so it stops the
        # send from there.
        subscription = self.subscription
        if subscription is not None and subscription._error is not None:
            self.stop_writer()


async def _finish(
    websocket: WebSocket,
    reader: SideTask,
    outcome: str,
    sides: _Sides,
    close_timeout: float,
    drain_timeout: float,
) -> None:
    """Close as *outcome* says, then let the reader take the client's last messages."""
    if outcome == "ended":
        # Shutdown: nothing the client still sends can be published any more.
        await _close(websocket, status.WS_1001_GOING_AWAY, "channel closed", close_timeout, sides)
        return
    if outcome == "overflow" and not await _close(
        websocket, status.WS_1013_TRY_AGAIN_LATER, "subscriber too slow", close_timeout, sides
    ):
        # Not even the close frame could be written: the client reads
        # nothing, and its disconnect is not worth waiting for.
        return
    # The server delivers the client's last frames, then its disconnect, and
    # the reader returns; a server that never does is given up on.
    with anyio.move_on_after(drain_timeout):
        await reader.wait()


async def _read_side(websocket: WebSocket, on_receive: Receiver | None, sides: _Sides) -> None:
    """Read the client until it disconnects, then stop the writer (also on an error)."""
    try:
        while True:
            # A server hands over a whole network read's worth of frames without
            # ever suspending us; one turn of the scheduler per client message
            # lets every other connection run between them, so a flooding client
            # is slowed at its own loop and other rooms keep their latency.
            await anyio.lowlevel.checkpoint()
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if on_receive is not None:
                text = message.get("text")
                try:
                    await on_receive(text if text is not None else message.get("bytes"))
                except WebSocketDisconnect:
                    pass  # it answered a client that has gone; what it sent next still counts
                except WebSocketRuntimeError:
                    if websocket.application_state is not WebSocketState.DISCONNECTED:
                        raise
                    # It answered after we closed (1013): the reply cannot go, the
                    # message it answered was still handled.
    except Exception as exc:
        sides.failure.append(exc)
    sides.stop_writer()


async def _close(
    websocket: WebSocket, code: int, reason: str, within: float, sides: _Sides
) -> bool:
    """Close within *within* seconds; return False if the close frame could not be sent.

    The reader's end (the client left) cuts the wait short too, through *sides*.
    """
    if websocket.application_state is not WebSocketState.CONNECTED:
        return True
    with anyio.move_on_after(within) as scope:
        sides.scope = scope
        try:
            await websocket.close(code, reason)
        finally:
            sides.scope = None
    return not scope.cancelled_caught
