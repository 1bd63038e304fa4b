"""Time limits on a WebSocket: how long a send may block, and how long a
handshake may wait.

Theory of operation
-------------------
A client that stops reading does not close anything: its TCP window fills,
the server's write buffer fills behind it, and the server's ``send`` (uvicorn
waits for its transport to drain) blocks the handler for ever. A handler that
also feeds a room then holds the room's fan-out up, and a socket, a task and a
buffer stay with the stalled client until it goes.

**send_timeout** bounds every send lilya makes for you (``send_text``,
``send_bytes``, ``send_json``, ``send()`` of a ``websocket.send``, and with
them ``relay()``, controllers and typed sends, which use them):

* ``Lilya(send_timeout=...)`` is the app's default,
  :data:`DEFAULT_SEND_TIMEOUT` (10 s); ``WebSocketPath(..., send_timeout=...)``
  sets one route's; ``websocket.send_text(..., timeout=...)`` one call's.
  ``None`` turns it off at any level; :data:`DEFAULT` means "the level above".
* A send that has not completed in time is the peer's doing, so it gets a
  close code: **1013** ("try again later", RFC 6455 §7.4.1 and the IANA
  registry) with a reason naming the setting, and the handler sees
  ``WebSocketDisconnect(1013)``.

A send that completes without waiting (the usual case: the server writes
into its buffer and returns) is not timed at all: on asyncio lilya takes the
send's first step itself and arms a timer only if the send suspended
(:func:`finish_within`). The compromise: taking that step costs about 0.3 µs
per send (the ``StopIteration`` of a finished step), far less than a cancel
scope around every send (6-8 µs) but about one raw ASGI echo in
``benchmarks/inproc.py``; ``send_timeout=None`` removes it. On trio each send
runs in a cancel scope (:func:`await_within`), which costs those
microseconds.

**The connection really goes.** After a send timed out, lilya sends the close
frame, but a client that does not read does not take that frame either, and
a server that closes "gracefully" waits for its buffer to drain first
(asyncio's ``transport.close()``): the socket would stay half-open for ever.
So the close gets :data:`CLOSE_GRACE` seconds (or the send timeout, if
shorter); if it cannot leave by then, lilya drops the TCP connection
(:func:`drop_connection`: the transport's ``abort()``, which uvicorn's three
WebSocket protocols expose), which also frees the buffered bytes. Every
close lilya sends to end a connection (after a handler returns, on a drain)
is bounded by the connection's send timeout the same way, so no handler task
waits for ever behind a stalled client.
Servers that buffer without bound instead of blocking (``docs/servers.md``)
never make a send wait: there the send timeout cannot fire, and what bounds
memory is what you send (see ``docs/security.md``).

**handshake_timeout** (``Lilya(handshake_timeout=...)``, default
:data:`DEFAULT_HANDSHAKE_TIMEOUT`, 10 s; ``None`` turns it off): a handler
that has neither accepted nor refused by then (waiting on a slow
authentication service, say) is cancelled and the client gets **HTTP 503**
(RFC 9110 §15.6.4: the server cannot handle it now; 408
would blame the client, which sent its whole request), or a close, which it
sees as 403, where the server lacks the denial extension. One WARNING line is
logged and the connection's slot is free. The timer is a cancel scope's
deadline, lifted (:class:`HandshakeTimer`) the moment the application answers
the handshake: nothing is left running after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import socket
import struct
import sys
import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final, cast

import anyio

from lilya._close import send_with_close_fallback
from lilya.exceptions import ImproperlyConfigured
from lilya.types import Message, Send

__all__ = [
    "CLOSE_GRACE",
    "DEFAULT",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_SEND_TIMEOUT",
    "HANDSHAKE_REFUSAL",
    "SCOPED",
    "STEPPED",
    "Default",
    "HandshakeTimer",
    "OnTimeout",
    "await_within",
    "check_call_timeout",
    "check_timeout",
    "close_for_liveness",
    "close_within",
    "drop_connection",
    "finish_within",
    "handshake_reason",
    "send_timeout_reason",
    "send_within",
    "timer_kind",
]

logger = logging.getLogger("lilya.timeouts")


class Default(enum.Enum):
    """The type of :data:`DEFAULT`."""

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "lilya.timeouts.DEFAULT"


#: "The level above's value": a route's is the app's, a call's is the route's.
DEFAULT: Final = Default.DEFAULT

#: The app default for ``send_timeout``: 10 seconds.
DEFAULT_SEND_TIMEOUT: Final = 10.0

#: The app default for ``handshake_timeout``: 10 seconds.
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0

#: How long the close after a timed-out send may take before the TCP connection is dropped.
CLOSE_GRACE: Final = 1.0

#: The body of the 503 a handshake gets when the app did not answer it in time.
HANDSHAKE_REFUSAL: Final = (
    "The server did not answer this WebSocket handshake in time; connect again later."
)


def check_timeout(value: Any, name: str, where: str) -> float | None:
    """Return *value* if it is a usable timeout (positive finite seconds, or ``None``).

    Args:
        value: what you passed.
        name: the setting (``"send_timeout"``), for the message.
        where: who was given it (``"Lilya"``, ``"WebSocketPath('/ws')"``).

    Raises:
        ImproperlyConfigured: anything else (``0``, a negative number,
            ``inf``, ``nan``, a ``str``, a ``bool``).
    """
    if value is None:
        return None
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ):
        return float(value)
    raise ImproperlyConfigured(
        f"{where}: {name} must be a positive number of seconds (or None for no limit), "
        f"got {value!r}."
    )


def check_call_timeout(value: Any) -> float | None:
    """Return a send's ``timeout=`` argument if usable, else raise.

    Raises:
        TypeError: not a number nor ``None``.
        ValueError: not positive and finite.
    """
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(
            f"timeout= takes seconds (a number) or None for no limit, got "
            f"{type(value).__name__} {value!r}."
        )
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"timeout= must be a positive, finite number of seconds, got {value!r}.")
    return float(value)


def send_timeout_reason(timeout: float) -> str:
    """The close reason of a send that did not complete in *timeout* seconds."""
    return f"send did not complete within send_timeout ({timeout:g} s): client not reading"


def handshake_reason(timeout: float) -> str:
    """What the log says about a handshake left unanswered for *timeout* seconds."""
    return (
        f"the application neither accepted nor refused the handshake within "
        f"handshake_timeout ({timeout:g} s)"
    )


#: How a send is timed where it runs (:func:`timer_kind`).
STEPPED: Final = 1
SCOPED: Final = 2


def timer_kind() -> int:
    """How to time a send here: :data:`STEPPED` on asyncio, :data:`SCOPED` on trio, else 0.

    On asyncio a send's first step is taken here and a timer armed only if it
    waits (:func:`finish_within`). On trio each send runs in a cancel scope
    (:func:`await_within`): a trio cancel scope belongs to the task's stack,
    and one the send entered before its first suspension would be crossed by
    a scope entered after it. Outside any event loop (a coroutine driven by
    hand) no time passes, and nothing is timed.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        trio: Any = sys.modules.get("trio")
        return SCOPED if trio is not None and trio.lowlevel.in_trio_task() else 0
    return STEPPED


@types.coroutine
def _rest(step: Any, pending: Any) -> Generator[Any, Any, None]:
    # The rest of an awaitable whose first step the caller took (it yielded
    # *pending* to the event loop): ``yield from`` from the second step on,
    # as PEP 380 defines it. *step* may be any iterator (PEP 492 allows one
    # from ``__await__``: granian's awaitables give one without send/throw).
    while True:
        try:
            sent = yield pending
        except GeneratorExit:
            close = getattr(step, "close", None)
            if close is not None:
                close()
            raise
        except BaseException as exc:  # a cancellation, above all
            throw = getattr(step, "throw", None)
            if throw is None:
                raise
            try:
                pending = throw(exc)
            except StopIteration:
                return
        else:
            try:
                pending = next(step) if sent is None else step.send(sent)
            except StopIteration:
                return


#: What to do when a send's time runs out, given the seconds: raise, or return a result.
OnTimeout = Callable[[float], Awaitable[bool]]


async def finish_within(step: Any, pending: Any, seconds: float, on_timeout: OnTimeout) -> bool:
    """Finish an awaitable that suspended on its first step, or give up after *seconds*.

    For asyncio (:func:`timer_kind`). *step* is the awaitable's iterator
    (``send(message).__await__()``) and *pending* what its first ``next()``
    yielded. Returns ``True`` once it finished; when *seconds* run out,
    whatever ``await on_timeout(seconds)`` returns (or raises).

    The timer is a plain loop callback that cancels the task, as
    ``asyncio.timeout()`` does (a cancellation request every library on
    asyncio, anyio included, knows is not its own), so the send stops
    waiting; uvicorn's waits before it writes anything, so no partial frame
    is left behind. A cancellation that is not the timer's goes on up.
    *on_timeout* runs here rather than in the caller after a ``False``: on
    Python 3.11 a frame resumed by a cancellation loses its line events in
    tracers (coverage, debuggers) until it returns, and the caller is such a
    frame; this one, which catches it, is not.
    """
    task = cast("asyncio.Task[Any]", asyncio.current_task())  # always one: we run in it
    fired: list[bool] = []

    def fire() -> None:
        fired.append(True)
        task.cancel()

    timer = asyncio.get_running_loop().call_later(seconds, fire)
    timed_out = False
    try:
        await _rest(step, pending)
    except asyncio.CancelledError:
        if not fired:
            raise  # someone else's cancellation
        timed_out = True
    finally:
        timer.cancel()
        if fired:
            # Our request is withdrawn however the send ended: handled here,
            # finished as the timer fired, or answered with an error of its
            # own. A request left counted would make every cancel scope the
            # task entered before (the handshake's) refuse its own cancellation.
            _uncancel(task)
    if timed_out:
        return await on_timeout(seconds)
    return True


def _uncancel(task: asyncio.Task[Any]) -> None:
    # Python 3.11+ counts cancellation requests; ours is handled.
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()


async def await_within(awaitable: Awaitable[None], seconds: float, on_timeout: OnTimeout) -> bool:
    """Await *awaitable* under a cancel scope (not on asyncio: :func:`timer_kind`).

    Returns ``True`` once it finished; when *seconds* run out, what ``await
    on_timeout(seconds)`` returns (or raises).
    """
    with anyio.move_on_after(seconds) as scope:
        await awaitable
    return not scope.cancelled_caught or await on_timeout(seconds)


async def send_within(
    send: Send, message: Message, seconds: float | None, on_timeout: OnTimeout
) -> bool:
    """Send *message* through the server's *send*, or give up after *seconds*.

    Returns ``True`` once sent; when *seconds* run out, what ``await
    on_timeout(seconds)`` returns (or raises). A standard close code the
    server refuses is resent in the private range
    (:func:`~lilya._close.send_with_close_fallback`); ``None`` waits for ever.
    """
    awaitable: Awaitable[None] = send_with_close_fallback(send, message)
    kind = timer_kind() if seconds is not None else 0
    if not kind:
        await awaitable
        return True
    limit = cast(float, seconds)
    if kind == SCOPED:
        return await await_within(awaitable, limit, on_timeout)
    step = awaitable.__await__()
    try:
        pending = next(step)
    except StopIteration:
        return True
    return await finish_within(step, pending, limit, on_timeout)


def drop_connection(send: Send) -> bool:
    """Drop the TCP connection under the server's *send*; ``False`` if this server offers no way.

    ASGI gives an application no way to abort a connection, so this looks
    for the transport of the server's protocol object (uvicorn's ``send`` is a
    method of it; ``transport.abort()`` closes the socket at once and frees
    its buffer, and a zero linger makes the kernel reset the connection
    rather than keep the unsent bytes). Other servers: ``docs/security.md`` says what happens there.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    abort = getattr(transport, "abort", None)
    if not callable(abort):
        return False
    # Linger 0: the kernel resets the connection at once (RFC 9293 §3.10.4
    # ABORT). Without it a closed socket with unsent data lives on in the
    # kernel, orphaned, probing a zero window for minutes.
    get_extra_info = getattr(transport, "get_extra_info", None)
    sock = get_extra_info("socket") if callable(get_extra_info) else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    abort()
    return True


async def close_within(send: Send, message: Message, seconds: float | None) -> bool:
    """Send the closing *message*, dropping the TCP connection if it takes over *seconds*.

    *send* is the server's own. Returns whether the message left; one that
    could not (the client is not reading) ends the connection anyway.

    Raises:
        OSError: the server found the client gone (the connection is over).
    """

    async def dropped(limit: float) -> bool:
        if not drop_connection(send):
            logger.warning(
                "A close could not be sent within %g s and this server offers no way to drop "
                "the connection; it is left to the server.",
                limit,
            )
        return False

    # send_within() inlined: one hop fewer between the closing layer and the server.
    awaitable: Awaitable[None] = send_with_close_fallback(send, message)
    kind = timer_kind() if seconds is not None else 0
    if not kind:
        await awaitable
        return True
    limit = cast(float, seconds)
    if kind == SCOPED:
        # await_within() inlined, as above.
        with anyio.move_on_after(limit) as scope:
            await awaitable
        return not scope.cancelled_caught or await dropped(limit)
    step = awaitable.__await__()
    try:
        pending = next(step)
    except StopIteration:
        return True
    return await finish_within(step, pending, limit, dropped)


async def close_for_liveness(
    send: Send, code: int, reason: str, *, where: str, log: logging.Logger
) -> None:
    """Close a connection lilya found dead or idle, whatever the client does.

    The heartbeat (1011) and the idle timeout (1001) end a connection the
    same way: one INFO line naming the path, then the close through
    :func:`close_within` with :data:`CLOSE_GRACE`, so a client that stopped
    reading too has its TCP connection dropped rather than left half-open.
    A server that found the client gone, or refuses the close, ends it anyway:
    nothing is raised.
    """
    log.info("Closing %s with %d: %s", where, code, reason)
    close: Message = {"type": "websocket.close", "code": code, "reason": reason}
    with contextlib.suppress(Exception):
        await close_within(send, close, CLOSE_GRACE)


class HandshakeTimer:
    """The handshake deadline of one connection: a cancel scope's, lifted on the answer.

    Run the application inside :attr:`scope` and call :meth:`answered` when it
    answers the handshake (accept, close or a denial response): the
    connection's state does, as its application side leaves CONNECTING.
    """

    __slots__ = ("scope",)

    def __init__(self, timeout: float) -> None:
        self.scope = anyio.CancelScope(deadline=anyio.current_time() + timeout)

    def answered(self) -> None:
        """The application answered: the deadline no longer applies."""
        self.scope.deadline = math.inf
