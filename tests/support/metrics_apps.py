"""An app with metrics on, for real servers: ends the way the client asks, says its worker."""

from __future__ import annotations

import os

from lilya.apps import Lilya
from lilya.metrics import Metrics
from lilya.routing import WebSocketPath
from lilya.websockets import WebSocket


async def hostile(websocket: WebSocket) -> None:
    """``?how=`` echo (default), raise, deny, or server-close; the first frame is the pid."""
    how = websocket.query_params.get("how", "echo")
    if how == "deny":
        await websocket.close()  # before accept: 403
        return
    await websocket.accept()
    await websocket.send_text(str(os.getpid()))
    if how == "raise":
        raise RuntimeError("the handler failed on purpose")
    if how == "server-close":
        await websocket.close(4001, "bye")
        return
    async for text in websocket.iter_text():
        await websocket.send_text(text)


# One Metrics per worker process; with PROMETHEUS_MULTIPROC_DIR set, each
# writes its values there and /metrics sums every worker's.
app = Lilya(routes=[WebSocketPath("/ws", hostile)], metrics=Metrics(), rate_limit=None)
