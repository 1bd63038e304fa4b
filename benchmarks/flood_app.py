"""The app the flood benchmark (and its test) serves: one relayed room per path.

``/ws/{room}``: the socket is subscribed to the room and relayed; every text
frame it sends is published to the room. ``LILYA_FLOOD_URL`` picks the
channels backend (``memory://`` by default), ``LILYA_FLOOD_PREFIX`` the Redis
key prefix. ``LILYA_FLOOD_RATE_LIMIT=default`` keeps lilya's default rate limit
(``benchmarks/rate_limit.py``); otherwise it is off, since ``flood.py``
measures what the channels do with a flood that gets through.
"""

from __future__ import annotations

import os
from typing import Any

from lilya.apps import Lilya
from lilya.channels import Channels, relay
from lilya.limits import DEFAULT_RATE_LIMIT
from lilya.routing import WebSocketPath
from lilya.websockets import WebSocket

channels = Channels(
    os.environ.get("LILYA_FLOOD_URL", "memory://"),
    key_prefix=os.environ.get("LILYA_FLOOD_PREFIX", "lilya:flood"),
)


async def room(websocket: WebSocket, name: str) -> None:
    channel = f"room:{name}"

    async def publish(data: Any) -> None:
        await channels.publish(channel, data)

    async with channels.subscribe(channel) as sub:
        await relay(websocket, sub, on_receive=publish)


rate_limit = DEFAULT_RATE_LIMIT if os.environ.get("LILYA_FLOOD_RATE_LIMIT") == "default" else None
app = Lilya(
    routes=[WebSocketPath("/ws/{name}", room)], lifespan=channels.lifespan, rate_limit=rate_limit
)
