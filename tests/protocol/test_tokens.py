"""lilya.tokens: where a handshake token is found, what authenticate returns, redaction."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from lilya.apps import Lilya
from lilya.exceptions import ImproperlyConfigured
from lilya.middleware import DefineMiddleware
from lilya.middleware.authentication import AuthenticationMiddleware
from lilya.routing import Path, WebSocketPath
from lilya.testclient import AsyncTestClient
from lilya.tokens import (
    Authenticated,
    RedactTokens,
    TokenBackend,
    TokenSources,
    authenticated,
    find_token,
    redact,
)
from lilya.websockets import WebSocket, WebSocketDisconnect
from tests.protocol import hooks
from tests.support.asgi import websocket

pytestmark = pytest.mark.anyio


def handshake(**scope: Any) -> WebSocket:
    return websocket(**scope)[0]


def test_the_subprotocol_token_comes_first_then_the_cookie_then_the_query() -> None:
    both = [(b"cookie", b"token=from-cookie")]
    ws = handshake(subprotocols=["bearer", "from-list"], headers=both, query_string=b"token=q")
    found = find_token(ws)
    assert found is not None and (found.token, found.source) == ("from-list", "subprotocol")
    assert found.subprotocol == "bearer"
    ws = handshake(headers=both, query_string=b"token=q")
    found = find_token(ws)
    assert found is not None and (found.token, found.source, found.subprotocol) == (
        "from-cookie",
        "cookie",
        None,
    )
    found = find_token(handshake(query_string=b"token=q"))
    assert found is not None and (found.token, found.source) == ("q", "query")


def test_no_token_empty_values_and_switched_off_sources_find_nothing() -> None:
    assert find_token(handshake()) is None
    assert find_token(handshake(subprotocols=["bearer"])) is None
    assert find_token(handshake(subprotocols=["chat", "x"])) is None
    assert find_token(handshake(query_string=b"token=")) is None
    off = TokenSources(subprotocol=False, cookie=None, query=None)
    ws = handshake(subprotocols=["bearer", "t"], query_string=b"token=q")
    assert find_token(ws, off) is None
    assert find_token(handshake(query_string=b"t=q"), TokenSources(query="t")) is not None


@pytest.mark.parametrize("name", ["", 3])
def test_a_token_source_name_must_be_a_non_empty_string(name: Any) -> None:
    with pytest.raises(ImproperlyConfigured):
        TokenSources(cookie=name)


def test_authenticated_normalises_what_a_hook_returns() -> None:
    assert authenticated(None) is None
    assert authenticated("ann") == Authenticated("ann")
    assert authenticated(Authenticated("ann", 5)) == Authenticated("ann", 5)
    assert authenticated(Authenticated(None, 5)) is None
    with pytest.raises(TypeError, match="expires_at"):
        authenticated(Authenticated("ann", "tomorrow"))  # type: ignore[arg-type]  # under test
    with pytest.raises(TypeError, match="expires_at"):
        authenticated(Authenticated("ann", True))


async def whoami(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol=TokenBackend.subprotocol_for(websocket))
    user = websocket.scope["user"]
    await websocket.send_json({"user": getattr(user, "display_name", user)})
    await websocket.close()


async def page() -> str:
    return "page"


def token_app(**options: Any) -> Lilya:
    backend = TokenBackend(hooks.authenticate, **options)
    return Lilya(
        routes=[WebSocketPath("/ws", whoami), Path("/", page)],
        middleware=[DefineMiddleware(AuthenticationMiddleware, backend=backend)],
    )


async def test_the_backend_authenticates_a_plain_route_and_echoes_bearer() -> None:
    async with AsyncTestClient(token_app()) as client:
        async with client.websocket_connect("/ws", subprotocols=["bearer", "ann"]) as session:
            assert session.accepted_subprotocol == "bearer"
            assert await session.receive_json() == {"user": "ann"}
        async with client.websocket_connect("/ws", params={"token": "bob"}) as session:
            assert session.accepted_subprotocol is None
            assert await session.receive_json() == {"user": "bob"}
        assert (await client.get("/")).text == "page"


@pytest.mark.parametrize("kwargs", [{}, {"params": {"token": "mallory"}}])
async def test_the_backend_denies_a_missing_or_refused_token_with_401(kwargs: Any) -> None:
    async with AsyncTestClient(token_app()) as client:
        with pytest.raises(WebSocketDisconnect) as caught:
            async with client.websocket_connect("/ws", **kwargs):
                pass
    assert getattr(caught.value, "status_code", None) == 401


async def test_an_optional_backend_lets_a_handshake_without_token_in_anonymous() -> None:
    client = AsyncTestClient(token_app(required=False))
    async with client, client.websocket_connect("/ws") as session:
        assert await session.receive_json() == {"user": ""}


def test_the_backend_needs_a_callable() -> None:
    with pytest.raises(ImproperlyConfigured):
        TokenBackend("nope")  # type: ignore[arg-type]  # the mistake under test


def test_redact_hides_token_values_in_query_strings_only() -> None:
    assert redact("GET /ws?token=abc&room=1") == "GET /ws?token=***&room=1"
    assert (
        redact("/ws?room=1&access_token=x.y.z HTTP/1.1") == "/ws?room=1&access_token=*** HTTP/1.1"
    )
    assert redact("/ws?mytoken=1") == "/ws?mytoken=1"


def test_the_filter_rewrites_arguments_and_message_and_keeps_every_record() -> None:
    record = logging.LogRecord(
        "uvicorn.access", 20, __file__, 1, '%s "%s"', ("1.2.3.4", "/ws?token=s"), None
    )
    assert RedactTokens().filter(record) is True
    assert record.getMessage() == '1.2.3.4 "/ws?token=***"'
    record = logging.LogRecord("x", 20, __file__, 1, "%(path)s", None, None)
    record.args = {"path": "/?token=s", "n": 1}
    assert RedactTokens().filter(record)
    assert record.getMessage() == "/?token=***"
    record = logging.LogRecord("x", 20, __file__, 1, "/?token=s", None, None)
    RedactTokens().filter(record)
    assert record.getMessage() == "/?token=***"
    record = logging.LogRecord("x", 20, __file__, 1, 42, None, None)
    assert RedactTokens().filter(record)
