"""TrustedHostMiddleware: 400 for HTTP, a 403 denial for WebSockets."""

from __future__ import annotations

import pytest

from lilya.apps import Lilya
from lilya.exceptions import ImproperlyConfigured
from lilya.middleware import DefineMiddleware
from lilya.middleware.trusted_host import TrustedHostMiddleware
from lilya.requests import Request
from lilya.routing import Path, WebSocketPath
from lilya.testclient import TestClient, WebSocketDenialResponse
from lilya.websockets import WebSocket
from tests.support.asgi import call_http, call_websocket

pytestmark = pytest.mark.anyio


async def page(request: Request) -> str:
    return "ok"


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("in")


def make_app(*hosts: str, www_redirect: bool = True) -> Lilya:
    return Lilya(
        routes=[Path("/", page), WebSocketPath("/ws", ws)],
        middleware=[
            DefineMiddleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=www_redirect)
        ],
    )


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("example.com", True),
        ("EXAMPLE.com:8000", True),
        ("api.example.org", True),
        ("example.org", False),
        ("evil.com", False),
        ("", False),
    ],
)
async def test_http_from_an_unknown_host_is_400(host: str, allowed: bool) -> None:
    app = make_app("example.com", "*.example.org")
    outcome = await call_http(app, "/", headers=[("host", host)])
    assert outcome.status == (200 if allowed else 400)


async def test_a_websocket_from_an_unknown_host_gets_a_403_denial_and_never_runs() -> None:
    app = make_app("example.com")
    outcome = await call_websocket(app, "/ws", headers=[("host", "evil.com")])
    assert (outcome.status, outcome.body) == (403, b"Invalid host header")
    assert "websocket.accept" not in outcome.types


async def test_without_the_extension_the_websocket_is_closed_before_accept() -> None:
    app = make_app("example.com")
    outcome = await call_websocket(app, "/ws", headers=[("host", "evil.com")], extensions=False)
    assert outcome.types == ["websocket.close"]


def test_the_test_client_sees_the_denial() -> None:
    client = TestClient(make_app("example.com"))
    with pytest.raises(WebSocketDenialResponse) as denial, client.websocket_connect("/ws"):
        pass
    assert denial.value.status_code == 403
    good = TestClient(make_app("testserver"))
    with good.websocket_connect("/ws") as session:
        assert session.receive_text() == "in"


async def test_www_redirect_for_http_only() -> None:
    app = make_app("www.example.com")
    outcome = await call_http(app, "/", headers=[("host", "example.com")])
    assert outcome.status == 301
    assert outcome.headers["location"] == "http://www.example.com/"
    outcome = await call_websocket(app, "/ws", headers=[("host", "example.com")])
    assert outcome.status == 403
    no_redirect = make_app("www.example.com", www_redirect=False)
    assert (await call_http(no_redirect, "/", headers=[("host", "example.com")])).status == 400


async def test_star_allows_everything_and_lifespan_passes() -> None:
    app = make_app("*")
    assert (await call_http(app, "/", headers=[("host", "anything")])).status == 200


def test_a_wildcard_in_the_middle_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="wildcard"):
        TrustedHostMiddleware(Lilya(), allowed_hosts=["api.*.com"])
    assert TrustedHostMiddleware(Lilya(), allowed_hosts="x.org").allowed_hosts == ["x.org"]
