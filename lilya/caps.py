"""Connection caps: how many WebSockets a process, a client address and a user may hold.

Theory of operation
-------------------
Every open WebSocket holds a file descriptor, buffers and a task. A flood of
handshakes from one address (or one stolen token) can take every slot a
process has, so a :class:`~lilya.apps.Lilya` app counts its connections and
refuses a handshake over a cap **before** it is accepted, before your handler
runs:

* ``per_process`` (default 10,000): the whole process is full. The answer is
  a **503** denial response with ``Retry-After``: the client should try again
  later, probably on another worker.
* ``per_address`` (default 100): the client address (``scope["client"]``;
  an IPv6 address counts as its /64 network, see :func:`address_key`)
  already holds that many. ``per_user`` (default 50): the authenticated user
  (``scope["user"]``, set by
  :class:`~lilya.middleware.authentication.AuthenticationMiddleware`) does.
  The answer is a **429** with ``Retry-After`` (RFC 6585 §4).

The body names the setting to change. Where the server lacks the Denial
Response extension (daphne) the handshake is closed instead, and the client
sees 403. Each refusal is logged as one WARNING line on the ``lilya`` logger,
at most one line per kind of cap every :data:`LOG_INTERVAL` seconds, with the
number refused since the last line, so a flood cannot fill the log.

The counts are held by the app's :class:`ConnectionCounter`. A slot is taken
before the handler runs and given back exactly once when the connection ends,
whatever ends it (a close, an error, a client that vanished, a cancelled
task): the count of a key never goes below zero and a key at zero is removed.

Across workers
--------------
``per_process`` is about the process (its descriptors and memory), so it is
always counted locally. The address and user caps only mean something if
every worker counts the same connections: give the app a Redis URL
(``Lilya(connection_counter="redis://...")``, or a :class:`RedisCounter`) and
they are counted in Redis, as **leases**: each connection adds itself to a
sorted set per key with an expiry ``ttl`` seconds ahead, which its worker
pushes forward every ``ttl / 3`` seconds while the connection lives. A worker
killed with ``kill -9`` refreshes nothing, so its leases expire within ``ttl``
seconds instead of holding slots forever. If Redis does not answer, the
counter fails **open** (the handshake is let through, under the per-process cap only)
or **closed** (503), as ``on_error`` says, and logs that once until Redis
answers again.

The compromise: a lease that expires while Redis is unreachable is not
brought back when it answers again (its connection then counts for nothing
until it ends), so after an outage the caps are briefly generous rather than
wrong the other way.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import itertools
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import anyio

from lilya._exception_handlers import deny
from lilya._recorder import enter
from lilya._telemetry import note_limit
from lilya.exceptions import ImproperlyConfigured
from lilya.responses import PlainText
from lilya.status import (
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_503_SERVICE_UNAVAILABLE,
    WS_1008_POLICY_VIOLATION,
    WS_1013_TRY_AGAIN_LATER,
)
from lilya.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "DEFAULT_CONNECTION_CAPS",
    "LOG_INTERVAL",
    "ConnectionCaps",
    "ConnectionCounter",
    "HasURL",
    "RedisCounter",
    "Refusal",
    "Slot",
    "address_key",
    "check_connection_caps",
    "make_counter",
    "serve_capped",
    "user_key",
]

logger = logging.getLogger("lilya")

#: The fewest seconds between two WARNING lines about refusals of one kind of cap.
LOG_INTERVAL: Final = 60.0

#: The clock of the log's rate limit (tests replace it to move time without waiting).
_clock: Callable[[], float] = time.monotonic

#: Longest address or user name quoted in the log or a Redis key.
_KEY_LIMIT: Final = 200

Kind = Literal["per_process", "per_address", "per_user", "counter"]


def _cap(name: str, value: object) -> None:
    if value is not None and (type(value) is not int or value < 1):
        raise ImproperlyConfigured(
            f"ConnectionCaps.{name} must be a whole number of connections >= 1, or None for "
            f"no cap, got {value!r}."
        )


@dataclass(frozen=True)
class ConnectionCaps:
    """How many WebSockets may be open at once, and what a refused client is told.

    Args:
        per_process: connections this process serves (503 over it).
        per_address: connections from one client address (429 over it).
        per_user: connections of one authenticated user (429 over it).
        retry_after: the ``Retry-After`` seconds of the refusal.

    Each cap is a whole number, or ``None`` for no cap. A count is compared
    when a handshake arrives: with ``per_address=100`` an address holding 100
    sockets gets a 429 for its 101st.

    Raises:
        ImproperlyConfigured: a cap that is not a whole number >= 1 nor
            ``None``, or a *retry_after* that is not a whole number >= 0.
    """

    per_process: int | None = 10_000
    per_address: int | None = 100
    per_user: int | None = 50
    retry_after: int = 5

    def __post_init__(self) -> None:
        for name in ("per_process", "per_address", "per_user"):
            _cap(name, getattr(self, name))
        if type(self.retry_after) is not int or self.retry_after < 0:
            raise ImproperlyConfigured(
                f"ConnectionCaps.retry_after must be a whole number of seconds >= 0, got "
                f"{self.retry_after!r}."
            )


#: The app default: 10,000 per process, 100 per address, 50 per user, retry after 5 s.
DEFAULT_CONNECTION_CAPS: Final = ConnectionCaps()


def check_connection_caps(value: Any, where: str) -> ConnectionCaps | None:
    """Return *value* if it is a usable ``connection_caps`` (a :class:`ConnectionCaps` or ``None``).

    Raises:
        ImproperlyConfigured: anything else.
    """
    if value is None or isinstance(value, ConnectionCaps):
        return value
    raise ImproperlyConfigured(
        f"{where}: connection_caps must be a lilya.caps.ConnectionCaps (or None for no caps), "
        f"got {value!r}."
    )


def user_key(scope: Scope) -> str | None:
    """The name the per-user cap counts *scope*'s user under, or ``None`` if there is none.

    Only an authenticated user counts (``user.is_authenticated``); its name is
    its ``identity`` if it has one, else its ``display_name``.
    """
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    try:
        name = getattr(user, "identity", None)
    except NotImplementedError:  # Starlette's BaseUser leaves identity abstract
        name = None
    if not name:
        name = getattr(user, "display_name", None)
    return str(name)[:_KEY_LIMIT] if name else None


@functools.lru_cache(maxsize=1024)
def address_key(host: str) -> str:
    """The name the per-address cap counts a client *host* under.

    An IPv4 address is itself (an IPv4-mapped IPv6 address too). An IPv6
    address counts as its **/64** network: one subscriber usually gets a
    whole /64 and can pick any of its 2**64 addresses, so counting single
    IPv6 addresses would let one client hold unlimited sockets. Anything else
    (a Unix socket's name, a test client's ``"testclient"``) is itself,
    clipped to 200 characters.
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:_KEY_LIMIT]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _address(scope: Scope) -> str | None:
    client = scope.get("client")
    if not client:
        return None
    return address_key(str(client[0]))


# -- refusals ---------------------------------------------------------------------

_WHAT: Final = {
    "per_process": "this server already serves {limit} WebSockets",
    "per_address": "your address already holds {limit} WebSockets here",
    "per_user": "your user already holds {limit} WebSockets here",
    "counter": "the connection counter (Redis) does not answer",
}
_FIX: Final = {
    "per_process": "ConnectionCaps(per_process=...)",
    "per_address": "ConnectionCaps(per_address=...)",
    "per_user": "ConnectionCaps(per_user=...)",
    "counter": 'RedisCounter(..., on_error="open")',
}


_CAPS_WHERE: Final = "Lilya(connection_caps=...) or WebSocketPath(..., connection_caps=...)"
_WHERE: Final = {
    "per_process": _CAPS_WHERE,
    "per_address": _CAPS_WHERE,
    "per_user": _CAPS_WHERE,
    "counter": "Lilya(connection_counter=RedisCounter(...))",
}


@dataclass(frozen=True)
class Refusal:
    """Why a handshake was refused: the cap that was full, and how to answer it.

    Attributes:
        kind: ``"per_process"``, ``"per_address"``, ``"per_user"``, or
            ``"counter"`` (Redis did not answer and ``on_error="closed"``).
        limit: the cap that was reached (``0`` for ``"counter"``).
        retry_after: the ``Retry-After`` seconds.
        who: the address or user that was over its cap (for the log).
    """

    kind: Kind
    limit: int
    retry_after: int
    who: str | None = None

    @property
    def status_code(self) -> int:
        """429 for a client over its own cap, 503 when the server is full or cannot count."""
        if self.kind in ("per_address", "per_user"):
            return HTTP_429_TOO_MANY_REQUESTS
        return HTTP_503_SERVICE_UNAVAILABLE

    @property
    def close_code(self) -> int:
        """The close code where the server cannot send a denial (the client sees 403)."""
        if self.status_code == HTTP_503_SERVICE_UNAVAILABLE:
            return WS_1013_TRY_AGAIN_LATER
        return WS_1008_POLICY_VIOLATION

    def body(self) -> str:
        """The refusal's text: what was full and the setting to change."""
        what = _WHAT[self.kind].format(limit=self.limit)
        return (
            f"WebSocket handshake refused: {what}. Connect again in {self.retry_after} s. "
            f"To allow more, the server's owner can change {_FIX[self.kind]} "
            f"({_WHERE[self.kind]})."
        )

    def response(self) -> PlainText:
        """The denial response: 429 or 503, ``Retry-After``, and :meth:`body`."""
        return PlainText(
            self.body(), self.status_code, headers={"retry-after": str(self.retry_after)}
        )


class _LogThrottle:
    """One WARNING line per kind of cap per :data:`LOG_INTERVAL`, counting the ones held back."""

    __slots__ = ("held", "last")

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.held: dict[str, int] = {}

    def refused(self, scope: Scope, refusal: Refusal) -> None:
        now = _clock()
        last = self.last.get(refusal.kind)
        if last is not None and now - last < LOG_INTERVAL:
            self.held[refusal.kind] = self.held.get(refusal.kind, 0) + 1
            return
        self.last[refusal.kind] = now
        held = self.held.pop(refusal.kind, 0)
        logger.warning(
            "Refused a WebSocket handshake to %s with %d: %s (%s%s); %d more refused since the "
            "last line, and no further line for %g s",
            str(scope.get("path", "?"))[:_KEY_LIMIT],
            refusal.status_code,
            _WHAT[refusal.kind].format(limit=refusal.limit).replace("your", "its"),
            _FIX[refusal.kind],
            f", {refusal.who}" if refusal.who else "",
            held,
            LOG_INTERVAL,
        )


# -- the counter ---------------------------------------------------------------------


@dataclass(eq=False)
class Slot:
    """One connection's place in the counts, given back by :meth:`release`, once.

    Attributes:
        keys: the local keys it holds (``"process"``, ``"address:…"``, ``"user:…"``).
        lease: its lease in Redis, if the counter shares its counts.
        released: whether it was given back.
    """

    counter: ConnectionCounter
    keys: list[str]
    lease: _Lease | None = None
    released: bool = field(default=False)

    async def release(self) -> None:
        """Give the slot back; a second call does nothing.

        The local counts drop before anything is awaited, so a cancelled
        task gives them back too; the Redis lease is removed shielded from
        cancellation (and, if Redis does not answer, expires by itself).
        """
        if self.released:
            return
        self.released = True
        self.counter.drop(self.keys)
        if self.lease is not None:
            with anyio.CancelScope(shield=True):
                await self.lease.owner.release(self.lease)


class ConnectionCounter:
    """An app's counts of open WebSockets, by process, address and user.

    A :class:`~lilya.apps.Lilya` app has one (``app.connection_counter``).

    Args:
        shared: a :class:`RedisCounter` to count addresses and users across
            workers; ``None`` counts them in this process.

    Attributes:
        counts: the local counts by key; a key at zero is removed, so an
            idle app's is ``{}``.
    """

    def __init__(self, shared: RedisCounter | None = None) -> None:
        self.shared = shared
        self.counts: dict[str, int] = {}
        self._log = _LogThrottle()

    def drop(self, keys: list[str]) -> None:
        """Take one off each of *keys* (removing a key that reaches zero)."""
        for key in keys:
            left = self.counts[key] - 1
            if left:
                self.counts[key] = left
            else:
                del self.counts[key]

    async def acquire(self, scope: Scope, caps: ConnectionCaps) -> Slot | Refusal:
        """Take a slot for the handshake in *scope* under *caps*, or say why not.

        The :class:`Refusal` is logged (rate-limited) before it is returned.
        """
        refusal = await self._acquire(scope, caps)
        if isinstance(refusal, Refusal):
            self._log.refused(scope, refusal)
        return refusal

    async def _acquire(self, scope: Scope, caps: ConnectionCaps) -> Slot | Refusal:
        # (kind, key, cap or None, who): every connection is counted under each
        # key it has, so a route without a cap still fills the app's.
        wanted: list[tuple[Kind, str, int | None, str | None]] = [
            ("per_process", "process", caps.per_process, None)
        ]
        address = _address(scope)
        if address is not None:
            wanted.append(("per_address", f"address:{address}", caps.per_address, address))
        user = user_key(scope)
        if user is not None:
            wanted.append(("per_user", f"user:{user}", caps.per_user, f"user {user!r}"))
        shared = self.shared
        # The process cap is always local; with a shared counter the rest are in Redis.
        local = wanted if shared is None else wanted[:1]
        remote = wanted[len(local) :]
        for kind, key, limit, who in local:
            if limit is not None and self.counts.get(key, 0) >= limit:
                return Refusal(kind, limit, caps.retry_after, who)
        # Taken before Redis is awaited, so handshakes arriving meanwhile see them.
        keys = [key for _, key, _, _ in local]
        for key in keys:
            self.counts[key] = self.counts.get(key, 0) + 1
        if shared is None or not remote:
            return Slot(self, keys)
        # Shielded: a lease added in Redis must come back here to be released.
        with anyio.CancelScope(shield=True):
            outcome = await shared.acquire([(key, limit) for _, key, limit, _ in remote])
        if isinstance(outcome, _Lease):
            return Slot(self, keys, outcome)
        if outcome is None and shared.on_error == "open":
            return Slot(self, keys)
        self.drop(keys)
        if outcome is None:
            return Refusal("counter", 0, caps.retry_after)
        kind, _, limit, who = remote[outcome]
        return Refusal(kind, limit or 0, caps.retry_after, who)


# -- across workers: leases in Redis ------------------------------------------------

# Both scripts read the time from Redis itself, so workers on hosts whose
# clocks disagree still agree on when a lease expires.
_ACQUIRE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local cap = tonumber(ARGV[i + 2])
  if cap > 0 and redis.call('ZCARD', key) >= cap then return i end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[2])
  redis.call('EXPIRE', key, math.ceil(ttl * 2))
end
return 0
"""
# XX: a lease released meanwhile (ZREM) is not brought back.
_REFRESH: Final = """
local t = redis.call('TIME')
local ttl = tonumber(ARGV[1])
local expiry = tonumber(t[1]) + tonumber(t[2]) / 1000000 + ttl
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', expiry, ARGV[i + 1])
  redis.call('EXPIRE', key, math.ceil(ttl * 2))
end
return 0
"""


@dataclass(frozen=True, eq=False)
class _Lease:
    """One connection's entry in Redis: its member name in each key's sorted set."""

    owner: RedisCounter
    member: str
    keys: tuple[str, ...]


class RedisCounter:
    """Count connections by address and user in Redis, shared by every worker.

    Args:
        url: the Redis URL (``redis://host:6379/0``).
        ttl: seconds a lease outlives its last refresh; a killed worker's
            connections stop counting after at most this long. Leases are
            refreshed every ``ttl / 3`` seconds.
        on_error: what a handshake gets when Redis does not answer (within
            *timeout*): ``"open"`` lets it in, under the per-process cap only;
            ``"closed"`` refuses it with 503. Either way it is logged once,
            until Redis answers again.
        timeout: seconds to wait for Redis on a handshake.
        key_prefix: the prefix of the sorted sets' keys.

    It needs asyncio (redis-py's asyncio client) and one Redis (not a cluster:
    a handshake's keys are updated in one script).

    Raises:
        ImproperlyConfigured: a URL that is not ``redis://`` or ``rediss://``,
            a *ttl* or *timeout* that is not a positive number, an unknown
            *on_error*, or redis-py not installed.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 30.0,
        on_error: Literal["open", "closed"] = "open",
        timeout: float = 1.0,
        key_prefix: str = "lilya:caps:",
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ImproperlyConfigured(
                f"RedisCounter needs a redis:// (or rediss://, unix://) URL, got {url!r}."
            )
        for name, value in (("ttl", ttl), ("timeout", timeout)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ImproperlyConfigured(
                    f"RedisCounter {name} must be a positive number of seconds, got {value!r}."
                )
        if on_error not in ("open", "closed"):
            raise ImproperlyConfigured(
                f'RedisCounter on_error must be "open" or "closed", got {on_error!r}.'
            )
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:  # pragma: no cover - the redis extra is installed in the tests
            raise ImproperlyConfigured(
                "RedisCounter needs redis-py: pip install 'lilya[redis]'."
            ) from None
        self.url = url
        self.ttl = float(ttl)
        self.on_error = on_error
        self.timeout = float(timeout)
        self.key_prefix = key_prefix
        self.failing = False
        self.leases: set[_Lease] = set()
        self._worker = uuid.uuid4().hex
        self._ids = itertools.count()
        self._client: Any = None
        self._scripts: tuple[Any, Any] = (None, None)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refresher: asyncio.Task[None] | None = None

    def _redis(self) -> Any:
        # A client belongs to one event loop (a test suite starts many).
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import redis.asyncio

            self._client = redis.asyncio.Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
            # EVALSHA, falling back to EVAL once when Redis does not know the script yet.
            self._scripts = (
                self._client.register_script(_ACQUIRE),
                self._client.register_script(_REFRESH),
            )
            self._loop = loop
        return self._client

    def _failed(self, what: str, exc: BaseException) -> None:
        if not self.failing:
            self.failing = True
            logger.warning(
                "The connection counter's Redis (%s) did not answer while %s (%s: %s); "
                "handshakes are %s until it does (RedisCounter(on_error=...)). Logged once.",
                self.url.rsplit("@", 1)[-1],
                what,
                type(exc).__name__,
                exc,
                "let in under the per-process cap only"
                if self.on_error == "open"
                else "refused with 503",
            )

    def _answered(self) -> None:
        if self.failing:
            self.failing = False
            logger.info("The connection counter's Redis answers again.")

    async def acquire(self, limits: list[tuple[str, int | None]]) -> _Lease | int | None:
        """Add a lease under each key if all are below their limit (``None``: no limit).

        Returns:
            the lease; or the index in *limits* of the first full key; or
            ``None`` if Redis did not answer.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # trio: redis-py's client is asyncio's
            raise RuntimeError(
                "RedisCounter needs asyncio (redis-py's asyncio client); run the server on "
                "asyncio, or count in process (connection_counter=None)."
            ) from None
        keys = tuple(self.key_prefix + key for key, _ in limits)
        lease = _Lease(self, f"{self._worker}:{next(self._ids)}", keys)
        caps = (limit or 0 for _, limit in limits)
        answered, full = await self._attempt(
            "counting a handshake",
            lambda redis: self._scripts[0](keys=keys, args=[self.ttl, lease.member, *caps]),
        )
        if not answered:
            return None
        if full:
            return int(full) - 1
        self.leases.add(lease)
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())
        return lease

    async def release(self, lease: _Lease) -> None:
        """Remove *lease* (if Redis does not answer, it expires within ``ttl``)."""
        self.leases.discard(lease)
        if not self.leases and self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None

        async def remove(redis: Any) -> Any:
            async with redis.pipeline(transaction=False) as pipe:
                for key in lease.keys:
                    pipe.zrem(key, lease.member)
                return await pipe.execute()

        await self._attempt("giving a slot back", remove)

    async def refresh(self) -> None:
        """Push every live lease's expiry ``ttl`` seconds ahead (one script call).

        If Redis does not answer, the leases may expire: the caps get
        generous for a while, never stuck.
        """
        leases = list(self.leases)
        keys = [key for lease in leases for key in lease.keys]
        members = [lease.member for lease in leases for _ in lease.keys]
        if keys:
            await self._attempt(
                "refreshing leases",
                lambda redis: self._scripts[1](keys=keys, args=[self.ttl, *members]),
            )

    async def _attempt(self, what: str, call: Callable[[Any], Awaitable[Any]]) -> tuple[bool, Any]:
        """Run *call(client)* within ``timeout``: ``(True, result)``, or ``(False, None)``.

        ``False`` means Redis did not answer; that is logged (once until it answers again).

        The call runs in a task of its own, whose result is never an error.
        (The reason is a tool's: on CPython 3.11, coverage's tracer stops
        recording the frames above one that caught the error of a failed
        future, and a Redis that refuses connections is exactly that.)
        """

        async def run() -> tuple[bool, Any]:
            try:
                with anyio.fail_after(self.timeout):
                    result = await call(self._redis())
            except Exception as exc:  # OSError, redis.RedisError, TimeoutError: Redis is away
                self._failed(what, exc)
                return False, None
            self._answered()
            return True, result

        return await asyncio.get_running_loop().create_task(run())

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            await self.refresh()

    async def aclose(self) -> None:
        """Stop refreshing and close the Redis client (its leases then expire within ``ttl``).

        Call it when the counter's event loop ends, e.g. in your lifespan's shutdown.
        """
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def count(self, key: str) -> int:
        """How many live leases *key* (``"address:127.0.0.1"``) holds in Redis now."""
        client = self._redis()
        full = self.key_prefix + key
        seconds, micros = await client.time()
        await client.zremrangebyscore(full, "-inf", seconds + micros / 1_000_000)
        return int(await client.zcard(full))


class HasURL(Protocol):
    """Anything with a channels URL: the app's :class:`~lilya.channels.Channels`."""

    url: str


def make_counter(value: str | RedisCounter | HasURL | None) -> ConnectionCounter:
    """Build an app's counter from ``Lilya(connection_counter=...)``.

    Args:
        value: ``None`` (count in this process), a Redis URL, a
            :class:`RedisCounter`, or the app's ``Channels``: on ``redis://``
            they count there too, on ``memory://`` in this process.

    Raises:
        ImproperlyConfigured: anything else, a bad URL, or channels elsewhere
            (PostgreSQL, a Redis Cluster or Sentinel) where leases cannot live.
    """
    if value is None:
        return ConnectionCounter()
    if isinstance(value, RedisCounter):
        return ConnectionCounter(value)
    if isinstance(value, str):
        return ConnectionCounter(RedisCounter(value))
    url = getattr(value, "url", None)
    if isinstance(url, str):
        if url.startswith("memory://"):
            return ConnectionCounter()
        if url.startswith(("redis://", "rediss://", "unix://")):
            return ConnectionCounter(RedisCounter(url))
        raise ImproperlyConfigured(
            f"connection_counter: channels at {url.split('@')[-1]!r} cannot hold the "
            "connection counts (they need one plain Redis); give a redis:// URL instead."
        )
    raise ImproperlyConfigured(
        "connection_counter must be None (count in this process), a redis:// URL, a "
        f"lilya.caps.RedisCounter or the app's Channels, got {value!r}."
    )


def serve_capped(
    app: ASGIApp, route_caps: ConnectionCaps | None, scope: Scope, receive: Receive, send: Send
) -> Awaitable[None]:
    """Run *app* for the handshake in *scope* if it gets a slot, else refuse it (429 / 503).

    The caps are *route_caps* if the route set its own, else those of the
    lilya app serving the scope (``scope["app"]``); counted by that app's
    counter. Outside a lilya app (a bare ``Router``) nothing is counted.
    Await what it returns: with no caps, *app*'s own coroutine (no frame of
    this layer stays suspended for the socket's life).
    """
    owner = scope.get("app")
    caps = route_caps if route_caps is not None else getattr(owner, "connection_caps", None)
    counter = getattr(owner, "connection_counter", None)
    if caps is None or not isinstance(counter, ConnectionCounter):
        return app(scope, receive, send)
    return _serve_in_slot(app, caps, counter, scope, receive, send)


async def _serve_in_slot(
    app: ASGIApp,
    caps: ConnectionCaps,
    counter: ConnectionCounter,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    slot = await counter.acquire(scope, caps)
    if isinstance(slot, Refusal):
        note_limit(scope, "connection_cap")
        state, receive, send = enter(scope, receive, send)
        await deny(scope, state, receive, send, slot.response(), slot.close_code)
        return
    try:
        await app(scope, receive, send)
    finally:
        await slot.release()
