"""Apps that the browser-client tests serve in a real server process."""

from __future__ import annotations

import time
from typing import Any

from lilya.apps import Lilya
from lilya.browser import LilyaJS
from lilya.channels import Channels
from lilya.protocol import ChannelsEndpoint
from lilya.routing import WebSocketPath
from lilya.tokens import Authenticated

__all__ = ["endpoint_app", "js_app"]

#: Only lilya.js, as a page's app would serve it.
js_app = Lilya(routes=[LilyaJS("/lilya.js")])


def _authenticate(websocket: Any, token: str) -> Authenticated | None:
    """Tokens are ``NAME.EXPIRY`` (Unix seconds): good until then, refused after."""
    name, _, expiry = token.partition(".")
    if not name or not expiry.isdigit() or int(expiry) <= time.time():
        return None
    return Authenticated(name, expires_at=float(expiry))


_channels = Channels("memory://")

#: The protocol endpoint with expiring tokens and a fast heartbeat, at /ws.
endpoint_app = Lilya(
    routes=[
        LilyaJS("/lilya.js"),
        WebSocketPath(
            "/ws",
            ChannelsEndpoint(_channels, authenticate=_authenticate, heartbeat=(0.5, 1.0)),
        ),
    ],
    lifespan=_channels.lifespan,
)
