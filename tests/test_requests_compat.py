"""Requests and cookies as ported code expects them.

The body is read once per connection and shared by every ``Request`` over it
(so an exception handler can read what the endpoint read), a second
``stream()`` follows one stated rule, ``is_disconnected()`` polls without
blocking or losing a chunk, and cookies set with ``set_cookie`` read back as
they were set, on ``request.cookies`` and ``websocket.cookies`` alike.
"""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import pytest

from lilya.apps import Lilya
from lilya.requests import ClientDisconnect, Request
from lilya.responses import JSONResponse, PlainText, Response
from lilya.routing import Path, WebSocketPath
from lilya.testclient import AsyncTestClient
from lilya.types import Message, Receive, Scope, Send
from lilya.websockets import WebSocket

pytestmark = pytest.mark.anyio


class Refused(Exception):
    pass


async def read_then_fail(request: Request) -> Response:
    await request.json()
    raise Refused()


async def handler_reads_again(request: Request, exc: Exception) -> Response:
    return JSONResponse({"body": (await request.body()).decode(), "json": await request.json()})


async def test_an_exception_handler_reads_the_body_the_endpoint_read() -> None:
    app = Lilya(
        routes=[Path("/", read_then_fail, methods=["POST"])],
        exception_handlers={Refused: handler_reads_again},
    )
    with anyio.fail_after(10):  # it used to wait forever for a second body
        response = await AsyncTestClient(app).post("/", json={"a": 1})
    assert response.json() == {"body": '{"a":1}', "json": {"a": 1}}


async def test_a_streamed_body_cannot_be_read_again_from_any_request() -> None:
    async def stream_then_fail(request: Request) -> Response:
        chunks = [chunk async for chunk in request.stream()]
        assert chunks == [b"abc", b""]
        raise Refused()

    async def read_again(request: Request, exc: Exception) -> Response:
        try:
            await request.body()
        except RuntimeError as error:
            return PlainText(str(error), 409)
        return PlainText("read", 200)  # pragma: no cover - the rule says it raises

    app = Lilya(
        routes=[Path("/", stream_then_fail, methods=["POST"])],
        exception_handlers={Refused: read_again},
    )
    with anyio.fail_after(10):
        response = await AsyncTestClient(app).post("/", content=b"abc")
    assert response.status_code == 409
    assert "already streamed" in response.text


async def body_of(messages: list[Message]) -> tuple[Request, list[Message]]:
    pending = list(messages)

    async def receive() -> Message:
        return pending.pop(0)

    return Request({"type": "http", "method": "POST", "headers": []}, receive), pending


async def test_stream_after_body_yields_the_cached_body_every_time() -> None:
    request, _ = await body_of([{"type": "http.request", "body": b"x", "more_body": False}])
    assert await request.body() == b"x"
    assert [chunk async for chunk in request.stream()] == [b"x", b""]
    assert [chunk async for chunk in request.stream()] == [b"x", b""]
    again = Request(request.scope, request.receive)
    assert await again.body() == b"x"


async def test_streams_opened_before_the_end_share_the_body_then_a_new_one_raises() -> None:
    request, _ = await body_of(
        [
            {"type": "http.request", "body": b"1", "more_body": True},
            {"type": "http.request", "body": b"2", "more_body": True},
            {"type": "http.request", "body": b"3"},
        ]
    )
    async with (
        contextlib.aclosing(request.stream()) as first,
        contextlib.aclosing(request.stream()) as second,
    ):
        assert await first.__anext__() == b"1"
        assert await second.__anext__() == b"2"
        assert await first.__anext__() == b"3"
        assert await first.__anext__() == b""  # the end: never waits for more
        assert await second.__anext__() == b""
    with pytest.raises(RuntimeError, match="already streamed"):
        await request.stream().__anext__()
    with pytest.raises(RuntimeError, match="already streamed"):
        await Request(request.scope, request.receive).body()


async def test_is_disconnected_sees_a_ready_disconnect() -> None:
    request, _ = await body_of([{"type": "http.disconnect"}])
    assert await request.is_disconnected() is True
    assert await request.is_disconnected() is True  # remembered, receive not called again


async def test_is_disconnected_keeps_a_body_chunk_it_polled() -> None:
    request, pending = await body_of(
        [
            {"type": "http.request", "body": b"one", "more_body": True},
            {"type": "http.request", "body": b"two", "more_body": False},
        ]
    )
    assert await request.is_disconnected() is False
    assert len(pending) == 1
    assert await request.body() == b"onetwo"


async def test_is_disconnected_is_false_during_and_true_after_the_response() -> None:
    after: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        await request.body()
        await PlainText(str(await request.is_disconnected()))(scope, receive, send)
        after.append(await request.is_disconnected())

    with anyio.fail_after(10):
        response = await AsyncTestClient(app).post("/", content=b"foo")
    assert response.text == "False"
    assert after == [True]


async def test_a_disconnect_while_streaming_is_remembered() -> None:
    request, _ = await body_of([{"type": "http.disconnect"}])
    with pytest.raises(ClientDisconnect):
        await request.body()
    assert await request.is_disconnected() is True


# -- cookies ------------------------------------------------------------------------


COOKIES = {"greeting": "Hello, cookies!", "token": "YWJj==", "quoted": 'say "hi"\\'}


async def test_cookies_set_with_set_cookie_read_back_as_set() -> None:
    async def cookies(request: Request) -> Response:
        if request.cookies:
            return JSONResponse(request.cookies)
        response = PlainText("set")
        for key, value in COOKIES.items():
            response.set_cookie(key, value)
        return response

    async def ws_cookies(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(websocket.cookies)
        await websocket.close()

    app = Lilya(routes=[Path("/", cookies), WebSocketPath("/ws", ws_cookies)])
    client = AsyncTestClient(app)
    first = await client.get("/")
    assert first.headers.get_list("set-cookie")[0] == (
        'greeting="Hello\\054 cookies!"; Path=/; SameSite=lax'
    )
    assert (await client.get("/")).json() == COOKIES
    cookie_header = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    async with client.websocket_connect("/ws", headers={"cookie": cookie_header}) as session:
        assert await session.receive_json() == COOKIES


def test_set_cookie_writes_starlettes_header_for_every_attribute() -> None:
    response = Response()
    response.set_cookie(
        "mycookie",
        "myvalue",
        max_age=10,
        expires="Thu, 22 Jan 2037 12:00:10 GMT",
        path="/",
        domain="localhost",
        secure=True,
        httponly=True,
        samesite="none",
        partitioned=True,
    )
    assert response.headers["set-cookie"] == (
        "mycookie=myvalue; Domain=localhost; expires=Thu, 22 Jan 2037 12:00:10 GMT; "
        "HttpOnly; Max-Age=10; Partitioned; Path=/; SameSite=none; Secure"
    )


@pytest.mark.parametrize("samesite", ["Lax", "STRICT", "none"])
def test_samesite_is_written_as_the_caller_spelled_it(samesite: Any) -> None:
    response = Response()
    response.set_cookie("c", "v", samesite=samesite)
    assert response.headers["set-cookie"] == f"c=v; Path=/; SameSite={samesite}"


def test_delete_cookie_expires_it_now_with_its_attributes() -> None:
    response = Response()
    response.delete_cookie("c", path="/p", domain="h.io", secure=True, httponly=True)
    header = response.headers["set-cookie"]
    assert header.startswith('c=""; Domain=h.io; expires=')
    assert header.endswith(" GMT; HttpOnly; Max-Age=0; Path=/p; SameSite=lax; Secure")


@pytest.mark.parametrize("key", ["", "a b", "a;b", "é"])
def test_a_cookie_name_that_is_not_a_token_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="not a valid token"):
        Response().set_cookie(key, "v")


def test_raw_headers_is_starlettes_name_for_the_asgi_pairs() -> None:
    response = PlainText("x", headers={"X-A": "1"})
    assert response.raw_headers == response.headers.raw
    assert (b"x-a", b"1") in response.raw_headers


async def test_the_request_body_cache_is_per_receive() -> None:
    # A middleware that replays a rewritten body hands the app another
    # receive: the app's Request reads that one, not the cache.
    request, _ = await body_of([{"type": "http.request", "body": b"old", "more_body": False}])
    assert await request.body() == b"old"

    async def replay() -> Message:
        return {"type": "http.request", "body": b"new", "more_body": False}

    assert await Request(request.scope, replay).body() == b"new"


def test_expires_in_seconds_counts_from_time_time_as_http_cookies_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import datetime
    import time

    now = datetime.datetime(2037, 1, 22, 12, 0, 0, tzinfo=datetime.timezone.utc)
    monkeypatch.setattr(time, "time", now.timestamp)
    response = Response()
    response.set_cookie("c", "v", expires=10)
    assert response.headers["set-cookie"] == (
        "c=v; expires=Thu, 22 Jan 2037 12:00:10 GMT; Path=/; SameSite=lax"
    )


async def test_an_empty_chunk_in_the_middle_of_a_stream_is_skipped() -> None:
    request, _ = await body_of(
        [
            {"type": "http.request", "body": b"a", "more_body": True},
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": b"b", "more_body": False},
        ]
    )
    assert [chunk async for chunk in request.stream()] == [b"a", b"b", b""]


async def test_ok_is_lilyas_name_for_a_json_response() -> None:
    from lilya.responses import Ok

    async def item(request: Request) -> Response:
        return Ok({"id": 1})

    response = await AsyncTestClient(Lilya(routes=[Path("/", item)])).get("/")
    assert (response.status_code, response.json()) == (200, {"id": 1})
    assert response.headers["content-type"] == "application/json"
    assert isinstance(Ok([]), JSONResponse)
