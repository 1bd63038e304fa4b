"""The HTTP Request shares the connection base with WebSocket."""

from __future__ import annotations

from typing import Any

import pytest

from lilya.exceptions import HTTPException
from lilya.requests import ClientDisconnect, Request
from lilya.types import Message
from tests.support.asgi import Wire

pytestmark = pytest.mark.anyio


def http_scope(**overrides: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "post",
        "scheme": "http",
        "server": ("testserver", 80),
        "path": "/items",
        "query_string": b"q=1",
        "headers": [(b"host", b"testserver"), (b"cookie", b"sid=abc")],
    }
    scope.update(overrides)
    return scope


def body(*chunks: bytes) -> list[Message]:
    return [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]


def test_request_exposes_method_url_headers_params_and_cookies() -> None:
    request = Request(http_scope(path_params={"id": 3}))
    assert request.method == "POST"
    assert request.url == "http://testserver/items?q=1"
    assert request.headers["host"] == "testserver"
    assert request.query_params["q"] == "1"
    assert request.path_params == {"id": 3}
    assert request.cookies == {"sid": "abc"}
    assert request["path"] == "/items"
    assert request.base_url == "http://testserver/"


@pytest.mark.parametrize("scope", [{"type": "websocket"}, {}, None])
def test_a_non_http_scope_is_refused(scope: Any) -> None:
    with pytest.raises(TypeError, match='scope of type "http"'):
        Request(scope)


async def test_body_joins_chunks_and_is_cached() -> None:
    wire = Wire(*body(b"ab", b"", b"cd"))
    request = Request(http_scope(), wire.receive)
    assert await request.body() == b"abcd"
    assert await request.body() == b"abcd"
    assert [chunk async for chunk in request.stream()] == [b"abcd", b""]  # b"" ends, as Starlette
    assert wire.receive_calls == 3
    assert request.receive == wire.receive


async def test_stream_yields_chunks_once() -> None:
    request = Request(http_scope(), Wire(*body(b"a", b"b")).receive)
    assert [chunk async for chunk in request.stream()] == [b"a", b"b", b""]
    with pytest.raises(RuntimeError, match="already streamed"):
        await request.body()


async def test_json_parses_the_body_and_bad_json_is_a_400() -> None:
    assert await Request(http_scope(), Wire(*body(b'{"a": 1}')).receive).json() == {"a": 1}
    with pytest.raises(HTTPException) as info:
        await Request(http_scope(), Wire(*body(b"{nope")).receive).json()
    assert info.value.status_code == 400
    assert "not valid JSON" in info.value.detail


async def test_a_disconnect_while_reading_raises_client_disconnect() -> None:
    wire = Wire(
        {"type": "http.request", "body": b"a", "more_body": True}, {"type": "http.disconnect"}
    )
    with pytest.raises(ClientDisconnect):
        await Request(http_scope(), wire.receive).body()


async def test_a_request_without_receive_says_how_to_read_the_body() -> None:
    with pytest.raises(RuntimeError, match="pass receive="):
        await Request(http_scope()).body()


async def test_a_request_built_without_send_says_so_when_lilya_sends_through_it() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})
    with pytest.raises(RuntimeError, match="without a send callable"):
        await request._send({"type": "http.response.start", "status": 200})


async def test_the_body_stream_skips_messages_that_are_not_the_body() -> None:
    wire = Wire(
        {"type": "http.request.trailers"},  # a message this request does not read
        {"type": "http.request", "body": b"ok", "more_body": False},
    )
    request = Request({"type": "http", "method": "POST", "headers": []}, wire.receive)
    assert await request.body() == b"ok"
