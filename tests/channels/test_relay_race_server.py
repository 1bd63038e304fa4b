"""The relay's close race on a real server: uvicorn, real sockets, the ``websockets`` client.

A client sends N frames as fast as it can and closes, reading nothing, while
the server is sending each of them back to it. The server's sends start
failing once the client has closed, but the frames it sent before are already
queued in the server: every one of them must still be handled, with no
traceback in the server's log. The client waits for the closing handshake
(``close_timeout``) as long as the round may take: one that gave up early
would tear the TCP connection down with frames still unread in the server's
socket, which the kernel then discards before lilya could ever see them.
"""

from __future__ import annotations

import anyio
import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.servers import serve, tracebacks

pytestmark = [pytest.mark.anyio, pytest.mark.server]

COUNT = 5000
ROUNDS = 3


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the websockets client library is asyncio-only


@pytest.mark.parametrize("ws", ["websockets", "websockets-sansio", "wsproto"])
async def test_every_frame_sent_before_the_close_is_handled_while_the_server_sends(
    ws: str,
) -> None:
    with serve("tests.channels.relay_race_app:app", f"uvicorn-{ws}") as server:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
            for round_ in range(1, ROUNDS + 1):
                with anyio.fail_after(60):
                    async with connect(server.ws_url + "/ws", close_timeout=30) as client:
                        for i in range(COUNT):
                            await client.send(f"{round_}:{i}")
                    while (stats := (await http.get("/stats")).json())["relays_ended"] < round_:
                        await anyio.sleep(0.05)
                assert stats["handled"] == COUNT * round_
        assert tracebacks(server.log()) == []
