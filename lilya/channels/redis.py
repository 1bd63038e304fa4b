"""The Redis backend: ``redis://`` and ``rediss://``.

Design (the long form is in ``docs/channels.md``): each channel has a small
hash (epoch and last offset) and a stream holding its retained history. One
Lua script bumps the offset, appends to the stream and ``PUBLISH``es the event,
atomically, so the live order is the offset order. Live delivery rides on
pub/sub (one connection per process, one ``SUBSCRIBE`` per channel however
many local subscribers), because it costs one round trip and no polling;
pub/sub forgets what it sends while a connection is down, so after every
reconnect the owning :class:`~lilya.channels.Channels` catches up from the
stream by offset. Presence is a sorted set of members scored by expiry time
(Redis' own clock, so hosts need not agree on time) plus a hash of their info.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar, NamedTuple, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
from anyio.abc import TaskGroup
from redis import __version__ as redis_version
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from lilya._json import loads
from lilya._wakeup import Wakeup
from lilya.channels.backend import Backend, BackendSettings, HistoryPage, Sink
from lilya.channels.events import TAG_JSON, Event, EventType, decode, encode_json
from lilya.channels.exceptions import (
    BackendError,
    BackendUnavailableError,
    PublishOutcomeUnknownError,
)
from lilya.exceptions import ImproperlyConfigured

__all__ = ["RedisBackend"]

logger = logging.getLogger("lilya.channels.redis")

_T = TypeVar("_T")

# Every script takes KEYS = meta hash, history stream, presence zset, info
# hash, message ids zset (id -> offset, for deduplication) and ARGV[1] = a
# fresh epoch (used only if the channel has none, i.e. its history was lost),
# ARGV[2] = history TTL in ms (0: none), ARGV[3] = the pub/sub channel. A live
# message is "epoch\noffset\n" + kind + tag + payload.
_PRELUDE = """
local function epoch()
  local e = redis.call('HGET', KEYS[1], 'e')
  if not e then
    e = ARGV[1]
    redis.call('HSET', KEYS[1], 'e', e)
    redis.call('DEL', KEYS[2], KEYS[5])
    local ttl = tonumber(ARGV[2])
    if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
  end
  return e
end
-- Lua turns numbers of 15 digits and more into "1e+14" when concatenated;
-- stream ids and live messages need every digit.
local function int(n)
  return string.format('%d', n)
end
local function top()
  return tonumber(redis.call('HGET', KEYS[1], 'o') or '0')
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function announce(kind, member, info)
  local data = '{"member":"' .. member .. '","info":' .. (info or 'null') .. '}'
  redis.call('__PUBLISH__', ARGV[3], epoch() .. '\\n' .. int(top()) .. '\\n' .. kind .. 'j' .. data)
end
local function sweep()
  local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now_ms())
  for _, member in ipairs(dead) do
    local info = redis.call('HGET', KEYS[4], member)
    redis.call('ZREM', KEYS[3], member)
    redis.call('HDEL', KEYS[4], member)
    announce('l', member, info)
  end
  return #dead
end
"""

# ARGV[4] tag, ARGV[5] payload, ARGV[6] history size, ARGV[7] message id ('':
# none). Returns epoch, offset, and 1 if the id was already published (then
# nothing happened and the offset is the first publish's).
_PUBLISH = (
    _PRELUDE
    + """
local e = epoch()
local size = tonumber(ARGV[6])
local id = ARGV[7]
if id ~= '' and size > 0 then
  local seen = redis.call('ZSCORE', KEYS[5], id)
  if seen then return {e, tonumber(seen), 1} end
end
local offset = redis.call('HINCRBY', KEYS[1], 'o', 1)
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', size, int(offset) .. '-0', 't', ARGV[4], 'd', ARGV[5])
  if id ~= '' then
    redis.call('ZADD', KEYS[5], offset, id)
  end
  -- The ids of the last `size` messages, the window a retry is safe in.
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', int(offset - size))
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  if size > 0 then
    redis.call('PEXPIRE', KEYS[2], ttl)
    redis.call('PEXPIRE', KEYS[5], ttl)
  end
end
redis.call('__PUBLISH__', ARGV[3], e .. '\\n' .. int(offset) .. '\\nm' .. ARGV[4] .. ARGV[5])
return {e, offset, 0}
"""
)

# ARGV[4] after (-1: none), ARGV[5] limit (-1: all). Returns epoch, top,
# first retained offset, entries, and whether entries are newest first.
_HISTORY = (
    _PRELUDE
    + """
local e = epoch()
local t = top()
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first = t + 1
if #oldest > 0 then first = tonumber(string.match(oldest[1][1], '^(%d+)')) end
local after = tonumber(ARGV[4])
local limit = tonumber(ARGV[5])
local entries = {}
local reversed = 0
if limit == 0 then
  entries = {}
elseif after >= 0 then
  if limit > 0 then
    entries = redis.call('XRANGE', KEYS[2], int(after + 1) .. '-0', '+', 'COUNT', limit)
  else
    entries = redis.call('XRANGE', KEYS[2], int(after + 1) .. '-0', '+')
  end
elseif limit > 0 then
  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', limit)
  reversed = 1
else
  entries = redis.call('XRANGE', KEYS[2], '-', '+')
end
return {e, t, first, entries, reversed}
"""
)

# ARGV[4] member, ARGV[5] info JSON, ARGV[6] presence TTL in ms.
_JOIN = (
    _PRELUDE
    + """
local ttl = tonumber(ARGV[6])
redis.call('ZADD', KEYS[3], now_ms() + ttl, ARGV[4])
redis.call('HSET', KEYS[4], ARGV[4], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ttl * 2)
redis.call('PEXPIRE', KEYS[4], ttl * 2)
announce('j', ARGV[4], ARGV[5])
return 1
"""
)

# ARGV[4] member.
_LEAVE = (
    _PRELUDE
    + """
local info = redis.call('HGET', KEYS[4], ARGV[4])
local removed = redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('HDEL', KEYS[4], ARGV[4])
if removed == 1 then announce('l', ARGV[4], info) end
return removed
"""
)

# ARGV[4] presence TTL in ms, then member, info JSON pairs. Re-adding (not
# only extending) members restores them after Redis restarted empty.
_REFRESH = (
    _PRELUDE
    + """
local ttl = tonumber(ARGV[4])
local deadline = now_ms() + ttl
for i = 5, #ARGV, 2 do
  redis.call('ZADD', KEYS[3], deadline, ARGV[i])
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
end
if #ARGV >= 5 then
  redis.call('PEXPIRE', KEYS[3], ttl * 2)
  redis.call('PEXPIRE', KEYS[4], ttl * 2)
end
return sweep()
"""
)

_PRESENCE = (
    _PRELUDE
    + """
sweep()
return redis.call('HGETALL', KEYS[4])
"""
)


class Scripts(NamedTuple):
    """The Lua sources of one flavour of Redis: the same logic, one publish command.

    A single Redis (or a Sentinel-watched one) broadcasts with ``PUBLISH``; a
    cluster uses ``SPUBLISH``, whose message only travels within the shard that
    owns the channel's slot, instead of to every node.
    """

    publish: str
    history: str
    join: str
    leave: str
    refresh: str
    presence: str

    @classmethod
    def using(cls, publish_command: str) -> Scripts:
        """The scripts with every live message sent by *publish_command*."""
        sources = (_PUBLISH, _HISTORY, _JOIN, _LEAVE, _REFRESH, _PRESENCE)
        return cls(*(source.replace("__PUBLISH__", publish_command) for source in sources))


_KINDS: dict[bytes, EventType] = {b"m": "message", b"j": "join", b"l": "leave"}

#: Errors that mean "Redis is not reachable right now" rather than a bug.
_UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    OSError,
    TimeoutError,
)
#: Replies of a server that refused a command without running it because it
#: does not serve that data right now: a slot moved or is migrating, the
#: cluster lost a shard, a master became a replica. Retrying later, once the
#: client follows the new topology, is safe (the command never ran).
_NOT_SERVED = (
    redis_errors.AskError,  # MovedError is an AskError
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
    redis_errors.MasterDownError,
    redis_errors.ReadOnlyError,
)


#: How long ``listen()`` waits for Redis to confirm a SUBSCRIBE before it
#: reports the backend unavailable.
_CONFIRM_WITHIN = 5.0


def mask_password(url: str) -> str:
    """Return *url* with its password replaced by ``***``, fit for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def parse_hosts_url(url: str) -> tuple[list[tuple[str, int]], str, dict[str, Any]]:
    """Split a URL naming several servers (``scheme://[auth@]h1:p1,h2:p2/path?query``).

    Returns the ``(host, port)`` pairs, the path without its leading slash,
    and the connection settings every server shares (username, password,
    ``?socket_timeout=``…), read as redis-py reads a ``redis://`` URL.

    Raises:
        ImproperlyConfigured: a server that is not ``host:port``.
    """
    parts = urlsplit(url)
    auth, _, hosts = parts.netloc.rpartition("@")
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(
                f"Each server of {mask_password(url)!r} must be host:port, got {item!r}; "
                f"write {parts.scheme}://host1:port1,host2:port2."
            )
        nodes.append((unquote(host), int(port)))
    first = f"{nodes[0][0]}:{nodes[0][1]}"
    try:
        settings = dict(parse_url(f"redis://{auth + '@' if auth else ''}{first}/0?{parts.query}"))
    except ValueError as exc:  # an option redis-py cannot read, such as ?socket_timeout=soon
        raise ImproperlyConfigured(f"{mask_password(url)!r}: {exc}") from None
    for key in ("host", "port", "db"):
        settings.pop(key, None)
    return nodes, parts.path.strip("/"), settings


#: Most publications one round trip carries: bounds a batch's size on the wire
#: and how long its last caller waits behind the first.
_MAX_BATCH = 256


class _Publication:
    """One publish on its way through a :class:`_Lane`: its command, then how it ended.

    ``outcome`` is ``None`` until its batch ran, then ``"ok"`` (``reply`` is
    the script's), ``"unavailable"`` (not run), ``"unknown"`` (sent, reply
    lost), ``"refused"`` (an error reply) or ``"noscript"`` (Redis had
    forgotten the script: not run).
    """

    __slots__ = (
        "cause",
        "channel",
        "command",
        "leads",
        "message_id",
        "outcome",
        "reply",
        "sent",
        "wakeup",
    )

    def __init__(self, channel: str, message_id: str | None, command: tuple[Any, ...]) -> None:
        self.channel = channel
        self.message_id = message_id
        self.command = command
        self.outcome: str | None = None
        self.cause: BaseException | None = None
        self.reply: Any = None
        self.sent = False  # taken into a batch: cancelling no longer unsends it
        self.leads = False  # this caller sends the batch it is in
        self.wakeup: Wakeup | None = None


class _Lane:
    """The publications bound for one Redis server: one batch on the wire at a time."""

    __slots__ = ("busy", "waiting")

    def __init__(self) -> None:
        self.busy = False
        self.waiting: list[_Publication] = []


def _refusal(exc: BaseException) -> bool:
    """Whether *exc* is Redis refusing (an error reply), not Redis being unreachable."""
    return isinstance(exc, redis_errors.RedisError) and not isinstance(
        exc, (*_UNAVAILABLE, *_NOT_SERVED)
    )


class RedisBackend(Backend):
    """Channels shared through Redis by every process that uses the same URL and prefix."""

    #: The Lua scripts, broadcasting live messages with ``PUBLISH``.
    scripts: ClassVar[Scripts] = Scripts.using("PUBLISH")
    #: Pub/sub commands and the reply kinds they produce.
    subscribe_command: ClassVar[str] = "SUBSCRIBE"
    unsubscribe_command: ClassVar[str] = "UNSUBSCRIBE"
    message_kind: ClassVar[bytes] = b"message"
    subscribe_kind: ClassVar[bytes] = b"subscribe"
    unsubscribe_kind: ClassVar[bytes] = b"unsubscribe"

    def __init__(self, url: str, settings: BackendSettings) -> None:
        self._url = url
        self.safe_url = mask_password(url)
        self._size = settings.history_size
        ttl = settings.history_ttl
        self._ttl_ms = 0 if ttl is None else max(1, round(ttl * 1000))
        self._prefix = settings.key_prefix
        self._live_prefix = f"{self._prefix}:live:".encode()
        self._first_delay, self._max_delay = settings.reconnect_delay
        self._client: Redis | None = None
        self._pool: ConnectionPool | None = None
        self._sink: Sink | None = None
        # The pub/sub side: which channels we want, which Redis confirmed.
        self._wanted: set[str] = set()
        self._confirmed: set[str] = set()
        self._confirm_waiters: dict[str, anyio.Event] = {}
        self._reader: AbstractConnection | None = None
        self._write_lock: anyio.Lock | None = None
        self._scripts: dict[tuple[Redis, str], AsyncScript] = {}
        self._publish_sha = hashlib.sha1(self.scripts.publish.encode()).hexdigest()
        self._lanes: dict[ConnectionPool, _Lane] = {}

    # -- plumbing ------------------------------------------------------------

    def _keys(self, channel: str) -> list[str]:
        p = self._prefix
        return [
            f"{p}:meta:{channel}",
            f"{p}:hist:{channel}",
            f"{p}:pres:{channel}",
            f"{p}:info:{channel}",
            f"{p}:ids:{channel}",
        ]

    def _args(self, channel: str, *extra: Any) -> list[Any]:
        return [secrets.token_hex(8), self._ttl_ms, self._live_name(channel), *extra]

    async def _call(self, operation: str, awaitable: Awaitable[_T]) -> _T:
        try:
            return await awaitable
        except (*_UNAVAILABLE, *_NOT_SERVED) as exc:
            self._lost()
            raise BackendUnavailableError(self.safe_url, operation, exc) from exc
        except redis_errors.RedisError as exc:
            raise BackendError(self.safe_url, operation, exc) from exc

    def _lost(self) -> None:
        """Note that a server failed or refused a command: one Redis has nothing to re-learn."""

    async def _script(self, operation: str, source: str, channel: str, *extra: Any) -> Any:
        client = self._client_for(channel)
        script = self._scripts.get((client, source))
        if script is None:
            script = self._scripts[client, source] = client.register_script(source)
        return await self._call(
            operation, script(keys=self._keys(channel), args=self._args(channel, *extra))
        )

    def _client_for(self, channel: str) -> Redis:
        """The client of the server that holds *channel*: with one Redis, always the same."""
        if self._client is None:
            raise RuntimeError("RedisBackend used before connect().")
        return self._client

    def _pool_for(self, channel: str) -> ConnectionPool:
        """The connection pool of the server that holds *channel*."""
        if self._pool is None:
            raise RuntimeError("RedisBackend used before connect().")
        return self._pool

    def _make_pool(self) -> ConnectionPool:
        """The pool of connections to Redis, from the URL."""
        # No automatic retries: a retried publish script could run twice and
        # publish twice. Failures surface as BackendUnavailableError instead.
        # Settings given in the URL (socket_timeout=…) win over these.
        return ConnectionPool.from_url(
            self._url,
            socket_connect_timeout=2.0,
            socket_timeout=5.0,
            retry=Retry(NoBackoff(), 0),
        )

    # -- lifecycle -------------------------------------------------------------

    async def connect(self, sink: Sink, task_group: TaskGroup) -> None:
        self._pool = self._make_pool()
        self._client = Redis(connection_pool=self._pool)
        self._sink = sink
        self._write_lock = anyio.Lock()
        try:
            await self._call("connect", self._client.ping())
            reader = await self._open_reader()
        except BaseException:
            await self._close_client()
            raise
        task_group.start_soon(self._read_forever, reader)

    async def disconnect(self) -> None:
        await self._drop_reader()
        await self._close_client()
        self._sink = None
        self._wanted.clear()

    async def _close_client(self) -> None:
        client, pool = self._client, self._pool
        self._client = self._pool = None
        self._scripts.clear()
        self._lanes.clear()
        if client is not None:
            await client.aclose()
        if pool is not None:
            await pool.disconnect()

    # -- the pub/sub reader ------------------------------------------------------

    async def _pubsub_connection(self, pool: ConnectionPool) -> AbstractConnection:
        """A new connection to *pool*'s server, speaking RESP2, for pub/sub only."""
        # RESP2 on purpose: there pub/sub messages are plain replies that
        # read_response() returns in order; RESP3 routes them to push handlers.
        kwargs = {**pool.connection_kwargs, "protocol": 2}
        # redis-py >= 7 only: a RESP3-only feature. (The other branch is redis-py
        # 5 and 6, which a run tests only when it has one installed.)
        if "maint_notifications_config" in kwargs:  # pragma: no branch
            from redis.maint_notifications import MaintNotificationsConfig

            kwargs["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
            kwargs.pop("maint_notifications_pool_handler", None)
        connection: AbstractConnection = pool.connection_class(**kwargs)
        try:
            # redis-py leaves Connection.connect unannotated.
            await self._call("subscribe", connection.connect())  # type: ignore[no-untyped-call]
        except BaseException:
            await connection.disconnect()
            raise
        return connection

    async def _open_reader(self) -> AbstractConnection:
        if self._pool is None:
            raise RuntimeError("RedisBackend used before connect().")
        connection = await self._pubsub_connection(self._pool)
        try:
            wanted = sorted(self._wanted)
            if wanted:
                await self._call(
                    "subscribe",
                    connection.send_command(self.subscribe_command, *map(self._live_name, wanted)),
                )
        except BaseException:
            await connection.disconnect()
            raise
        self._reader = connection
        return connection

    async def _drop_reader(self) -> None:
        reader, self._reader = self._reader, None
        self._confirmed.clear()
        for waiter in self._confirm_waiters.values():
            waiter.set()
        self._confirm_waiters.clear()
        if reader is not None:
            with anyio.CancelScope(shield=True):
                await reader.disconnect()

    async def _read_forever(self, reader: AbstractConnection | None) -> None:
        """Read pub/sub messages until cancelled, reconnecting with backoff.

        It never raises: an exception here would cancel the app's lifespan
        task through the task group, so every failure becomes a reconnect.
        """
        delay = self._first_delay
        reconnected = False
        while True:
            try:
                if reader is None:
                    reader = await self._open_reader()
                    delay = self._first_delay
                await self._pump(reader, resync=reconnected)
            except (BackendUnavailableError, *_UNAVAILABLE) as exc:
                logger.warning("Redis pub/sub lost (%s); reconnecting in %.2fs", exc, delay)
            except Exception:
                logger.exception("Redis pub/sub reader failed; reconnecting in %.2fs", delay)
            else:  # pragma: no cover - _pump only returns by raising
                pass
            await self._drop_reader()
            reader = None
            reconnected = True
            await anyio.sleep(delay)
            delay = min(delay * 2, self._max_delay)

    async def _pump(self, reader: AbstractConnection, *, resync: bool) -> None:
        held: list[Any] = []
        if resync:
            # Hold live messages until every channel has caught up from
            # history; delivering one first would move the channel's
            # position past events we have not fetched yet.
            while not self._wanted <= self._confirmed:
                self._handle(await reader.read_response(timeout=math.inf), held)
            if self._sink is not None:
                await self._sink.resync()
            for response in held:
                self._handle(response, None)
        while True:
            response = await reader.read_response(timeout=math.inf)
            await self._take(reader, response)

    async def _take(self, reader: AbstractConnection, response: Any) -> None:
        """Handle one reply of a pub/sub connection in the live phase."""
        if response[0] == self.message_kind and self._sink is not None:
            # Backpressure: while a local subscriber is full (and not
            # stalled), stop reading; Redis buffers, and if it cuts us off
            # for buffering too much, the reconnect resyncs from the stream.
            await self._sink.ready(self._channel_of(response[1]))
        self._handle(response, None)

    def _handle(self, response: Any, held: list[Any] | None) -> None:
        kind = response[0]
        if kind == self.message_kind:
            if held is not None:
                held.append(response)
            else:
                self._on_message(response[1], response[2])
        elif kind == self.subscribe_kind:
            name = self._channel_of(response[1])
            self._confirmed.add(name)
            waiter = self._confirm_waiters.pop(name, None)
            if waiter is not None:
                waiter.set()
        elif kind == self.unsubscribe_kind:
            self._unsubscribed(self._channel_of(response[1]))

    def _unsubscribed(self, channel: str) -> None:
        """Redis confirmed that this connection no longer carries *channel*."""
        self._confirmed.discard(channel)

    def _channel_of(self, live_name: bytes) -> str:
        """The channel a pub/sub channel name carries (the inverse of :meth:`_live_name`)."""
        return live_name[len(self._live_prefix) :].decode()

    def _on_message(self, name: bytes, message: bytes) -> None:
        if self._sink is None:
            return
        epoch, offset, rest = message.split(b"\n", 2)
        event_type = _KINDS[rest[:1]]
        event = Event(
            self._channel_of(name),
            int(offset),
            epoch.decode(),
            decode(rest[1:2].decode(), rest[2:]),
            event_type,
        )
        self._sink.deliver(event)

    async def listen(self, channel: str) -> None:
        self._wanted.add(channel)
        reader = self._reader
        if reader is None:
            raise BackendUnavailableError(self.safe_url, "subscribe", None)
        waiter = self._confirm_waiters.setdefault(channel, anyio.Event())
        async with self._lock():
            await self._call(
                "subscribe", reader.send_command(self.subscribe_command, self._live_name(channel))
            )
        with anyio.move_on_after(_CONFIRM_WITHIN):
            await waiter.wait()
        if channel not in self._confirmed:
            raise BackendUnavailableError(self.safe_url, "subscribe", None)

    async def unlisten(self, channel: str) -> None:
        self._wanted.discard(channel)
        reader = self._reader
        if reader is not None:
            async with self._lock():
                await self._call(
                    "unsubscribe",
                    reader.send_command(self.unsubscribe_command, self._live_name(channel)),
                )

    def _lock(self) -> anyio.Lock:
        if self._write_lock is None:
            raise RuntimeError("RedisBackend used before connect().")
        return self._write_lock

    def _live_name(self, channel: str) -> str:
        return f"{self._prefix}:live:{channel}"

    # -- storage -------------------------------------------------------------------

    async def publish(
        self, channel: str, tag: str, payload: bytes, data: Any, message_id: str | None
    ) -> Event:
        keys = self._keys(channel)
        args = self._args(channel, tag, payload, self._size, message_id or "")
        command = ("EVALSHA", self._publish_sha, len(keys), *keys, *args)
        pool = self._pool_for(channel)
        publication = await self._submit(pool, _Publication(channel, message_id, command))
        if publication.outcome == "noscript":
            # Redis restarted (or SCRIPT FLUSH): the script never ran; load it, once.
            client = self._client_for(channel)
            await self._call("publish", client.script_load(self.scripts.publish))
            publication = await self._submit(pool, _Publication(channel, message_id, command))
        reply = self._result(publication)
        epoch, offset = reply[0], reply[1]
        return Event(
            channel, int(offset), epoch.decode(), data if tag != TAG_JSON else decode(tag, payload)
        )

    async def _submit(self, pool: ConnectionPool, publication: _Publication) -> _Publication:
        """Send *publication* with every other one waiting for *pool*'s server; wait for its reply.

        Why batch: a publisher that awaits each round trip keeps one command
        in flight per connection, so N concurrent publishers cost N round
        trips, N pooled connections and N pub/sub messages that trickle in one
        per wake-up. Here the publications of one server form a lane: the
        first caller sends at once (a lone publisher waits for nothing), and
        those that arrive while a batch is on the wire go together in the next
        one, one write and one round trip, on one connection, so Redis runs
        them in call order and the offsets follow that order. Each caller
        still gets its own reply or its own error.
        """
        lane = self._lanes.get(pool)
        if lane is None:
            lane = self._lanes[pool] = _Lane()
        lane.waiting.append(publication)
        if lane.busy:
            wakeup = publication.wakeup = Wakeup()
            try:
                await wakeup.wait()
            except BaseException:
                # Cancelled before its batch went out: it is simply not sent
                # (and if it had just been made the leader, the next one is).
                if not publication.sent:
                    lane.waiting.remove(publication)
                    if publication.leads:
                        self._hand_over(lane)
                raise
            if not publication.leads:
                return publication  # answered by the batch another caller sent
        else:
            lane.busy = True
            publication.leads = True
        batch = lane.waiting[:_MAX_BATCH]
        del lane.waiting[:_MAX_BATCH]
        try:
            # Shielded: the batch carries other callers' publications, and
            # giving up on it halfway would leave their outcome unknown. It is
            # bounded all the same, by the connection's socket_timeout.
            with anyio.CancelScope(shield=True):
                await self._send_batch(pool, batch)
        finally:
            self._hand_over(lane)
        return publication

    @staticmethod
    def _hand_over(lane: _Lane) -> None:
        """Make the oldest waiting publication send the next batch, or mark the lane idle."""
        if lane.waiting:
            head = lane.waiting[0]
            head.leads = True
            assert head.wakeup is not None  # whoever waits in a lane parked on one
            head.wakeup.set()
        else:
            lane.busy = False

    async def _send_batch(self, pool: ConnectionPool, batch: list[_Publication]) -> None:
        for publication in batch:
            publication.sent = True
        try:
            await self._run_batch(pool, batch)
        finally:
            for publication in batch:
                if not publication.leads and publication.wakeup is not None:
                    publication.wakeup.set()

    async def _run_batch(self, pool: ConnectionPool, batch: list[_Publication]) -> None:
        """Run *batch*'s publish scripts on one connection, telling *not sent* from *unknown*.

        redis-py's own call cannot say where a failure happened, and that is
        the one thing a publisher needs: a command that failed to go out (or
        went out incomplete, which Redis never runs) was not published, while
        one that went out and lost its reply may have been.
        """
        try:
            connection = await _get_connection(pool)
        except (*_UNAVAILABLE, *_NOT_SERVED, redis_errors.RedisError) as exc:
            self._fail(batch, exc, "refused" if _refusal(exc) else "unavailable")
            return
        done = False
        try:
            try:
                # A pooled connection whose server went away reads as EOF:
                # reconnect now, while failing still means "not sent".
                if await getattr(connection, _CAN_READ)():
                    await connection.disconnect()
                    await connection.connect()  # type: ignore[no-untyped-call]
            except _UNAVAILABLE as exc:
                self._fail(batch, exc, "unavailable")
                return
            commands = connection.pack_commands([publication.command for publication in batch])
            try:
                await connection.send_packed_command(commands, check_health=False)
            # The server dying between the health check and this write: a race
            # no test can stage on demand. One command that went out incomplete
            # never ran; of several, the first ones may have gone out whole.
            except _UNAVAILABLE as exc:  # pragma: no cover
                self._fail(batch, exc, "unavailable" if len(batch) == 1 else "unknown")
                return
            for index, publication in enumerate(batch):
                try:
                    publication.reply = await connection.read_response()
                    publication.outcome = "ok"
                except _UNAVAILABLE as exc:
                    self._fail(batch[index:], exc, "unknown")
                    return
                except redis_errors.NoScriptError as exc:
                    publication.outcome, publication.cause = "noscript", exc
                except _NOT_SERVED as exc:
                    self._lost()
                    publication.outcome, publication.cause = "unavailable", exc
                except redis_errors.RedisError as exc:
                    publication.outcome, publication.cause = "refused", exc
            done = True
        finally:
            if not done:
                # Whatever comes on this connection now belongs to commands we
                # gave up on: never hand it to the next user.
                await connection.disconnect()
            await pool.release(connection)

    def _fail(self, publications: list[_Publication], cause: BaseException, outcome: str) -> None:
        if outcome != "refused":
            self._lost()
        for publication in publications:
            publication.outcome, publication.cause = outcome, cause

    def _result(self, publication: _Publication) -> Any:
        """The reply of *publication*, or the error that tells its caller what happened."""
        outcome, cause = publication.outcome, publication.cause
        if outcome == "ok":
            return publication.reply
        if outcome == "unavailable":
            raise BackendUnavailableError(self.safe_url, "publish", cause) from cause
        if outcome in ("refused", "noscript"):  # noscript: even after loading the script
            assert cause is not None
            raise BackendError(self.safe_url, "publish", cause) from cause
        # "unknown", or no outcome at all: the batch ended abnormally, after it went out.
        cause = cause or RuntimeError("its batch ended without a reply")
        raise PublishOutcomeUnknownError(
            self.safe_url, publication.channel, publication.message_id, cause
        ) from cause

    async def history(self, channel: str, *, after: int | None, limit: int | None) -> HistoryPage:
        epoch, top, first, entries, reversed_ = await self._script(
            "read history",
            self.scripts.history,
            channel,
            -1 if after is None else after,
            -1 if limit is None else limit,
        )
        epoch = epoch.decode()
        events = []
        for entry_id, fields in entries:
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            offset = int(entry_id.split(b"-", 1)[0])
            events.append(
                Event(channel, offset, epoch, decode(values[b"t"].decode(), values[b"d"]))
            )
        if reversed_:
            events.reverse()
        return HistoryPage(epoch, int(top), int(first), events)

    async def presence_join(self, channel: str, member: str, info: Any, ttl: float) -> None:
        await self._script("join", self.scripts.join, channel, member, encode_json(info), _ms(ttl))

    async def presence_leave(self, channel: str, member: str) -> None:
        await self._script("leave", self.scripts.leave, channel, member)

    async def presence_refresh(self, channel: str, members: Mapping[str, Any], ttl: float) -> None:
        pairs: list[Any] = []
        for member, info in members.items():
            pairs += [member, encode_json(info)]
        await self._script("refresh presence", self.scripts.refresh, channel, _ms(ttl), *pairs)

    async def presence(self, channel: str) -> Mapping[str, Any]:
        flat = await self._script("read presence", self.scripts.presence, channel)
        return {flat[i].decode(): loads(flat[i + 1], "binary") for i in range(0, len(flat), 2)}


def _get_connection(pool: ConnectionPool) -> Awaitable[AbstractConnection]:
    """A connected connection of *pool* (redis-py 5.3 dropped the command-name argument)."""
    if _POOL_TAKES_NO_ARGS:
        return pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it bare
    return pool.get_connection("EVALSHA")  # type: ignore[no-untyped-call]  # pragma: no cover - redis-py < 5.3


# redis-py 8 renamed can_read_destructive (and deprecated the old name).
_CAN_READ = "can_read" if hasattr(AbstractConnection, "can_read") else "can_read_destructive"
_POOL_TAKES_NO_ARGS = tuple(int(part) for part in redis_version.split(".")[:2]) >= (5, 3)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
