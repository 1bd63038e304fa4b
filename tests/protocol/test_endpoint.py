"""ChannelsEndpoint over the in-process test client: the protocol's requests and pushes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from lilya.apps import Lilya
from lilya.channels import Channels
from lilya.protocol import ChannelOptions, ChannelsEndpoint
from lilya.routing import WebSocketPath
from lilya.testclient import AsyncTestClient
from tests.protocol.peer import Peer

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def served(**options: Any) -> AsyncIterator[tuple[Channels, Callable[..., Any]]]:
    """An app with the endpoint at /ws over memory channels; yields (channels, connect)."""
    hub = Channels("memory://")
    endpoint = ChannelsEndpoint(hub, **{"heartbeat": None, **options})
    app = Lilya(routes=[WebSocketPath("/ws", endpoint)], lifespan=hub.lifespan)
    async with AsyncTestClient(app) as client:

        @asynccontextmanager
        async def connect(path: str = "/ws", **kwargs: Any) -> AsyncIterator[Peer]:
            async with client.websocket_connect(path, **kwargs) as session:
                yield Peer(session)

        yield hub, connect


async def test_connect_subscribe_publish_and_the_message_push_with_its_position() -> None:
    async with served() as (hub, connect), connect() as peer:
        ok = await peer.ok("connect", name="tab")
        assert ok["user"] is None and ok["expires_at"] is None and ok["heartbeat"] is None
        assert isinstance(ok["client"], str)
        sub = await peer.ok("subscribe", channel="room:1")
        assert sub["recovered"] is False and sub["offset"] == 0
        pub = await peer.ok("publish", channel="room:1", data={"text": "hi"})
        assert pub == {"epoch": sub["epoch"], "offset": 1}
        push = await peer.push()
        assert push == {
            "type": "message",
            "channel": "room:1",
            "epoch": sub["epoch"],
            "offset": 1,
            "data": {"text": "hi"},
        }
        await hub.publish("room:1", "from the server")
        assert (await peer.push())["data"] == "from the server"
        assert await peer.ok("unsubscribe", channel="room:1") == {}
        assert (await peer.error("unsubscribe", channel="room:1"))["code"] == "not_subscribed"
        assert await peer.ok("ping") == {}
