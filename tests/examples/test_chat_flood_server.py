"""A client flooding a chat room is closed by the rate limit, and nobody loses a message.

``lilya run``'s server (uvicorn) serves the chat on ``memory://`` and on
``redis://``, on the library's defaults. A raw-socket client writes thousands
of text frames per packet to a room, as fast as TCP takes them (a client
library would pace it one frame per call), and reads its echoes; a
``websockets`` client in the same room reads as fast as it can. lilya's
default rate limit (bursts of 1,000) closes the flooder with 1008; the reader
must get every message the flooder got in before that, in order, from the
first: the flooder's publishes wait for the reader's queue instead of
overflowing it. A third client in another room must still get its round trips
answered. The timing figures live in ``benchmarks/flood.py`` and
``benchmarks/rate_limit.py``; here only the delivery is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import anyio
import pytest
from websockets.asyncio.client import connect

from tests.support.servers import serve, tracebacks

pytestmark = [pytest.mark.anyio, pytest.mark.server]

# Enough to overflow a 1,000-event queue many times over; bounded so the test
# stays well inside its time limits on a loaded machine.
COUNT = 10_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the websockets client library is asyncio-only


def frame(text: str) -> bytes:
    payload = text.encode()
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload  # masked, zero key


async def flood(
    port: int, count: int, closed: asyncio.Event
) -> tuple[asyncio.Task[None], asyncio.StreamWriter]:
    """Write *count* frames to room "flood" in bulk; keep reading the echoes (return that task).

    *closed* is set when the server's close for the rate limit arrives.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /ws/flood?nick=flooder HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")

    async def discard_echoes() -> None:
        tail = b""
        while chunk := await reader.read(65536):
            tail = (tail + chunk)[-256:]
            if b"over rate_limit" in tail:
                closed.set()

    echoes = asyncio.create_task(discard_echoes())
    with contextlib.suppress(ConnectionError):
        for start in range(0, count, 1000):
            if closed.is_set():
                break
            writer.write(b"".join(frame(str(i)) for i in range(start, min(count, start + 1000))))
            await writer.drain()
    return echoes, writer


def messages_only(raw: str | bytes) -> str | None:
    data = json.loads(raw)
    return data["text"] if data["type"] == "message" else None


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_flooded_room_loses_nothing_for_a_reader_that_keeps_up(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = "memory://" if backend == "memory" else request.getfixturevalue("redis_url")
    env = {"LILYA_CHANNELS_URL": url, "LILYA_CHANNELS_PREFIX": f"lilya-test:{uuid.uuid4().hex}"}
    with serve("examples.chat.app:app", "uvicorn", env=env) as server:
        async with (
            connect(server.ws_url + "/ws/flood?nick=reader") as reader,
            connect(server.ws_url + "/ws/calm?nick=pinger") as pinger,
        ):
            closed = asyncio.Event()
            echoes, flooder = await asyncio.wait_for(flood(server.port, COUNT, closed), 120)
            got: list[int] = []
            try:
                with anyio.fail_after(300):
                    await closed.wait()
                    # The flooder is closed: what it got in is on its way; read it
                    # all (a generous 5 s of silence ends it, the order is checked after).
                    while True:
                        with anyio.move_on_after(5) as idle:
                            raw = await reader.recv()
                        if idle.cancelled_caught:
                            break
                        text = messages_only(raw)
                        if text is not None:
                            got.append(int(text))
                    await pinger.send("still answered")
                    while messages_only(await pinger.recv()) != "still answered":
                        pass
            finally:
                echoes.cancel()
                flooder.close()
                with contextlib.suppress(OSError):  # the server may have reset it first
                    await flooder.wait_closed()
        assert len(got) >= 1000  # the burst got in
        assert got == list(range(len(got)))  # every one, in order, no hole
        assert tracebacks(server.log()) == []
