"""The Redis Cluster backend: ``redis+cluster://host:port[,host:port...]``.

The same scripts and logic as :mod:`lilya.channels.redis`, routed by slot:

* Every key of a channel, and its pub/sub channel, carries the hash tag
  ``{prefix:channel}``, so one channel lives in one slot and the publish script
  (offset, stream, dedupe ids, live message) runs atomically on one master.
* Live messages go out with sharded pub/sub (``SPUBLISH``/``SSUBSCRIBE``,
  Redis 7): a publish travels within the owning shard only, not to every
  node as ``PUBLISH`` does in a cluster. This process keeps one pub/sub
  connection per master that owns a channel it listens to.
* The slot map comes from ``CLUSTER SLOTS``. A ``MOVED``/``ASK``/
  ``CLUSTERDOWN``/``TRYAGAIN`` reply or a lost node marks it stale, and the
  next command re-reads it. A slot that moves away unsubscribes this
  process's shard channels (Redis sends ``sunsubscribe``), and a master that
  dies drops its connection; either way the readers reconnect to whoever owns
  the slots now and the owning :class:`~lilya.channels.Channels` catches up
  from history, or sends ``reset`` where history cannot cover the gap.

redis-py's cluster client is not used for commands because it retries a
command after a connection error, and a retried publish script could publish
twice; here a failure surfaces as
:class:`~lilya.channels.exceptions.BackendUnavailableError` (not published)
or :class:`~lilya.channels.exceptions.PublishOutcomeUnknownError`, exactly as
on a single Redis.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import anyio
from anyio.abc import TaskGroup
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot

from lilya.channels.backend import BackendSettings, Sink
from lilya.channels.exceptions import BackendUnavailableError
from lilya.channels.redis import _UNAVAILABLE, RedisBackend, Scripts, parse_hosts_url
from lilya.exceptions import ImproperlyConfigured

__all__ = ["RedisClusterBackend"]

logger = logging.getLogger("lilya.channels.redis")


class RedisClusterBackend(RedisBackend):
    """Channels in a Redis Cluster (Redis 7 or later), each channel in one slot."""

    scripts: ClassVar[Scripts] = Scripts.using("SPUBLISH")
    subscribe_command: ClassVar[str] = "SSUBSCRIBE"
    unsubscribe_command: ClassVar[str] = "SUNSUBSCRIBE"
    message_kind: ClassVar[bytes] = b"smessage"
    subscribe_kind: ClassVar[bytes] = b"ssubscribe"
    unsubscribe_kind: ClassVar[bytes] = b"sunsubscribe"

    def __init__(self, url: str, settings: BackendSettings) -> None:
        super().__init__(url, settings)
        self._seeds, path, self._settings = parse_hosts_url(url)
        if path not in ("", "0"):
            raise ImproperlyConfigured(
                f"A Redis Cluster has only database 0, but {self.safe_url!r} asks for "
                f"{path!r}; drop the path."
            )
        self._live_prefix = f"{{{self._prefix}:".encode()
        # (first slot, last slot, "host:port" of its master), from CLUSTER SLOTS.
        self._slots: list[tuple[int, int, str]] = []
        self._known: list[tuple[str, int]] = list(self._seeds)
        self._stale = True
        self._refreshing: anyio.Lock | None = None
        self._pools: dict[str, ConnectionPool] = {}
        self._clients: dict[str, Redis] = {}
        # The pub/sub side: one connection per master, and which carries what.
        self._readers: dict[str, AbstractConnection] = {}
        self._carried_by: dict[str, str] = {}
        # SUNSUBSCRIBEs we sent and Redis has not answered yet, per channel: any
        # other sunsubscribe is Redis telling us the slot moved.
        self._unsubscribing: dict[str, int] = {}
        self._restart: anyio.Event | None = None
        self._pumps: TaskGroup | None = None
        self._task_group: TaskGroup | None = None

    # -- keys and names: one hash tag per channel ---------------------------

    def _keys(self, channel: str) -> list[str]:
        tag = f"{{{self._prefix}:{channel}}}"
        return [f"{tag}:meta", f"{tag}:hist", f"{tag}:pres", f"{tag}:info", f"{tag}:ids"]

    def _live_name(self, channel: str) -> str:
        return f"{{{self._prefix}:{channel}}}"

    def _channel_of(self, live_name: bytes) -> str:
        return live_name[len(self._live_prefix) : -1].decode()

    # -- routing ------------------------------------------------------------------

    def _node_of(self, channel: str) -> str:
        slot = key_slot(self._live_name(channel).encode())
        for first, last, node in self._slots:
            if first <= slot <= last:
                return node
        # No master owns the slot in the map we have (a shard is down).
        self._stale = True
        raise BackendUnavailableError(self.safe_url, f"find the master of slot {slot}", None)

    def _node_pool(self, node: str) -> ConnectionPool:
        pool = self._pools.get(node)
        if pool is None:
            host, _, port = node.rpartition(":")
            options = {
                "socket_connect_timeout": 2.0,
                "socket_timeout": 5.0,
                **self._settings,
                "retry": Retry(NoBackoff(), 0),
            }
            pool = self._pools[node] = ConnectionPool(host=host, port=int(port), **options)
            self._clients[node] = Redis(connection_pool=pool)
        return pool

    def _client_for(self, channel: str) -> Redis:
        node = self._node_of(channel)
        self._node_pool(node)
        return self._clients[node]

    def _pool_for(self, channel: str) -> ConnectionPool:
        return self._node_pool(self._node_of(channel))

    def _lost(self) -> None:
        self._stale = True

    async def _script(self, operation: str, source: str, channel: str, *extra: Any) -> Any:
        await self._refresh_if_stale()
        try:
            return await super()._script(operation, source, channel, *extra)
        except BackendUnavailableError as exc:
            if not isinstance(exc.__cause__, redis_errors.MovedError):
                raise
        # The slot moved for good, and MOVED means the script never ran: ask
        # the new owner, once.
        await self._refresh()
        return await super()._script(operation, source, channel, *extra)

    async def publish(
        self, channel: str, tag: str, payload: bytes, data: Any, message_id: str | None
    ) -> Any:
        await self._refresh_if_stale()
        try:
            return await super().publish(channel, tag, payload, data, message_id)
        except BackendUnavailableError as exc:
            if not isinstance(exc.__cause__, redis_errors.MovedError):
                raise
        await self._refresh()
        return await super().publish(channel, tag, payload, data, message_id)

    async def _refresh_if_stale(self) -> None:
        if self._stale:
            await self._refresh()

    async def _refresh(self) -> None:
        """Re-read the slot map from the first node that answers ``CLUSTER SLOTS``."""
        if self._refreshing is None:
            self._refreshing = anyio.Lock()
        async with self._refreshing:
            if not self._stale:
                return
            failure: BaseException | None = None
            for host, port in self._known:
                client = Redis(
                    host=host,
                    port=port,
                    **{"socket_connect_timeout": 1.0, "socket_timeout": 2.0, **self._settings},
                    retry=Retry(NoBackoff(), 0),
                )
                try:
                    reply = await client.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
                except Exception as exc:
                    failure = exc
                    continue
                finally:
                    await client.aclose()
                self._learn(reply)
                return
            raise BackendUnavailableError(self.safe_url, "read the cluster's slot map", failure)

    def _learn(self, reply: Any) -> None:
        slots: list[tuple[int, int, str]] = []
        known: dict[tuple[str, int], None] = {}
        for first, last, master, *replicas in reply:
            host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
            slots.append((int(first), int(last), f"{host}:{int(master[1])}"))
            known[host, int(master[1])] = None
            for replica in replicas:
                name = replica[0].decode() if isinstance(replica[0], bytes) else str(replica[0])
                known[name, int(replica[1])] = None
        slots.sort()
        self._slots = slots
        # Ask the nodes we know now first, then the seeds (they may come back).
        self._known = [*known, *(seed for seed in self._seeds if seed not in known)]
        self._stale = False

    # -- lifecycle -------------------------------------------------------------

    async def connect(self, sink: Sink, task_group: TaskGroup) -> None:
        self._sink = sink
        self._write_lock = anyio.Lock()
        self._stale = True
        await self._refresh()
        self._task_group = task_group
        task_group.start_soon(self._read_forever, None)

    async def disconnect(self) -> None:
        await self._drop_reader()
        self._sink = None
        self._wanted.clear()
        self._task_group = None
        pools, self._pools = self._pools, {}
        clients, self._clients = self._clients, {}
        self._scripts.clear()
        self._lanes.clear()
        for client in clients.values():
            await client.aclose()
        for pool in pools.values():
            await pool.disconnect()

    # -- the sharded pub/sub readers ------------------------------------------

    async def _drop_reader(self) -> None:
        readers, self._readers = self._readers, {}
        self._carried_by.clear()
        self._unsubscribing.clear()
        self._confirmed.clear()
        for waiter in self._confirm_waiters.values():
            waiter.set()
        self._confirm_waiters.clear()
        with anyio.CancelScope(shield=True):
            for reader in readers.values():
                await reader.disconnect()

    def _unsubscribed(self, channel: str) -> None:
        super()._unsubscribed(channel)
        asked = self._unsubscribing.get(channel, 0)
        if asked:
            # The answer to our own SUNSUBSCRIBE (perhaps followed by a new
            # SSUBSCRIBE already on its way).
            if asked == 1:
                del self._unsubscribing[channel]
            else:
                self._unsubscribing[channel] = asked - 1
            return
        self._carried_by.pop(channel, None)
        if channel in self._wanted:
            # Redis unsubscribes a shard channel whose slot moved to another
            # shard: follow it there (and catch up on what we missed).
            logger.warning("Redis Cluster moved channel %r to another shard; following it", channel)
            self._ask_restart()

    def _ask_restart(self) -> None:
        self._stale = True
        if self._restart is not None:
            self._restart.set()

    async def _read_forever(self, reader: AbstractConnection | None) -> None:
        """Keep one pub/sub connection per master that owns a wanted channel.

        Any failure (a node lost, a slot moved) tears every reader down and
        builds them again from a fresh slot map; after such a restart the
        owning Channels catches up from history. It never raises, as an
        exception here would cancel the app's lifespan task.
        """
        delay = self._first_delay
        reconnected = False
        while True:
            # The pumps never raise, so neither does the group: the failures
            # of the body are caught inside it (a task group would wrap them).
            async with anyio.create_task_group() as pumps:
                self._restart = anyio.Event()
                try:
                    await self._start_readers(pumps, resync=reconnected)
                    delay = self._first_delay
                    await self._restart.wait()
                except (BackendUnavailableError, *_UNAVAILABLE) as exc:
                    logger.warning(
                        "Redis Cluster pub/sub lost (%s); reconnecting in %.2fs", exc, delay
                    )
                # A bug of lilya's, not a server fault: logged, then rebuilt.
                except Exception:  # pragma: no cover
                    logger.exception("Redis Cluster pub/sub failed; reconnecting in %.2fs", delay)
                pumps.cancel_scope.cancel()
            self._pumps = None
            await self._drop_reader()
            reconnected = True
            self._stale = True
            await anyio.sleep(delay)
            delay = min(delay * 2, self._max_delay)

    async def _start_readers(self, pumps: TaskGroup, *, resync: bool) -> None:
        await self._refresh_if_stale()
        by_node: dict[str, list[str]] = {}
        for channel in sorted(self._wanted):
            by_node.setdefault(self._node_of(channel), []).append(channel)
        held: list[Any] = []
        for node, channels in by_node.items():
            reader = await self._reader_for(node)
            async with self._lock():
                await self._call(
                    "subscribe",
                    reader.send_command(self.subscribe_command, *map(self._live_name, channels)),
                )
            self._carried_by.update(dict.fromkeys(channels, node))
            # Hold live messages until every channel has caught up from
            # history (see RedisBackend._pump).
            with anyio.fail_after(5.0):
                while not set(channels) <= self._confirmed:
                    response = await reader.read_response(timeout=math.inf)
                    self._handle(response, held)
        if resync and self._sink is not None:
            await self._sink.resync()
        # A message lands here only between two confirmations of one
        # SSUBSCRIBE (channels of one master): a timing no test can force.
        for response in held:  # pragma: no cover
            self._handle(response, None)
        self._pumps = pumps
        for node, reader in self._readers.items():
            pumps.start_soon(self._pump_node, node, reader)

    async def _reader_for(self, node: str) -> AbstractConnection:
        reader = self._readers.get(node)
        if reader is None:
            reader = self._readers[node] = await self._pubsub_connection(self._node_pool(node))
        return reader

    async def _pump_node(self, node: str, reader: AbstractConnection) -> None:
        try:
            while True:
                response = await reader.read_response(timeout=math.inf)
                await self._take(reader, response)
        except (*_UNAVAILABLE, BackendUnavailableError) as exc:
            logger.warning("Redis Cluster node %s lost (%s); following the failover", node, exc)
        # A bug of lilya's, not a server fault: logged, then rebuilt.
        except Exception:  # pragma: no cover
            logger.exception("Redis Cluster reader of %s failed; reconnecting", node)
        self._ask_restart()

    async def listen(self, channel: str) -> None:
        self._wanted.add(channel)
        pumps = self._pumps
        if pumps is None:
            raise BackendUnavailableError(self.safe_url, "subscribe", None)
        await self._refresh_if_stale()
        node = self._node_of(channel)
        waiter = self._confirm_waiters.setdefault(channel, anyio.Event())
        async with self._lock():
            fresh = node not in self._readers
            reader = await self._reader_for(node)
            self._carried_by[channel] = node
            await self._call(
                "subscribe", reader.send_command(self.subscribe_command, self._live_name(channel))
            )
        if fresh:
            pumps.start_soon(self._pump_node, node, reader)
        with anyio.move_on_after(5.0):
            await waiter.wait()
        if channel not in self._confirmed:
            raise BackendUnavailableError(self.safe_url, "subscribe", None)

    async def unlisten(self, channel: str) -> None:
        self._wanted.discard(channel)
        node = self._carried_by.pop(channel, None)
        reader = None if node is None else self._readers.get(node)
        if reader is not None:
            async with self._lock():
                self._unsubscribing[channel] = self._unsubscribing.get(channel, 0) + 1
                await self._call(
                    "unsubscribe",
                    reader.send_command(self.unsubscribe_command, self._live_name(channel)),
                )
