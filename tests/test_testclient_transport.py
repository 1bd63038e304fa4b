"""lilya/_testclient_transport.py: HTTP through the transports, scopes, and the lifespan."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from lilya.responses import JSONResponse, PlainText
from lilya.testclient import TestClient
from lilya.types import Message, Receive, Scope, Send
from lilya.websockets import WebSocket
from tests.support.testclient import (
    ClientFactory,
    call,
    entered,
    lifespan_app,
    scope_recorder,
    send_text_response,
)


def test_get_returns_the_status_headers_and_body_the_app_sent(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send_text_response(send, b"hello", status_code=201)

    response = test_client_factory(app).get("/")
    assert response.status_code == 201
    assert response.headers["content-type"] == "text/plain"
    assert response.text == "hello"


def test_http_scope_holds_what_a_server_would_put_there() -> None:
    seen: list[Scope] = []
    client = TestClient(scope_recorder(seen), root_path="/api")
    client.post("/a%20b/c?x=1&y=2", headers={"X-Thing": "yes"}, content=b"body")
    scope = seen[0]
    assert scope["type"] == "http"
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "POST"
    assert scope["path"] == "/a b/c"
    assert scope["raw_path"] == b"/a%20b/c"
    assert scope["root_path"] == "/api"
    assert scope["scheme"] == "http"
    assert scope["query_string"] == b"x=1&y=2"
    assert scope["client"] == ("testclient", 50000)
    assert scope["server"] == ["testserver", 80]
    assert scope["state"] == {}
    assert scope["asgi"]["version"] == "3.0"
    assert isinstance(scope["extensions"], dict)
    headers = dict(scope["headers"])
    assert headers[b"host"] == b"testserver"
    assert headers[b"user-agent"] == b"testclient"
    assert headers[b"x-thing"] == b"yes"
    assert headers[b"content-length"] == b"4"


def test_https_without_a_port_uses_443() -> None:
    seen: list[Scope] = []
    TestClient(scope_recorder(seen), base_url="https://example.org").get("/")
    assert seen[0]["server"] == ["example.org", 443]


def test_a_plain_request_body_arrives_in_one_message(test_client_factory: ClientFactory) -> None:
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        messages.append(await receive())
        await send_text_response(send, b"")

    test_client_factory(app).post("/", content=b"abc")
    assert messages == [{"type": "http.request", "body": b"abc", "more_body": False}]


def test_a_streamed_request_body_arrives_chunk_by_chunk(
    test_client_factory: ClientFactory,
) -> None:
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            messages.append(message)
            if not message["more_body"]:
                break
        await send_text_response(send, b"")

    def chunks() -> Iterator[bytes]:
        yield b"one"
        yield b"two"

    test_client_factory(app).post("/", content=chunks())
    assert [(m["body"], m["more_body"]) for m in messages] == [(b"one", True), (b"two", False)]


def test_receive_after_the_body_reports_a_disconnect_once_the_response_is_sent(
    test_client_factory: ClientFactory,
) -> None:
    after: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        async with anyio.create_task_group() as group:

            async def listen() -> None:
                after.append(await receive())

            group.start_soon(listen)
            await anyio.sleep(0.01)
            assert after == []  # still waiting: the response is not out yet
            await send_text_response(send, b"done")

    assert test_client_factory(app).get("/").text == "done"
    assert after == [{"type": "http.disconnect"}]


def test_a_streaming_response_is_read_as_the_app_produces_it(
    test_client_factory: ClientFactory,
) -> None:
    cancelled = threading.Event()

    async def endless(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            n = 0
            while True:
                await send({"type": "http.response.body", "body": b"%d," % n, "more_body": True})
                n += 1
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    with test_client_factory(endless).stream("GET", "/") as response:
        chunks = response.iter_bytes()
        assert next(chunks) == b"0,"
        assert next(chunks) == b"1,"
    assert cancelled.is_set()


def test_a_response_left_open_is_closed_when_the_client_context_ends() -> None:
    async def endless(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            await send({"type": "http.response.body", "body": b".", "more_body": True})

    with TestClient(endless) as client:
        response = client.send(client.build_request("GET", "/"), stream=True)
        assert response.status_code == 200
    # leaving the client closed the response and stopped the app without hanging


@pytest.mark.anyio
async def test_a_head_response_has_no_body(any_client: Callable[..., Any]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send_text_response(send, b"body")

    response = await call(any_client(app).head, "/")
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.anyio
async def test_an_app_error_is_raised_in_the_test(any_client: Callable[..., Any]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        await call(any_client(app).get, "/")


@pytest.mark.anyio
async def test_an_app_error_before_responding_gives_500_when_not_raising(
    any_client: Callable[..., Any],
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("broken")

    response = await call(any_client(app, raise_server_exceptions=False).get, "/")
    assert response.status_code == 500
    assert response.content == b""


@pytest.mark.anyio
async def test_an_app_error_after_the_response_started_is_raised_once_the_body_is_read(
    any_client: Callable[..., Any],
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("mid-body")

    with pytest.raises(ValueError, match="mid-body"):
        await call(any_client(app).get, "/")
    response = await call(any_client(app, raise_server_exceptions=False).get, "/")
    assert (response.status_code, response.content) == (200, b"part")


def test_an_app_returning_without_a_response_is_a_clear_error(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return

    with pytest.raises(RuntimeError, match="without sending a response"):
        test_client_factory(app).get("/")


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"type": "http.response.body", "body": b""}], "before"),
        (
            [
                {"type": "http.response.start", "status": 200},
                {"type": "http.response.start", "status": 200},
            ],
            "twice",
        ),
        (
            [
                {"type": "http.response.start", "status": 200},
                {"type": "http.response.body", "body": b""},
                {"type": "http.response.body", "body": b""},
            ],
            "after the body was complete",
        ),
        ([{"type": "http.response.push", "path": "/"}], "'http.response.push'"),
    ],
)
def test_out_of_order_response_messages_are_clear_errors(
    messages: list[Message], error: str
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)

    with pytest.raises(RuntimeError, match=error):
        TestClient(app).get("/")


def test_lilya_responses_work_through_the_client(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        client_host, client_port = scope["client"]
        await JSONResponse({"host": client_host, "port": client_port})(scope, receive, send)

    assert test_client_factory(app).get("/").json() == {"host": "testclient", "port": 50000}


def test_the_context_manager_runs_startup_and_shutdown(test_client_factory: ClientFactory) -> None:
    events: list[str] = []
    client = test_client_factory(lifespan_app(events))
    with client:
        assert events == ["startup"]
        assert client.get("/").text == "[('started', True)]"
    assert events == ["startup", "shutdown"]


def test_each_request_gets_a_copy_of_the_lifespan_state() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            scope["state"]["count"] = 0
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        scope["state"]["count"] += 1
        await send_text_response(send, str(scope["state"]["count"]).encode())

    with TestClient(app) as client:
        assert client.get("/").text == "1"
        assert client.get("/").text == "1"
        assert client.app_state == {"count": 0}


@pytest.mark.anyio
async def test_a_failed_startup_raises_the_app_error(any_client: Callable[..., Any]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no db"})
        raise ConnectionError("no db")

    with pytest.raises(ConnectionError, match="no db"):
        async with entered(any_client(app)):
            pass  # pragma: no cover - never entered


def test_a_failed_startup_without_an_error_raises_its_message() -> None:
    events: list[str] = []
    with (
        pytest.raises(RuntimeError, match="startup failed: startup said no"),
        TestClient(lifespan_app(events, startup="failed")),
    ):
        pass


def test_a_failed_shutdown_raises_its_message() -> None:
    events: list[str] = []
    with (
        pytest.raises(RuntimeError, match="shutdown failed: shutdown said no"),
        TestClient(lifespan_app(events, shutdown="failed")),
    ):
        pass


def test_an_app_raising_on_the_lifespan_scope_runs_without_lifespan_as_uvicorn_does() -> None:
    # The seed's bare WebSocket apps refuse a "lifespan" scope by raising;
    # uvicorn's default lifespan="auto" then carries on, and so does the client.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise TypeError("http only")
        await PlainText("ok")(scope, receive, send)

    with TestClient(app) as client:
        assert client.get("/").text == "ok"


def test_a_wrong_lifespan_answer_is_a_clear_error() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        await receive()

    with pytest.raises(RuntimeError, match=r'"lifespan.startup.complete".*got'), TestClient(app):
        pass


def test_a_lifespan_that_keeps_running_after_shutdown_is_stopped() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        await anyio.sleep_forever()

    started = time.monotonic()
    with TestClient(app):
        pass
    assert time.monotonic() - started < 5


def test_a_lifespan_app_that_ends_after_startup_needs_no_shutdown_answer() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})

    with TestClient(app):
        pass


def test_websocket_scope_holds_what_a_server_would_put_there(
    test_client_factory: ClientFactory,
) -> None:
    seen: list[Scope] = []
    client = test_client_factory(scope_recorder(seen), root_path="/root")
    with client.websocket_connect("/chat/a%20b?room=1", headers={"X-Token": "t"}):
        pass
    scope = seen[0]
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/chat/a b"
    assert scope["raw_path"] == b"/chat/a%20b"
    assert scope["root_path"] == "/root"
    assert scope["query_string"] == b"room=1"
    assert scope["client"] == ("testclient", 50000)
    assert scope["server"] == ["testserver", 80]
    assert scope["subprotocols"] == []
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["state"] == {}
    assert dict(scope["headers"]) == {
        b"host": b"testserver",
        b"accept": b"*/*",
        b"accept-encoding": b"gzip, deflate",
        b"connection": b"upgrade",
        b"sec-websocket-key": b"testserver==",
        b"sec-websocket-version": b"13",
        b"user-agent": b"testclient",
        b"x-token": b"t",
    }


def test_lifespan_state_reaches_websocket_scopes_as_a_copy() -> None:
    events: list[str] = []
    lifespan = lifespan_app(events)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await lifespan(scope, receive, send)
            return
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_json(scope["state"])
        scope["state"]["mine"] = 1
        await websocket.close()

    with TestClient(app) as client:
        with client.websocket_connect("/") as session:
            assert session.receive_json() == {"started": True}
        assert client.app_state == {"started": True}


def test_a_lifespan_that_raises_at_shutdown_without_answering_raises_in_the_test() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise ValueError("shutdown broke")

    with pytest.raises(ValueError, match="shutdown broke"), TestClient(app):
        pass
