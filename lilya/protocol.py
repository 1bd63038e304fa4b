"""The lilya channels protocol: one WebSocket, many channels, requests with ids and replies.

::

    channels = Channels("redis://localhost:6379/0")
    endpoint = ChannelsEndpoint(
        channels,
        authenticate=check_token,                       # (websocket, token) -> user | None
        authorize=may,                                  # (user, channel, action) -> bool
        rpc={"whoami": whoami},                         # (client, data) -> JSON
        channels={"room:*": ChannelOptions(presence=True)},
    )
    app = Lilya(routes=[WebSocketPath("/ws", endpoint)], lifespan=channels.lifespan)

The wire contract (every frame, the error and close codes, the recovery rules)
is ``docs/protocol.md``; the frames below are that contract as msgspec
Structs, so ``app.asyncapi()`` documents the endpoint.

Theory of operation
-------------------
A connection is one :class:`_Session` and two tasks that matter in one
task group: the **reader** (this request handler's own task) reads frames
and answers requests one at a time, in order; the **writer** is the only
task that sends data frames. Replies wait for the writer in a bounded outbox
(``send_queue``); a channel's messages wait in its subscription's own
bounded queue, and the subscription wakes the writer directly (it is the
subscription's waiter), so an event costs no task of its own: the writer
takes it from the queue, sends the ``message`` frame that the first socket
to send it made and left on the event for every other socket of the process,
and goes on with the next. The writer sends every queued reply before the
next push, so a reply is never overtaken by a push queued after it (a
``subscribe`` reply always precedes the channel's first message), and it
serves the ready channels in turn, one event each. A client that stops
reading blocks the writer; its subscriptions then fill, and once stalled
drop their oldest events and tell the client with a ``gap`` push: memory
stays bounded by ``max_queue`` per channel and ``send_queue`` replies.

Every way a connection ends goes through :meth:`_Session.end` (the server
closing: expiry 4001, no ``connect`` 4003, heartbeat 1011, channels shut down
1001) or through the reader seeing the client leave (including a close by the
app's limits, 1008/1009, which the :class:`~lilya.websockets.WebSocket` does
itself); either way the task group ends, and every subscription is left,
shielded, before the handler returns.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args
from uuid import uuid4

import anyio
import anyio.lowlevel
import msgspec

from lilya._connection_state import state_of
from lilya._handlers import call_maybe_async
from lilya._json import dumps_text
from lilya._recorder import server_callables
from lilya._wakeup import Wakeup
from lilya.channels import (
    BackendUnavailableError,
    Channels,
    Event,
    NotConnectedError,
    PublishOutcomeUnknownError,
    Subscription,
    check_position,
)
from lilya.channels.backend import check_message_id, check_name
from lilya.exceptions import ImproperlyConfigured, WebSocketRuntimeError
from lilya.responses import PlainText
from lilya.tokens import (
    BEARER,
    DEFAULT_SOURCES,
    Authenticated,
    Authenticator,
    TokenSources,
    authenticated,
    find_token,
)
from lilya.typed import InvalidMessageError, MessageCodec, TypedChannel, codec_for
from lilya.types import Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect, WebSocketState, supports_denial

__all__ = [
    "Action",
    "ChannelOptions",
    "ChannelsEndpoint",
    "Client",
    "Connect",
    "DisconnectPush",
    "ErrorCode",
    "ErrorDetail",
    "GapPush",
    "HistoryRequest",
    "JoinPush",
    "LeavePush",
    "MessagePush",
    "Ping",
    "PingPush",
    "Pong",
    "PresenceRequest",
    "ProtocolError",
    "Publish",
    "Push",
    "Refresh",
    "Reply",
    "Request",
    "ResetPush",
    "Rpc",
    "Since",
    "Subscribe",
    "Unsubscribe",
]

logger = logging.getLogger("lilya.protocol")

#: What ``authorize(user, channel, action)`` is asked about.
Action = Literal["subscribe", "publish", "presence", "history"]

#: The ``code`` of an error reply (``docs/protocol.md`` says when each is sent).
ErrorCode = Literal[
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "already_subscribed",
    "not_subscribed",
    "limit",
    "unavailable",
    "unknown_outcome",
    "internal",
]

#: A request's id: the client's, echoed in the reply.
RequestId = int | str

# A problem quoted back to the client is bounded: msgspec quotes what it refused.
_MAX_PROBLEM = 200
_MAX_CLIENT_NAME = 200


# -- the frames: requests (client -> server) -----------------------------------


class Since(msgspec.Struct):
    """A position the client already has: resume after it."""

    epoch: str
    offset: int


class Connect(msgspec.Struct, tag="connect", kw_only=True):
    """Authenticate (unless the handshake did) and name the client; the first request."""

    id: RequestId
    token: str | None = None
    name: str | None = None


class Subscribe(msgspec.Struct, tag="subscribe", kw_only=True):
    """Receive the channel's messages; with ``since``, first what was missed after it."""

    id: RequestId
    channel: str
    since: Since | None = None
    presence: bool = False


class Unsubscribe(msgspec.Struct, tag="unsubscribe", kw_only=True):
    """Stop receiving the channel's messages."""

    id: RequestId
    channel: str


class Publish(msgspec.Struct, tag="publish", kw_only=True):
    """Publish ``data`` on the channel; a retry with the same ``message_id`` is delivered once."""

    id: RequestId
    channel: str
    data: Any
    message_id: str | None = None


class Rpc(msgspec.Struct, tag="rpc", kw_only=True):
    """Call a server function by name; the reply carries its result as ``data``."""

    id: RequestId
    method: str
    data: Any = None


class PresenceRequest(msgspec.Struct, tag="presence", kw_only=True):
    """Ask who is subscribed to the channel: ``{"members": {member: info}}``."""

    id: RequestId
    channel: str


class HistoryRequest(msgspec.Struct, tag="history", kw_only=True):
    """Ask for the channel's retained messages (the last ``limit``), oldest first."""

    id: RequestId
    channel: str
    limit: int | None = None


class Refresh(msgspec.Struct, tag="refresh", kw_only=True):
    """Replace the socket's token before it expires."""

    id: RequestId
    token: str


class Ping(msgspec.Struct, tag="ping", kw_only=True):
    """Ask the server to answer at once (a client's own liveness check)."""

    id: RequestId


class Pong(msgspec.Struct, tag="pong"):
    """The answer to the server's ``ping`` push (no id, no reply)."""


#: Every frame a client may send.
Request = (
    Connect
    | Subscribe
    | Unsubscribe
    | Publish
    | Rpc
    | PresenceRequest
    | HistoryRequest
    | Refresh
    | Ping
    | Pong
)


# -- the frames: replies and pushes (server -> client) ---------------------------


class ErrorDetail(msgspec.Struct):
    """Why a request failed: a code from :data:`ErrorCode` and a message for people."""

    code: ErrorCode
    message: str


class Reply(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The one answer to a request: ``ok`` (an object) or ``error``, with the request's id."""

    id: RequestId | None
    ok: dict[str, Any] | None = None
    error: ErrorDetail | None = None


class MessagePush(msgspec.Struct, tag="message", kw_only=True):
    """A message of a subscribed channel, at its position."""

    channel: str
    epoch: str
    offset: int
    data: Any


class JoinPush(msgspec.Struct, tag="join", kw_only=True):
    """Someone subscribed to a channel with presence (sent when you asked for presence)."""

    channel: str
    member: str
    info: Any


class LeavePush(msgspec.Struct, tag="leave", kw_only=True):
    """Someone left a channel with presence."""

    channel: str
    member: str
    info: Any


class GapPush(msgspec.Struct, tag="gap", kw_only=True):
    """Messages ``first``..``last`` were dropped for you (you read too slowly): fetch them again."""

    channel: str
    epoch: str
    first: int | None
    last: int | None
    dropped: int


class ResetPush(msgspec.Struct, tag="reset", kw_only=True):
    """Your position in the channel was lost: reload its state; messages continue from here."""

    channel: str
    epoch: str
    offset: int


class DisconnectPush(msgspec.Struct, tag="disconnect", kw_only=True):
    """The server closes the socket with ``code`` right after this frame."""

    code: int
    reason: str
    reconnect: bool


class PingPush(msgspec.Struct, tag="ping"):
    """The server's heartbeat: answer ``{"type": "pong"}`` within the heartbeat timeout."""


#: Every push the server sends (replies are :class:`Reply`).
Push = MessagePush | JoinPush | LeavePush | GapPush | ResetPush | DisconnectPush | PingPush

_PING_TEXT = '{"type":"ping"}'


# -- what users configure --------------------------------------------------------


class ProtocolError(Exception):
    """Raise it in an rpc handler to answer with an error reply instead of a result.

    Args:
        code: one of :data:`ErrorCode` (``"forbidden"``, ``"bad_request"``, …).
        message: what the client is told.


    Raises:
        ValueError: *code* is not one of :data:`ErrorCode`.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        if code not in _CODES:
            raise ValueError(
                f"ProtocolError code must be one of {', '.join(sorted(_CODES))}, got {code!r}."
            )
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


_CODES = frozenset(get_args(ErrorCode))
_PUBLISHERS = ("anyone", "users", "server")


@dataclass(frozen=True)
class ChannelOptions:
    """What clients may do on the channels a pattern names.

    Args:
        history_size: how many retained messages clients may read (``history``
            requests, ``since`` recovery); ``None``: all the channels keep
            (``Channels(history_size=...)``, which is what is stored); ``0``:
            no history and no recovery (a ``since`` then gets a ``reset``).
        presence: subscribers appear in ``presence`` (with the endpoint's
            ``presence_info``) and may ask for join/leave pushes.
        publish: who may publish: ``"anyone"`` connected, only ``"users"``
            (authenticated, not anonymous), or only the ``"server"`` (your code
            through ``Channels.publish``).
        payload: a message type (as ``receives=`` takes, :mod:`lilya.typed`):
            a client's ``publish`` must fit it (else ``bad_request`` naming the
            field) and ``app.asyncapi()`` documents it.
        max_queue: each subscriber's queue bound (default: the Channels').

    Raises:
        ImproperlyConfigured: a setting out of range, or a payload type lilya
            cannot validate.
    """

    history_size: int | None = None
    presence: bool = False
    publish: Literal["anyone", "users", "server"] = "anyone"
    payload: Any = None
    max_queue: int | None = None

    def __post_init__(self) -> None:
        size = self.history_size
        if size is not None and (type(size) is not int or size < 0):
            raise ImproperlyConfigured(
                f"ChannelOptions.history_size must be an int >= 0 or None, got {size!r}."
            )
        if self.publish not in _PUBLISHERS:
            raise ImproperlyConfigured(
                f"ChannelOptions.publish must be one of {', '.join(_PUBLISHERS)}, "
                f"got {self.publish!r}."
            )
        queue = self.max_queue
        if queue is not None and (type(queue) is not int or queue < 1):
            raise ImproperlyConfigured(
                f"ChannelOptions.max_queue must be an int >= 1 or None, got {queue!r}."
            )
        if self.payload is not None:
            codec_for(self.payload)  # a type lilya cannot validate fails here, at import


class Client:
    """One connected socket, as your hooks and rpc handlers see it.

    Attributes:
        websocket: the connection (read its headers, cookies, path params).
        id: the server's id of this connection (the ``client`` of the connect reply).
        name: the name the client gave in ``connect``, or ``None``.
        user: what ``authenticate`` returned for its token, or ``None``.
        expires_at: when its token expires (Unix seconds), or ``None``.
    """

    __slots__ = ("_subscribed", "connected", "expires_at", "id", "name", "user", "websocket")

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.id = uuid4().hex
        self.name: str | None = None
        self.user: Any = None
        self.expires_at: float | None = None
        self.connected = False
        self._subscribed: dict[str, _Entry] = {}

    def __repr__(self) -> str:
        return f"<Client {self.id} name={self.name!r} user={self.user!r}>"

    @property
    def channels(self) -> frozenset[str]:
        """The channels this client is subscribed to."""
        return frozenset(self._subscribed)


def default_identify(user: Any) -> str | None:
    """The ``user`` of the connect reply: ``str(user)``, or ``None`` for no user."""
    return None if user is None else str(user)


def default_presence_info(client: Client, identify: Callable[[Any], str | None]) -> Any:
    """What others see of a subscriber in ``presence``: its user and client name."""
    return {"user": identify(client.user), "name": client.name}


RpcHandler = Callable[[Client, Any], Any]
Authorizer = Callable[[Any, str, str], Any]


def _problem(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= _MAX_PROBLEM else text[: _MAX_PROBLEM - 1] + "…"


class ChannelsEndpoint:
    """Serve the lilya channels protocol over :class:`~lilya.channels.Channels`.

    Put it on a route: ``WebSocketPath("/ws", ChannelsEndpoint(channels, ...))``.
    Clients (``lilya.js``, ``lilya.client``, or anything that speaks
    ``docs/protocol.md``) then subscribe to many channels over one socket,
    each with its own positions and recovery, publish, call your rpc
    functions and see presence. The route's limits apply: ``max_message_size``
    (1009) and ``rate_limit`` (1008) to every frame.

    Args:
        hub: the channels to serve (connected by the app's lifespan).
        authenticate: ``authenticate(websocket, token)`` returning the user,
            an :class:`~lilya.tokens.Authenticated` (user and expiry), or
            ``None`` to refuse the token; sync or async. Given, every socket
            must authenticate: by a token on the handshake (``tokens``; a bad
            one is a 401 denial) or in its ``connect`` frame within
            ``connect_timeout``. Without it, every socket is anonymous.
        authorize: ``authorize(user, channel, action)`` for ``action`` in
            ``subscribe``, ``publish``, ``presence``, ``history``; anything
            but a true answer refuses (``forbidden``). Without it, all is allowed.
        rpc: functions by method name, ``fn(client, data)`` (sync or async),
            returning the JSON result; raise :class:`ProtocolError` to answer
            with an error.
        channels: :class:`ChannelOptions` by channel name or prefix pattern
            (``"room:*"``; the longest matching prefix wins, ``"*"`` matches
            all). A channel no key matches is ``forbidden``. Default: every
            channel, with default options.
        max_channels: subscriptions per socket (more: error ``limit``).
        connect_timeout: seconds a socket that must authenticate has to send
            ``connect`` (else close 4003).
        heartbeat: ``(interval, timeout)``: a ``ping`` push every *interval*
            seconds, to be answered by a ``pong`` within *timeout* (else close
            1011); ``None``: no heartbeat.
        tokens: where to look for a token on the handshake.
        identify: the ``user`` string of the connect reply (default ``str(user)``).
        presence_info: ``presence_info(client)``, what others see of a
            subscriber (default ``{"user": ..., "name": ...}``).
        send_queue: replies waiting for the writer per socket before the
            reader waits (a client that stops reading holds no more than
            this, besides ``max_queue`` events per channel).
        close_timeout: seconds the server's last frames and close may take
            with a client that stopped reading.

    Raises:
        ImproperlyConfigured: any argument of the wrong type or out of range.
    """

    #: For ``app.asyncapi()``: the frames a client sends, the pushes it gets, the replies.
    receives: Any = Request
    sends: Any = Push
    replies: Any = Reply
    on_invalid: Any = None
    #: WebSocketPath hands this handler the server's callables: the WebSocket it
    #: makes applies the route's limits itself (as a controller's does).
    applies_limits = True

    def __init__(
        self,
        hub: Channels,
        /,
        *,
        authenticate: Authenticator | None = None,
        authorize: Authorizer | None = None,
        rpc: Mapping[str, RpcHandler] | None = None,
        channels: Mapping[str, ChannelOptions] | None = None,
        max_channels: int = 100,
        connect_timeout: float = 10.0,
        heartbeat: tuple[float, float] | None = (25.0, 20.0),
        tokens: TokenSources = DEFAULT_SOURCES,
        identify: Callable[[Any], str | None] = default_identify,
        presence_info: Callable[[Client], Any] | None = None,
        send_queue: int = 256,
        close_timeout: float = 1.0,
    ) -> None:
        if not isinstance(hub, Channels):
            raise ImproperlyConfigured(
                f"ChannelsEndpoint serves a lilya.channels.Channels, got {hub!r}."
            )
        for name, hook in (
            ("authenticate", authenticate),
            ("authorize", authorize),
            ("presence_info", presence_info),
        ):
            if hook is not None and not callable(hook):
                raise ImproperlyConfigured(
                    f"ChannelsEndpoint {name}= must be callable, got {hook!r}."
                )
        if not callable(identify):
            raise ImproperlyConfigured(
                f"ChannelsEndpoint identify= must be callable, got {identify!r}."
            )
        handlers = dict(rpc or {})
        for method, fn in handlers.items():
            if not isinstance(method, str) or not callable(fn):
                raise ImproperlyConfigured(
                    f"ChannelsEndpoint rpc= maps method names to functions fn(client, data); "
                    f"got {method!r}: {fn!r}."
                )
        if type(max_channels) is not int or max_channels < 1:
            raise ImproperlyConfigured(f"max_channels must be an int >= 1, got {max_channels!r}.")
        _check_seconds("connect_timeout", connect_timeout)
        _check_seconds("close_timeout", close_timeout)
        if heartbeat is not None:
            if not isinstance(heartbeat, tuple) or len(heartbeat) != 2:
                raise ImproperlyConfigured(
                    f"heartbeat must be (interval, timeout) in seconds or None, got {heartbeat!r}."
                )
            _check_seconds("heartbeat interval", heartbeat[0])
            _check_seconds("heartbeat timeout", heartbeat[1])
        if not isinstance(tokens, TokenSources):
            raise ImproperlyConfigured(
                f"tokens= must be a lilya.tokens.TokenSources, got {tokens!r}."
            )
        if type(send_queue) is not int or send_queue < 1:
            raise ImproperlyConfigured(f"send_queue must be an int >= 1, got {send_queue!r}.")
        self.hub = hub
        self.authenticate = authenticate
        self.authorize = authorize
        self.rpc = handlers
        self.max_channels = max_channels
        self.connect_timeout = float(connect_timeout)
        self.heartbeat = heartbeat
        self.tokens = tokens
        self.identify = identify
        self.presence_info = presence_info
        self.send_queue = send_queue
        self.close_timeout = float(close_timeout)
        self._exact: dict[str, ChannelOptions] = {}
        self._prefixes: list[tuple[str, ChannelOptions]] = []
        self._open = channels is None
        self._codecs: dict[int, MessageCodec] = {}
        self.typed_channels: list[TypedChannel[Any]] = []
        for pattern, options in (channels or {}).items():
            self._add_pattern(pattern, options)
        self._prefixes.sort(key=lambda item: len(item[0]), reverse=True)

    def __repr__(self) -> str:
        return f"<ChannelsEndpoint {self.hub!r}>"

    def _add_pattern(self, pattern: Any, options: Any) -> None:
        if not isinstance(options, ChannelOptions):
            raise ImproperlyConfigured(
                f"ChannelsEndpoint channels= maps patterns to ChannelOptions; {pattern!r} maps "
                f"to {options!r}."
            )
        if not isinstance(pattern, str) or not pattern or "*" in pattern[:-1]:
            raise ImproperlyConfigured(
                f"A channel pattern is a name or a prefix ending in '*' (\"room:*\"), got "
                f"{pattern!r}."
            )
        if pattern.endswith("*"):
            self._prefixes.append((pattern[:-1], options))
        else:
            self._exact[pattern] = options
        if options.payload is not None:
            self._codecs[id(options)] = codec_for(options.payload)
            address = pattern[:-1] + "{name}" if pattern.endswith("*") else pattern
            self.typed_channels.append(TypedChannel(self.hub, address, options.payload))

    def options_for(self, channel: str) -> ChannelOptions | None:
        """Return *channel*'s options: the exact name's, else the longest prefix's, or None."""
        options = self._exact.get(channel)
        if options is not None:
            return options
        for prefix, candidate in self._prefixes:
            if channel.startswith(prefix):
                return candidate
        return _DEFAULT_OPTIONS if self._open else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            response = PlainText(
                "This endpoint speaks the lilya channels protocol over WebSocket.", 426
            )
            await response(scope, receive, send)
            return
        if scope["type"] != "websocket":  # pragma: no cover - routes only pass these two
            return
        # Past the recorder, to the server's own callables: the WebSocket
        # moves the connection's state itself (lilya/_recorder.py).
        websocket = WebSocket(scope, *server_callables(receive, send))
        state_of(scope).websocket = websocket  # the one exception handlers are given
        client = Client(websocket)
        offered = scope.get("subprotocols") or []
        subprotocol = BEARER if offered[:1] == [BEARER] else None
        if self.authenticate is not None:
            found = find_token(websocket, self.tokens)
            if found is not None:
                try:
                    result = authenticated(
                        await call_maybe_async(self.authenticate, websocket, found.token)
                    )
                except Exception:
                    logger.exception("The authenticate hook raised on a handshake token.")
                    await _deny(websocket, 500, "The server could not check the token.")
                    return
                if result is None:
                    await _deny(websocket, 401, "The token was refused.")
                    return
                _sign_in(client, result)
        try:
            await websocket.accept(subprotocol=subprotocol)
        except WebSocketDisconnect:
            return  # it left during the handshake
        if self.authenticate is None:
            client.connected = True
        await _Session(self, client).run()


_DEFAULT_OPTIONS = ChannelOptions()


def _check_seconds(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ImproperlyConfigured(f"{name} must be a positive number of seconds, got {value!r}.")


async def _deny(websocket: WebSocket, status: int, text: str) -> None:
    """Refuse the handshake with *status*, or close it (a 403) where denials are unsupported."""
    if supports_denial(websocket.scope):
        await websocket.send_denial_response(PlainText(text, status))
    else:
        await websocket.close(4003, text)


def _sign_in(client: Client, result: Authenticated) -> None:
    client.user = result.user
    client.expires_at = None if result.expires_at is None else float(result.expires_at)
    client.connected = True


class _Fatal(Exception):
    """Answer the request with this error, then close the socket with *close_code*."""

    def __init__(self, code: ErrorCode, message: str, close_code: int, reason: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.close_code = close_code
        self.reason = reason


class _Entry:
    """One subscription of a socket: its channel, the Subscription, and its place in line.

    It is its subscription's waiter: an event arriving on an empty queue (or
    the subscription closing) calls :meth:`set`, from the publisher's task,
    which puts the entry in its session's line of ready channels and wakes
    the writer. Nothing else runs per event.
    """

    __slots__ = ("channel", "channel_json", "left", "presence", "queued", "session", "subscription")

    def __init__(
        self, session: _Session, channel: str, subscription: Subscription, presence: bool
    ) -> None:
        self.session = session
        self.channel = channel
        self.channel_json = _json(channel)
        self.subscription = subscription
        self.presence = presence
        self.queued = False  # in the session's ready line (then not the waiter)
        self.left = False  # unsubscribed: nothing more is sent for it

    def set(self) -> None:
        if self.queued or self.left:
            return
        self.queued = True
        session = self.session
        session._ready.append(self)
        session._wake_writer()


_decoder = msgspec.json.Decoder(Request)


def _reply_ok(request_id: RequestId, ok: dict[str, Any]) -> str:
    return dumps_text({"id": request_id, "ok": ok})


def _reply_error(request_id: RequestId | None, code: ErrorCode, message: str) -> str:
    return dumps_text({"id": request_id, "error": {"code": code, "message": message}})


def _id_of(raw: str | bytes) -> RequestId | None:
    """The id of a frame that did not parse as a request, if it has a usable one."""
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeError, RecursionError):
        return None
    if isinstance(value, dict):
        found = value.get("id")
        if isinstance(found, str) or (isinstance(found, int) and not isinstance(found, bool)):
            return found
    return None


def _json(value: Any) -> str:
    return dumps_text(value)


class _Session:
    """One connection's protocol state: its client, subscriptions, queue and tasks."""

    def __init__(self, endpoint: ChannelsEndpoint, client: Client) -> None:
        self.endpoint = endpoint
        self.hub = endpoint.hub
        self.client = client
        self.websocket = client.websocket
        self.entries = client._subscribed
        # Replies and the server's own frames, in order, for the writer; and
        # the channels with events for it, in turn.
        self._outbox: deque[str] = deque()
        self._ready: deque[_Entry] = deque()
        self._writer_wakeup: Wakeup | None = None
        self._room: anyio.Event | None = None  # the reader (or heartbeat) waits for the outbox
        self._flushing = False
        self._writer_scope = anyio.CancelScope()
        self._writer_stopped = anyio.Event()
        self._connect_scope = anyio.CancelScope()
        self._expiry_scope = anyio.CancelScope()
        self._pong = anyio.Event()
        self._ending = False
        self._group: Any = None
        self._warned_bytes = False
        self._connect_seen = False

    async def run(self) -> None:
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                group.start_soon(self._writer)
                if not self.client.connected:
                    group.start_soon(self._connect_deadline)
                if self.endpoint.heartbeat is not None:
                    group.start_soon(self._heartbeat, *self.endpoint.heartbeat)
                self._watch_expiry()
                await self._read()
                group.cancel_scope.cancel()
        finally:
            await self._leave_all()

    async def _leave_all(self) -> None:
        entries = list(self.entries.values())
        self.entries.clear()
        with anyio.CancelScope(shield=True):
            # At once: with the backend down each leave may take its cleanup
            # timeout, and a hundred of them in turn would hold the handler.
            async with anyio.create_task_group() as group:
                for entry in entries:
                    entry.left = True
                    group.start_soon(entry.subscription.__aexit__, None, None, None)
        self._ready.clear()
        self._outbox.clear()

    # -- ending --------------------------------------------------------------

    async def end(self, code: int, reason: str, *, reconnect: bool) -> None:
        """Send what is queued, then a ``disconnect`` push, close with *code*, stop every task."""
        if self._ending:
            return
        self._ending = True
        websocket = self.websocket
        timeout = self.endpoint.close_timeout
        with anyio.move_on_after(timeout):
            if not self._writer_stopped.is_set():
                # The writer sends what is queued (replies, then the events its
                # channels hold), then stops instead of waiting for more.
                self._flushing = True
                self._wake_writer()
                await self._writer_stopped.wait()
        self._writer_scope.cancel()
        await self._writer_stopped.wait()
        if websocket.application_state is WebSocketState.CONNECTED:
            frame = _json(
                {"type": "disconnect", "code": code, "reason": reason, "reconnect": reconnect}
            )
            with anyio.move_on_after(timeout):
                try:
                    await websocket.send_text(frame)
                    await websocket.close(code, reason)
                except (WebSocketDisconnect, WebSocketRuntimeError):
                    pass  # it left, or the app's limits closed it meanwhile
        self._group.cancel_scope.cancel()

    async def _send(self, frame: str) -> None:
        """Queue *frame* for the writer, after every frame queued before it.

        It waits while ``send_queue`` frames wait already (a client that stops
        reading stops the reader here, not in memory). Once the writer has
        stopped, nothing would send it: it is dropped.
        """
        outbox = self._outbox
        limit = self.endpoint.send_queue
        while len(outbox) >= limit and not self._writer_stopped.is_set():
            room = self._room
            if room is None:
                room = self._room = anyio.Event()
            await room.wait()
        if self._writer_stopped.is_set():
            return
        outbox.append(frame)
        self._wake_writer()

    def _wake_writer(self) -> None:
        wakeup = self._writer_wakeup
        if wakeup is not None:
            self._writer_wakeup = None
            wakeup.set()

    def _wake_senders(self) -> None:
        room = self._room
        if room is not None:
            self._room = None
            room.set()

    async def _writer(self) -> None:
        websocket = self.websocket
        outbox = self._outbox
        ready = self._ready
        try:
            with self._writer_scope:
                while True:
                    # Without a checkpoint while there is something to send:
                    # the send is one, and a run of pushes goes out in a row.
                    if outbox:
                        frame = outbox.popleft()
                        if self._room is not None:
                            self._wake_senders()  # one frame out: room for one
                        await websocket.send_text(frame)
                        continue
                    if ready:
                        entry = ready[0]
                        event = entry.subscription._take_nowait()
                        if event is None:
                            ready.popleft()
                            self._settle(entry)
                            continue
                        if len(ready) > 1:
                            ready.rotate(-1)  # the next ready channel goes next
                        if event.type == "message":
                            await websocket.send_text(event._frame or self._message_frame(event))
                        else:
                            for frame in self._other_frames(entry, event):
                                await websocket.send_text(frame)
                        continue
                    if self._flushing:
                        return
                    wakeup = self._writer_wakeup = Wakeup()
                    await wakeup.wait()
        except (WebSocketDisconnect, WebSocketRuntimeError):
            # The client left (the reader gets its disconnect), or the socket
            # was closed under the writer: by the app's limits (1008 over rate,
            # 1009 too big, done in the reader's receive) or by the app's drain.
            # Either way sending is over, quietly.
            self._drain()
        finally:
            self._writer_wakeup = None
            self._writer_stopped.set()
            self._wake_senders()  # a reply waiting for room is dropped, not stuck

    def _settle(self, entry: _Entry) -> None:
        """*entry*'s queue is empty: wait for its next event, or end if it closed."""
        entry.queued = False
        subscription = entry.subscription
        if subscription.closed:
            entry.left = True
            # Closed without our unsubscribe: by an overflow (1013), or the
            # channels disconnected (the app is stopping, 1001). end() waits
            # for this task, so it runs in its own.
            if subscription._error is not None:
                self._end_soon(1013, "subscriber too slow")
            else:
                self._end_soon(1001, "channels closed")
            return
        if not self._flushing:
            subscription._waiter = entry  # nothing awaited since it was found empty

    def _end_soon(self, code: int, reason: str) -> None:
        self._group.start_soon(functools.partial(self.end, code, reason, reconnect=True))

    def _drain(self) -> None:
        # The reader still delivers what the client sent before it left; the
        # server's disconnect follows at once, and one that never comes is
        # not waited for beyond this.
        scope = self._group.cancel_scope
        scope.deadline = min(scope.deadline, anyio.current_time() + 5.0)

    async def _connect_deadline(self) -> None:
        with self._connect_scope:
            await anyio.sleep(self.endpoint.connect_timeout)
            await self.end(4003, "no connect in time", reconnect=False)

    def _watch_expiry(self) -> None:
        self._expiry_scope.cancel()
        expires_at = self.client.expires_at
        if expires_at is None:
            return
        self._expiry_scope = scope = anyio.CancelScope()
        self._group.start_soon(self._expire, expires_at, scope)

    async def _expire(self, expires_at: float, scope: anyio.CancelScope) -> None:
        with scope:
            await anyio.sleep(max(0.0, expires_at - time.time()))
            await self.end(4001, "token expired", reconnect=False)

    async def _heartbeat(self, interval: float, within: float) -> None:
        while True:
            await anyio.sleep(interval)
            pong = self._pong = anyio.Event()
            with anyio.move_on_after(within):
                await self._send(_PING_TEXT)
                await pong.wait()
            if not pong.is_set():
                await self.end(1011, "heartbeat timeout", reconnect=True)
                return

    # -- reading -------------------------------------------------------------

    async def _read(self) -> None:
        websocket = self.websocket
        while True:
            # One turn of the scheduler per frame: a flooding client is slowed
            # at its own loop, and its pumps and writer get to run.
            await anyio.lowlevel.checkpoint()
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            await self._handle(raw if raw is not None else message.get("bytes") or b"")

    async def _handle(self, raw: str | bytes) -> None:
        try:
            request = _decoder.decode(raw)
        except (msgspec.DecodeError, UnicodeError) as exc:
            # UnicodeError: text with a lone surrogate, which no server passes
            # (RFC 6455 §8.1) but an in-process client can.
            await self._send(_reply_error(_id_of(raw), "bad_request", _problem(exc)))
            return
        except RecursionError:
            # msgspec refuses nesting deeper than the interpreter's stack (a
            # kilobyte of "[" does it) this way, not with a DecodeError.
            await self._send(_reply_error(None, "bad_request", "JSON nested too deeply"))
            return
        if type(request) is Pong:
            self._pong.set()
            return
        request_id = request.id  # type: ignore[union-attr]  # every other frame has one
        if not self.client.connected and type(request) is not Connect:
            await self._send(
                _reply_error(request_id, "unauthorized", "send connect (with a token) first")
            )
            return
        try:
            ok = await _HANDLERS[type(request)](self, request)
        except ProtocolError as exc:
            await self._send(_reply_error(request_id, exc.code, exc.message))
        except _Fatal as exc:
            await self._send(_reply_error(request_id, exc.code, exc.message))
            await self.end(exc.close_code, exc.reason, reconnect=False)
        except (BackendUnavailableError, NotConnectedError) as exc:
            await self._send(_reply_error(request_id, "unavailable", _problem(exc)))
        except PublishOutcomeUnknownError as exc:
            await self._send(_reply_error(request_id, "unknown_outcome", _problem(exc)))
        except Exception as exc:
            # A hook or rpc handler raised (or the backend refused: BackendError):
            # your bug, logged once with its traceback; the client learns only that.
            logger.exception("%s request failed: %s", type(request).__name__, exc)
            await self._send(_reply_error(request_id, "internal", "the server failed"))
        else:
            if ok is not None:
                await self._send(_reply_ok(request_id, ok))

    async def _authorize(self, channel: str, action: Action) -> None:
        authorize = self.endpoint.authorize
        if authorize is None:
            return
        allowed = await call_maybe_async(authorize, self.client.user, channel, action)
        if allowed is not True:
            raise ProtocolError("forbidden", f"not allowed to {action} {channel!r}")

    def _options(self, channel: str) -> ChannelOptions:
        """Check *channel*'s name (the peer's doing if bad) and return its options."""
        try:
            check_name(channel)
        except (TypeError, ValueError) as exc:
            raise ProtocolError("bad_request", _problem(exc)) from None
        options = self.endpoint.options_for(channel)
        if options is None:
            raise ProtocolError(
                "forbidden", f"no channel pattern of this endpoint names {channel!r}"
            )
        return options

    # -- requests ------------------------------------------------------------

    async def _connect(self, request: Connect) -> dict[str, Any]:
        client = self.client
        endpoint = self.endpoint
        if self._connect_seen:
            raise ProtocolError("bad_request", "already connected: send connect once")
        self._connect_seen = True
        name = request.name
        if name is not None and len(name) > _MAX_CLIENT_NAME:
            raise ProtocolError("bad_request", f"name is longer than {_MAX_CLIENT_NAME} characters")
        if endpoint.authenticate is not None and (
            request.token is not None or not client.connected
        ):
            if request.token is None:
                raise _Fatal("unauthorized", "a token is required", 4003, "no token")
            try:
                result = authenticated(
                    await call_maybe_async(endpoint.authenticate, self.websocket, request.token)
                )
            except Exception as exc:
                logger.exception("The authenticate hook raised: %s", exc)
                raise _Fatal(
                    "internal", "the server could not check the token", 4003, "bad token"
                ) from None
            if result is None:
                raise _Fatal("unauthorized", "the token was refused", 4003, "bad token")
            _sign_in(client, result)
            self._watch_expiry()
        client.connected = True
        client.name = name
        self._connect_scope.cancel()
        heartbeat = endpoint.heartbeat
        return {
            "client": client.id,
            "user": endpoint.identify(client.user),
            "expires_at": client.expires_at,
            "heartbeat": None if heartbeat is None else float(heartbeat[0]),
        }

    async def _subscribe(self, request: Subscribe) -> None:
        channel = request.channel
        hub = self.hub
        if channel in self.entries:
            raise ProtocolError("already_subscribed", f"already subscribed to {channel!r}")
        if len(self.entries) >= self.endpoint.max_channels:
            raise ProtocolError(
                "limit", f"at most {self.endpoint.max_channels} channels per socket"
            )
        options = self._options(channel)
        await self._authorize(channel, "subscribe")
        if request.presence:
            if not options.presence:
                raise ProtocolError("forbidden", f"presence is off for {channel!r}")
            await self._authorize(channel, "presence")
        since = request.since
        position = None
        if since is not None:
            try:
                position = check_position((since.epoch, since.offset))
            except (TypeError, ValueError) as exc:
                raise ProtocolError("bad_request", _problem(exc)) from None
        if position is not None and options.history_size == 0:
            position = None
        info = None
        if options.presence:
            info = self._presence_info()
        # The position before attaching: what a client resumes from with it is
        # never past what it was sent (a message in between is replayed).
        current = await hub.position(channel)
        subscription = hub.subscribe(
            channel,
            since=position,
            presence=info,
            max_queue=options.max_queue,
            policy="drop_oldest",
        )
        await subscription.__aenter__()
        entry = self.entries[channel] = _Entry(self, channel, subscription, request.presence)
        recovered = position is not None and subscription.recovered
        await self._send(
            _reply_ok(
                request.id,
                {"epoch": current.epoch, "offset": current.offset, "recovered": recovered},
            )
        )
        if since is not None and not recovered:
            await self._send(
                _json(
                    {
                        "type": "reset",
                        "channel": channel,
                        "epoch": current.epoch,
                        "offset": current.offset,
                    }
                )
            )
        # In line after the reply (and reset): the writer sends those first,
        # then what the subscription replayed and everything after it.
        entry.set()

    def _presence_info(self) -> Any:
        hook = self.endpoint.presence_info
        if hook is None:
            return default_presence_info(self.client, self.endpoint.identify)
        return hook(self.client)

    async def _unsubscribe(self, request: Unsubscribe) -> dict[str, Any]:
        entry = self.entries.pop(request.channel, None)
        if entry is None:
            raise ProtocolError("not_subscribed", f"not subscribed to {request.channel!r}")
        # Nothing more of it is sent, not even what its queue still holds:
        # the reply is the line after which the channel is silent.
        entry.left = True
        subscription = entry.subscription
        subscription._waiter = None
        if entry.queued:
            entry.queued = False
            self._ready.remove(entry)
        await subscription.__aexit__(None, None, None)
        return {}

    async def _publish(self, request: Publish) -> dict[str, Any]:
        channel = request.channel
        options = self._options(channel)
        if options.publish == "server":
            raise ProtocolError("forbidden", f"only the server publishes on {channel!r}")
        if options.publish == "users" and self.client.user is None:
            raise ProtocolError("forbidden", f"only signed-in users publish on {channel!r}")
        await self._authorize(channel, "publish")
        data = request.data
        codec = self.endpoint._codecs.get(id(options))
        try:
            check_message_id(request.message_id)
            if codec is not None:
                data = msgspec.json.decode(codec.encode(codec.decode(msgspec.json.encode(data))))
        except (TypeError, ValueError, InvalidMessageError) as exc:
            raise ProtocolError("bad_request", _problem(exc)) from None
        # What JSON decodes, Channels carries: no data error is left for publish.
        event = await self.hub.publish(channel, data, message_id=request.message_id)
        return {"epoch": event.epoch, "offset": event.offset}

    async def _rpc(self, request: Rpc) -> dict[str, Any]:
        handler = self.endpoint.rpc.get(request.method)
        if handler is None:
            raise ProtocolError("not_found", f"no rpc method {request.method!r:.100}")
        result = await call_maybe_async(handler, self.client, request.data)
        try:
            _json(result)
        except (TypeError, ValueError) as exc:
            # Your handler's result, not the client's data: a server bug.
            raise RuntimeError(
                f"rpc method {request.method!r} returned what JSON cannot carry: {exc}"
            ) from None
        return {"data": result}

    async def _presence(self, request: PresenceRequest) -> dict[str, Any]:
        channel = request.channel
        if not self._options(channel).presence:
            raise ProtocolError("forbidden", f"presence is off for {channel!r}")
        await self._authorize(channel, "presence")
        return {"members": await self.hub.presence(channel)}

    async def _history(self, request: HistoryRequest) -> dict[str, Any]:
        channel = request.channel
        options = self._options(channel)
        if options.history_size == 0:
            raise ProtocolError("forbidden", f"history is off for {channel!r}")
        await self._authorize(channel, "history")
        limit = request.limit
        if limit is not None and limit < 0:
            raise ProtocolError("bad_request", f"limit must be >= 0, got {limit}")
        if options.history_size is not None:
            limit = options.history_size if limit is None else min(limit, options.history_size)
        # The position first, then the messages: a message published in
        # between is then in the list and the reply's offset covers it. Read
        # the other way round, it would be in neither, and a client resuming
        # ``since`` the reply's position would skip it.
        current = await self.hub.position(channel)
        events = await self.hub.history(channel, limit=limit)
        if events:
            last = events[-1]
            if last.epoch != current.epoch or last.offset > current.offset:
                current = last.position
        messages = []
        for event in events:
            if isinstance(event.data, bytes):
                self._warn_bytes(event)
                continue
            messages.append({"epoch": event.epoch, "offset": event.offset, "data": event.data})
        return {"epoch": current.epoch, "offset": current.offset, "messages": messages}

    async def _refresh(self, request: Refresh) -> dict[str, Any]:
        authenticate = self.endpoint.authenticate
        if authenticate is None:
            raise ProtocolError("bad_request", "this endpoint takes no tokens")
        result = authenticated(await call_maybe_async(authenticate, self.websocket, request.token))
        if result is None:
            raise ProtocolError("unauthorized", "the token was refused")
        identify = self.endpoint.identify
        if self.client.user is not None and identify(result.user) != identify(self.client.user):
            raise ProtocolError("forbidden", "a refresh token must name the same user")
        _sign_in(self.client, result)
        self._watch_expiry()
        return {"expires_at": self.client.expires_at}

    async def _ping(self, request: Ping) -> dict[str, Any]:
        return {}

    # -- pushing -------------------------------------------------------------

    def _message_frame(self, event: Event) -> str:
        """Return *event*'s ``message`` push, made once and left on it for every socket."""
        try:
            data = event._json_text()
        except TypeError:
            # bytes published by the server: JSON cannot carry them, so the
            # client is told it misses this one (a gap), and the log says why
            # (once per socket: nothing is cached for this event).
            self._warn_bytes(event)
            return (
                f'{{"type":"gap","channel":{_json(event.channel)},"epoch":{_json(event.epoch)},'
                f'"first":{event.offset},"last":{event.offset},"dropped":1}}'
            )
        frame = (
            f'{{"type":"message","channel":{_json(event.channel)},"epoch":{_json(event.epoch)},'
            f'"offset":{event.offset},"data":{data}}}'
        )
        # The dataclass is frozen for users; this one slot is filled once.
        object.__setattr__(event, "_frame", frame)
        return frame

    def _other_frames(self, entry: _Entry, event: Event) -> list[str]:
        """The pushes of an event that is not a message: presence, gap or reset."""
        kind = event.type
        if kind == "presence":
            return _presence_frames(entry.channel_json, event) if entry.presence else []
        if kind == "gap":
            data = event.data
            return [
                _json(
                    {
                        "type": "gap",
                        "channel": entry.channel,
                        "epoch": event.epoch,
                        "first": data["first"],
                        "last": data["last"],
                        "dropped": data["dropped"],
                    }
                )
            ]
        # "reset" (join and leave reach subscribers as "presence")
        return [
            f'{{"type":"reset","channel":{entry.channel_json},'
            f'"epoch":{_json(event.epoch)},"offset":{event.offset}}}'
        ]

    def _warn_bytes(self, event: Event) -> None:
        if not self._warned_bytes:
            self._warned_bytes = True
            logger.warning(
                "Channel %r carries bytes (offset %d), which the JSON protocol cannot send: "
                "publish str or JSON data on channels clients read.",
                event.channel,
                event.offset,
            )


def _presence_frames(channel_json: str, event: Event) -> list[str]:
    data = event.data
    frames = [
        f'{{"type":"join","channel":{channel_json},"member":{_json(member)},"info":{_json(info)}}}'
        for member, info in data["joined"].items()
    ]
    frames.extend(
        f'{{"type":"leave","channel":{channel_json},"member":{_json(member)},"info":{_json(info)}}}'
        for member, info in data["left"].items()
    )
    return frames


_HANDLERS: dict[type, Callable[[_Session, Any], Any]] = {
    Connect: _Session._connect,
    Subscribe: _Session._subscribe,
    Unsubscribe: _Session._unsubscribe,
    Publish: _Session._publish,
    Rpc: _Session._rpc,
    PresenceRequest: _Session._presence,
    HistoryRequest: _Session._history,
    Refresh: _Session._refresh,
    Ping: _Session._ping,
}
