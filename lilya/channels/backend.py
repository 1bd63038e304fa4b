"""The contract between :class:`~lilya.channels.Channels` and a backend, public.

A backend only stores and moves events between processes; everything a
subscriber sees (queues, policies, the seam between replay and live, presence
heartbeats) lives in :mod:`lilya.channels.channels`, written once, so backends
cannot drift apart in behaviour. To add one (a store lilya does not ship),
subclass :class:`Backend`, keep every promise its methods' docstrings make,
give it a URL scheme with :func:`register_backend`, and run the contract suite
of :mod:`lilya.channels.testing` against your real server. ``docs/channels.md``
("Writing a backend") walks through it.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple, Protocol
from urllib.parse import urlsplit

from anyio.abc import TaskGroup

from lilya.channels.events import Event, Position
from lilya.exceptions import ImproperlyConfigured

__all__ = [
    "MAX_OFFSET",
    "Backend",
    "BackendFactory",
    "BackendSettings",
    "HistoryPage",
    "Sink",
    "check_limit",
    "check_max_queue",
    "check_message_id",
    "check_name",
    "check_position",
    "create_backend",
    "register_backend",
]


class HistoryPage(NamedTuple):
    """A slice of a channel's history, with what you need to judge recovery.

    Attributes:
        epoch: the channel's current epoch (created if the channel was unknown).
        top: offset of the last message published in this epoch (0 if none).
        first: offset of the oldest retained message (``top + 1`` if none is).
        events: the retained messages asked for, oldest first.
    """

    epoch: str
    top: int
    first: int
    events: list[Event]

    def covers(self, epoch: str, offset: int) -> bool:
        """Say whether this page holds everything after *offset* of *epoch*.

        True when the epoch is the same one (offsets of another history mean
        nothing here), nothing after *offset* has been trimmed away, and
        *offset* is not ahead of the channel (a position from the future).
        Both resuming a subscription (``since=``) and catching up after a
        reconnect go by this one rule.
        """
        return epoch == self.epoch and self.first <= offset + 1 <= self.top + 1


#: The largest offset either backend represents exactly (Lua numbers are doubles).
MAX_OFFSET: Final = 2**53 - 1
#: Longest channel name, in UTF-8 bytes (a Redis key carries it four times over).
MAX_NAME_BYTES: Final = 1024
#: Longest epoch (lilya's are 16 hex digits) and message id, in UTF-8 bytes.
MAX_EPOCH_BYTES: Final = 64
MAX_MESSAGE_ID_BYTES: Final = 256


def _utf8_size(what: str, value: str) -> int:
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what} must be valid Unicode text, but holds a lone surrogate at index "
            f"{exc.start}; decode your input with errors='replace' or refuse it."
        ) from None


def _check_str(what: str, value: object, max_bytes: int) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}: {value!r:.80}.")
    if not value:
        raise ValueError(f"{what} must be a non-empty str, got ''.")
    size = _utf8_size(what, value)
    if size > max_bytes:
        raise ValueError(f"{what} is at most {max_bytes} bytes of UTF-8, this one is {size}.")
    return value


def _check_count(what: str, value: object, *, least: int) -> int:
    if type(value) is not int:  # bool is an int, and True is no offset
        raise TypeError(f"{what} must be an int, got {type(value).__name__}: {value!r:.80}.")
    if not least <= value <= MAX_OFFSET:
        raise ValueError(f"{what} must be between {least} and 2**53 - 1, got {value!r:.80}.")
    return value


def check_name(channel: object) -> str:
    """Return *channel* if it is a usable channel name.

    Raises:
        TypeError: *channel* is not a ``str``.
        ValueError: it is empty, longer than 1024 UTF-8 bytes, or not valid
            Unicode (a lone surrogate).
    """
    return _check_str("A channel name", channel, MAX_NAME_BYTES)


def check_position(since: object) -> Position:
    """Return *since* as a :class:`Position` if it is one ``subscribe(since=...)`` can use.

    Raises:
        TypeError: not an ``(epoch, offset)`` pair of a ``str`` and an ``int``.
        ValueError: an empty or over-long epoch, or an offset below 0 or above 2**53 - 1.
    """
    if not isinstance(since, tuple) or len(since) != 2:
        raise TypeError(
            f"since must be a Position or an (epoch, offset) pair, as event.position "
            f"gives you; got {type(since).__name__}: {since!r:.80}."
        )
    epoch = _check_str("The epoch of since", since[0], MAX_EPOCH_BYTES)
    offset = _check_count("The offset of since", since[1], least=0)
    return Position(epoch, offset)


def check_limit(limit: object) -> int | None:
    """Return a history *limit* (``None``: all) if it is usable.

    Raises:
        TypeError: not an ``int`` (or ``None``).
        ValueError: below 0. A limit above 2**53 - 1 means "all" too.
    """
    if limit is None:
        return None
    if type(limit) is not int:
        raise TypeError(f"limit must be an int or None, got {type(limit).__name__}: {limit!r:.80}.")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit!r:.80}.")
    return min(limit, MAX_OFFSET)


def check_max_queue(max_queue: object) -> int:
    """Return *max_queue* if it is a usable queue bound.

    Raises:
        TypeError: not an ``int``.
        ValueError: below 1 or above 2**53 - 1.
    """
    return _check_count("max_queue", max_queue, least=1)


def check_message_id(message_id: object) -> str | None:
    """Return a publish *message_id* (``None``: none) if it is usable.

    Raises:
        TypeError: not a ``str`` (or ``None``).
        ValueError: empty, longer than 256 UTF-8 bytes, or a lone surrogate.
    """
    if message_id is None:
        return None
    return _check_str("message_id", message_id, MAX_MESSAGE_ID_BYTES)


class Sink(Protocol):
    """Where a backend delivers live events: the :class:`~lilya.channels.Channels` that owns it.

    You never implement this; your backend receives one at :meth:`Backend.connect`.
    """

    def deliver(self, event: Event) -> None:
        """Take one live event, in channel order, without blocking.

        Call it for every ``message`` of a channel you :meth:`Backend.listen` to,
        in offset order, and for every ``join``/``leave`` (their ``data`` is
        ``{"member": id, "info": json value}``). A message delivered twice (once
        from history during a resync, once live) is dropped here by offset, so
        you need not deduplicate.
        """

    async def ready(self, channel: str) -> None:
        """Wait until *channel*'s subscribers have room for more (backpressure, bounded).

        Await it before delivering the next live event of *channel* if your
        transport can hold events back (a socket you stop reading); it returns
        within ``stall_timeout`` whatever the subscribers do.
        """

    async def resync(self) -> None:
        """Catch every listened channel up from history; call it after you reconnected.

        Your live feed forgot what was sent while it was down; this reads
        :meth:`Backend.history` after each channel's last delivered offset and
        delivers the missed messages, or a ``reset`` event where history no
        longer covers them. Hold live events back until it returns.
        """


class BackendSettings(NamedTuple):
    """The settings of :class:`~lilya.channels.Channels` that a backend must honour.

    Attributes:
        history_size: messages each channel retains (0: none, but offsets
            still count); also the window in which a ``message_id`` is
            remembered.
        history_ttl: seconds after a channel's last publish at which its
            history and epoch are forgotten (``None``: never).
        key_prefix: namespace of every key, table row or subject the backend
            writes, so that apps can share one server.
        reconnect_delay: ``(first, max)`` seconds between reconnect attempts,
            doubling up to ``max``.
    """

    history_size: int
    history_ttl: float | None
    key_prefix: str
    reconnect_delay: tuple[float, float]


class Backend(ABC):
    """Storage and transport of one channel system (one URL): the backend contract.

    :class:`~lilya.channels.Channels` does the rest (queues, policies, the
    seam between replay and live, recovery verdicts, presence coalescing and
    heartbeats) by calling these methods; what your subclass must guarantee
    is written on each. In short:

    - **Order and positions.** Each channel has an *epoch* (an opaque string of
      at most 64 UTF-8 bytes naming one unbroken history) and offsets 1, 2,
      3, … in it, with no hole and no repeat, in the order every listener
      receives them. When history is lost (a restart with empty storage,
      ``history_ttl`` passed), start a new epoch and count from 1 again:
      never reuse an offset of an epoch for another message.
    - **Recovery.** :meth:`history` answers from the same store that assigns
      offsets, so a page's ``top`` is never behind a message already delivered.
    - **Errors.** Raise :class:`~lilya.channels.BackendUnavailableError` when
      the server cannot be reached and the operation did not happen;
      :class:`~lilya.channels.PublishOutcomeUnknownError` when a publish was
      sent but its answer lost; :class:`~lilya.channels.BackendError` when the
      server refused it. Never let a driver's own exception escape.
    - **Dedupe.** A ``message_id`` published among the channel's last
      ``history_size`` messages is not published again.
    - **Presence.** Members expire ``ttl`` seconds after their last join or
      refresh, by the server's clock where there is one, with a ``leave``
      announced to every listener.
    - **Reconnects.** When the live feed is lost, reconnect with backoff
      (``reconnect_delay``) in the task group given to :meth:`connect`, never
      raising out of it, then call :meth:`Sink.resync` before delivering live
      events again.

    Arguments reaching these methods were already validated (names by
    :func:`check_name`, ids by :func:`check_message_id`, …).
    """

    #: The URL with any password masked, for messages and logs.
    safe_url: str

    @abstractmethod
    async def connect(self, sink: Sink, task_group: TaskGroup) -> None:
        """Open connections and start delivering live events to *sink*.

        Background work (a reader of the live feed) runs in *task_group*,
        which the owning :class:`Channels` cancels at disconnect; it must not
        raise. Raise :class:`~lilya.channels.BackendUnavailableError` here if
        the server cannot be reached, having closed whatever you opened.
        """

    @abstractmethod
    async def disconnect(self) -> None:
        """Stop delivering and close every connection; it must not raise."""

    @abstractmethod
    async def publish(
        self, channel: str, tag: str, payload: bytes, data: Any, message_id: str | None
    ) -> Event:
        """Append one message to *channel*'s history and send it to every listener.

        *tag*/*payload* are the encoded form (store and carry them as they
        are; :func:`lilya.channels.events.decode` turns them back), *data* the
        decoded one (so a backend that never leaves the process need not
        decode again). Assign the next offset atomically with the append: two
        processes publishing at once get two offsets, and every listener sees
        them in offset order. A *message_id* already published among the last
        ``history_size`` messages is not published again: return the first
        publish's event (its offset and epoch) and deliver nothing. Return the
        event as subscribers will see it (``data`` after a round trip through
        the codec).
        """

    async def publish_in_transaction(
        self,
        connection: Any,
        channel: str,
        tag: str,
        payload: bytes,
        data: Any,
        message_id: str | None,
    ) -> Event:
        """Publish as part of the caller's open transaction on *connection*.

        Only a backend that lives in the caller's database can promise it:
        delivered when the transaction commits, never after a rollback. The
        default refuses, saying which backends can.

        Raises:
            TypeError: this backend cannot publish inside your transaction.
        """
        raise TypeError(
            f"{self.safe_url} cannot publish inside your transaction (connection=...): "
            "only postgres:// channels live in your database. Publish after you commit."
        )

    @abstractmethod
    async def history(self, channel: str, *, after: int | None, limit: int | None) -> HistoryPage:
        """Read retained messages: those after offset *after*, or the last *limit*.

        With *after*, return the retained messages with a greater offset,
        oldest first (at most *limit* of them); without, the newest *limit*
        (all if ``None``; none if 0), oldest first. Always fill in the epoch
        (creating it if the channel is unknown), ``top`` and ``first`` as
        :class:`HistoryPage` defines them: recovery is judged by them.
        """

    @abstractmethod
    async def listen(self, channel: str) -> None:
        """Start live delivery of *channel*; return once nothing published later can be missed.

        "Later" is what matters: a publish that starts after this returns
        must reach :meth:`Sink.deliver`. Raise
        :class:`~lilya.channels.BackendUnavailableError` if you cannot promise it.
        """

    @abstractmethod
    async def unlisten(self, channel: str) -> None:
        """Stop live delivery of *channel*."""

    @abstractmethod
    async def presence_join(self, channel: str, member: str, info: Any, ttl: float) -> None:
        """Record *member* as present for *ttl* seconds and announce a join to every listener."""

    @abstractmethod
    async def presence_leave(self, channel: str, member: str) -> None:
        """Forget *member* and announce a leave (only if it was still present)."""

    @abstractmethod
    async def presence_refresh(self, channel: str, members: Mapping[str, Any], ttl: float) -> None:
        """Extend (or restore) *members*' lifetimes; expire the dead, announcing their leave.

        Restoring matters: after a restart with empty storage the next
        refresh puts this process's members back.
        """

    @abstractmethod
    async def presence(self, channel: str) -> Mapping[str, Any]:
        """Return ``{member: info}`` of the live members, expiring the dead first."""


#: Makes a backend for a URL: ``factory(url, settings)``; a :class:`Backend`
#: subclass whose ``__init__`` takes those two arguments is one.
BackendFactory = Callable[[str, BackendSettings], Backend]

# The built-in schemes: (module, class, the extra that installs its client, the
# client's top-level module). Imported only when used, so an install without
# the redis client still runs memory:// (and says what to install otherwise).
_BUILTIN: dict[str, tuple[str, str, str | None, str | None]] = {
    "memory": ("lilya.channels.memory", "MemoryBackend", None, None),
    "redis": ("lilya.channels.redis", "RedisBackend", "redis", "redis"),
    "rediss": ("lilya.channels.redis", "RedisBackend", "redis", "redis"),
    "redis+cluster": ("lilya.channels.redis_cluster", "RedisClusterBackend", "redis", "redis"),
    "redis+sentinel": ("lilya.channels.redis_sentinel", "RedisSentinelBackend", "redis", "redis"),
    "nats": ("lilya.channels.nats", "NatsBackend", "nats", "nats"),
    "postgres": ("lilya.channels.postgres", "PostgresBackend", "postgres", "asyncpg"),
    "postgresql": ("lilya.channels.postgres", "PostgresBackend", "postgres", "asyncpg"),
}
_REGISTERED: dict[str, BackendFactory] = {}


def register_backend(scheme: str, factory: BackendFactory) -> None:
    """Make ``Channels("<scheme>://…")`` use *factory* to build its backend.

    Call it once, at import of the package that holds your backend. A
    scheme you register wins over a built-in one of the same name, so a
    test can stand in for ``redis://``.

    Raises:
        ValueError: *scheme* is not a valid URL scheme (letters, digits,
            ``+``, ``-``, ``.``, starting with a letter).
        TypeError: *factory* is not callable.
    """
    if not (
        isinstance(scheme, str)
        and scheme[:1].isascii()
        and scheme[:1].isalpha()
        and all(c.isascii() and (c.isalnum() or c in "+-.") for c in scheme)
    ):
        raise ValueError(
            f"A backend scheme is letters, digits, '+', '-' or '.' and starts with a letter "
            f"(what comes before '://'), got {scheme!r:.80}."
        )
    if not callable(factory):
        raise TypeError(
            f"factory must be callable (url, settings) -> Backend, got {factory!r:.80}."
        )
    _REGISTERED[scheme.lower()] = factory


def create_backend(url: str, settings: BackendSettings) -> Backend:
    """Build the backend for *url*: a registered scheme, else a built-in one.

    Raises:
        ImproperlyConfigured: the scheme is unknown, or its client library is
            not installed (the message gives the ``pip install`` line).
    """
    scheme = urlsplit(url).scheme.lower()
    factory = _REGISTERED.get(scheme)
    if factory is not None:
        return factory(url, settings)
    builtin = _BUILTIN.get(scheme)
    if builtin is None:
        known = sorted({*_BUILTIN, *_REGISTERED})
        raise ImproperlyConfigured(
            f"Unsupported channels URL scheme {scheme!r} in {url!r}; use one of "
            + ", ".join(f"{name}://" for name in known)
            + ", or register yours with lilya.channels.register_backend()."
        )
    module_name, class_name, extra, client = builtin
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if client is None or exc.name is None or exc.name.split(".")[0] != client:
            raise
        raise ImproperlyConfigured(
            f"{scheme}:// channels need the {client!r} client library, which is not "
            f'installed: pip install "lilya[{extra}]"'
        ) from None
    backend_class: BackendFactory = getattr(module, class_name)
    return backend_class(url, settings)
