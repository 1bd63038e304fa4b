"""Apps that lilya.client's real-server tests serve under uvicorn.

``app``: the real :class:`~lilya.protocol.ChannelsEndpoint` at ``/ws`` over
``LILYA_CLIENT_CHANNELS`` (``redis://...`` so history survives a kill -9 of
the server), tokens ``"good"`` (no expiry) and ``"short:<unix time>"`` (the same
user, expiring then), rpc ``echo``. ``hostile``: answers ``connect``, then sends a binary frame
and a text frame that are not JSON. ``denied`` and ``busy``: refuse the handshake with 401 and 503.
"""

from __future__ import annotations

import json
import os
from typing import Any

from lilya.apps import Lilya
from lilya.channels import Channels
from lilya.protocol import ChannelOptions, ChannelsEndpoint
from lilya.responses import PlainText
from lilya.routing import WebSocketPath
from lilya.tokens import Authenticated
from lilya.types import Receive, Scope, Send
from lilya.websockets import WebSocket


def authenticate(websocket: WebSocket, token: str) -> Any:
    """``good`` never expires; ``short:<t>``, the same user, expires at unix time *t*."""
    if token == "good":
        return "good"
    if token.startswith("short:"):
        return Authenticated("good", expires_at=float(token.removeprefix("short:")))
    return None


def echo(client: Any, data: Any) -> Any:
    return data


def build(
    url: str,
    prefix: str = "lilya:ch",
    heartbeat: tuple[float, float] | None = (25.0, 20.0),
    rate_limit: bool = True,
) -> Lilya:
    """The endpoint app over *url* (a test in process builds it with ``memory://``)."""
    hub = Channels(url, key_prefix=prefix, history_size=1000)
    endpoint = ChannelsEndpoint(
        hub,
        authenticate=authenticate,
        rpc={"echo": echo},
        channels={"*": ChannelOptions(presence=True)},
        heartbeat=heartbeat,
    )
    route = WebSocketPath("/ws", endpoint)
    if rate_limit:
        return Lilya(routes=[route], lifespan=hub.lifespan)
    return Lilya(routes=[route], lifespan=hub.lifespan, rate_limit=None)


app = build(
    os.environ.get("LILYA_CLIENT_CHANNELS", "memory://"),
    os.environ.get("LILYA_CLIENT_PREFIX", "lilya:ch"),
)
#: For benchmarks/client.py: no rate limit, so the client's own cost shows.
unlimited = build("memory://", rate_limit=False)


async def hostile(scope: Scope, receive: Receive, send: Send) -> None:
    websocket = WebSocket(scope, receive, send)
    await websocket.accept()
    request = json.loads(await websocket.receive_text())
    await websocket.send_text(json.dumps({"id": request["id"], "ok": {"client": "c"}}))
    await websocket.send_bytes(b"\xff binary, not JSON text")
    await websocket.send_text("<html>not json</html>")
    await websocket.receive_text()  # the client closes 1002: this raises and ends it


async def denied(scope: Scope, receive: Receive, send: Send) -> None:
    websocket = WebSocket(scope, receive, send)
    await websocket.send_denial_response(PlainText("bad token", status_code=401))


async def busy(scope: Scope, receive: Receive, send: Send) -> None:
    websocket = WebSocket(scope, receive, send)
    await websocket.send_denial_response(PlainText("draining", status_code=503))
