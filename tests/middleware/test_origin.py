"""OriginMiddleware and the Lilya app's origin check: cross-origin browser handshakes get a 403."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from lilya.apps import Lilya
from lilya.exceptions import ImproperlyConfigured
from lilya.middleware import DefineMiddleware
from lilya.middleware.origin import OriginMiddleware, request_origin
from lilya.requests import Request
from lilya.routing import Path, WebSocketPath
from lilya.testclient import TestClient, WebSocketDenialResponse
from lilya.types import Message, Receive, Scope, Send
from lilya.websockets import WebSocket
from tests.support.asgi import call_http, call_websocket, websocket_scope

pytestmark = pytest.mark.anyio


async def page(request: Request) -> str:
    return "page"


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("in")


def make_app(**options: Any) -> Lilya:
    return Lilya(routes=[Path("/", page), WebSocketPath("/ws", ws)], **options)


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A raw ASGI app that accepts every handshake (and answers HTTP with 200)."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"raw"})
        return
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "raw in"})


def handshake(
    origin: str | None = None, host: str | None = "testserver", **scope: Any
) -> dict[str, Any]:
    """A WebSocket scope with these ``Origin`` and ``Host`` headers (``None``: absent)."""
    headers = [(name, value) for name, value in (("origin", origin), ("host", host)) if value]
    built = websocket_scope("/ws", headers=headers)
    if host is None:  # websocket_scope adds one
        built["headers"] = [(k, v) for k, v in built["headers"] if k != b"host"]
    built.update(scope)
    return built


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "allowed"),
    [
        # Same scheme (ws <-> http, wss <-> https), host and port: the page's own server.
        ("http://testserver", "testserver", "ws", True),
        ("http://TestServer:80", "testserver", "ws", True),
        ("http://testserver", "testserver:80", "ws", True),
        ("https://testserver", "testserver", "wss", True),
        ("https://testserver:443", "testserver:443", "wss", True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws", True),
        ("http://[::1]:8000", "[::1]:8000", "ws", True),
        ("http://testserver/", "testserver", "ws", True),
        # Another port, host or scheme is another origin.
        ("http://testserver:8001", "testserver:8000", "ws", False),
        ("http://testserver", "testserver:8000", "ws", False),
        ("http://evil.example", "testserver", "ws", False),
        ("http://testserver.evil.example", "testserver", "ws", False),
        ("https://testserver", "testserver", "ws", False),
        ("http://testserver", "testserver", "wss", False),
        ("https://testserver", "testserver:443", "ws", False),
        # Not an origin at all.
        ("null", "testserver", "ws", False),
        ("NULL", "testserver", "ws", False),
        ("file://", "testserver", "ws", False),
        ("testserver", "testserver", "ws", False),
        ("http://testserver/path", "testserver", "ws", False),
        ("http://testserver?q", "testserver", "ws", False),
        ("http://user@testserver", "testserver", "ws", False),
        ("http://[::1", "[::1]", "ws", False),
        ("http://testserver:99999", "testserver", "ws", False),
        ("http://testserver", "", "ws", False),
        ("http://testserver", "testserver:http", "ws", False),
        ("", "testserver", "ws", False),
    ],
)
def test_a_browser_handshake_must_be_same_origin_by_scheme_host_and_port(
    origin: str, host: str, scheme: str, allowed: bool
) -> None:
    scope = websocket_scope("/ws", headers=[("origin", origin), ("host", host)])
    scope["scheme"] = scheme
    refusal = OriginMiddleware(raw_app).refusal(scope)
    assert (refusal is None) is allowed


def test_the_request_origin_maps_ws_to_http_and_falls_back_to_the_server_address() -> None:
    assert request_origin(handshake(host="example.com:8443", scheme="wss")) == (
        "https",
        "example.com",
        8443,
    )
    assert request_origin(handshake(host=None)) == ("http", "testserver", 80)
    assert request_origin(handshake(host=None, server=("10.0.0.1", None))) == (
        "http",
        "10.0.0.1",
        80,
    )
    assert request_origin(handshake(host=None, server=None)) is None
    # daphne sends no scheme: the ASGI default, ws.
    no_scheme = handshake(host="example.com")
    del no_scheme["scheme"]
    assert request_origin(no_scheme) == ("http", "example.com", 80)
    two_hosts = handshake(headers=[(b"host", b"a.example"), (b"host", b"b.example")])
    assert request_origin(two_hosts) is None


def test_a_handshake_without_origin_is_let_through_unless_configured_otherwise() -> None:
    assert OriginMiddleware(raw_app).refusal(handshake(origin=None)) is None
    refusal = OriginMiddleware(raw_app, allow_missing=False).refusal(handshake(origin=None))
    assert refusal is not None
    assert "allow_missing_origin=True" in refusal


@pytest.mark.parametrize(
    ("allowed_origins", "origin", "allowed"),
    [
        (["https://app.example.com"], "https://app.example.com", True),
        (["https://app.example.com"], "https://APP.example.com:443", True),
        (["https://app.example.com/"], "https://app.example.com", True),
        (["https://app.example.com"], "http://app.example.com", False),
        (["https://app.example.com"], "https://app.example.com:8443", False),
        (["http://localhost:3000"], "http://localhost:3000", True),
        (["https://*.example.com"], "https://a.b.example.com", True),
        (["https://*.example.com"], "https://example.com", False),
        (["https://*.example.com"], "https://evilexample.com", False),
        (["https://*.example.com"], "http://a.example.com", False),
        (["*"], "https://anything.example", True),
        (["*"], "null", True),
        ("https://app.example.com", "https://app.example.com", True),
    ],
)
def test_allowed_origins_lists_further_origins(
    allowed_origins: list[str] | str, origin: str, allowed: bool
) -> None:
    middleware = OriginMiddleware(raw_app, allowed_origins=allowed_origins)
    assert (middleware.refusal(handshake(origin)) is None) is allowed


def test_several_origin_headers_are_refused_even_when_any_origin_is_allowed() -> None:
    scope = handshake(headers=[(b"origin", b"http://testserver"), (b"origin", b"http://x.org")])
    assert OriginMiddleware(raw_app, ["*"]).refusal(scope) is not None


@pytest.mark.parametrize(
    "entry",
    [
        "app.example.com",
        "https://app.example.com/chat",
        "https://a.*.com",
        "ftp://x.org",
        "*.x.org",
    ],
)
def test_an_entry_that_is_not_an_origin_is_refused_when_the_app_is_made(entry: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="is not an origin: write it as a browser"):
        OriginMiddleware(raw_app, [entry])
    with pytest.raises(ImproperlyConfigured, match="is not an origin"):
        make_app(allowed_origins=[entry])


def test_null_cannot_be_allowed_because_every_sandboxed_page_sends_it() -> None:
    with pytest.raises(ImproperlyConfigured, match='cannot list "null"'):
        make_app(allowed_origins=["null"])


async def test_a_refused_handshake_gets_a_403_naming_the_setting_and_never_runs() -> None:
    outcome = await call_websocket(make_app(), scope=handshake("http://evil.example"))
    assert outcome.status == 403
    assert b"allowed_origins" in outcome.body
    assert b"not in allowed_origins" in outcome.body
    assert "websocket.accept" not in outcome.types


async def test_without_the_denial_extension_the_handshake_is_closed_before_accept() -> None:
    scope = handshake("http://evil.example", extensions={})
    outcome = await call_websocket(make_app(), scope=scope)
    assert outcome.types == ["websocket.close"]


async def test_a_refusal_logs_one_warning_with_the_origin_and_the_host(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="lilya"):
        await call_websocket(make_app(), scope=handshake("http://evil.example"))
    assert [(r.levelno, r.name) for r in caplog.records] == [(logging.WARNING, "lilya")]
    message = caplog.records[0].getMessage()
    assert "'http://evil.example'" in message
    assert "(host 'testserver')" in message
    assert "/ws" in message


async def test_the_log_line_clips_a_huge_origin_and_says_when_origin_is_missing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(allow_missing_origin=False)
    with caplog.at_level(logging.WARNING, logger="lilya"):
        await call_websocket(app, scope=handshake("http://" + "x" * 5000))
        await call_websocket(app, scope=handshake(None, host=None))
    huge, missing = (record.getMessage() for record in caplog.records)
    assert len(huge) < 600
    assert "…" in huge
    assert "origin None (host None): no Origin header" in missing


async def test_http_requests_pass_through_whatever_their_origin() -> None:
    outcome = await call_http(make_app(), "/", headers=[("origin", "http://evil.example")])
    assert (outcome.status, outcome.body) == (200, b"page")


async def test_any_origin_and_no_origin_required_leaves_no_check_in_the_stack() -> None:
    app = make_app(allowed_origins="*")
    outcome = await call_websocket(app, scope=handshake("http://evil.example"))
    assert "websocket.accept" in outcome.types
    # Outermost: the handshake timeout, then the server-error middleware (docs/architecture.md).
    assert not isinstance(app.build_middleware_stack().app.app, OriginMiddleware)  # type: ignore[attr-defined]
    assert isinstance(make_app().build_middleware_stack().app.app, OriginMiddleware)  # type: ignore[attr-defined]


async def test_the_middleware_guards_a_raw_asgi_app() -> None:
    guarded = OriginMiddleware(raw_app, allowed_origins=["https://app.example.com"])
    refused = await call_websocket(guarded, scope=handshake("http://evil.example"))
    assert refused.status == 403
    listed = await call_websocket(guarded, scope=handshake("https://app.example.com"))
    same = await call_websocket(guarded, scope=handshake("http://testserver"))
    for outcome in (listed, same):
        assert outcome.types[:2] == ["websocket.accept", "websocket.send"]
    lifespan_seen: list[str] = []

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        lifespan_seen.append(scope["type"])

    await OriginMiddleware(lifespan_app)({"type": "lifespan"}, raw_receive, raw_send)
    assert lifespan_seen == ["lifespan"]


async def raw_receive() -> Message:
    raise AssertionError("not called")


async def raw_send(message: Message) -> None:
    raise AssertionError("not called")


def test_a_route_can_be_stricter_with_its_own_middleware() -> None:
    strict = DefineMiddleware(OriginMiddleware, allow_missing=False)
    app = Lilya(
        routes=[WebSocketPath("/ws", ws), WebSocketPath("/strict", ws, middleware=[strict])]
    )
    client = TestClient(app)
    with client.websocket_connect("/ws") as session:
        assert session.receive_text() == "in"
    with pytest.raises(WebSocketDenialResponse) as denial, client.websocket_connect("/strict"):
        pass
    assert denial.value.status_code == 403
    assert "allow_missing_origin=True" in denial.value.text


def test_the_test_client_sees_same_origin_allowed_and_foreign_refused() -> None:
    client = TestClient(make_app())
    with client.websocket_connect("/ws", headers={"origin": "http://testserver"}) as session:
        assert session.receive_text() == "in"
    with (
        pytest.raises(WebSocketDenialResponse) as denial,
        client.websocket_connect("/ws", headers={"origin": "http://evil.example"}),
    ):
        pass
    assert denial.value.status_code == 403
    assert "allowed_origins" in denial.value.text


async def test_the_check_runs_before_the_apps_own_middleware() -> None:
    seen: list[str] = []

    class Recorder:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(scope["type"])
            await self.app(scope, receive, send)

    app = make_app(middleware=[DefineMiddleware(Recorder)])
    refused = await call_websocket(app, scope=handshake("http://evil.example"))
    assert refused.status == 403
    assert seen == []
    await call_websocket(app, scope=handshake("http://testserver"))
    assert seen == ["websocket"]
