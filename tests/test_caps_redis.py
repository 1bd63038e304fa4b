"""Connection caps counted in a real Redis: shared by apps, leases that expire, Redis away.

Two apps sharing one :class:`RedisCounter` URL stand for two workers here;
``tests/test_caps_server.py`` runs two real server processes and kills one.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
import redis

from lilya.apps import Lilya
from lilya.caps import ConnectionCaps, RedisCounter, Refusal
from lilya.routing import WebSocketPath
from lilya.testclient import AsyncTestClient, WebSocketDenialResponse
from lilya.websockets import WebSocket
from tests.channels.redis_server import redis_url_for_tests
from tests.support.asgi import websocket_scope

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

#: A port nothing listens on: a Redis that does not answer.
AWAY = "redis://127.0.0.1:1/0"


@pytest.fixture
def anyio_backend() -> str:
    """redis-py's async client is asyncio's."""
    return "asyncio"


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_url_for_tests(6) as url:
        yield url


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted after it."""
    name = f"lilya:test-caps:{uuid.uuid4().hex}:"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{name}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


async def hold(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


def worker(counter: RedisCounter, caps: ConnectionCaps | None = None) -> Lilya:
    return Lilya(
        routes=[WebSocketPath("/", hold)],
        connection_caps=caps or ConnectionCaps(),
        connection_counter=counter,
    )


@contextlib.asynccontextmanager
async def opened(client: AsyncTestClient, count: int) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(count):
            session = await stack.enter_async_context(client.websocket_connect("/"))
            await session.send_text("ping")
            assert await session.receive_text() == "ping"
        yield


async def refused(client: AsyncTestClient) -> WebSocketDenialResponse:
    with pytest.raises(WebSocketDenialResponse) as info:
        async with client.websocket_connect("/"):
            pass  # pragma: no cover  # the handshake is refused
    return info.value


async def test_two_apps_sharing_a_redis_counter_share_the_per_address_count(
    redis_url: str, prefix: str
) -> None:
    counter = RedisCounter(redis_url, key_prefix=prefix)
    first, second = (
        worker(counter, ConnectionCaps(per_address=3)),
        worker(counter, ConnectionCaps(per_address=3)),
    )
    address = ("203.0.113.9", 1)
    async with opened(AsyncTestClient(first, client=address), 2):
        async with opened(AsyncTestClient(second, client=address), 1):
            assert await counter.count("address:203.0.113.9") == 3
            denied = await refused(AsyncTestClient(first, client=address))
            # Only the address is shared: each app counts its own process.
            assert first.connection_counter.counts == {"process": 2}
        assert await counter.count("address:203.0.113.9") == 2
        async with opened(AsyncTestClient(second, client=address), 1):
            pass
    assert denied.status_code == 429
    assert "your address already holds 3 WebSockets" in denied.text
    assert await counter.count("address:203.0.113.9") == 0
    assert counter.leases == set()
    await counter.aclose()


async def test_users_are_counted_in_redis_too_and_uncapped_keys_still_count(
    redis_url: str, prefix: str
) -> None:
    counter = RedisCounter(redis_url, key_prefix=prefix)
    scope = websocket_scope()
    scope["user"] = type("User", (), {"is_authenticated": True, "display_name": "ann"})()
    caps = ConnectionCaps(per_address=None, per_user=1)
    app = worker(counter)
    slot = await app.connection_counter.acquire(scope, caps)
    assert not isinstance(slot, Refusal)
    assert await counter.count("user:ann") == 1
    assert await counter.count("address:127.0.0.1") == 1  # no cap, still counted
    again = await app.connection_counter.acquire(scope, caps)
    assert isinstance(again, Refusal)
    assert (again.kind, again.status_code, again.who) == ("per_user", 429, "user 'ann'")
    await slot.release()
    assert await counter.count("user:ann") == 0
    assert app.connection_counter.counts == {}
    await counter.aclose()


async def test_a_lease_nobody_refreshes_expires_after_its_ttl(redis_url: str, prefix: str) -> None:
    # A worker killed mid-stream: its lease is in Redis, and nobody refreshes it.
    dead = RedisCounter(redis_url, key_prefix=prefix, ttl=0.5)
    lease = await dead.acquire([("address:198.51.100.4", 1)])
    assert lease is not None
    assert not isinstance(lease, int)
    await dead.aclose()  # the kill: no more refreshes, no release
    alive = RedisCounter(redis_url, key_prefix=prefix, ttl=0.5)
    assert await alive.acquire([("address:198.51.100.4", 1)]) == 0  # full
    await anyio.sleep(0.7)
    assert await alive.count("address:198.51.100.4") == 0
    taken = await alive.acquire([("address:198.51.100.4", 1)])
    assert taken is not None
    assert not isinstance(taken, int)
    await alive.release(taken)
    await alive.aclose()


async def test_a_living_connections_lease_is_refreshed_past_its_ttl(
    redis_url: str, prefix: str
) -> None:
    counter = RedisCounter(redis_url, key_prefix=prefix, ttl=0.3)
    app = worker(counter, ConnectionCaps(per_address=1))
    client = AsyncTestClient(app)
    async with opened(client, 1):
        await anyio.sleep(1.0)  # over three ttls: only the refreshes keep it
        assert await counter.count("address:testclient") == 1
        assert (await refused(client)).status_code == 429
    assert await counter.count("address:testclient") == 0
    assert counter._refresher is None  # no lease left: nothing refreshes
    await counter.aclose()


async def test_redis_away_fails_open_and_logs_once_until_it_answers_again(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    counter = RedisCounter(AWAY, key_prefix=prefix, timeout=0.5)
    app = worker(counter, ConnectionCaps(per_address=1))
    client = AsyncTestClient(app)
    caplog.set_level(logging.INFO, logger="lilya")
    async with opened(client, 3):  # over per_address: nobody can count it
        assert app.connection_counter.counts == {"process": 3}
    assert app.connection_counter.counts == {}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "did not answer while counting a handshake" in warnings[0]
    assert "let in under the per-process cap only" in warnings[0]
    assert "127.0.0.1:1/0" in warnings[0]
    # Redis answers again (here: the counter is pointed at one that does).
    await counter.aclose()
    counter.url = redis_url
    async with opened(client, 1):
        pass
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "The connection counter's Redis answers again." in infos
    assert not counter.failing
    await counter.aclose()


async def test_redis_away_fails_closed_with_503_naming_on_error(prefix: str) -> None:
    counter = RedisCounter(AWAY, key_prefix=prefix, on_error="closed", timeout=0.5)
    app = worker(counter)
    denied = await refused(AsyncTestClient(app))
    assert denied.status_code == 503
    assert denied.headers["retry-after"] == "5"
    assert 'RedisCounter(..., on_error="open")' in denied.text
    assert "(Lilya(connection_counter=RedisCounter(...)))" in denied.text
    assert "connection_caps" not in denied.text
    assert app.connection_counter.counts == {}
    await counter.aclose()


async def test_a_release_or_refresh_while_redis_is_away_is_logged_and_the_slot_still_freed(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    counter = RedisCounter(redis_url, key_prefix=prefix, timeout=0.5, ttl=0.6)
    app = worker(counter)
    slot = await app.connection_counter.acquire(websocket_scope(), ConnectionCaps())
    assert not isinstance(slot, Refusal)
    await counter.aclose()
    counter.url = AWAY  # Redis goes away
    await counter.refresh()
    caplog.set_level(logging.WARNING, logger="lilya")
    await slot.release()
    assert app.connection_counter.counts == {}
    assert counter.failing
    # The lease it could not remove expires by itself.
    await anyio.sleep(0.8)
    await counter.aclose()
    counter.url = redis_url
    assert await counter.count("address:127.0.0.1") == 0
    await counter.refresh()  # nothing left to refresh: no call at all
    await counter.aclose()


async def test_closing_a_counter_that_never_connected_does_nothing() -> None:
    counter = RedisCounter(AWAY)
    await counter.aclose()
    assert counter.leases == set()


def test_redis_counter_under_trio_says_it_needs_asyncio() -> None:
    counter = RedisCounter("redis://127.0.0.1:6379/6")

    async def attempt() -> None:
        await counter.acquire([("address:x", 1)])

    with pytest.raises(RuntimeError, match="RedisCounter needs asyncio"):
        anyio.run(attempt, backend="trio")
