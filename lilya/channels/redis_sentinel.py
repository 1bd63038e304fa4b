"""The Redis Sentinel backend: ``redis+sentinel://host:port[,host:port...]/service[/db]``.

Everything but finding the server is the single-Redis backend
(:mod:`lilya.channels.redis`): the same keys, scripts, pub/sub reader and
recovery. The connections ask the sentinels which server is *service*'s
master each time they (re)connect, so after a failover the pub/sub reader and
the next publishes reach the promoted replica, and the owning
:class:`~lilya.channels.Channels` catches up from history there, or sends
``reset`` where the new master's history cannot cover what subscribers saw
(replication is asynchronous: a failover can lose the last writes).
"""

from __future__ import annotations

from redis.asyncio.connection import ConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from lilya.channels.backend import BackendSettings
from lilya.channels.redis import RedisBackend, parse_hosts_url
from lilya.exceptions import ImproperlyConfigured

__all__ = ["RedisSentinelBackend"]


class RedisSentinelBackend(RedisBackend):
    """Channels on the master that a group of Redis sentinels names."""

    def __init__(self, url: str, settings: BackendSettings) -> None:
        super().__init__(url, settings)
        self._sentinels, path, self._settings = parse_hosts_url(url)
        service, _, db = path.partition("/")
        if not service or (db and not db.isdigit()) or "/" in db:
            raise ImproperlyConfigured(
                f"{self.safe_url!r} must name the service the sentinels watch, and "
                "optionally a database: redis+sentinel://host:26379,host2:26379/mymaster/0."
            )
        self._service = service
        self._db = int(db or 0)
        self._sentinel: Sentinel | None = None

    async def _close_client(self) -> None:
        await super()._close_client()
        sentinel, self._sentinel = self._sentinel, None
        if sentinel is not None:
            for client in sentinel.sentinels:
                await client.aclose()

    def _make_pool(self) -> ConnectionPool:
        # The URL's password is the master's; sentinels are asked without one.
        timeouts = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0}
        sentinel = Sentinel(self._sentinels, sentinel_kwargs=dict(timeouts))  # type: ignore[no-untyped-call]
        self._sentinel = sentinel
        return SentinelConnectionPool(  # type: ignore[no-untyped-call]
            self._service,
            sentinel,
            **{**timeouts, **self._settings},
            db=self._db,
            retry=Retry(NoBackoff(), 0),
        )
