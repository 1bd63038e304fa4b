"""A client that stops reading, on a real server and real sockets, slows no one else.

uvicorn serves ``slow_reader_app``; one raw-socket client completes the
handshake and then never reads (its receive buffer is tiny, so the server's
writes back up within a few messages), five ``websockets`` clients read
normally. We publish 16 KB messages and measure, on each reader, how long each
took from publish to arrival. The stalled client's subscription must overflow
(the default policy, "close", once it took nothing for stall_timeout) and be
dropped, while the readers get every message, in
order, promptly.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import statistics
import time

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.servers import RunningServer, serve, tracebacks

pytestmark = [pytest.mark.anyio, pytest.mark.server]

COUNT = 300
SIZE = 16_000
READERS = 5


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the websockets client library is asyncio-only


def stalled_client(server: RunningServer) -> socket.socket:
    """Open a WebSocket by hand, then never read from it again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


async def read_all(server: RunningServer, ready: list[None], latencies: list[float]) -> list[int]:
    seqs: list[int] = []
    async with connect(server.ws_url + "/ws", max_size=None) as ws:
        ready.append(None)
        while len(seqs) < COUNT:
            message = json.loads(await ws.recv())
            latencies.append(time.time() - message["ts"])
            seqs.append(message["seq"])
    return seqs


async def test_a_stalled_reader_is_dropped_and_the_others_keep_their_pace() -> None:
    with serve("tests.channels.slow_reader_app:app", "uvicorn") as server:
        stalled = stalled_client(server)
        try:
            ready: list[None] = []
            latencies: list[float] = []
            results: list[list[int]] = []

            async def reader() -> None:
                results.append(await read_all(server, ready, latencies))

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    for _ in range(READERS):
                        tg.start_soon(reader)
                    while len(ready) < READERS:
                        await anyio.sleep(0.01)
                    await anyio.sleep(0.2)  # let the last subscriptions start
                    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
                        published = await http.get(
                            "/publish", params={"count": COUNT, "size": SIZE}
                        )
                        assert published.json() == {"published": COUNT}
                        # The relay gives a stuck close handshake close_timeout (1 s).
                        for _ in range(100):
                            stats = (await http.get("/stats")).json()
                            if stats["overflowed"]:
                                break
                            await anyio.sleep(0.05)
        finally:
            stalled.close()

        assert results == [list(range(COUNT))] * READERS  # everything, in order
        assert stats["overflowed"] == 1  # the stalled client was cut off
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        median = statistics.median(latencies)
        print(f"readers' delivery: median {median * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
        # Generous: a reader blocked behind the stalled one would wait for ever.
        assert p99 < 2.0
        assert tracebacks(server.log()) == []
