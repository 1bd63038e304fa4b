"""lilya.client against the real ChannelsEndpoint, in process (asyncio and trio)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from lilya import client as lc
from lilya.testclient import AsyncTestClient
from tests.support.client_apps import build

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def endpoint() -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(build("memory://")) as test_client:
        yield test_client


async def take(sub: lc.Subscription, n: int) -> list[lc.Event]:
    got: list[lc.Event] = []
    with anyio.fail_after(5):
        async for event in sub:
            got.append(event)
            if len(got) == n:
                break
    return got


async def test_every_request_type_against_the_endpoint() -> None:
    async with endpoint() as app, lc.connect("/ws", test_client=app, token="good") as client:
        assert client.user == "good" and client.expires_at is None
        sub = await client.subscribe("room", presence=True)
        position = await client.publish("room", {"text": "hi"})
        events = await take(sub, 2)  # the join of this very client, then the message
        assert isinstance(events[0], lc.Join)
        assert isinstance(events[1], lc.Message) and events[1].position == position
        assert await client.call("echo", [1, "two"]) == [1, "two"]
        with pytest.raises(lc.NotFound):
            await client.call("missing")
        assert len(await client.presence("room")) == 1
        history = await client.history("room")
        assert [m.data for m in history.messages] == [{"text": "hi"}]
        await sub.unsubscribe()


async def test_a_hundred_channels_over_one_socket_each_get_their_message_at_their_position() -> (
    None
):
    async with endpoint() as app, lc.connect("/ws", test_client=app, token="good") as client:
        subs = [await client.subscribe(f"ch:{i}") for i in range(100)]
        for i in range(100):
            for n in range(i % 3 + 1):
                await client.publish(f"ch:{i}", {"ch": i, "n": n})
        for i, sub in enumerate(subs):
            got = await take(sub, i % 3 + 1)
            assert [(e.channel, e.offset, e.data) for e in got] == [  # type: ignore[union-attr]
                (f"ch:{i}", n + 1, {"ch": i, "n": n}) for n in range(i % 3 + 1)
            ]
        assert client.connections == 1


async def test_a_publish_sent_twice_with_one_message_id_is_delivered_once() -> None:
    async with endpoint() as app, lc.connect("/ws", test_client=app, token="good") as client:
        sub = await client.subscribe("room")
        first = await client.publish("room", "once", message_id="m-1")
        again = await client.publish("room", "once", message_id="m-1")
        assert first == again
        await client.publish("room", "next")
        assert [e.data for e in await take(sub, 2)] == ["once", "next"]  # type: ignore[union-attr]


async def test_an_expired_token_closes_4001_and_get_token_brings_the_client_back() -> None:
    short = f"short:{time.time() + 0.3}"
    # The refresh gets the same short token (the server keeps its expiry), so 4001 comes.
    tokens = iter([short, short, "good"])
    async with endpoint() as app:
        client = lc.connect(
            "/ws",
            test_client=app,
            get_token=lambda: next(tokens),
            reconnect_delay=(0.01, 0.05),
        )
        closes: list[lc.State] = []
        client._on_state = closes.append
        async with client:
            sub = await client.subscribe("room")
            await client.publish("room", 1)
            await take(sub, 1)
            with anyio.fail_after(5):
                while client.connections < 2 or client.state is not lc.State.CONNECTED:
                    await anyio.sleep(0.01)
            assert client.user == "good"
            await client.publish("room", 2)
            assert [e.data for e in await take(sub, 1)] == [2]  # type: ignore[union-attr]
        assert lc.State.RECONNECTING in closes


async def test_a_static_token_that_expires_stops_the_client_with_4001() -> None:
    async with endpoint() as app:
        token = f"short:{time.time() + 0.2}"
        async with lc.connect("/ws", test_client=app, token=token) as client:
            sub = await client.subscribe("room")
            with pytest.raises(lc.ClientClosed) as info:
                await take(sub, 1)
            assert info.value.code == 4001


async def test_an_expiring_token_is_refreshed_in_time_and_the_socket_stays() -> None:
    tokens = iter([f"short:{time.time() + 0.4}", "good"])
    async with (
        endpoint() as app,
        lc.connect(
            "/ws", test_client=app, get_token=lambda: next(tokens), refresh_margin=0.2
        ) as client,
    ):
        await anyio.sleep(0.6)
        assert client.connections == 1 and client.expires_at is None
        assert await client.call("echo", 1) == 1


async def test_a_bad_token_is_refused_and_the_client_stops() -> None:
    async with endpoint() as app:
        with pytest.raises(lc.ClientClosed) as info:
            async with lc.connect("/ws", test_client=app, token="wrong"):
                pass  # pragma: no cover
        assert info.value.code == 4003


async def test_the_client_answers_the_endpoints_heartbeat_and_keeps_its_socket() -> None:
    app = AsyncTestClient(build("memory://", heartbeat=(0.02, 0.1)))
    client = lc.connect("/ws", test_client=app, token="good", ping_interval=None)
    async with app, client:
        await anyio.sleep(0.5)  # 25 server pings, each to be answered within 0.1 s
        assert client.connections == 1
        assert await client.call("echo", "still here") == "still here"
