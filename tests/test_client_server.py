"""lilya.client against real uvicorn processes: kill -9 and restart, refusals, hostile frames.

asyncio only: the network transport is the ``websockets`` library.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest

from lilya import client as lc
from lilya.channels import Channels
from tests.channels.redis_server import delete_keys, redis_url_for_tests
from tests.support import rolling
from tests.support.docs import python_blocks
from tests.support.servers import RunningServer, free_port, raised, serve


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio

APPS = "tests.support.client_apps"


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_url_for_tests(5) as url:
        yield url


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = f"lilya-client-test:{uuid.uuid4().hex}"
    yield name
    delete_keys(redis_url, name)


async def start(stack: contextlib.ExitStack, app: str, **options: object) -> RunningServer:
    """Start a uvicorn serving *app* off the event loop (the client keeps running)."""

    def run() -> RunningServer:
        return stack.enter_context(serve(f"{APPS}:{app}", "uvicorn-websockets", **options))  # type: ignore[arg-type]

    return await anyio.to_thread.run_sync(run)


async def until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    with anyio.fail_after(seconds):
        while not predicate():
            await anyio.sleep(0.01)


async def take(sub: lc.Subscription, n: int, seconds: float = 10.0) -> list[lc.Message]:
    got: list[lc.Message] = []
    with anyio.fail_after(seconds):
        async for event in sub:
            assert isinstance(event, lc.Message), event
            got.append(event)
            if len(got) == n:
                break
    return got


@pytest.mark.redis
async def test_after_a_kill_9_and_a_restart_every_message_arrives_once_in_order(
    redis_url: str, prefix: str
) -> None:
    env = {"LILYA_CLIENT_CHANNELS": redis_url, "LILYA_CLIENT_PREFIX": prefix}
    port = free_port()
    states: list[lc.State] = []
    with contextlib.ExitStack() as first, contextlib.ExitStack() as second:
        server = await start(first, "app", env=env, port=port)
        client = lc.connect(
            f"ws://127.0.0.1:{port}/ws",
            token="good",
            reconnect_delay=(0.05, 0.5),
            on_state=states.append,
        )
        async with client:
            sub = await client.subscribe("room")
            for n in range(1, 6):
                await client.publish("room", n)
            assert [m.data for m in await take(sub, 5)] == [1, 2, 3, 4, 5]

            server.process.send_signal(signal.SIGKILL)
            server.process.wait(10)
            await until(lambda: client.state is lc.State.RECONNECTING)
            # Published while no server runs: straight into Redis, where history lives.
            async with Channels(redis_url, key_prefix=prefix, history_size=1000) as hub:
                for n in range(6, 11):
                    await hub.publish("room", n)
            restarted = await start(second, "app", env=env, port=port)

            replayed = await take(sub, 5)
            assert [m.data for m in replayed] == [6, 7, 8, 9, 10]
            assert sub.recovered
            for n in range(11, 16):
                await client.publish("room", n)
            live = await take(sub, 5)
            assert [m.data for m in live] == [11, 12, 13, 14, 15]
            every = [m.offset for m in replayed + live]
            assert every == list(range(every[0], every[0] + 10))
            assert client.connections == 2
        assert raised(restarted.log()) == []
    assert states[:3] == [lc.State.CONNECTED, lc.State.RECONNECTING, lc.State.CONNECTED]


async def test_a_hundred_channels_over_one_real_socket() -> None:
    with contextlib.ExitStack() as stack:
        server = await start(stack, "app")
        async with lc.connect(server.ws_url + "/ws", token="good") as client:
            subs = [await client.subscribe(f"ch:{i}") for i in range(100)]
            for i in range(100):
                assert await client.publish(f"ch:{i}", i) == lc.Position(
                    subs[i].position.epoch,  # type: ignore[union-attr]
                    1,
                )
            for i, sub in enumerate(subs):
                (message,) = await take(sub, 1)
                assert (message.channel, message.offset, message.data) == (f"ch:{i}", 1, i)
        assert raised(server.log()) == []


async def test_a_server_sending_garbage_is_dropped_with_a_named_error_and_dialed_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "lilya.client")
    with contextlib.ExitStack() as stack:
        server = await start(stack, "hostile")
        async with lc.connect(
            server.ws_url + "/ws", reconnect_delay=(0.05, 0.1), ping_interval=None
        ) as client:
            await until(lambda: client.connections >= 2)
            assert "a frame that is not JSON" in caplog.text
            assert "binary, not JSON text" in caplog.text


async def test_a_401_on_the_handshake_stops_the_client() -> None:
    with contextlib.ExitStack() as stack:
        server = await start(stack, "denied")
        with pytest.raises(lc.ClientClosed) as info:
            async with lc.connect(server.ws_url + "/ws"):
                pass  # pragma: no cover
        assert info.value.code == 4003
        assert "HTTP 401: bad token" in info.value.reason


async def test_a_503_on_the_handshake_is_retried_until_connect_timeout() -> None:
    with contextlib.ExitStack() as stack:
        server = await start(stack, "busy")
        with pytest.raises(TimeoutError, match="Could not connect"):
            async with lc.connect(
                server.ws_url + "/ws", connect_timeout=0.5, reconnect_delay=(0.05, 0.1)
            ):
                pass  # pragma: no cover


async def test_nothing_listening_is_retried_until_connect_timeout() -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws"
    with pytest.raises(TimeoutError, match=r"within connect_timeout=0\.3 s"):
        async with lc.connect(url, connect_timeout=0.3, reconnect_delay=(0.05, 0.1)):
            pass  # pragma: no cover


async def test_a_real_server_closing_4001_at_expiry_stops_a_client_with_a_static_token() -> None:
    with contextlib.ExitStack() as stack:
        server = await start(stack, "app")
        token = f"short:{time.time() + 0.5}"
        async with lc.connect(server.ws_url + "/ws", token=token) as client:
            sub = await client.subscribe("room")
            with pytest.raises(lc.ClientClosed) as info, anyio.fail_after(10):
                async for _ in sub:
                    pass  # pragma: no cover
            assert info.value.code == 4001
            assert "token expired" in info.value.reason
        assert raised(server.log()) == []


async def test_the_network_transport_reports_a_closed_socket_on_send_and_receive() -> None:
    with contextlib.ExitStack() as stack:
        server = await start(stack, "app")
        dialer = lc.WebSocketsDialer(close_timeout=1)
        async with dialer.open(server.ws_url + "/ws", ["bearer", "good"]) as transport:
            await transport.close(1000, "")
            with pytest.raises(lc.TransportClosed) as info:
                await transport.send('{"type": "ping", "id": 1}')
            assert info.value.code == 1000
            with pytest.raises(lc.TransportClosed):
                await transport.receive()


@pytest.mark.redis
async def test_a_rolling_restart_of_one_of_two_workers_loses_and_repeats_nothing(
    redis_url: str, prefix: str
) -> None:
    env = {"LILYA_CLIENT_CHANNELS": redis_url, "LILYA_CLIENT_PREFIX": prefix}
    app = f"{APPS}:app"
    ports = [free_port(), free_port()]
    urls = [f"ws://127.0.0.1:{port}/ws" for port in ports]
    total = 300
    logs: list[str] = []
    restarted: list[RunningServer] = []
    with contextlib.ExitStack() as one, contextlib.ExitStack() as two:
        first = await rolling.start(one, app, ports[0], env)
        await rolling.start(two, app, ports[1], env)
        options: dict[str, Any] = {"token": "good", "reconnect_delay": (0.05, 0.2)}
        # docs/client.md's dialer, a load balancer: each dial goes to the next worker.
        round_robin = python_blocks("client.md")[3]
        namespace: dict[str, Any] = {}
        exec(compile(round_robin, "docs/client.md[3]", "exec"), namespace)
        RoundRobin = namespace["RoundRobin"]
        publisher = lc.connect(urls[0], dialer=RoundRobin(urls), **options)  # worker 1 first
        on_one = lc.connect(urls[0], dialer=RoundRobin(urls), **options)
        on_two = lc.connect(urls[1], dialer=RoundRobin(urls[::-1]), **options)  # worker 2 first
        got: dict[str, list[Any]] = {"one": [], "two": []}

        async def roll() -> None:
            # SIGTERM: worker 1 drains (1012 to its sockets), exits 0 and comes
            # back, while the publisher goes on.
            log, again = await rolling.restart(first, one, app, env)
            logs.append(log)
            restarted.append(again)

        async with publisher, on_one, on_two, anyio.create_task_group() as group:
            subs = {"one": await on_one.subscribe("feed"), "two": await on_two.subscribe("feed")}

            async def collect(name: str) -> None:
                with anyio.fail_after(60):
                    async for event in subs[name]:
                        assert isinstance(event, lc.Message), event
                        got[name].append(event.data)
                        if event.data == total - 1:
                            return

            for name in subs:
                group.start_soon(collect, name)
            for n in range(total):
                await publisher.publish("feed", n)
                await anyio.sleep(0.01)
                if n == total // 3:
                    group.start_soon(roll)
        assert got["one"] == list(range(total))
        assert got["two"] == list(range(total))
        assert publisher.connections >= 2 and on_one.connections >= 2
        (again,) = restarted
        logs.append(again.log())
    for log in logs:
        assert raised(log) == [], log
