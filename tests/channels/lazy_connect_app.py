"""An app that connects its channels on first use, inside a WebSocket handler (issue 16).

A server with no lifespan (daphne) never runs ``channels.lifespan``, so an app
like this one connects in the first handler that needs the channels. The
channels' background work must outlive that handler: ``/sub`` subscribes to
``room`` and relays it, ``GET /publish?text=…`` publishes to ``room`` (both
connect when not yet connected), ``GET /stats`` counts the relays that ended.
"""

from __future__ import annotations

from typing import Any

from lilya.apps import Lilya
from lilya.channels import Channels, relay
from lilya.requests import Request
from lilya.responses import JSONResponse
from lilya.routing import Path, WebSocketPath
from lilya.websockets import WebSocket


def make_app() -> tuple[Lilya, Channels, dict[str, int]]:
    """A fresh app, its channels (not connected) and its counts."""
    channels = Channels("memory://")
    stats = {"relays_ended": 0}

    async def connected() -> Channels:
        if not channels.connected:
            await channels.connect()
        return channels

    async def sub(websocket: WebSocket) -> None:
        async with (await connected()).subscribe("room") as subscription:
            await relay(websocket, subscription)
        stats["relays_ended"] += 1

    async def publish(request: Request) -> JSONResponse:
        event = await (await connected()).publish("room", request.query_params["text"])
        return JSONResponse({"offset": event.offset})

    async def read_stats(request: Request) -> JSONResponse:
        return JSONResponse(stats)

    routes: list[Any] = [
        WebSocketPath("/sub", sub),
        Path("/publish", publish),
        Path("/stats", read_stats),
    ]
    return Lilya(routes=routes), channels, stats


app, channels, stats = make_app()
