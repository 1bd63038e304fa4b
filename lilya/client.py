"""The async Python client of the lilya channels protocol, v1 (``docs/protocol.md``).

For services, bots and tests: one socket, many channels, each resumed from its
last position after every reconnect::

    async with lilya.client.connect("ws://host/ws", get_token=fetch) as client:
        sub = await client.subscribe("room:1")
        await client.publish("room:1", {"text": "hi"})
        async for event in sub:
            ...

Theory of operation. A :class:`Client` runs one background task, the
*connection loop*: dial, send ``connect``, resubscribe every channel with
``since`` = its last position, then read frames until the socket ends. How it
ended picks what happens next from :data:`CLOSE_POLICY` (reconnect with
jittered backoff, refresh the token first, or stop for good). Each socket is a
``_Connection`` holding the requests still waiting on it; when it ends they are
woken with the reason, and each request decides from its kind whether it may
be sent again on the next socket (``publish`` with its ``message_id``,
``presence``, ``history``) or must report that its outcome is unknown
(``call``). Every wait has a bound: requests their ``timeout``, the handshake
``open_timeout``, a silent socket the client's own ``ping``.

The reader hands each channel event to its :class:`Subscription`'s bounded
buffer and waits when that buffer is full: the pressure reaches the server,
which applies its slow-consumer policy, and the client resumes from the last
position it took. Nothing is dropped in the client, except duplicates (an
offset at or below the position already taken) which resuming may replay.

The network transport (``websockets``) is asyncio-only; the in-process one
(``test_client=``, over lilya's ``AsyncTestClient``) runs on asyncio and trio.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import inspect
import logging
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, Literal

import anyio
import anyio.abc

from lilya._client_frames import (
    Disconnect,
    Gap,
    Join,
    Leave,
    Message,
    Ping,
    Position,
    ProtocolError,
    Reply,
    Reset,
    parse,
)
from lilya._client_transport import (
    Dialer,
    HandshakeRefused,
    TestClientDialer,
    Transport,
    TransportClosed,
    WebSocketsDialer,
)
from lilya._json import dumps_text
from lilya.exceptions import ImproperlyConfigured
from lilya.testclient import AsyncTestClient

__all__ = [
    "CLOSE_POLICY",
    "AlreadySubscribed",
    "BadRequest",
    "Client",
    "ClientClosed",
    "ClientError",
    "ConnectionLost",
    "Dialer",
    "Event",
    "Forbidden",
    "Gap",
    "HandshakeRefused",
    "History",
    "InternalError",
    "Join",
    "Leave",
    "LimitExceeded",
    "Message",
    "NotFound",
    "NotSubscribed",
    "Position",
    "ProtocolError",
    "RequestError",
    "Reset",
    "State",
    "Subscription",
    "TestClientDialer",
    "Transport",
    "TransportClosed",
    "Unauthorized",
    "Unavailable",
    "UnknownOutcome",
    "WebSocketsDialer",
    "backoff_delay",
    "connect",
]

logger = logging.getLogger("lilya.client")

#: What a subscription yields.
Event = Message | Join | Leave | Gap | Reset


class State(enum.Enum):
    """Where the client's connection stands."""

    #: Dialing for the first time.
    CONNECTING = "connecting"
    #: ``connect`` answered: requests go out at once.
    CONNECTED = "connected"
    #: The socket ended; waiting out the backoff or dialing again.
    RECONNECTING = "reconnecting"
    #: Stopped for good: you closed it, or the close-code policy said stop.
    CLOSED = "closed"


# -- errors --------------------------------------------------------------------------


class ClientError(Exception):
    """Base class of everything this module raises about the server or the connection."""


class RequestError(ClientError):
    """The server answered a request with ``error``: ``code`` and ``message`` as it sent them.

    The socket stays open. Each protocol error code has its own subclass, so
    you can catch exactly the one you handle.
    """

    code: str = ""

    def __init__(self, code: str, message: str, request: str) -> None:
        super().__init__(f"The server refused {request!r}: {code}: {message}")
        self.code = code
        self.message = message
        self.request = request


class BadRequest(RequestError):
    """``bad_request``: the server could not read the frame (a client bug; please report it)."""


class Unauthorized(RequestError):
    """``unauthorized``: no valid token, or ``connect`` has not been answered."""


class Forbidden(RequestError):
    """``forbidden``: the server's ``authorize`` said no to this user, channel and action."""


class NotFound(RequestError):
    """``not_found``: no rpc method of that name."""


class AlreadySubscribed(RequestError):
    """``already_subscribed``: this socket is subscribed to the channel already."""


class NotSubscribed(RequestError):
    """``not_subscribed``: this socket is not subscribed to the channel."""


class LimitExceeded(RequestError):
    """``limit``: too many channels on this socket, a message too large, or a rate limit."""


class Unavailable(RequestError):
    """``unavailable``: the server's backend is unreachable; nothing was done. Retry later."""


class UnknownOutcome(RequestError):
    """``unknown_outcome``: the backend lost the answer; the publish may or may not have happened.

    Publish again with the same ``message_id`` (it is in :attr:`message_id`):
    the server delivers a message id once.
    """

    message_id: str | None = None


class InternalError(RequestError):
    """``internal``: a hook or rpc handler raised on the server (its log has the traceback)."""


_ERRORS: Final[dict[str, type[RequestError]]] = {
    "bad_request": BadRequest,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "already_subscribed": AlreadySubscribed,
    "not_subscribed": NotSubscribed,
    "limit": LimitExceeded,
    "unavailable": Unavailable,
    "unknown_outcome": UnknownOutcome,
    "internal": InternalError,
}


def _request_error(reply: Reply, request: str) -> RequestError:
    cls = _ERRORS.get(reply.error_code, RequestError)
    return cls(reply.error_code, reply.error_message, request)


class ConnectionLost(ClientError):
    """The socket ended after the request was sent and before it was answered.

    Raised for requests that are not safe to send twice (``call``): whether
    the server ran it is unknown. Make the method idempotent and call again.
    """


class ClientClosed(ClientError):
    """The client has stopped for good: you closed it, or the server's close said stop.

    Attributes:
        code: the close code that stopped it (1000 when you closed it; for a
            refused handshake, 4003 if the status was 401/403).
        reason: what the server said, or what the client concluded.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"The client has stopped ({code}: {reason}).")
        self.code = code
        self.reason = reason


# -- the policy ------------------------------------------------------------------

Policy = Literal["stop", "reconnect", "refresh"]

#: What the client does after the server closes with each code (docs/protocol.md).
#: A code not listed here is treated as a broken connection: reconnect.
CLOSE_POLICY: Final[dict[int, Policy]] = {
    1000: "stop",  # normal closure: the server (or you) meant it
    1001: "reconnect",  # going away
    1002: "stop",  # the server says we broke the protocol: reconnecting repeats it
    1003: "stop",  # unsupported data: idem
    1006: "reconnect",  # no close frame: killed, network gone, dead socket
    1007: "stop",  # invalid payload: idem
    1008: "stop",  # policy (rate, origin)
    1009: "stop",  # message too big
    1011: "reconnect",  # server error, heartbeat missed
    1012: "reconnect",  # service restart (drain)
    1013: "reconnect",  # try again later
    4001: "refresh",  # token expired: get a new one, then reconnect
    4003: "stop",  # forbidden, bad token, no connect in time
}


def _policy(code: int) -> Policy:
    return CLOSE_POLICY.get(code, "reconnect")


def backoff_delay(
    attempt: int,
    minimum: float,
    maximum: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Return how long to wait before reconnect attempt *attempt* (0 for the first).

    The ceiling doubles from *minimum* up to *maximum*; the delay is drawn
    between half the ceiling and the ceiling ("equal jitter"), so a thousand
    clients dropped together do not come back together, and none comes back
    at once.
    """
    ceiling = min(maximum, minimum * 2.0 ** min(attempt, 32))
    return ceiling / 2 + ceiling / 2 * rand()


# -- one socket ----------------------------------------------------------------------


class _Pending:
    """A request waiting for its reply on one socket."""

    __slots__ = ("done", "kind", "lost", "reply")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.done = anyio.Event()
        self.reply: Reply | None = None
        self.lost: Exception | None = None


class _Connection:
    """One socket: the requests waiting on it, how it ended, what it last heard."""

    def __init__(self, transport: Transport, generation: int) -> None:
        self.transport = transport
        self.generation = generation
        self.pending: dict[int, _Pending] = {}
        #: Ids of requests whose caller stopped waiting: a late reply is not an error.
        self.abandoned: set[int] = set()
        self.next_id = 0
        self.ended = anyio.Event()
        self.end: Exception | None = None
        self.disconnect: Disconnect | None = None
        self.last_heard = time.monotonic()
        #: True while the reader waits for a full subscription buffer.
        self.blocked = False
        self._send_lock = anyio.Lock()

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.transport.send(dumps_text(frame))

    def start(self, kind: str) -> tuple[int, _Pending]:
        self.next_id += 1
        pending = _Pending(kind)
        if self.end is not None:
            pending.lost = self.end
            pending.done.set()
        else:
            self.pending[self.next_id] = pending
        return self.next_id, pending

    def abandon(self, request_id: int) -> None:
        if self.pending.pop(request_id, None) is not None:
            self.abandoned.add(request_id)

    def resolve(self, reply: Reply, text: str) -> None:
        request_id = reply.id if isinstance(reply.id, int) else -1
        pending = self.pending.pop(request_id, None)
        if pending is None:
            if request_id in self.abandoned:
                self.abandoned.discard(request_id)
                return
            raise ProtocolError(
                f"The server answered request id {reply.id!r}, which this client never "
                "sent or which was answered already.",
                text,
            )
        pending.reply = reply
        pending.done.set()

    def finish(self, end: Exception) -> None:
        if self.end is None:
            self.end = end
        for pending in self.pending.values():
            pending.lost = self.end
            pending.done.set()
        self.pending.clear()
        self.ended.set()


# -- subscriptions -------------------------------------------------------------------


class History:
    """What ``history()`` returned: the channel's position and its retained messages."""

    def __init__(self, position: Position, messages: list[Message]) -> None:
        self.position = position
        self.messages = messages

    def __repr__(self) -> str:
        return f"History(position={self.position!r}, messages=<{len(self.messages)}>)"


class Subscription:
    """One channel's stream of events, kept across reconnects.

    Iterate it with ``async for``: it yields :class:`Message`, :class:`Join`,
    :class:`Leave`, :class:`Gap` and :class:`Reset` in the order the server
    sent them, each message once. Iteration ends when you unsubscribe or
    close the client, and raises :class:`ClientClosed` when the server's close
    stopped the client (after the events already received).

    Attributes:
        channel: the channel's name.
        position: the position of the last message taken (where a resume
            starts), or ``None`` before the first subscribe is answered.
        recovered: whether the last (re)subscribe resumed without loss.
        duplicates: how many replayed messages were dropped as already seen.
    """

    def __init__(
        self,
        client: Client,
        channel: str,
        since: Position | None,
        presence: bool,
        max_buffer: int,
    ) -> None:
        self._client = client
        self.channel = channel
        self.position = since
        self.presence = presence
        self.recovered = False
        self.duplicates = 0
        self._max_buffer = max_buffer
        self._buffer: collections.deque[Event] = collections.deque()
        #: Set when the buffer gains an event or the subscription ends; replaced once seen.
        self._readable = anyio.Event()
        #: Set when the buffer loses an event or the subscription ends; replaced once seen.
        self._writable = anyio.Event()
        self._ended = False
        self._generation = -1
        self._answered = anyio.Event()
        self._error: Exception | None = None

    def __repr__(self) -> str:
        return f"<Subscription {self.channel!r} at {self.position!r}>"

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while not self._buffer:
            if self._ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._readable = anyio.Event()
            await self._readable.wait()
        event = self._buffer.popleft()
        self._writable.set()
        return event

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.unsubscribe()

    async def unsubscribe(self) -> None:
        """Stop receiving this channel; iteration ends. Calling it twice does nothing."""
        await self._client._unsubscribe(self)

    async def _deliver(self, event: Event) -> None:
        if isinstance(event, Message):
            position = self.position
            if (
                position is not None
                and position.epoch == event.epoch
                and event.offset <= position.offset
            ):
                self.duplicates += 1
                return
            self.position = event.position
        elif isinstance(event, Reset):
            self.position = Position(event.epoch, event.offset)
        elif isinstance(event, Gap):
            self.position = Position(event.epoch, event.last)
        while len(self._buffer) >= self._max_buffer and not self._ended:
            self._writable = anyio.Event()
            await self._writable.wait()
        if not self._ended:
            self._buffer.append(event)
            self._readable.set()

    def _end(self, error: Exception | None, *, discard: bool = False) -> None:
        if self._error is None:
            self._error = error
        self._ended = True
        if discard:
            self._buffer.clear()
        self._answered.set()
        self._readable.set()
        self._writable.set()


# -- the client ----------------------------------------------------------------------

TokenSource = Callable[[], "str | Awaitable[str | None] | None"]


def _single(exc: BaseException) -> BaseException:
    """The one exception inside nested exception groups (task groups wrap what they raise)."""
    # Duck-typed: BaseExceptionGroup is a builtin from Python 3.11 (a backport on 3.10).
    inner = getattr(exc, "exceptions", None)
    while isinstance(inner, tuple) and len(inner) == 1 and isinstance(inner[0], BaseException):
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    return exc


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _check_timeout(name: str, value: float | None, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}.")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive, finite number of seconds, not {value!r}.")


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}.")
    return value


def _ok_str(ok: dict[str, Any], field: str, request: str) -> str:
    value = ok.get(field)
    if not isinstance(value, str):
        raise ProtocolError(f"The server's reply to {request!r} has no string {field!r}.", "")
    return value


def _ok_int(ok: dict[str, Any], field: str, request: str) -> int:
    value = ok.get(field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"The server's reply to {request!r} has no integer {field!r}.", "")
    return value


def _ok_position(ok: dict[str, Any], request: str) -> Position:
    return Position(_ok_str(ok, "epoch", request), _ok_int(ok, "offset", request))


class Client:
    """A connection to a lilya protocol endpoint that keeps itself up.

    Make one with :func:`connect` and use it with ``async with``. All its
    methods may be called from any task of the event loop it runs in.

    Attributes:
        state: the :class:`State` of the connection.
        client_id, user, expires_at, heartbeat: what the server's last
            ``connect`` answer said (``None`` before the first).
        closed: the :class:`ClientClosed` that stopped it, once stopped.
    """

    def __init__(
        self,
        url: str,
        *,
        dialer: Dialer,
        token: str | None,
        get_token: TokenSource | None,
        name: str | None,
        subprotocols: tuple[str, ...],
        request_timeout: float,
        open_timeout: float,
        connect_timeout: float | None,
        ping_interval: float | None,
        ping_timeout: float,
        reconnect_delay: tuple[float, float],
        refresh_margin: float,
        max_buffer: int,
        on_state: Callable[[State], None] | None,
        rand: Callable[[], float],
    ) -> None:
        self.url = url
        self._dialer = dialer
        self._token = token
        self._get_token = get_token
        self.name = name
        self._subprotocols = subprotocols
        self.request_timeout = request_timeout
        self.open_timeout = open_timeout
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.reconnect_delay = reconnect_delay
        self.refresh_margin = refresh_margin
        self.max_buffer = max_buffer
        self._on_state = on_state
        self._rand = rand
        self.state = State.CONNECTING
        self.client_id: str | None = None
        self.user: str | None = None
        self.expires_at: float | None = None
        self.heartbeat: float | None = None
        self.closed: ClientClosed | None = None
        #: How many sockets the client has had (one per successful ``connect``).
        self.connections = 0
        self._conn: _Connection | None = None
        self._changed = anyio.Event()
        self._subs: dict[str, Subscription] = {}
        #: While entered: the exit stack and the task group the connection loop runs in.
        self._running: tuple[contextlib.AsyncExitStack, anyio.abc.TaskGroup] | None = None
        self._loop_done = anyio.Event()
        self._connected_at = 0.0

    def __repr__(self) -> str:
        return f"<Client {self.url!r} {self.state.value}>"

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Client:
        if self._running is not None:
            raise RuntimeError("This client is running already; use one `async with` per client.")
        if isinstance(self._dialer, WebSocketsDialer) and not _on_asyncio():
            raise ImproperlyConfigured(
                "The network transport (the websockets library) runs on asyncio only; "
                "run this client under asyncio, or use test_client= for an in-process app."
            )
        stack = contextlib.AsyncExitStack()
        group = await stack.enter_async_context(anyio.create_task_group())
        self._running = stack, group
        group.start_soon(self._run)
        if self.connect_timeout is None:
            return self
        with anyio.move_on_after(self.connect_timeout):
            while self.state is not State.CONNECTED and self.closed is None:
                await self._changed.wait()
        if self.state is State.CONNECTED:
            return self
        closed = self.closed
        await self._leave()
        if closed is not None:
            raise closed
        raise TimeoutError(
            f"Could not connect to {self.url} within connect_timeout={self.connect_timeout} s "
            "(the client kept retrying); check that the server runs, or pass a larger "
            "connect_timeout= (None returns at once and connects in the background)."
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._leave()

    async def aclose(self) -> None:
        """Close the socket (1000), stop reconnecting, end every subscription. Idempotent.

        Any task may call it; the ``async with`` block's end does too.
        """
        self._stop(ClientClosed(1000, "closed by the client"))
        if self._running is not None:
            # The loop sees the stop, closes the socket with 1000 and returns; a
            # loop stuck in a dial or in get_token() is cancelled by _leave().
            with anyio.move_on_after(self.open_timeout):
                await self._loop_done.wait()

    async def _leave(self) -> None:
        await self.aclose()
        running, self._running = self._running, None
        if running is not None:
            stack, group = running
            group.cancel_scope.cancel()
            await stack.aclose()

    def _stopped(self) -> bool:
        return self.closed is not None

    def _set_state(self, state: State) -> None:
        if state is self.state:
            return
        self.state = state
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        if self._on_state is not None:
            self._on_state(state)

    def _stop(self, closed: ClientClosed) -> None:
        if self.closed is not None:
            return
        self.closed = closed
        user_closed = closed.code == 1000 and closed.reason == "closed by the client"
        for sub in list(self._subs.values()):
            sub._end(None if user_closed else closed)
        self._subs.clear()
        if self._conn is not None:
            self._conn.finish(closed)
        self._set_state(State.CLOSED)

    # -- the connection loop ---------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._loop()
        finally:
            self._loop_done.set()

    async def _loop(self) -> None:
        attempt = 0
        #: 4001s in a row: the first reconnects at once, the next ones back off
        #: (a get_token() that keeps handing out an expired token must not spin).
        refreshes = 0
        while self.closed is None:
            try:
                policy, code, reason, connected = await self._attempt()
            except Exception as exc:  # the transport failed in a way it should not
                logger.exception("lilya client: the transport failed; the client stops.")
                cause = _single(exc)
                closed = ClientClosed(1011, f"the transport failed: {cause!r}")
                closed.__cause__ = cause
                self._stop(closed)
                return
            if connected:
                attempt = 0
                if time.monotonic() - self._connected_at > self.reconnect_delay[1]:
                    refreshes = 0  # it lived: a token that expires hourly is not a spin
            if self._stopped():
                return
            if policy == "stop":
                self._stop(ClientClosed(code, reason))
                return
            if policy == "refresh" and self._get_token is None:
                self._stop(
                    ClientClosed(code, f"{reason} (no get_token= to fetch a new token with)")
                )
                return
            self._set_state(State.RECONNECTING)
            if policy == "refresh":
                delay = 0.0 if refreshes == 0 else self._delay(refreshes - 1)
                refreshes += 1
            else:
                delay = self._delay(attempt)
                attempt += 1
                refreshes = 0
            logger.info(
                "lilya client: connection to %s ended (%s %s); reconnecting in %.2f s",
                self.url,
                code,
                reason,
                delay,
            )
            with anyio.move_on_after(delay):
                while self.closed is None:
                    await self._changed.wait()

    def _delay(self, attempt: int) -> float:
        return backoff_delay(attempt, *self.reconnect_delay, rand=self._rand)

    async def _fetch_token(self) -> str | None:
        if self._get_token is None:
            return self._token
        token = self._get_token()
        if inspect.isawaitable(token):
            token = await token
        if token is not None and not isinstance(token, str):
            raise TypeError(f"get_token() must return a str or None, not {type(token).__name__}.")
        return token

    async def _attempt(self) -> tuple[Policy, int, str, bool]:
        """Dial once and serve the socket until it ends; say what to do next."""
        try:
            token = await self._fetch_token()
        except Exception as exc:  # your get_token() failed: say so, and stop
            logger.exception("lilya client: get_token() raised; the client stops.")
            return "stop", 4001, f"get_token() raised {exc!r}", False
        if token is None and self._get_token is not None:
            return "stop", 4001, "get_token() returned None: no token to connect with", False
        try:
            async with self._dialer.open(self.url, self._subprotocols) as transport:
                self.connections += 1
                conn = _Connection(transport, self.connections)
                try:
                    connected = await self._serve(conn, token)
                finally:
                    self._conn = None
                    conn.finish(TransportClosed(1006, "the connection ended"))
                    with anyio.move_on_after(self.ping_timeout, shield=True):
                        await transport.close(*self._close_for(conn.end))
        except HandshakeRefused as refused:
            if refused.status in (401, 403):
                return "stop", 4003, str(refused), False
            return "reconnect", 1006, str(refused), False
        except TransportClosed as closed:
            return _policy(closed.code), closed.code, closed.reason, False
        end = conn.end
        if isinstance(end, _ConnectRefused):
            return end.policy, end.code, str(end), False
        if isinstance(end, TransportClosed):
            policy, reason = _policy(end.code), end.reason
            told = conn.disconnect
            if told is not None and told.code == end.code:
                reason = reason or told.reason
                if policy == "reconnect" and not told.reconnect:
                    # The server said reconnecting cannot help (its disconnect push).
                    policy = "stop"
            return policy, end.code, reason, connected
        # our own verdict: a protocol error or a dead socket
        return "reconnect", 1006, str(end), connected

    @staticmethod
    def _close_for(end: Exception | None) -> tuple[int, str]:
        if isinstance(end, ProtocolError):
            return 1002, "protocol error"
        if isinstance(end, _DeadSocket):
            return 1011, "no answer to ping"
        return 1000, ""

    async def _serve(self, conn: _Connection, token: str | None) -> bool:
        async with anyio.create_task_group() as group:
            group.start_soon(self._read, conn)
            connected = await self._handshake(conn, token)
            if connected and self.closed is not None:
                # You closed the client while connect was out: _stop() saw no socket.
                conn.finish(self.closed)
            elif connected:
                self._connected_at = time.monotonic()
                self._conn = conn
                self._set_state(State.CONNECTED)
                for sub in list(self._subs.values()):
                    group.start_soon(self._subscribe_on, conn, sub)
                if self.ping_interval is not None:
                    group.start_soon(self._pinger, conn, self.ping_interval)
                if self._get_token is not None and self.expires_at is not None:
                    group.start_soon(self._refresher, conn)
            await conn.ended.wait()
            group.cancel_scope.cancel()
        return connected

    async def _handshake(self, conn: _Connection, token: str | None) -> bool:
        fields: dict[str, Any] = {}
        if token is not None:
            fields["token"] = token
        if self.name is not None:
            fields["name"] = self.name
        ok = await self._ask(conn, "connect", fields, self.open_timeout)
        if ok is None:
            return False
        try:
            client_id = _ok_str(ok, "client", "connect")
            user = ok.get("user")
            expires_at = ok.get("expires_at")
            heartbeat = ok.get("heartbeat")
            if user is not None and not isinstance(user, str):
                raise ProtocolError("The server's reply to 'connect' has a non-string 'user'.")
            for field, value in (("expires_at", expires_at), ("heartbeat", heartbeat)):
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, int | float)
                ):
                    raise ProtocolError(
                        f"The server's reply to 'connect' has a non-number {field!r}."
                    )
        except ProtocolError as error:
            conn.finish(error)
            return False
        self.client_id, self.user = client_id, user
        self.expires_at, self.heartbeat = expires_at, heartbeat
        return True

    async def _ask(
        self, conn: _Connection, kind: str, fields: dict[str, Any], seconds: float
    ) -> dict[str, Any] | None:
        """One request the loop itself makes; a failure ends the socket. ``None`` if it did."""
        request_id, pending = conn.start(kind)
        try:
            await conn.send({"type": kind, "id": request_id, **fields})
        except TransportClosed as closed:
            conn.finish(closed)
            return None
        with anyio.move_on_after(seconds):
            await pending.done.wait()
        if pending.reply is None:
            if pending.lost is None:
                conn.abandon(request_id)
                conn.finish(_DeadSocket(f"no answer to {kind!r} within {seconds} s"))
            return None
        if pending.reply.ok is None:
            error = _request_error(pending.reply, kind)
            if kind == "refresh":
                # The socket lives on until the token expires; the server then closes
                # 4001 and the loop fetches a token for a new connection.
                logger.warning("lilya client: %s", error)
            else:
                conn.finish(_ConnectRefused(error) if kind == "connect" else error)
            return None
        return pending.reply.ok

    async def _read(self, conn: _Connection) -> None:
        try:
            while True:
                text = await conn.transport.receive()
                conn.last_heard = time.monotonic()
                frame = parse(text)
                if isinstance(frame, Reply):
                    conn.resolve(frame, text)
                elif isinstance(frame, Ping):
                    await conn.send({"type": "pong"})
                elif isinstance(frame, Disconnect):
                    conn.disconnect = frame
                else:
                    sub = self._subs.get(frame.channel)
                    if sub is None:
                        logger.debug("lilya client: %r for a channel not subscribed", frame)
                        continue
                    conn.blocked = True
                    try:
                        await sub._deliver(frame)
                    finally:
                        conn.blocked = False
        except (TransportClosed, ProtocolError) as end:
            if isinstance(end, ProtocolError):
                logger.warning("lilya client: %s Frame: %r", end, end.frame)
            conn.finish(end)

    async def _pinger(self, conn: _Connection, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            if conn.blocked or time.monotonic() - conn.last_heard < interval:
                continue
            await self._ask(conn, "ping", {}, self.ping_timeout)

    async def _refresher(self, conn: _Connection) -> None:
        while self.expires_at is not None:
            lifetime = self.expires_at - time.time()
            await anyio.sleep(max(0.0, lifetime - min(self.refresh_margin, lifetime / 2)))
            token = await self._fetch_token()
            if token is None:
                return  # the server will close 4001 and the loop stops there
            ok = await self._ask(conn, "refresh", {"token": token}, self.request_timeout)
            if ok is None:
                return
            expires_at = ok.get("expires_at")
            previous = self.expires_at
            if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
                self.expires_at = None
            elif expires_at <= previous:
                # The server did not extend it: refreshing again would spin.
                return
            else:
                self.expires_at = float(expires_at)

    async def _subscribe_on(self, conn: _Connection, sub: Subscription) -> None:
        if sub._generation == conn.generation or self._subs.get(sub.channel) is not sub:
            return
        sub._generation = conn.generation
        fields: dict[str, Any] = {"channel": sub.channel}
        if sub.position is not None:
            fields["since"] = {"epoch": sub.position.epoch, "offset": sub.position.offset}
        if sub.presence:
            fields["presence"] = True
        request_id, pending = conn.start("subscribe")
        try:
            await conn.send({"type": "subscribe", "id": request_id, **fields})
        except TransportClosed as closed:
            conn.finish(closed)
            return
        with anyio.move_on_after(self.request_timeout):
            await pending.done.wait()
        if pending.reply is None:
            if pending.lost is None:
                conn.abandon(request_id)
                conn.finish(_DeadSocket(f"no answer to 'subscribe' within {self.request_timeout}"))
            return
        if pending.reply.ok is None:
            self._subs.pop(sub.channel, None)
            sub._end(_request_error(pending.reply, "subscribe"))
            return
        ok = pending.reply.ok
        try:
            position = _ok_position(ok, "subscribe")
            recovered = ok.get("recovered")
            if not isinstance(recovered, bool):
                raise ProtocolError("The server's reply to 'subscribe' has no boolean 'recovered'.")
        except ProtocolError as error:
            conn.finish(error)
            return
        sub.recovered = recovered
        if sub.position is None:
            sub.position = position
        sub._answered.set()

    # -- requests ---------------------------------------------------------------

    async def _connected(self) -> _Connection:
        if self._running is None and self.closed is None:
            raise RuntimeError(
                "This client is not running; use it as `async with lilya.client.connect(...)`."
            )
        while True:
            if self.closed is not None:
                raise self.closed
            conn = self._conn
            if conn is not None and conn.end is None:
                return conn
            await self._changed.wait()

    async def _request(
        self, kind: str, fields: dict[str, Any], *, wait: float | None, retry: bool
    ) -> dict[str, Any]:
        _check_timeout("timeout", wait)
        seconds = self.request_timeout if wait is None else wait
        dumps_text(fields)  # a value JSON cannot carry fails here, in your code
        conn: _Connection | None = None
        request_id = 0
        with anyio.move_on_after(seconds):
            while True:
                conn = await self._connected()
                request_id, pending = conn.start(kind)
                try:
                    await conn.send({"type": kind, "id": request_id, **fields})
                except TransportClosed as closed:
                    conn.finish(closed)
                await pending.done.wait()
                if pending.reply is not None:
                    if pending.reply.ok is None:
                        raise _request_error(pending.reply, kind)
                    return pending.reply.ok
                lost = pending.lost
                if isinstance(lost, ClientClosed | ProtocolError):
                    raise lost
                if not retry:
                    raise ConnectionLost(
                        f"The connection ended before the server answered {kind!r} ({lost}); "
                        "whether it ran is unknown."
                    ) from lost
        if conn is not None:
            conn.abandon(request_id)
        raise TimeoutError(
            f"No answer to {kind!r} within {seconds} s (the client is {self.state.value}); "
            "pass a larger timeout= or request_timeout= to connect()."
        )

    async def subscribe(
        self,
        channel: str,
        *,
        since: Position | None = None,
        presence: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109  # as lilya.js's {timeout}
    ) -> Subscription:
        """Subscribe to *channel* and return its :class:`Subscription` once the server agreed.

        Args:
            channel: the channel's name.
            since: resume after this position (e.g. a stored
                ``Message.position``); the server replays what came after, or
                sends a :class:`Reset` if it cannot.
            presence: also receive :class:`Join` and :class:`Leave` events.
            timeout: seconds to wait (default: ``request_timeout``),
                reconnections included.

        Raises:
            ValueError: this client is subscribed to *channel* already.
            Forbidden, LimitExceeded, ...: the server refused.
            TimeoutError: no answer in time.
        """
        _check_str("channel", channel)
        if since is not None and not isinstance(since, Position):
            raise TypeError(f"since must be a Position, not {type(since).__name__}.")
        _check_timeout("timeout", timeout)
        if channel in self._subs:
            raise ValueError(
                f"This client is subscribed to {channel!r} already; iterate that "
                "subscription, or unsubscribe it first."
            )
        if self.closed is not None:
            raise self.closed
        sub = Subscription(self, channel, since, bool(presence), self.max_buffer)
        self._subs[channel] = sub
        seconds = self.request_timeout if timeout is None else timeout
        with anyio.move_on_after(seconds):
            conn = self._conn
            if conn is not None and conn.end is None:
                await self._subscribe_on(conn, sub)
            # Answered now, or by the next connection, which subscribes every channel.
            await sub._answered.wait()
        if not sub._answered.is_set():
            self._subs.pop(channel, None)
            sub._end(None)
            await self._undo_subscribe(sub)
            raise TimeoutError(
                f"No answer to subscribe {channel!r} within {seconds} s "
                f"(the client is {self.state.value}); pass a larger timeout=."
            )
        if sub._error is not None:
            raise sub._error
        if self.closed is not None:
            raise self.closed
        return sub

    async def _undo_subscribe(self, sub: Subscription) -> None:
        """Take back a subscribe that timed out but may still reach the server.

        The request is on the socket: a busy server may read it after the
        caller was told ``TimeoutError``, and that socket would then be
        subscribed to a channel the client forgot (the caller's next
        ``subscribe`` answered ``already_subscribed``, its events ignored).
        An ``unsubscribe`` behind it on the same socket, which handles its
        requests in order, undoes it. Its answer is not awaited (the caller
        waited long enough): its id is abandoned, so the reply is dropped.
        """
        conn = self._conn
        if conn is None or conn.end is not None or sub._generation != conn.generation:
            return  # it never went out on the live socket: nothing to undo
        request_id, _ = conn.start("unsubscribe")
        conn.abandon(request_id)
        with contextlib.suppress(TransportClosed):
            await conn.send({"type": "unsubscribe", "id": request_id, "channel": sub.channel})

    async def _unsubscribe(self, sub: Subscription) -> None:
        if self._subs.get(sub.channel) is not sub:
            return
        del self._subs[sub.channel]
        sub._end(None, discard=True)
        conn = self._conn
        if conn is None or conn.end is not None or sub._generation != conn.generation:
            return  # no socket holds it: nothing to undo on the server
        with contextlib.suppress(ClientError, TimeoutError):
            await self._request("unsubscribe", {"channel": sub.channel}, wait=None, retry=False)

    async def publish(
        self,
        channel: str,
        data: Any,
        *,
        message_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # as lilya.js's {timeout}
    ) -> Position:
        """Publish *data* on *channel*; return the message's position.

        The message carries ``message_id`` (a random one unless you give
        yours), and the server delivers an id once: if the socket drops before
        the answer, the client publishes again with the same id on the next
        socket, within *timeout*. You see each message once however often it
        was sent.

        Raises:
            TypeError: *data* is not JSON.
            UnknownOutcome: the server's backend lost the answer; publish again
                with ``message_id=error.message_id``.
            Unavailable: the backend is unreachable; nothing was published.
            Forbidden, LimitExceeded, ...: the server refused.
            TimeoutError: no answer within *timeout* (default ``request_timeout``).
        """
        _check_str("channel", channel)
        if message_id is None:
            message_id = uuid.uuid4().hex
        _check_str("message_id", message_id)
        try:
            ok = await self._request(
                "publish",
                {"channel": channel, "data": data, "message_id": message_id},
                wait=timeout,
                retry=True,
            )
        except UnknownOutcome as error:
            error.message_id = message_id
            raise
        return _ok_position(ok, "publish")

    async def call(
        self,
        method: str,
        data: Any = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109  # as lilya.js's call(m, d, {timeout})
    ) -> Any:
        """Call the server's rpc handler *method* with *data*; return what it returned.

        A call is sent once: if the socket ends before the answer, it raises
        :class:`ConnectionLost` rather than run the handler twice.

        Raises:
            NotFound: no such method. InternalError: the handler raised.
            ConnectionLost: the socket ended while the call was out.
            TimeoutError: no answer within *timeout* (default ``request_timeout``).
        """
        _check_str("method", method)
        ok = await self._request("rpc", {"method": method, "data": data}, wait=timeout, retry=False)
        return ok.get("data")

    async def presence(
        self,
        channel: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109  # one bound, reconnection waits included
    ) -> dict[str, Any]:
        """Return who is in *channel* now: ``{member_id: info}``."""
        _check_str("channel", channel)
        ok = await self._request("presence", {"channel": channel}, wait=timeout, retry=True)
        members = ok.get("members")
        if not isinstance(members, dict):
            raise ProtocolError("The server's reply to 'presence' has no object 'members'.")
        return members

    async def history(
        self,
        channel: str,
        *,
        limit: int | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # one bound, reconnection waits included
    ) -> History:
        """Return *channel*'s retained messages (the last *limit*, or all) and its position."""
        _check_str("channel", channel)
        fields: dict[str, Any] = {"channel": channel}
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ValueError(f"limit must be a non-negative int or None, not {limit!r}.")
            fields["limit"] = limit
        ok = await self._request("history", fields, wait=timeout, retry=True)
        position = _ok_position(ok, "history")
        raw = ok.get("messages")
        if not isinstance(raw, list):
            raise ProtocolError("The server's reply to 'history' has no list 'messages'.")
        messages = []
        for item in raw:
            if not isinstance(item, dict):
                raise ProtocolError("The server's reply to 'history' holds a non-object message.")
            at = _ok_position(item, "history")
            messages.append(Message(channel, at.epoch, at.offset, item.get("data")))
        return History(position, messages)

    async def wait_connected(
        self,
        timeout: float | None = None,  # noqa: ASYNC109  # a bound by default, unlike fail_after
    ) -> None:
        """Return once the client is connected (at once if it is).

        Raises:
            ClientClosed: the client has stopped.
            TimeoutError: not connected within *timeout* (default ``request_timeout``).
        """
        _check_timeout("timeout", timeout)
        seconds = self.request_timeout if timeout is None else timeout
        with anyio.move_on_after(seconds):
            await self._connected()
            return
        raise TimeoutError(f"Not connected within {seconds} s (the client is {self.state.value}).")


class _DeadSocket(Exception):
    """The client's own verdict: the server stopped answering on this socket."""


class _ConnectRefused(Exception):
    """The server answered ``connect`` with an error."""

    def __init__(self, error: RequestError) -> None:
        super().__init__(str(error))
        self.error = error
        stop = error.code in ("unauthorized", "forbidden", "bad_request")
        self.policy: Policy = "stop" if stop else "reconnect"
        self.code = 4003 if stop else 1011


def connect(
    url: str,
    *,
    token: str | None = None,
    get_token: TokenSource | None = None,
    name: str | None = None,
    test_client: AsyncTestClient | None = None,
    dialer: Dialer | None = None,
    subprotocols: tuple[str, ...] = (),
    request_timeout: float = 10.0,
    open_timeout: float = 10.0,
    connect_timeout: float | None = 10.0,
    ping_interval: float | None = 25.0,
    ping_timeout: float = 10.0,
    reconnect_delay: tuple[float, float] = (0.5, 30.0),
    refresh_margin: float = 30.0,
    max_buffer: int = 1000,
    on_state: Callable[[State], None] | None = None,
    rand: Callable[[], float] = random.random,
) -> Client:
    """Return a :class:`Client` for the endpoint at *url*; ``async with`` it to connect.

    Entering waits until the first ``connect`` is answered (retrying with
    backoff for at most *connect_timeout* seconds; ``None`` returns at once).

    Args:
        url: ``ws://`` or ``wss://`` URL; with *test_client*, a path (``"/ws"``).
        token: the token sent in ``connect``.
        get_token: called (sync or async) before every connection and before
            the token expires, for a fresh token; ``None`` from it stops the
            client. Give *token* or *get_token*, not both.
        name: the client name sent in ``connect``.
        test_client: run over this ``AsyncTestClient``'s app, in process
            (asyncio or trio) instead of the network.
        dialer: any other :class:`Dialer` (a ``WebSocketsDialer`` with
            headers, say).
        subprotocols: offered in the handshake.
        request_timeout: default bound of every request, reconnection waits included.
        open_timeout: bound of one dial plus its ``connect`` answer.
        ping_interval: after this long without a frame from the server, send
            a ``ping`` request; ``None`` turns it off.
        ping_timeout: a ping unanswered for this long means a dead socket:
            the client drops it and reconnects.
        reconnect_delay: ``(minimum, maximum)`` seconds of the backoff.
        refresh_margin: with *get_token* and an expiring token, refresh this
            many seconds (at most half the lifetime) before expiry.
        max_buffer: events each subscription holds for you before the client
            stops reading the socket.
        on_state: called with each new :class:`State`.
        rand: the jitter's random source, in [0, 1).

    Raises:
        TypeError, ValueError: a wrong argument, named.
    """
    _check_str("url", url)
    if token is not None and get_token is not None:
        raise ValueError("Give token= or get_token=, not both.")
    if token is not None:
        _check_str("token", token)
    if get_token is not None and not callable(get_token):
        raise TypeError("get_token must be a callable returning a token (str) or None.")
    if name is not None:
        _check_str("name", name)
    for option, value in (
        ("request_timeout", request_timeout),
        ("open_timeout", open_timeout),
        ("ping_timeout", ping_timeout),
        ("refresh_margin", refresh_margin),
    ):
        _check_timeout(option, value, allow_none=False)
    _check_timeout("connect_timeout", connect_timeout)
    _check_timeout("ping_interval", ping_interval)
    low, high = reconnect_delay
    _check_timeout("reconnect_delay minimum", low, allow_none=False)
    _check_timeout("reconnect_delay maximum", high, allow_none=False)
    if low > high:
        raise ValueError(f"reconnect_delay is (minimum, maximum); got {reconnect_delay!r}.")
    if isinstance(max_buffer, bool) or not isinstance(max_buffer, int) or max_buffer < 1:
        raise ValueError(f"max_buffer must be a positive int, not {max_buffer!r}.")
    if test_client is not None and dialer is not None:
        raise ValueError("Give test_client= or dialer=, not both.")
    if test_client is not None:
        dialer = TestClientDialer(test_client)
    elif dialer is None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(
                f"url must start with ws:// or wss://, not {url!r} "
                "(for an in-process app, pass test_client=)."
            )
        dialer = WebSocketsDialer(open_timeout=open_timeout)
    return Client(
        url,
        dialer=dialer,
        token=token,
        get_token=get_token,
        name=name,
        subprotocols=tuple(subprotocols),
        request_timeout=float(request_timeout),
        open_timeout=float(open_timeout),
        connect_timeout=connect_timeout,
        ping_interval=ping_interval,
        ping_timeout=float(ping_timeout),
        reconnect_delay=(float(low), float(high)),
        refresh_margin=float(refresh_margin),
        max_buffer=max_buffer,
        on_state=on_state,
        rand=rand,
    )
