"""The app the flood benchmark (and its test) serves: one relayed room per path.

``/ws/{room}``: the socket is subscribed to the room and relayed; every text
frame it sends is published to the room. ``LILYA_FLOOD_URL`` picks the
channels backend (``memory://`` by default), ``LILYA_FLOOD_PREFIX`` the Redis
key prefix.
"""

from __future__ import annotations

import os
from typing import Any

from lilya.apps import Lilya
from lilya.channels import Channels, relay
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


app = Lilya(routes=[WebSocketPath("/ws/{name}", room)], lifespan=channels.lifespan)
