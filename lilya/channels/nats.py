"""The NATS JetStream backend: ``nats://``.

Design (the long form is in ``docs/channels.md``): one JetStream stream per
``key_prefix`` holds every channel, one subject per channel (a hash of its
name, so any name is a valid subject token). Offsets are per channel, so
they cannot be the stream's sequence numbers (shared by all channels): each
message carries its channel's epoch and offset in headers, and a publish
claims the next offset with JetStream's compare-and-set,
``Nats-Expected-Last-Subject-Sequence``: it names the stream sequence of the
channel's newest message, and the server refuses the publish if another one
got in first (then we read the new newest message and try again). So the
history itself is the counter: the newest retained message says where the
channel is, and when a channel has no message left (``history_ttl`` passed,
the stream was purged or recreated, a restart emptied the server) the next
publish starts a new epoch at offset 1. An empty channel asked for its
position gets an *epoch marker* (offset 0, no data), so its epoch holds
still until something is published.

The stream keeps ``history_size + 1`` messages per subject (the one extra
still says the offset when ``history_size`` is 0) and drops them after
``history_ttl``. Live delivery rides on the stream's *RePublish*: once
stored, every message is sent again, with its headers, to a plain subject
each listening process subscribes to, in storage order; like Redis pub/sub
it forgets what it sends while a connection is down, so after a reconnect
(or an offset that skips one: a slow consumer dropped some) the owning
:class:`~lilya.channels.Channels` catches up from the stream.

Presence lives in a KV bucket, one key per member. nats-server 2.9 has no
per-key TTL, so each entry stores its TTL and is judged by the server's
timestamp of its last write against the server's clock (a clock key written
before each sweep); whoever deletes a dead entry first (a compare-and-set
delete) announces its leave. The bucket's own ``max_age`` (a day) only
clears tombstones and members of channels nobody looks at any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import logging
import math
import re
import secrets
from collections.abc import Awaitable, Mapping
from typing import Any, Final, NamedTuple, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import anyio
import nats
import nats.errors
import nats.js.errors
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RePublish,
    StorageType,
    StreamConfig,
)
from nats.js.kv import KeyValue

from lilya.channels.backend import Backend, BackendSettings, HistoryPage, Sink
from lilya.channels.events import TAG_JSON, Event, decode, encode_json
from lilya.channels.exceptions import (
    BackendError,
    BackendUnavailableError,
    PublishOutcomeUnknownError,
)
from lilya.exceptions import ImproperlyConfigured

__all__ = ["NatsBackend"]

logger = logging.getLogger("lilya.channels.nats")

_T = TypeVar("_T")

# Headers every stored message carries (the republished copy keeps them).
_KIND: Final = "Lilya-Kind"  # "m" message, "e" epoch marker, "j"/"l" join/leave
_EPOCH: Final = "Lilya-Epoch"
_OFFSET: Final = "Lilya-Offset"
_TAG: Final = "Lilya-Tag"
_EXPECTED: Final = "Nats-Expected-Last-Subject-Sequence"
_MSG_ID: Final = "Nats-Msg-Id"
#: JetStream's error code for a failed Nats-Expected-Last-Subject-Sequence.
_WRONG_LAST_SEQUENCE: Final = 10071
#: JetStream's error code for a stream that does not exist.
_STREAM_NOT_FOUND: Final = 10059
#: How often a publish retries after losing the race for the next offset.
_MAX_ATTEMPTS: Final = 100
#: Channels whose newest message a process remembers (a publish to one of them
#: skips reading it first); past that, the least recently published is forgotten.
_REMEMBERED: Final = 10_000
#: Seconds a request to the server (a publish, a read) waits for its answer.
_DEFAULT_TIMEOUT: Final = 5.0
#: JetStream's duplicate window, in seconds, unless history_ttl is shorter.
_DEFAULT_DUPLICATE_WINDOW: Final = 120.0
#: Seconds after which the presence bucket drops an entry nobody rewrote.
_PRESENCE_MAX_AGE: Final = 86400.0
#: Live messages held between the NATS client and the reader task.
_LIVE_BUFFER: Final = 256
#: A subscription's pending limit in the NATS client; past it the client
#: drops messages (a slow consumer), which the reader then resyncs from history.
_PENDING_MSGS: Final = 65536
_PENDING_BYTES: Final = 64 * 1024 * 1024

#: Set in the reader task while Channels.resync() runs: history() then notes
#: how far each channel was caught up, so live messages are checked against it.
_RESYNCING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lilya_nats_resync", default=False
)

#: Errors of the NATS client that mean "not sent: the server is not reachable".
_NOT_SENT = (
    nats.errors.OutboundBufferLimitError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
    nats.errors.UnexpectedEOF,
    nats.errors.NoRespondersError,
    OSError,
)
#: Errors that mean the answer of a request did not come back in time.
_NO_ANSWER = (nats.errors.TimeoutError, asyncio.TimeoutError, TimeoutError)

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class _Last(NamedTuple):
    """The newest message of a channel: its stream sequence (0: none), epoch and offset."""

    seq: int
    epoch: str
    offset: int


def mask_password(url: str) -> str:
    """Return *url* with any password (or token) replaced by ``***``, fit for logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    auth, _, hosts = parts.netloc.rpartition("@")
    user, sep, _ = auth.partition(":")
    masked = f"{user}:***" if sep else "***"
    return urlunsplit(parts._replace(netloc=f"{masked}@{hosts}"))


def _token(text: str) -> str:
    """A subject token (and KV key part) standing for *text*: 32 hex digits of its SHA-256."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _new_epoch() -> str:
    return secrets.token_hex(8)


class NatsBackend(Backend):
    """Channels shared through NATS JetStream by every process that uses the same URL and prefix.

    The URL is ``nats://[user:password@]host:port[,host2:port2...][?timeout=5]``
    (``tls://`` for TLS is not supported here; use ``nats://`` on a trusted
    network). ``timeout`` is how long a request waits for the server's answer
    before a publish is reported as :class:`PublishOutcomeUnknownError`.
    """

    def __init__(self, url: str, settings: BackendSettings) -> None:
        self.safe_url = mask_password(url)
        parts = urlsplit(url)
        auth, _, hosts = parts.netloc.rpartition("@")
        servers = []
        for host in hosts.split(","):
            name, sep, port = host.strip().rpartition(":")
            valid = port.isascii() and port.isdigit() and 0 < int(port) < 65536
            if not sep or not name or not valid:
                raise ImproperlyConfigured(
                    f"Each server of {self.safe_url!r} must be host:port, got {host!r}; "
                    "write nats://host1:4222,host2:4222."
                )
            servers.append(f"nats://{auth + '@' if auth else ''}{name}:{port}")
        self._servers = servers
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"timeout"})
        if unknown:
            raise ImproperlyConfigured(
                f"Unknown option(s) {', '.join(unknown)} in {self.safe_url!r}; "
                "nats:// takes ?timeout=<seconds> only."
            )
        self._timeout = _DEFAULT_TIMEOUT
        if "timeout" in query:
            raw = query["timeout"][-1]
            try:
                self._timeout = float(raw)
            except ValueError:
                self._timeout = math.nan
            if not (math.isfinite(self._timeout) and self._timeout > 0):
                raise ImproperlyConfigured(
                    f"?timeout= in {self.safe_url!r} must be a number of seconds > 0, got {raw!r}."
                )
        self._size = settings.history_size
        self._ttl = settings.history_ttl
        self._first_delay, self._max_delay = settings.reconnect_delay
        prefix = settings.key_prefix
        digest = _token(prefix)
        readable = _NAME_UNSAFE.sub("_", prefix)[:32]
        #: The stream holding every channel of this prefix, and its KV bucket.
        self.stream = f"lilya_{readable}_{digest[:16]}"
        self.bucket = f"{self.stream}_presence"
        self._root = f"lilya.{digest}"
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        # Set by connect(); only the reader and the callbacks use it, and they
        # run between connect() and disconnect().
        self._sink: Sink
        self._subs: dict[str, Subscription] = {}
        self._last: dict[str, _Last] = {}
        self._positions: dict[str, tuple[str, int]] = {}
        self._must_resync = False
        self._send: MemoryObjectSendStream[tuple[str, Msg] | None]
        self._receive: MemoryObjectReceiveStream[tuple[str, Msg] | None]
        self._send, self._receive = anyio.create_memory_object_stream[tuple[str, Msg] | None](0)
        self._send.close()
        self._receive.close()

    # -- names -----------------------------------------------------------------

    def _channel_token(self, channel: str) -> str:
        return _token(channel)

    def _subject(self, channel: str) -> str:
        return f"{self._root}.ch.{self._channel_token(channel)}"

    def _live_subject(self, channel: str) -> str:
        return f"{self._root}.live.{self._channel_token(channel)}"

    def _stream_config(self) -> StreamConfig:
        window = _DEFAULT_DUPLICATE_WINDOW
        if self._ttl is not None:
            window = min(window, self._ttl)
        return StreamConfig(
            name=self.stream,
            description="lilya channels (nats://): one subject per channel",
            subjects=[f"{self._root}.ch.*"],
            storage=StorageType.MEMORY,
            discard=DiscardPolicy.OLD,
            max_msgs_per_subject=self._size + 1,
            max_age=self._ttl,
            duplicate_window=window,
            republish=RePublish(
                src=f"{self._root}.ch.*", dest=f"{self._root}.live.{{{{wildcard(1)}}}}"
            ),
        )

    # -- plumbing --------------------------------------------------------------

    def _client(self) -> tuple[Client, JetStreamContext]:
        if self._nc is None or self._js is None:
            raise RuntimeError("NatsBackend used before connect().")
        return self._nc, self._js

    async def _call(self, operation: str, awaitable: Awaitable[_T]) -> _T:
        """Await a request whose failure only means "it did not happen" (reads, setup)."""
        try:
            return await awaitable
        except (*_NOT_SENT, *_NO_ANSWER, nats.js.errors.ServiceUnavailableError) as exc:
            raise BackendUnavailableError(self.safe_url, operation, exc) from exc
        except nats.errors.Error as exc:
            raise BackendError(self.safe_url, operation, exc) from exc

    async def _ensure_stream(self) -> None:
        """Create the stream (and presence bucket) if missing: at connect, and after a restart."""
        _, js = self._client()
        try:
            await self._call("create the stream", js.add_stream(self._stream_config()))
        except BackendUnavailableError as exc:
            if not isinstance(exc.__cause__, nats.js.errors.ServiceUnavailableError):
                raise
            raise BackendError(
                self.safe_url,
                "create the stream",
                RuntimeError(
                    "this NATS server has no JetStream (nothing answers its API); "
                    "start it with nats-server -js, or enable jetstream in its config"
                ),
            ) from None
        except BackendError as exc:
            raise BackendError(
                self.safe_url,
                f"use stream {self.stream!r}",
                RuntimeError(
                    f"{exc}. Another app (or this one with other history_size/history_ttl) "
                    "made it with different settings: give this one another key_prefix, the "
                    "same settings, or delete the stream (nats stream rm)."
                ),
            ) from None
        self._kv = await self._call(
            "create the presence bucket",
            js.create_key_value(
                KeyValueConfig(
                    bucket=self.bucket,
                    history=1,
                    ttl=_PRESENCE_MAX_AGE,
                    storage=StorageType.MEMORY,
                )
            ),
        )

    # -- lifecycle ---------------------------------------------------------------

    async def connect(self, sink: Sink, task_group: TaskGroup) -> None:
        self._sink = sink
        self._send, self._receive = anyio.create_memory_object_stream[tuple[str, Msg] | None](
            _LIVE_BUFFER
        )
        try:
            self._nc = Client()
            # nats-py retries a first connect forever when reconnects are
            # unlimited: bound it, so that connect() fails like the others.
            with anyio.fail_after(self._timeout):
                await self._call(
                    "connect",
                    self._nc.connect(
                        servers=self._servers,
                        name="lilya-channels",
                        connect_timeout=min(self._timeout, 2.0),  # type: ignore[arg-type]  # int in nats-py's hints, a float works
                        allow_reconnect=True,
                        max_reconnect_attempts=-1,
                        reconnect_time_wait=self._first_delay,  # type: ignore[arg-type]  # as above
                        # No buffering while disconnected: a publish then fails
                        # as "not sent" instead of going out, maybe, later.
                        pending_size=0,
                        error_cb=self._on_error,
                        reconnected_cb=self._on_reconnected,
                        disconnected_cb=self._on_disconnected,
                    ),
                )
            self._js = self._nc.jetstream(timeout=self._timeout)
            await self._ensure_stream()
        except TimeoutError as exc:
            await self._close()
            raise BackendUnavailableError(self.safe_url, "connect", exc) from None
        except BaseException:
            await self._close()
            raise
        task_group.start_soon(self._read_forever)

    async def disconnect(self) -> None:
        await self._close()

    async def _close(self) -> None:
        nc, self._nc, self._js, self._kv = self._nc, None, None, None
        self._subs.clear()
        self._last.clear()
        self._positions.clear()
        self._send.close()
        self._receive.close()
        if nc is not None:
            with anyio.CancelScope(shield=True):
                # In a task of its own: nats-py closing just as it noticed a
                # dead server can end in a CancelledError that is not ours, and
                # must not become the app's shutdown failing. Seen when the
                # server died a moment before disconnect(); which moment, no
                # test can pick (tests cover the quiet disconnect itself).
                closing = asyncio.ensure_future(nc.close())
                try:
                    await asyncio.shield(closing)
                except asyncio.CancelledError:  # pragma: no cover - see above
                    current = asyncio.current_task()
                    if current is not None and getattr(current, "cancelling", int)():
                        raise
                    logger.debug("The NATS client was cancelled while closing")
                except Exception as exc:  # pragma: no cover - the client closes quietly
                    logger.debug("Closing the NATS connection failed: %s", exc)

    # -- callbacks of the NATS client (asyncio tasks of its own) -----------------------

    async def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, nats.errors.SlowConsumerError):
            logger.warning(
                "NATS dropped live messages of a slow consumer (%s); resyncing from the stream",
                exc,
            )
            self._nudge()
        else:
            logger.info("NATS connection error: %s", exc)

    async def _on_disconnected(self) -> None:
        if self._nc is None:
            return  # our own disconnect()
        logger.warning("NATS connection to %s lost; reconnecting", self.safe_url)

    async def _on_reconnected(self) -> None:
        logger.info("NATS connection to %s back; resyncing channels", self.safe_url)
        self._nudge()

    def _nudge(self) -> None:
        """Make the reader resync before its next live message (or right away if idle)."""
        self._must_resync = True
        # A full queue: the reader sees the flag at its next message.
        with contextlib.suppress(
            anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError
        ):
            self._send.send_nowait(None)

    def _live_callback(self, channel: str) -> Any:
        async def on_live(msg: Msg) -> None:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                await self._send.send((channel, msg))  # fails once disconnected: dropped on purpose

        return on_live

    # -- the live reader (in the Channels' task group) ------------------------------------

    async def _read_forever(self) -> None:
        """Deliver live messages in order, resyncing where one may be missing; never raises."""
        receive = self._receive
        with contextlib.suppress(anyio.ClosedResourceError):  # closed by disconnect()
            async for item in receive:
                try:
                    if self._must_resync:
                        await self._resync()
                    if item is not None:
                        await self._take(*item)
                except Exception:
                    logger.exception("NATS live reader failed on one message; resyncing")
                    self._must_resync = True

    async def _resync(self) -> None:
        """Catch every channel up from the stream, retrying with backoff until it works."""
        delay = self._first_delay
        while True:
            self._must_resync = False
            self._positions.clear()
            token = _RESYNCING.set(True)
            try:
                await self._sink.resync()
                return
            except Exception as exc:
                logger.warning("Resync from NATS failed (%s); retrying in %.2fs", exc, delay)
            finally:
                _RESYNCING.reset(token)
            await anyio.sleep(delay)
            delay = min(delay * 2, self._max_delay)

    async def _take(self, channel: str, msg: Msg) -> None:
        if channel not in self._subs:
            return  # unlistened meanwhile
        try:
            kind, epoch, offset, data = _parse_live(msg)
        except (KeyError, ValueError) as exc:
            # Someone else publishing on our subject: not ours to deliver.
            logger.warning(
                "Ignored a live message lilya did not write on channel %r (%s: %s)",
                channel,
                type(exc).__name__,
                exc,
            )
            return
        position = self._positions.get(channel)
        if kind in ("j", "l"):
            epoch, offset = position if position is not None else ("", 0)
            self._sink.deliver(
                Event(channel, offset, epoch, data, "join" if kind == "j" else "leave")
            )
            return
        if position is not None and not _follows(position, epoch, offset):
            # An offset was skipped (the client dropped some: a slow consumer;
            # or they were sent while we were away), or the epoch changed.
            # Catch up, or reset, before going on.
            await self._resync()
            position = self._positions.get(channel)
        if position is not None and epoch == position[0] and offset <= position[1]:
            return  # already delivered (by a resync)
        self._positions[channel] = (epoch, offset)
        if kind == "e":
            return  # an epoch marker: a position, no message
        await self._sink.ready(channel)
        self._sink.deliver(Event(channel, offset, epoch, data))

    async def listen(self, channel: str) -> None:
        if channel in self._subs:
            return
        nc, _ = self._client()
        subscription = await self._call(
            "subscribe",
            nc.subscribe(
                self._live_subject(channel),
                cb=self._live_callback(channel),
                pending_msgs_limit=_PENDING_MSGS,
                pending_bytes_limit=_PENDING_BYTES,
            ),
        )
        self._subs[channel] = subscription
        # The server has the subscription once it answered a PING sent after it.
        await self._call("subscribe", nc.flush(timeout=math.ceil(self._timeout)))

    async def unlisten(self, channel: str) -> None:
        subscription = self._subs.pop(channel, None)
        self._positions.pop(channel, None)
        if subscription is not None:
            await self._call("unsubscribe", subscription.unsubscribe())

    # -- storage ---------------------------------------------------------------------

    async def _read_last(self, channel: str) -> _Last:
        """The channel's newest message, from the server (``seq`` 0 if it has none)."""
        _, js = self._client()
        msg = await self._call(
            "read history", _found(js.get_last_msg(self.stream, self._subject(channel)))
        )
        if isinstance(msg, nats.js.errors.NotFoundError):
            if msg.err_code == _STREAM_NOT_FOUND:
                # The server lost the stream (a restart emptied it): make it again.
                await self._ensure_stream()
            return _Last(0, "", 0)
        position = _stored_position(msg.headers)
        if position is None:
            raise BackendError(
                self.safe_url,
                "read history",
                ValueError(
                    f"the newest message of channel {channel!r} in stream {self.stream!r} "
                    "was not written by lilya (no Lilya-Epoch/Lilya-Offset headers): something "
                    "else publishes on lilya's subjects; stop it, or purge the stream"
                ),
            )
        last = _Last(msg.seq or 0, *position)
        self._remember(channel, last)
        return last

    def _remember(self, channel: str, last: _Last) -> None:
        """Keep *channel*'s newest message for the next publish (the oldest of many goes)."""
        self._last.pop(channel, None)
        self._last[channel] = last
        if len(self._last) > _REMEMBERED:
            del self._last[next(iter(self._last))]

    async def _append(
        self,
        channel: str,
        kind: str,
        tag: str,
        payload: bytes,
        message_id: str | None,
        key: str | None,
    ) -> tuple[_Last, bool]:
        """Store one message (or epoch marker) at the channel's next offset.

        Returns where it went and whether it is a duplicate of *key*'s first
        publish (then ``_Last`` is that one's stream sequence, nothing else).
        """
        nc, js = self._client()
        for _ in range(_MAX_ATTEMPTS):
            last = self._last.get(channel) or await self._read_last(channel)
            if last.seq == 0:
                epoch, offset = _new_epoch(), (0 if kind == "e" else 1)
            else:
                epoch, offset = last.epoch, last.offset + (kind != "e")
            if kind == "e" and last.seq:
                return last, False  # somebody made the epoch first
            headers = {
                _EXPECTED: str(last.seq),
                _KIND: kind,
                _EPOCH: epoch,
                _OFFSET: str(offset),
                _TAG: tag,
            }
            if key is not None:
                headers[_MSG_ID] = key
            try:
                ack = await js.publish(self._subject(channel), payload, headers=headers)
            except nats.js.errors.NoStreamResponseError:
                # The server lost the stream (a restart emptied it): nothing was stored.
                self._last.pop(channel, None)
                await self._ensure_stream()
                continue
            except nats.js.errors.APIError as exc:
                self._last.pop(channel, None)
                if exc.err_code == _WRONG_LAST_SEQUENCE:
                    continue  # another publisher took the offset: read and retry
                raise BackendError(self.safe_url, "publish", exc) from exc
            except _NO_ANSWER as exc:
                self._last.pop(channel, None)
                if kind == "e":
                    raise BackendUnavailableError(self.safe_url, "read history", exc) from exc
                raise PublishOutcomeUnknownError(self.safe_url, channel, message_id, exc) from exc
            except nats.errors.MaxPayloadError as exc:
                raise BackendError(
                    self.safe_url,
                    "publish",
                    ValueError(
                        f"{len(payload)} bytes exceed the server's max_payload "
                        f"({nc.max_payload} bytes); publish less or raise max_payload"
                    ),
                ) from exc
            except _NOT_SENT as exc:
                self._last.pop(channel, None)
                raise BackendUnavailableError(self.safe_url, "publish", exc) from exc
            except nats.errors.Error as exc:  # pragma: no cover - any other client error
                self._last.pop(channel, None)
                raise BackendError(self.safe_url, "publish", exc) from exc
            if ack.duplicate:
                return _Last(ack.seq, "", 0), True
            stored = _Last(ack.seq, epoch, offset)
            self._remember(channel, stored)
            return stored, False
        raise BackendError(
            self.safe_url,
            "publish",
            RuntimeError(
                f"lost the race for the next offset of {channel!r} {_MAX_ATTEMPTS} times "
                "in a row; too many publishers on one channel at once"
            ),
        )

    async def _original(self, channel: str, seq: int) -> _Last | None:
        """The first publish of a message id, if still among the last ``history_size``."""
        _, js = self._client()
        msg = await self._call("publish", _found(js.get_msg(self.stream, seq)))
        if isinstance(msg, nats.js.errors.NotFoundError):
            return None  # trimmed away
        position = _stored_position(msg.headers)
        # Ids are hashed with their channel, and only lilya writes them.
        if msg.subject != self._subject(channel) or position is None:  # pragma: no cover
            return None
        original = _Last(seq, *position)
        last = await self._read_last(channel)
        if last.epoch != original.epoch or original.offset <= last.offset - self._size:
            return None
        return original

    async def publish(
        self, channel: str, tag: str, payload: bytes, data: Any, message_id: str | None
    ) -> Event:
        key: str | None = None
        if message_id is not None and self._size > 0:
            # Hashed: a header value must not carry what a message id may (CR, LF).
            key = hashlib.sha256(f"{channel}\n{message_id}".encode()).hexdigest()
        while True:
            stored, duplicate = await self._append(channel, "m", tag, payload, message_id, key)
            if not duplicate:
                break
            original = await self._original(channel, stored.seq)
            if original is not None:
                stored = original
                break
            # The first publish left the window (or its history): publish anew,
            # under an id that a retry of this publish will find.
            key = hashlib.sha256(f"{key}\n{stored.seq}".encode()).hexdigest()
        return Event(
            channel,
            stored.offset,
            stored.epoch,
            data if tag != TAG_JSON else decode(tag, payload),
        )

    async def history(self, channel: str, *, after: int | None, limit: int | None) -> HistoryPage:
        # Fresh from the server, never this process's cache: the page's top must
        # not be behind what another process published (and we delivered).
        last = await self._read_last(channel)
        if last.seq == 0:
            last, _ = await self._append(channel, "e", "", b"", None, None)
            self._last.pop(channel, None)  # a marker is not a publish of ours
        epoch, top = last.epoch, last.offset
        events: list[Event] = []
        if self._size and top and limit != 0:
            for offset, event in await self._fetch(channel, epoch):
                if offset > top - self._size:
                    events.append(event)
                    top = max(top, offset)
        first = events[0].offset if events else top + 1
        if after is not None:
            events = [event for event in events if event.offset > after]
            if limit is not None:
                events = events[:limit]
        elif limit is not None:
            events = events[-limit:] if limit else []
        if _RESYNCING.get() and channel in self._subs:
            self._positions[channel] = (epoch, top)
        return HistoryPage(epoch, top, first, events)

    async def _fetch(self, channel: str, epoch: str) -> list[tuple[int, Event]]:
        """Every retained message of *channel* in *epoch*, oldest first (one consumer, a batch)."""
        nc, js = self._client()
        info = await self._call(
            "read history",
            js.add_consumer(
                self.stream,
                ConsumerConfig(
                    filter_subject=self._subject(channel),
                    deliver_policy=DeliverPolicy.ALL,
                    ack_policy=nats.js.api.AckPolicy.NONE,
                    inactive_threshold=max(self._timeout * 2, 5.0),
                    mem_storage=True,
                ),
            ),
        )
        wanted = info.num_pending or 0
        found: list[tuple[int, Event]] = []
        inbox = nc.new_inbox()
        replies = await self._call("read history", nc.subscribe(inbox))
        try:
            request = f'{{"batch":{wanted},"no_wait":true}}'.encode()
            await self._call(
                "read history",
                nc.publish(
                    f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{info.name}", request, reply=inbox
                ),
            )
            with anyio.fail_after(self._timeout):
                for _ in range(wanted):
                    msg = await replies.next_msg(timeout=self._timeout)
                    headers = msg.headers or {}
                    # A status instead (404: no more) when messages expired
                    # between the count and the fetch: a timer no test can stage.
                    if "Status" in headers:  # pragma: no cover
                        break
                    position = _stored_position(headers)
                    if headers.get(_KIND) != "m" or position is None or position[0] != epoch:
                        continue  # an epoch marker, or a message lilya did not write
                    try:
                        data = decode(headers.get(_TAG, ""), msg.data)
                    except ValueError:
                        continue
                    offset = position[1]
                    found.append((offset, Event(channel, offset, epoch, data)))
        except (TimeoutError, nats.errors.TimeoutError) as exc:
            raise BackendUnavailableError(self.safe_url, "read history", exc) from exc
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await replies.unsubscribe()
                    await js.delete_consumer(self.stream, info.name)
                except Exception as exc:  # the server cleans up after inactive_threshold
                    logger.debug("Could not delete a history consumer: %s", exc)
        return found

    # -- presence ------------------------------------------------------------------------

    def _bucket(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError("NatsBackend used before connect().")
        return self._kv

    def _member_key(self, channel: str, member: str) -> str:
        return f"{self._channel_token(channel)}.{_token(member)}"

    async def _announce(self, channel: str, kind: str, member: str, info: Any) -> None:
        nc, _ = self._client()
        await self._call(
            "announce presence",
            nc.publish(
                self._live_subject(channel),
                encode_json({"member": member, "info": info}),
                headers={_KIND: kind},
            ),
        )

    async def _kv_call(self, operation: str, call: Any) -> Any:
        """Run ``call(bucket)``, recreating the bucket once if the server lost it."""
        try:
            return await self._call(operation, call(self._bucket()))
        except BackendError as exc:
            if not isinstance(exc.__cause__, nats.js.errors.NoStreamResponseError):
                raise
        await self._ensure_stream()
        return await self._call(operation, call(self._bucket()))

    async def _put_member(self, channel: str, member: str, info: Any, ttl: float) -> None:
        info_json = encode_json(info)  # refuses what JSON cannot carry, bytes included
        value = b'{"m":%s,"t":%s,"i":%s}' % (
            encode_json(member),
            repr(float(ttl)).encode(),
            info_json,
        )
        nc, _ = self._client()
        if len(value) > nc.max_payload:
            raise BackendError(
                self.safe_url,
                "record presence",
                ValueError(
                    f"presence info of {len(info_json)} bytes of JSON exceeds the server's "
                    f"max_payload ({nc.max_payload} bytes); keep it small (an id, a name)"
                ),
            )
        key = self._member_key(channel, member)
        await self._kv_call("record presence", lambda kv: kv.put(key, value))

    async def presence_join(self, channel: str, member: str, info: Any, ttl: float) -> None:
        await self._put_member(channel, member, info, ttl)
        await self._announce(channel, "j", member, info)

    async def presence_leave(self, channel: str, member: str) -> None:
        key = self._member_key(channel, member)
        kv = self._bucket()
        entry = await self._call("leave", _found(kv.get(key)))
        if isinstance(entry, nats.js.errors.NotFoundError):
            return  # gone already (expired, and announced by whoever swept it)
        if await self._delete(key, entry.revision):
            record = _loads_info(entry.value)
            await self._announce(channel, "l", member, None if record is None else record[1])

    async def _delete(self, key: str, revision: int | None) -> bool:
        """Delete *key* if still at *revision*; False if someone changed or deleted it first."""
        return await self._call("leave", _deleted(self._bucket().delete(key, last=revision)))

    async def presence_refresh(self, channel: str, members: Mapping[str, Any], ttl: float) -> None:
        for member, info in members.items():
            await self._put_member(channel, member, info, ttl)
        await self._sweep(channel)

    async def presence(self, channel: str) -> Mapping[str, Any]:
        return await self._sweep(channel)

    async def _sweep(self, channel: str) -> dict[str, Any]:
        """The live members of *channel*, deleting (and announcing) the expired ones."""
        token = self._channel_token(channel)
        clock = f"{token}.now"
        await self._kv_call("read presence", lambda kv: kv.put(clock, b""))
        watcher = await self._call(
            "read presence", self._bucket().watch(f"{token}.>", include_history=False)
        )
        entries = []
        try:
            # The watcher sends every key's newest entry, then None.
            while (
                entry := await self._call("read presence", watcher.updates(self._timeout))  # type: ignore[no-untyped-call]
            ) is not None:
                entries.append(entry)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py leaves it bare
                except Exception as exc:  # pragma: no cover - the server cleans up anyway
                    logger.debug("Could not stop a presence watcher: %s", exc)
        now = max(
            (entry.created for entry in entries if entry.key == clock and entry.created),
            default=None,
        )
        alive: dict[str, Any] = {}
        for entry in entries:
            if entry.key == clock or entry.operation is not None:
                continue
            record = _loads_info(entry.value)
            if record is None:
                logger.warning(
                    "Ignored a presence entry lilya did not write: %s in bucket %s",
                    entry.key,
                    self.bucket,
                )
                continue
            member, info, ttl = record
            if (
                now is not None
                and entry.created is not None
                and (now - entry.created).total_seconds() > ttl
            ):
                if await self._delete(entry.key, entry.revision):
                    await self._announce(channel, "l", member, info)
                continue
            alive[member] = info
        return alive


def _parse_live(msg: Msg) -> tuple[str, str, int, Any]:
    """A live message's kind, epoch, offset and data.

    Raises:
        KeyError: a header lilya writes is missing.
        ValueError: a header or the payload is not what lilya writes.
    """
    headers = msg.headers or {}
    kind = headers[_KIND]
    if kind in ("j", "l"):
        data = decode(TAG_JSON, msg.data)
        if not isinstance(data, dict) or not isinstance(data.get("member"), str):
            raise ValueError("a presence change without a member")
        return kind, "", 0, data
    if kind not in ("m", "e"):
        raise ValueError(f"unknown kind {kind!r:.20}")
    offset = int(headers[_OFFSET])
    if offset < 0:
        raise ValueError(f"negative offset {offset}")
    return kind, headers[_EPOCH], offset, None if kind == "e" else decode(headers[_TAG], msg.data)


async def _found(awaitable: Awaitable[_T]) -> _T | nats.js.errors.NotFoundError:
    """What *awaitable* gives, or the NotFoundError the server answered (no such message)."""
    try:
        return await awaitable
    except nats.js.errors.NotFoundError as exc:
        return exc


async def _deleted(awaitable: Awaitable[object]) -> bool:
    """Whether a compare-and-set delete went through (False: the entry changed first)."""
    try:
        await awaitable
    except nats.js.errors.BadRequestError:  # KeyWrongLastSequenceError among them
        return False
    return True


def _stored_position(headers: Mapping[str, str] | None) -> tuple[str, int] | None:
    """The (epoch, offset) a stored message's headers give, or None if lilya did not write it."""
    headers = headers or {}
    epoch, offset = headers.get(_EPOCH), headers.get(_OFFSET, "")
    if not epoch or not (offset.isascii() and offset.isdigit()):
        return None
    return epoch, int(offset)


def _follows(position: tuple[str, int], epoch: str, offset: int) -> bool:
    """Whether a live message at (*epoch*, *offset*) leaves nothing out after *position*.

    A new epoch never does: the old history is gone, and whether this
    process missed its last messages nobody can tell, so the subscribers get
    a ``reset`` (by a resync) rather than a quiet change of epoch.
    """
    return epoch == position[0] and offset <= position[1] + 1


def _loads_info(value: bytes | None) -> tuple[str, Any, float] | None:
    """A presence entry's (member, info, ttl), or None if lilya did not write it."""
    try:
        record = decode(TAG_JSON, value or b"")
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    member, ttl = record.get("m"), record.get("t")
    if not isinstance(member, str) or not isinstance(ttl, int | float) or isinstance(ttl, bool):
        return None
    return member, record.get("i"), float(ttl)
