"""The app two real workers serve in ``tests/test_caps_server.py``: caps counted in Redis.

The Redis URL and the key prefix come from the environment, so each test's
workers share a count no other test sees. A lease lives ``LILYA_TEST_CAPS_TTL``
seconds (default 1) past its last refresh.
"""

from __future__ import annotations

import os

from lilya.apps import Lilya
from lilya.caps import ConnectionCaps, RedisCounter
from lilya.requests import Request
from lilya.responses import JSONResponse
from lilya.routing import Path, WebSocketPath
from lilya.websockets import WebSocket


async def hold(websocket: WebSocket) -> None:
    """Accept and echo until the client leaves."""
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


counter = RedisCounter(
    os.environ.get("LILYA_TEST_CAPS_REDIS", "redis://127.0.0.1:6379/6"),
    ttl=float(os.environ.get("LILYA_TEST_CAPS_TTL", "1")),
    key_prefix=os.environ.get("LILYA_TEST_CAPS_PREFIX", "lilya:test-caps:"),
)

app = Lilya(
    routes=[WebSocketPath("/", hold)],
    connection_caps=ConnectionCaps(per_address=2),
    connection_counter=counter,
)


async def counts(request: Request) -> JSONResponse:
    """The app's local counts, so a test can wait until every slot is back."""
    return JSONResponse(default_app.connection_counter.counts)


#: The same route with the default caps, counted in process (100 per address).
default_app = Lilya(routes=[WebSocketPath("/", hold), Path("/counts", counts)])
