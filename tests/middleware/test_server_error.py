"""ServerErrorMiddleware on its own, around any ASGI app."""

from __future__ import annotations

import pytest

from lilya.middleware.server_error import ServerErrorMiddleware
from lilya.types import Receive, Scope, Send
from tests.support.asgi import call_http, call_websocket

pytestmark = pytest.mark.anyio


async def returns_without_closing(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})


async def test_a_websocket_app_that_returns_open_is_closed_1000() -> None:
    outcome = await call_websocket(ServerErrorMiddleware(returns_without_closing))
    assert outcome.types == ["websocket.accept", "websocket.close"]
    assert outcome.close == (1000, "")


async def test_a_disconnect_from_http_is_not_swallowed() -> None:
    from lilya.websockets import WebSocketDisconnect

    async def odd(scope: Scope, receive: Receive, send: Send) -> None:
        raise WebSocketDisconnect(1000)

    outcome = await call_http(ServerErrorMiddleware(odd))
    assert isinstance(outcome.error, WebSocketDisconnect)
    assert outcome.status == 500


async def test_a_client_gone_while_sending_the_500_is_fine() -> None:
    async def boom(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("x")

    async def gone(message: object) -> None:
        raise OSError("client left")

    async def receive() -> dict[str, object]:
        return {"type": "http.request"}

    app = ServerErrorMiddleware(boom)
    with pytest.raises(ValueError, match="x"):
        await app({"type": "http", "method": "GET", "path": "/", "headers": []}, receive, gone)


async def test_an_origin_check_inside_still_refuses_and_a_replaced_app_is_served() -> None:
    from lilya.middleware.origin import OriginMiddleware

    async def other(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 4000})

    layer = ServerErrorMiddleware(OriginMiddleware(returns_without_closing))
    foreign = [("host", "a.test"), ("origin", "https://evil.test")]
    refused = await call_websocket(layer, headers=foreign)
    assert refused.status == 403
    allowed = await call_websocket(layer)  # no Origin header: not a browser
    assert allowed.types == ["websocket.accept", "websocket.close"]
    layer.app = other  # set after construction: the layer serves the new app
    replaced = await call_websocket(layer, headers=foreign)
    assert replaced.close == (4000, "")
