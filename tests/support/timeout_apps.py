"""The app of tests/test_timeouts_server.py and benchmarks/send_timeout.py.

``/feed`` pushes 64 KiB messages as fast as the client takes them (a client
that stops reading stalls its sends; the benchmark sets a size and a pace);
``/echo`` answers every text message. Both under the app's ``send_timeout``
of :data:`SEND_TIMEOUT` seconds.
"""

from __future__ import annotations

import logging
import os
import sys

import anyio

from lilya.apps import Lilya
from lilya.routing import WebSocketPath
from lilya.websockets import WebSocket, WebSocketDisconnect

#: The app's send timeout (benchmarks/send_timeout.py sets another through the environment).
SEND_TIMEOUT = float(os.environ.get("LILYA_SEND_TIMEOUT", "1.0"))
#: What ``/feed`` sends, and how long it pauses between two (0: as fast as they are taken).
CHUNK = bytes(int(os.environ.get("LILYA_FEED_CHUNK", str(64 * 1024))))
FEED_INTERVAL = float(os.environ.get("LILYA_FEED_INTERVAL", "0"))

log = logging.getLogger("timeout-app")
log.setLevel(logging.INFO)
log.propagate = False
_handler = logging.StreamHandler(sys.stdout)
_handler.setFormatter(logging.Formatter("APP %(message)s"))
log.addHandler(_handler)


async def feed(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_bytes(CHUNK)
            if FEED_INTERVAL:
                await anyio.sleep(FEED_INTERVAL)
    except WebSocketDisconnect as exc:
        log.info("feed ended: WebSocketDisconnect(%d)", exc.code)


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


app = Lilya(
    routes=[WebSocketPath("/feed", feed), WebSocketPath("/echo", echo)],
    send_timeout=SEND_TIMEOUT,
    # benchmarks/send_timeout.py opens 1,000 sockets from loopback.
    connection_caps=None,
)
