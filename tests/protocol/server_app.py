"""The protocol endpoint as a real server serves it (``uvicorn tests.protocol.server_app:app``).

``LILYA_PROTOCOL_CHANNELS`` picks the channels URL (default ``memory://``).
"""

from __future__ import annotations

import os

from lilya.apps import Lilya
from lilya.channels import Channels
from lilya.limits import RateLimit
from lilya.protocol import ChannelOptions, ChannelsEndpoint
from lilya.routing import WebSocketPath
from tests.protocol import hooks

hub = Channels(
    os.environ.get("LILYA_PROTOCOL_CHANNELS", "memory://"),
    reconnect_delay=(0.05, 0.2),
    max_queue=50,
    stall_timeout=0.2,
    key_prefix=os.environ.get("LILYA_PROTOCOL_PREFIX", "lilya:protocol"),
)
endpoint = ChannelsEndpoint(
    hub,
    authenticate=hooks.authenticate,
    rpc=hooks.RPC,
    channels={"*": ChannelOptions(presence=True)},
    max_channels=200,
    heartbeat=(1.0, 1.0),
    close_timeout=0.5,
)
app = Lilya(
    routes=[
        WebSocketPath(
            "/ws", endpoint, rate_limit=RateLimit(per_second=200, burst=400), max_message_size=4096
        )
    ],
    lifespan=hub.lifespan,
)
