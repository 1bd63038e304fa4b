"""The drain: how an app stops serving WebSockets without losing a client.

Theory of operation
-------------------
A deploy stops a process while clients are connected. Servers close every
socket at once when told to stop (uvicorn sends 1012 to all of them in the
same instant), so every client reconnects in the same instant too, onto the
workers that are left: a reconnect storm. And a handshake that arrives while
the process is stopping is accepted, then killed.

A :class:`Drain` is one per :class:`~lilya.apps.Lilya` app. Every WebSocket the
app serves passes :meth:`Drain.serve`, which keeps the connection's
:class:`~lilya._connection_state.ConnectionState` and the server's ``send`` in
a table while the handler runs. :meth:`Drain.run` then, in order:

1. refuses every new handshake: a ``503`` denial response with
   ``Retry-After`` (RFC 9110 §10.2.3), or a close where the server lacks the
   denial extension (daphne: the client sees 403), never an accept;
2. wakes whoever awaits :meth:`Drain.wait` (handlers that want to say goodbye);
3. closes the open sockets with ``code`` (1012 "service restart" by default),
   ``batch`` at a time, ``interval`` seconds apart, so clients come back spread
   over time. The close goes through the state (``closing_message``), so a
   handler's next send raises :class:`~lilya.websockets.WebSocketDisconnect`
   (the state's ``drained`` code) and its pending receive gets the server's
   disconnect: ``finally`` blocks and ``on_disconnect`` run, ``relay()`` ends,
   presence leaves are published;
4. waits for the handlers to return, at most ``timeout`` seconds from the
   start, then returns so the server can exit.

It runs when the server hands the app ``lifespan.shutdown`` (any server), or
earlier when ``lilya run`` receives SIGTERM or SIGINT (:mod:`lilya._uvicorn`),
before uvicorn closes the sockets itself.
"""

from __future__ import annotations

import math

import anyio

from lilya._close import check_close
from lilya._connection_state import ConnectionState
from lilya._exception_handlers import deny, end
from lilya._recorder import enter
from lilya._telemetry import note_limit
from lilya.exceptions import ImproperlyConfigured
from lilya.responses import PlainText
from lilya.status import HTTP_503_SERVICE_UNAVAILABLE, WS_1013_TRY_AGAIN_LATER
from lilya.types import ASGIApp, Receive, Scope, Send

__all__ = ["DRAIN_REFUSAL", "Drain"]

#: The body of the 503 a handshake gets while the app drains.
DRAIN_REFUSAL = "This server is shutting down; connect again (another server will answer)."


def _positive(name: str, value: object, *, whole: bool = False) -> None:
    kind = int if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        what = "a whole number" if whole else "a finite number of seconds"
        raise ImproperlyConfigured(f"{name} must be {what}, got {value!r}.")
    if value < (1 if whole else 0):
        raise ImproperlyConfigured(f"{name} must be at least {1 if whole else 0}, got {value!r}.")


class Drain:
    """The open WebSockets of one app, and how to close them when it stops.

    Args:
        code: the close code open sockets get (1012 "service restart"; 1001
            "going away" if your clients should not come straight back).
        batch: how many sockets are closed at once.
        interval: seconds between two batches.
        timeout: seconds the whole drain may take; handlers still running
            then are left to the server (which cancels them).
        retry_after: the ``Retry-After`` seconds of the 503 a new handshake gets.

    Raises:
        ImproperlyConfigured: a value of the wrong type or out of range.
    """

    __slots__ = (
        "_closing",
        "_empty",
        "_waiters",
        "batch",
        "code",
        "done",
        "draining",
        "interval",
        "open",
        "retry_after",
        "timeout",
    )

    def __init__(
        self,
        *,
        code: int = 1012,
        batch: int = 100,
        interval: float = 0.1,
        timeout: float = 30.0,
        retry_after: int = 5,
    ) -> None:
        if isinstance(code, bool) or not isinstance(code, int):
            raise ImproperlyConfigured(f"drain_code must be a close code (int), got {code!r}.")
        try:
            check_close(code, "")
        except ValueError as exc:
            raise ImproperlyConfigured(f"drain_code: {exc}") from None
        _positive("drain_batch", batch, whole=True)
        _positive("drain_interval", interval)
        _positive("drain_timeout", timeout)
        _positive("drain_retry_after", retry_after, whole=True)
        self.code = code
        self.batch = batch
        self.interval = interval
        self.timeout = timeout
        self.retry_after = retry_after
        #: The open WebSockets: their state -> their scope and callables.
        self.open: dict[ConnectionState, tuple[Scope, Receive, Send]] = {}
        self.draining = False
        self.done = False
        self._waiters: list[anyio.Event] = []
        self._empty: anyio.Event | None = None
        #: Closes in flight: a handler that returns meanwhile must not end the
        #: connection (the server would drop it) before its close is sent.
        self._closing: dict[ConnectionState, anyio.Event] = {}

    def reset(self) -> None:
        """Serve again after a drain (the lifespan ended; the next test's client may start one)."""
        self.draining = False
        self.done = False

    async def serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Run *app* for one WebSocket, refusing it with 503 if the app is draining."""
        state, receive, send = enter(scope, receive, send)
        if self.draining:
            note_limit(scope, "drain")
            await deny(scope, state, receive, send, self.refusal(), WS_1013_TRY_AGAIN_LATER)
            return
        self.open[state] = (scope, receive, send)
        try:
            await app(scope, receive, send)
        finally:
            closing = self._closing.get(state)
            if closing is not None:
                await closing.wait()
            del self.open[state]
            if self._empty is not None and not self.open:
                self._empty.set()

    async def wait(self) -> None:
        """Return once the drain has started (at once if it already has)."""
        if self.draining:
            return
        event = anyio.Event()
        self._waiters.append(event)
        await event.wait()

    async def run(self) -> None:
        """Refuse new handshakes, close the open sockets in batches, wait for their handlers.

        Running it again (``lilya run`` drains, then the lifespan asks) does nothing.
        """
        if self.draining:
            return
        self.draining = True
        for event in self._waiters:
            event.set()
        self._waiters.clear()
        self._empty = anyio.Event()
        with anyio.move_on_after(self.timeout):
            pending = list(self.open.items())
            for start in range(0, len(pending), self.batch):
                if start:
                    await anyio.sleep(self.interval)
                for state, (scope, receive, send) in pending[start : start + self.batch]:
                    await self.close(state, scope, receive, send)
            if self.open:
                await self._empty.wait()
        self.done = True

    async def close(
        self, state: ConnectionState, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Close one socket with the drain's code; a handshake not yet answered gets the 503.

        Nothing is sent to a connection that has already ended (its handler
        may have returned since the drain began).
        """
        if state.closing_message(self.code) is None:
            return
        state.drained = self.code
        note_limit(scope, "drain")
        closing = self._closing[state] = anyio.Event()
        try:
            if not state.started:
                await deny(scope, state, receive, send, self.refusal(), WS_1013_TRY_AGAIN_LATER)
            else:
                await end(state, send, self.code)
        finally:
            del self._closing[state]
            closing.set()

    def refusal(self) -> PlainText:
        """The 503 denial response a handshake gets while the app drains."""
        return PlainText(
            DRAIN_REFUSAL,
            HTTP_503_SERVICE_UNAVAILABLE,
            headers={"retry-after": str(self.retry_after)},
        )
