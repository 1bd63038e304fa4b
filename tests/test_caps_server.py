"""Connection caps on real servers: a handshake flood, two workers sharing Redis, kill -9.

The servers are ``lilya run`` processes (uvicorn) serving
``tests/support/caps_apps.py``; the clients are real ``websockets`` clients.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import sys
import time
import uuid
from collections.abc import Iterator

import anyio
import httpx
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.channels.redis_server import private_redis, redis_url_for_tests
from tests.support.servers import RunningServer, serve, tracebacks

pytestmark = [pytest.mark.server, pytest.mark.slow]


def lilya_run(app: str) -> list[str]:
    return [sys.executable, "-m", "lilya", "run", app, "--port", "{port}"]


@pytest.fixture
def anyio_backend() -> str:
    """The ``websockets`` client runs on asyncio."""
    return "asyncio"


async def try_connect(server: RunningServer) -> ClientConnection | int:
    """Open a socket, or return the HTTP status that refused it (after checking its headers)."""
    try:
        ws = await connect(server.ws_url + "/", open_timeout=30, ping_interval=None)
    except InvalidStatus as exc:
        response = exc.response
    else:
        await ws.send("ping")
        assert await ws.recv() == "ping"
        return ws
    assert response.headers.get("retry-after") == "5"
    assert b"ConnectionCaps(per_address=...)" in (response.body or b"")
    return response.status_code


async def flood(server: RunningServer, count: int) -> tuple[list[ClientConnection], list[int]]:
    """*count* handshakes at once; the sockets opened and the statuses refused."""
    results: list[ClientConnection | int] = []

    async def one() -> None:
        results.append(await try_connect(server))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            for _ in range(count):
                tasks.start_soon(one)
    opened = [r for r in results if not isinstance(r, int)]
    return opened, [r for r in results if isinstance(r, int)]


async def every_slot_back(server: RunningServer) -> None:
    """Wait until the server's counts are empty (it notices the resets in its own time)."""
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        with anyio.fail_after(10):
            while (await client.get("/counts")).json() != {}:
                await anyio.sleep(0.05)


def vanish(ws: ClientConnection) -> None:
    """Reset the TCP connection with no close frame, as a crashed client does."""
    sock: socket.socket = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


@pytest.mark.anyio
async def test_a_handshake_flood_from_one_address_gets_exactly_100_sockets_then_429() -> None:
    with serve("", command=lilya_run("tests.support.caps_apps:default_app")) as server:
        for cycle in range(3):
            opened, refused = await flood(server, 150)
            assert (len(opened), refused) == (100, [429] * 50), cycle
            # Half leave cleanly, half vanish: every slot comes back either way.
            for n, ws in enumerate(opened):
                if n % 2:
                    await ws.close()
                else:
                    vanish(ws)
            await every_slot_back(server)
        log = server.log()
    assert tracebacks(log) == []
    # 150 refusals, one WARNING line (the rest are counted in the next one).
    assert len([line for line in log.splitlines() if "Refused a WebSocket" in line]) == 1
    assert "ERROR" not in log


@pytest.fixture
def shared_redis() -> Iterator[tuple[str, str]]:
    with redis_url_for_tests(6) as url:
        prefix = f"lilya:test-caps-server:{uuid.uuid4().hex}:"
        yield url, prefix
        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@pytest.mark.redis
@pytest.mark.anyio
async def test_two_workers_share_the_count_and_a_killed_workers_slots_expire(
    shared_redis: tuple[str, str],
) -> None:
    url, prefix = shared_redis
    env = {
        "LILYA_TEST_CAPS_REDIS": url,
        "LILYA_TEST_CAPS_PREFIX": prefix,
        "LILYA_TEST_CAPS_TTL": "1",
    }
    command = lilya_run("tests.support.caps_apps:app")
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(serve("", command=command, env=env))
        second = stack.enter_context(serve("", command=command, env=env))
        held = [await try_connect(first), await try_connect(first)]
        assert all(not isinstance(ws, int) for ws in held)
        # per_address=2 is counted across both: the second worker refuses the third.
        assert await try_connect(second) == 429
        # Three ttls later the first worker's refreshes still hold the slots.
        await anyio.sleep(3.0)
        assert await try_connect(second) == 429
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(10)
        killed_at = time.monotonic()
        # Its leases expire within the ttl (1 s); then the second worker lets clients in.
        with anyio.fail_after(10):
            while isinstance(opened := await try_connect(second), int):
                await anyio.sleep(0.1)
        expired_after = time.monotonic() - killed_at
        assert not isinstance(opened, int)
        await opened.close()
        assert expired_after < 2.5
        log = second.log()
    assert tracebacks(log) == []
    assert len([line for line in log.splitlines() if "Refused a WebSocket" in line]) == 1
    assert "per_address" in refusal_lines_of(log)[0]


def refusal_lines_of(log: str) -> list[str]:
    return [line for line in log.splitlines() if "Refused a WebSocket handshake" in line]


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_killed_mid_stream_fails_open_logs_once_and_counts_again_when_back() -> None:
    env_of = {"LILYA_TEST_CAPS_TTL": "1", "LILYA_TEST_CAPS_PREFIX": "lilya:test-caps-kill:"}
    command = lilya_run("tests.support.caps_apps:app")
    with private_redis() as backend, contextlib.ExitStack() as stack:
        env = {**env_of, "LILYA_TEST_CAPS_REDIS": backend.url}
        first = stack.enter_context(serve("", command=command, env=env))
        second = stack.enter_context(serve("", command=command, env=env))
        held = [await try_connect(first), await try_connect(first)]
        assert await try_connect(second) == 429
        backend.kill()  # kill -9, mid-stream: two sockets hold leases
        # Fail open: the second worker lets handshakes in (per-process cap only).
        during = [await try_connect(second) for _ in range(3)]
        for ws in [*held, *during]:
            assert not isinstance(ws, int)
            await ws.close()  # the first worker cannot remove its leases: logged
        backend.start()  # back, and empty
        with anyio.fail_after(15):
            while True:
                two = [await try_connect(second), await try_connect(second)]
                third = await try_connect(second)
                for ws in (*two, third):
                    if not isinstance(ws, int):
                        await ws.close()
                if third == 429:
                    break  # counted in Redis again
                await anyio.sleep(0.1)
        logs = first.log(), second.log()
    for log in logs:
        assert tracebacks(log) == []
        assert len([line for line in log.splitlines() if "did not answer" in line]) == 1
    assert "let in under the per-process cap only" in logs[1]
