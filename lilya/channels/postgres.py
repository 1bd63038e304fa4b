"""The PostgreSQL backend: ``postgres://`` and ``postgresql://``.

Design (the long form is in ``docs/channels.md``): a row per channel holds its
epoch and last offset, a table holds retained messages, another the present
members with their expiry by the server's clock. Publishing is one SQL
function that locks the channel's row, hands out the next offset, appends the
message and queues a ``NOTIFY``; Postgres sends notifications at commit, in
commit order, and the row lock makes commit order the offset order. So a
publish inside your own transaction (``publish(..., connection=conn)``) is
delivered when you commit and never after a rollback, because the row, the
message and the notification are all part of it.

Live delivery rides on ``LISTEN`` (one connection per process, one ``LISTEN``
per channel, named by a hash because identifiers stop at 63 bytes). A
notification carries at most 8,000 bytes, so a message whose text does not fit
(or that holds a NUL, which ``NOTIFY`` cannot carry) goes by reference: the
notification names its offset and the listener reads it from the table, where
such rows outlive the history window for a minute for that purpose.
``LISTEN`` forgets what was sent while its connection was down; after a
reconnect the owning :class:`~lilya.channels.Channels` catches up from the
table by offset, as on Redis.

asyncpg runs on asyncio only, so this backend does too.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import asyncpg
from anyio.abc import TaskGroup

from lilya._json import loads
from lilya.channels.backend import Backend, BackendSettings, HistoryPage, Sink
from lilya.channels.events import TAG_BYTES, TAG_JSON, Event, EventType, decode, encode_json
from lilya.channels.exceptions import (
    BackendError,
    BackendUnavailableError,
    PublishOutcomeUnknownError,
)

__all__ = ["MAX_PRESENCE_INFO_BYTES", "PostgresBackend"]

logger = logging.getLogger("lilya.channels.postgres")

_T = TypeVar("_T")

#: Room left in a notification (8,000 bytes) for a message's text once the
#: epoch, the offset and the kind are in front of it.
_INLINE_LIMIT = 7900
#: Presence info travels inside a join notification, so it must fit there too.
MAX_PRESENCE_INFO_BYTES = 7000

# Everything lives in four tables and six functions, made at connect() under
# an advisory lock (several processes start at once). ``ns`` is the key
# prefix, so apps sharing a database never meet. Times are the server's clock
# (clock_timestamp(), not now(): inside your long transaction now() stands still).
_SCHEMA = r"""
CREATE TABLE IF NOT EXISTS lilya_channel (
  ns text NOT NULL, name text NOT NULL, epoch text NOT NULL, top bigint NOT NULL,
  expires_at timestamptz, PRIMARY KEY (ns, name));
CREATE TABLE IF NOT EXISTS lilya_channel_message (
  ns text NOT NULL, name text NOT NULL, epoch text NOT NULL, "offset" bigint NOT NULL,
  tag text NOT NULL, payload bytea NOT NULL, message_id text, by_ref boolean NOT NULL,
  created_at timestamptz NOT NULL, PRIMARY KEY (ns, name, epoch, "offset"));
CREATE INDEX IF NOT EXISTS lilya_channel_message_id
  ON lilya_channel_message (ns, name, epoch, message_id) WHERE message_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS lilya_channel_member (
  ns text NOT NULL, name text NOT NULL, member text NOT NULL, info text NOT NULL,
  expires_at timestamptz NOT NULL, PRIMARY KEY (ns, name, member));

-- The channel's epoch and top; a new epoch if it is unknown or its history expired.
CREATE OR REPLACE FUNCTION lilya_channel_head(p_ns text, p_name text, p_epoch text,
  OUT o_epoch text, OUT o_top bigint) LANGUAGE plpgsql AS $$
DECLARE v_expires timestamptz;
BEGIN
  SELECT c.epoch, c.top, c.expires_at INTO o_epoch, o_top, v_expires
    FROM lilya_channel c WHERE c.ns = p_ns AND c.name = p_name;
  IF FOUND AND (v_expires IS NULL OR v_expires > clock_timestamp()) THEN RETURN; END IF;
  INSERT INTO lilya_channel AS c (ns, name, epoch, top, expires_at)
    VALUES (p_ns, p_name, p_epoch, 0, NULL)
    ON CONFLICT (ns, name) DO UPDATE SET epoch = p_epoch, top = 0, expires_at = NULL
      WHERE c.expires_at IS NOT NULL AND c.expires_at <= clock_timestamp()
    RETURNING c.epoch, c.top INTO o_epoch, o_top;
  IF FOUND THEN
    DELETE FROM lilya_channel_message m
      WHERE m.ns = p_ns AND m.name = p_name AND m.epoch <> o_epoch;
  ELSE
    SELECT c.epoch, c.top INTO o_epoch, o_top
      FROM lilya_channel c WHERE c.ns = p_ns AND c.name = p_name;
  END IF;
END $$;

-- One publish. p_inline: the notification's text after "epoch\noffset\n",
-- or NULL to send the message by reference.
CREATE OR REPLACE FUNCTION lilya_channel_publish(p_ns text, p_name text, p_epoch text,
  p_ttl_ms bigint, p_size bigint, p_tag text, p_payload bytea, p_id text, p_notify text,
  p_inline text, OUT o_epoch text, OUT o_offset bigint, OUT o_duplicate boolean)
LANGUAGE plpgsql AS $$
DECLARE v_seen bigint; v_fresh boolean;
BEGIN
  o_duplicate := false;
  -- Locks the channel's row until commit: offsets go out one at a time, and
  -- notifications in commit order are in offset order.
  INSERT INTO lilya_channel AS c (ns, name, epoch, top, expires_at)
    VALUES (p_ns, p_name, p_epoch, 0, NULL)
    ON CONFLICT (ns, name) DO UPDATE SET
      epoch = CASE WHEN c.expires_at <= clock_timestamp() THEN p_epoch ELSE c.epoch END,
      top = CASE WHEN c.expires_at <= clock_timestamp() THEN 0 ELSE c.top END
    RETURNING c.epoch, c.top INTO o_epoch, o_offset;
  IF o_epoch = p_epoch THEN
    DELETE FROM lilya_channel_message m
      WHERE m.ns = p_ns AND m.name = p_name AND m.epoch <> o_epoch;
  END IF;
  IF p_id IS NOT NULL AND p_size > 0 THEN
    SELECT m."offset" INTO v_seen FROM lilya_channel_message m
      WHERE m.ns = p_ns AND m.name = p_name AND m.epoch = o_epoch AND m.message_id = p_id
        AND m."offset" > o_offset - p_size;
    IF FOUND THEN o_offset := v_seen; o_duplicate := true; RETURN; END IF;
  END IF;
  o_offset := o_offset + 1;
  UPDATE lilya_channel c SET top = o_offset, expires_at = CASE WHEN p_ttl_ms > 0
      THEN clock_timestamp() + p_ttl_ms * interval '1 millisecond' END
    WHERE c.ns = p_ns AND c.name = p_name;
  IF p_size > 0 OR p_inline IS NULL THEN
    INSERT INTO lilya_channel_message VALUES (p_ns, p_name, o_epoch, o_offset, p_tag,
      p_payload, CASE WHEN p_size > 0 THEN p_id END, p_inline IS NULL, clock_timestamp());
  END IF;
  -- The history window; rows sent by reference stay a minute for their readers.
  DELETE FROM lilya_channel_message m
    WHERE m.ns = p_ns AND m.name = p_name AND m.epoch = o_epoch
      AND m."offset" <= o_offset - p_size
      AND (NOT m.by_ref OR m.created_at < clock_timestamp() - interval '60 seconds');
  PERFORM pg_notify(p_notify, o_epoch || E'\n' || o_offset || E'\n' || coalesce(p_inline, 'r'));
END $$;

-- Announce a join ('j') or leave ('l') of p_member with p_info (JSON text).
CREATE OR REPLACE FUNCTION lilya_channel_announce(p_ns text, p_name text, p_epoch text,
  p_notify text, p_kind text, p_member text, p_info text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE v_head record;
BEGIN
  SELECT * INTO v_head FROM lilya_channel_head(p_ns, p_name, p_epoch);
  PERFORM pg_notify(p_notify, v_head.o_epoch || E'\n' || v_head.o_top || E'\n' || p_kind
    || json_build_object('member', p_member, 'info', p_info::json)::text);
END $$;

-- Drop members past their expiry, announcing each leave; returns how many.
CREATE OR REPLACE FUNCTION lilya_channel_sweep(p_ns text, p_name text, p_epoch text,
  p_notify text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v_dead record; v_count bigint := 0;
BEGIN
  FOR v_dead IN DELETE FROM lilya_channel_member m
      WHERE m.ns = p_ns AND m.name = p_name AND m.expires_at <= clock_timestamp()
      RETURNING m.member, m.info LOOP
    PERFORM lilya_channel_announce(p_ns, p_name, p_epoch, p_notify, 'l', v_dead.member,
      v_dead.info);
    v_count := v_count + 1;
  END LOOP;
  RETURN v_count;
END $$;

-- Re-add (not only extend) members: restores them after the table was emptied.
CREATE OR REPLACE FUNCTION lilya_channel_refresh(p_ns text, p_name text, p_epoch text,
  p_notify text, p_ttl_ms bigint, p_members text[], p_infos text[]) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO lilya_channel_member AS m (ns, name, member, info, expires_at)
    SELECT p_ns, p_name, u.member, u.info,
        clock_timestamp() + p_ttl_ms * interval '1 millisecond'
      FROM unnest(p_members, p_infos) AS u(member, info)
    ON CONFLICT (ns, name, member) DO UPDATE SET expires_at = excluded.expires_at;
  RETURN lilya_channel_sweep(p_ns, p_name, p_epoch, p_notify);
END $$;
"""

_JOIN = """
INSERT INTO lilya_channel_member AS m (ns, name, member, info, expires_at)
  VALUES ($1, $2, $3, $4, clock_timestamp() + $5 * interval '1 millisecond')
  ON CONFLICT (ns, name, member) DO UPDATE SET info = excluded.info,
    expires_at = excluded.expires_at
"""
_ANNOUNCE = "SELECT lilya_channel_announce($1, $2, $3, $4, $5, $6, $7)"
_LEAVE = """
WITH gone AS (
  DELETE FROM lilya_channel_member m WHERE m.ns = $1 AND m.name = $2 AND m.member = $5
  RETURNING m.info)
SELECT lilya_channel_announce($1, $2, $3, $4, 'l', $5, gone.info) FROM gone
"""
_PUBLISH = "SELECT * FROM lilya_channel_publish($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
_HEAD = "SELECT * FROM lilya_channel_head($1, $2, $3)"
_FIRST = """
SELECT min(m."offset") FROM lilya_channel_message m
  WHERE m.ns = $1 AND m.name = $2 AND m.epoch = $3 AND m."offset" > $4
"""
_AFTER = """
SELECT m."offset", m.tag, m.payload FROM lilya_channel_message m
  WHERE m.ns = $1 AND m.name = $2 AND m.epoch = $3 AND m."offset" > $4
  ORDER BY m."offset" LIMIT $5
"""
_LAST = """
SELECT * FROM (SELECT m."offset", m.tag, m.payload FROM lilya_channel_message m
  WHERE m.ns = $1 AND m.name = $2 AND m.epoch = $3 AND m."offset" > $4
  ORDER BY m."offset" DESC LIMIT $5) AS newest ORDER BY "offset"
"""
_BY_REF = """
SELECT m.tag, m.payload FROM lilya_channel_message m
  WHERE m.ns = $1 AND m.name = $2 AND m.epoch = $3 AND m."offset" = $4
"""
_PRESENCE = """
SELECT m.member, m.info FROM lilya_channel_member m
  WHERE m.ns = $1 AND m.name = $2 AND m.expires_at > clock_timestamp()
"""

_KINDS: dict[str, EventType] = {"m": "message", "j": "join", "l": "leave"}

#: Errors that mean "Postgres is not reachable right now" rather than a bug:
#: the network, a connection that died, and the server shutting down or not
#: yet accepting connections (SQLSTATE classes 08 and 57).
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.CannotConnectNowError,
)


def mask_password(url: str) -> str:
    """Return *url* with its password replaced by ``***``, fit for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))


class PostgresBackend(Backend):
    """Channels shared through one PostgreSQL database by every process that uses it."""

    def __init__(self, url: str, settings: BackendSettings) -> None:
        # asyncpg reads libpq's URL form; "postgresql" and "postgres" both work.
        self._url = url
        self.safe_url = mask_password(url)
        self._size = settings.history_size
        ttl = settings.history_ttl
        self._ttl_ms = 0 if ttl is None else max(1, round(ttl * 1000))
        self._ns = settings.key_prefix
        self._first_delay, self._max_delay = settings.reconnect_delay
        self._pool: asyncpg.Pool | None = None
        self._sink: Sink | None = None
        self._listener: asyncpg.Connection | None = None
        self._listener_lock: anyio.Lock | None = None
        # notification channel -> lilya channel, for every channel we listen to.
        self._wanted: dict[str, str] = {}
        self._inbox: deque[tuple[str, str]] = deque()
        self._wake: anyio.Event | None = None
        self._lost = False
        #: Seconds of silence after which the listener pings the server.
        self._ping_every = 5.0

    # -- plumbing ------------------------------------------------------------

    def _notify_name(self, channel: str) -> str:
        digest = hashlib.sha256(f"{self._ns}\0{channel}".encode()).hexdigest()[:40]
        return f"lilya_{digest}"

    async def _call(self, operation: str, awaitable: Awaitable[_T]) -> _T:
        try:
            return await awaitable
        except Exception as exc:
            raise self._translate(operation, exc) from exc

    def _translate(self, operation: str, exc: Exception) -> Exception:
        """The lilya error for a driver's *exc*; anything else is returned as it is."""
        if isinstance(exc, (*_UNAVAILABLE, asyncpg.InterfaceError)):
            # InterfaceError: "the pool is closing", "connection is closed".
            return BackendUnavailableError(self.safe_url, operation, exc)
        if isinstance(exc, asyncpg.PostgresError):
            return BackendError(self.safe_url, operation, exc)
        return exc

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresBackend used before connect().")
        return self._pool

    # -- lifecycle -------------------------------------------------------------

    async def connect(self, sink: Sink, task_group: TaskGroup) -> None:
        self._sink = sink
        self._listener_lock = anyio.Lock()
        self._wake = anyio.Event()
        pool: asyncpg.Pool = await self._call(
            "connect",
            asyncpg.create_pool(self._url, min_size=1, max_size=10, timeout=5.0),
        )
        self._pool = pool
        try:
            async with pool.acquire() as connection, connection.transaction():
                # One process at a time creates the schema (the key is arbitrary
                # but fixed: lilya's channels).
                await self._call("create tables", connection.execute(_LOCK_SCHEMA))
                await self._call("create tables", connection.execute(_SCHEMA))
            self._listener = await self._open_listener()
        except BaseException:
            await self._close_pool()
            raise
        task_group.start_soon(self._listen_forever)

    async def disconnect(self) -> None:
        await self._drop_listener()
        await self._close_pool()
        self._sink = None
        self._wanted.clear()

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5.0) as scope:
                await pool.close()
            if scope.cancelled_caught:  # pragma: no cover - a server that hangs at close
                pool.terminate()

    # -- the LISTEN connection --------------------------------------------------------

    async def _open_listener(self) -> asyncpg.Connection:
        connection = await self._call("listen", asyncpg.connect(self._url, timeout=5.0))
        self._lost = False
        connection.add_termination_listener(self._on_terminated)
        try:
            for name in list(self._wanted):
                await self._call("listen", connection.add_listener(name, self._on_notify))
        # The server dying between the connect and a LISTEN: no test stages it on demand.
        except BaseException:  # pragma: no cover
            connection.terminate()
            raise
        return connection

    def _on_notify(self, connection: Any, pid: int, name: str, payload: str) -> None:
        self._inbox.append((name, payload))
        if self._wake is not None:
            self._wake.set()

    def _on_terminated(self, connection: Any) -> None:
        self._lost = True
        if self._wake is not None:
            self._wake.set()

    async def _drop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.terminate()

    async def _listen_forever(self) -> None:
        """Deliver notifications until cancelled, reconnecting with backoff.

        It never raises: an exception here would cancel the app's lifespan
        task through the task group, so every failure becomes a reconnect.
        """
        delay = self._first_delay
        resync = False
        while True:
            try:
                if self._listener is None:
                    self._listener = await self._open_listener()
                    delay = self._first_delay
                if resync and self._sink is not None:
                    # LISTEN is back; what was sent meanwhile is in the table.
                    await self._sink.resync()
                await self._pump()
            except BackendUnavailableError as exc:
                logger.warning("Postgres LISTEN lost (%s); reconnecting in %.2fs", exc, delay)
            except _UNAVAILABLE as exc:  # a ping the server took and never answered
                logger.warning("Postgres LISTEN lost (%s); reconnecting in %.2fs", exc, delay)
            except Exception:
                logger.exception("Postgres listener failed; reconnecting in %.2fs", delay)
            await self._drop_listener()
            self._inbox.clear()
            resync = True
            await anyio.sleep(delay)
            delay = min(delay * 2, self._max_delay)

    async def _pump(self) -> None:
        while True:
            while self._inbox and not self._lost:
                name, payload = self._inbox.popleft()
                await self._handle(name, payload)
            if self._lost:
                raise BackendUnavailableError(self.safe_url, "listen", None)
            # The inbox is empty and the connection alive here (nothing awaited
            # since the checks above, so no callback ran): wait for either.
            wake = self._wake = anyio.Event()
            # A silent network (no FIN, no RST) is found by a ping every few seconds.
            with anyio.move_on_after(self._ping_every) as idle:
                await wake.wait()
            if idle.cancelled_caught:
                await self._ping()

    async def _ping(self) -> None:
        listener = self._listener
        if listener is None:  # pragma: no cover - the pump runs only with a listener
            raise BackendUnavailableError(self.safe_url, "listen", None)
        async with self._require_lock():
            with anyio.fail_after(5.0):
                await self._call("listen", listener.execute("SELECT 1"))

    async def _handle(self, name: str, payload: str) -> None:
        channel = self._wanted.get(name)
        sink = self._sink
        if channel is None or sink is None:
            return  # a channel we stopped listening to
        try:
            epoch, offset_text, rest = payload.split("\n", 2)
            offset = int(offset_text)
            kind = rest[:1]
            if kind not in ("m", "r", "j", "l"):
                raise ValueError(kind)
        except ValueError:
            # Someone else's NOTIFY on our channel's name: nothing of ours is in it.
            logger.warning("Ignored a notification lilya did not write on %r: %.80r", name, payload)
            return
        if kind in ("j", "l"):
            sink.deliver(Event(channel, offset, epoch, loads(rest[1:], "text"), _KINDS[kind]))
            return
        await sink.ready(channel)
        if kind == "r":
            row = await self._call(
                "read a message",
                self._require_pool().fetchrow(_BY_REF, self._ns, channel, epoch, offset),
            )
            if row is None:
                # Gone before we read it (a listener over a minute behind):
                # catching up from history turns that into a reset, not a hole.
                logger.warning(
                    "Message %d of %r was gone before it could be read; resyncing.",
                    offset,
                    channel,
                )
                await sink.resync()
                return
            data = decode(row["tag"], bytes(row["payload"]))
        else:
            tag, text = rest[1:2], rest[2:]
            data = base64.b64decode(text) if tag == TAG_BYTES else decode(tag, text.encode())
        sink.deliver(Event(channel, offset, epoch, data))

    def _require_lock(self) -> anyio.Lock:
        lock = self._listener_lock
        # listen, unlisten and the ping run only once connect() made a
        # listener, and it made the lock first.
        if lock is None:  # pragma: no cover
            raise RuntimeError("PostgresBackend used before connect().")
        return lock

    async def listen(self, channel: str) -> None:
        name = self._notify_name(channel)
        self._wanted[name] = channel
        listener = self._listener
        if listener is None or self._lost:
            raise BackendUnavailableError(self.safe_url, "listen", None)
        async with self._require_lock():
            await self._call("listen", listener.add_listener(name, self._on_notify))

    async def unlisten(self, channel: str) -> None:
        name = self._notify_name(channel)
        self._wanted.pop(name, None)
        listener = self._listener
        if listener is not None and not self._lost:
            async with self._require_lock():
                await self._call("unlisten", listener.remove_listener(name, self._on_notify))

    # -- storage -------------------------------------------------------------------

    def _publish_args(
        self, channel: str, tag: str, payload: bytes, message_id: str | None
    ) -> list[Any]:
        inline: str | None
        if tag == TAG_BYTES:
            inline = "m" + tag + base64.b64encode(payload).decode()
        else:
            inline = "m" + tag + payload.decode()
        # The limit is in bytes, and a character of text may take four.
        if len(inline) * 4 > _INLINE_LIMIT and len(inline.encode()) > _INLINE_LIMIT:
            inline = None  # by reference: too long for NOTIFY
        elif "\0" in inline:
            inline = None  # by reference: NOTIFY cannot carry a NUL
        return [
            self._ns, channel, secrets.token_hex(8), self._ttl_ms, self._size, tag, payload,
            message_id, self._notify_name(channel), inline,
        ]  # fmt: skip

    def _event(self, channel: str, tag: str, payload: bytes, data: Any, row: Any) -> Event:
        value = data if tag != TAG_JSON else decode(tag, payload)
        return Event(channel, int(row["o_offset"]), row["o_epoch"], value)

    async def publish(
        self, channel: str, tag: str, payload: bytes, data: Any, message_id: str | None
    ) -> Event:
        args = self._publish_args(channel, tag, payload, message_id)
        pool = self._require_pool()
        connection = await self._call("publish", pool.acquire(timeout=5.0))
        try:
            row = await connection.fetchrow(_PUBLISH, *args)
        except _UNAVAILABLE as exc:
            # Sent, and the answer lost: it may have committed.
            raise PublishOutcomeUnknownError(self.safe_url, channel, message_id, exc) from exc
        except Exception as exc:
            raise self._translate("publish", exc) from exc
        finally:
            with anyio.CancelScope(shield=True):
                await pool.release(connection)
        return self._event(channel, tag, payload, data, row)

    async def publish_in_transaction(
        self,
        connection: Any,
        channel: str,
        tag: str,
        payload: bytes,
        data: Any,
        message_id: str | None,
    ) -> Event:
        if not callable(getattr(connection, "fetchrow", None)) or not callable(
            getattr(connection, "is_in_transaction", None)
        ):
            raise TypeError(
                "connection must be an asyncpg connection (or a pool's), got "
                f"{type(connection).__name__}: {connection!r:.80}."
            )
        if not connection.is_in_transaction():
            raise RuntimeError(
                "publish(..., connection=conn) publishes when your transaction commits, but "
                "conn is not in one; open it with `async with conn.transaction():` first."
            )
        args = self._publish_args(channel, tag, payload, message_id)
        row = await self._call("publish", connection.fetchrow(_PUBLISH, *args))
        return self._event(channel, tag, payload, data, row)

    async def history(self, channel: str, *, after: int | None, limit: int | None) -> HistoryPage:
        pool = self._require_pool()
        for attempt in range(3):
            try:
                # One snapshot for the head and the messages, so the page
                # never holds a message beyond its own top.
                async with (
                    pool.acquire(timeout=5.0) as connection,
                    connection.transaction(isolation="repeatable_read"),
                ):
                    return await self._read_page(connection, channel, after, limit)
            except asyncpg.exceptions.SerializationError:
                # Two processes created the channel at once; the next try sees it.
                if attempt == 2:  # pragma: no cover - three collisions in a row
                    raise
            except Exception as exc:
                raise self._translate("read history", exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read_page(
        self, connection: Any, channel: str, after: int | None, limit: int | None
    ) -> HistoryPage:
        head = await connection.fetchrow(_HEAD, self._ns, channel, secrets.token_hex(8))
        epoch, top = head["o_epoch"], int(head["o_top"])
        floor = top - self._size  # rows at or below it linger only for by-reference readers
        first_row = await connection.fetchval(_FIRST, self._ns, channel, epoch, floor)
        first = top + 1 if first_row is None else int(first_row)
        count = top if limit is None else min(limit, top)
        if count == 0:
            rows = []
        elif after is not None:
            rows = await connection.fetch(
                _AFTER, self._ns, channel, epoch, max(after, floor), count
            )
        else:
            rows = await connection.fetch(_LAST, self._ns, channel, epoch, floor, count)
        events = [
            Event(channel, int(row["offset"]), epoch, decode(row["tag"], bytes(row["payload"])))
            for row in rows
        ]
        return HistoryPage(epoch, top, first, events)

    async def _presence_call(self, operation: str, query: str, *args: Any) -> Any:
        pool = self._require_pool()
        return await self._call(operation, pool.fetchval(query, *args))

    def _head_args(self, channel: str) -> list[Any]:
        return [self._ns, channel, secrets.token_hex(8), self._notify_name(channel)]

    async def presence_join(self, channel: str, member: str, info: Any, ttl: float) -> None:
        text = encode_json(info).decode()
        size = len(text.encode())
        if size > MAX_PRESENCE_INFO_BYTES:
            raise ValueError(
                f"Presence info on postgres:// is at most {MAX_PRESENCE_INFO_BYTES} bytes of "
                f"JSON (it rides in a NOTIFY), this one is {size}; keep ids in it, not data."
            )
        pool = self._require_pool()
        connection = await self._call("join", pool.acquire(timeout=5.0))
        try:
            async with connection.transaction():
                await self._call(
                    "join", connection.execute(_JOIN, self._ns, channel, member, text, _ms(ttl))
                )
                await self._call(
                    "join",
                    connection.execute(_ANNOUNCE, *self._head_args(channel), "j", member, text),
                )
        finally:
            with anyio.CancelScope(shield=True):
                await pool.release(connection)

    async def presence_leave(self, channel: str, member: str) -> None:
        await self._call(
            "leave", self._require_pool().execute(_LEAVE, *self._head_args(channel), member)
        )

    async def presence_refresh(self, channel: str, members: Mapping[str, Any], ttl: float) -> None:
        names = list(members)
        infos = [encode_json(members[name]).decode() for name in names]
        await self._presence_call(
            "refresh presence",
            "SELECT lilya_channel_refresh($1, $2, $3, $4, $5, $6, $7)",
            *self._head_args(channel),
            _ms(ttl),
            names,
            infos,
        )

    async def presence(self, channel: str) -> Mapping[str, Any]:
        await self._presence_call(
            "read presence",
            "SELECT lilya_channel_sweep($1, $2, $3, $4)",
            *self._head_args(channel),
        )
        rows = await self._call(
            "read presence", self._require_pool().fetch(_PRESENCE, self._ns, channel)
        )
        return {row["member"]: loads(row["info"], "text") for row in rows}


_LOCK_SCHEMA = "SELECT pg_advisory_xact_lock(7370286254961432913)"


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
