"""The app of tests/test_idle_server.py: routes under an idle timeout of :data:`IDLE_TIMEOUT`.

``/quiet`` waits in receive; ``/flood`` sends 64 KiB messages with no send
timeout, so a client that reads nothing leaves its send waiting for ever;
``/echo`` answers every text message. Each handler logs how it ended.
"""

from __future__ import annotations

import logging
import sys

from lilya.apps import Lilya
from lilya.routing import WebSocketPath
from lilya.websockets import WebSocket, WebSocketDisconnect

#: The app's idle timeout, in seconds.
IDLE_TIMEOUT = 1.0

log = logging.getLogger("idle-app")
log.setLevel(logging.INFO)
log.propagate = False
_handler = logging.StreamHandler(sys.stdout)
_handler.setFormatter(logging.Formatter("APP %(message)s"))
log.addHandler(_handler)


async def quiet(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect as exc:
        log.info("quiet ended: WebSocketDisconnect(%d)", exc.code)


async def flood(websocket: WebSocket) -> None:
    await websocket.accept()
    chunk = bytes(64 * 1024)
    try:
        while True:
            await websocket.send_bytes(chunk)  # waits for ever once the client stops reading
    except WebSocketDisconnect as exc:
        log.info("flood ended: WebSocketDisconnect(%d)", exc.code)


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


app = Lilya(
    routes=[
        WebSocketPath("/quiet", quiet),
        WebSocketPath("/flood", flood, send_timeout=None),
        WebSocketPath("/echo", echo),
    ],
    idle_timeout=IDLE_TIMEOUT,
    # Dozens of silent sockets from loopback.
    connection_caps=None,
)
