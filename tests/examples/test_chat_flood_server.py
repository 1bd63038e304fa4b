"""A client flooding a chat room slows itself, not its readers: nobody loses a message.

``lilya run``'s server (uvicorn) serves the chat on ``memory://`` and on
``redis://``. A raw-socket client writes thousands of text frames per packet
to a room, as fast as TCP takes them (a client library would pace it one frame
per call), and reads its echoes; a ``websockets`` client in the same room reads
as fast as it can. The reader must get every message, in order: the flooder's
publishes wait for the reader's queue instead of overflowing it. A third
client in another room must still get its round trips answered during the
flood. The timing figures live in ``benchmarks/flood.py``; here only the
delivery is checked.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import anyio
import pytest
from websockets.asyncio.client import connect

from tests.support.servers import serve, tracebacks

pytestmark = [pytest.mark.anyio, pytest.mark.server]

COUNT = 20_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the websockets client library is asyncio-only


def frame(text: str) -> bytes:
    payload = text.encode()
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload  # masked, zero key


async def flood(port: int, count: int) -> tuple[asyncio.Task[None], asyncio.StreamWriter]:
    """Write *count* frames to room "flood" in bulk; keep reading the echoes (return that task)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /ws/flood?nick=flooder HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")

    async def discard_echoes() -> None:
        while await reader.read(65536):
            pass

    echoes = asyncio.create_task(discard_echoes())
    for start in range(0, count, 1000):
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
            echoes, flooder = await asyncio.wait_for(flood(server.port, COUNT), 60)
            got: list[int] = []
            with anyio.fail_after(120):
                while not got or got[-1] < COUNT - 1:
                    text = messages_only(await reader.recv())
                    if text is not None:
                        got.append(int(text))
                await pinger.send("still answered")
                while messages_only(await pinger.recv()) != "still answered":
                    pass
            echoes.cancel()
            flooder.close()
        assert got == list(range(COUNT))  # every one, in order, no hole
        assert tracebacks(server.log()) == []
