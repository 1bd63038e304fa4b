"""The synchronous TestClient: HTTP, lifespan, WebSocket sessions, on asyncio and trio."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest

from lilya import status
from lilya.exceptions import WebSocketRuntimeError
from lilya.responses import JSONResponse, PlainText, Response
from lilya.testclient import (
    AsyncTestClient,
    TestClient,
    WebSocketDenialResponse,
    WebSocketTestSession,
)
from lilya.types import ASGIApp, Message, Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect

ClientFactory = Callable[..., TestClient]


@pytest.fixture(params=["asyncio", "trio"])
def test_client_factory(request: pytest.FixtureRequest) -> ClientFactory:
    """A TestClient class bound to each backend (the fixture name Starlette's suite uses)."""
    return functools.partial(TestClient, backend=request.param)


# -- small apps and helpers ------------------------------------------------------


async def send_text_response(send: Send, body: bytes, status_code: int = 200) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def scope_recorder(seen: list[Scope]) -> Callable[[Scope, Receive, Send], Any]:
    """An app that records each scope and answers HTTP 200 / accepts WebSockets."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        if scope["type"] == "http":
            await send_text_response(send, b"ok")
        else:
            websocket = WebSocket(scope, receive, send)
            await websocket.accept()
            await websocket.close()

    return app


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept, then echo text and bytes frames until the client leaves."""
    websocket = WebSocket(scope, receive, send)
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message["bytes"])


def lifespan_app(events: list[str], **answers: str) -> Callable[[Scope, Receive, Send], Any]:
    """A raw lifespan app answering each phase with ``answers.get(phase, "complete")``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send_text_response(send, repr(sorted(scope["state"].items())).encode())
            return
        while True:
            message = await receive()
            phase = message["type"].split(".")[1]
            events.append(phase)
            answer = answers.get(phase, "complete")
            await send({"type": f"lifespan.{phase}.{answer}", "message": f"{phase} said no"})
            if phase == "startup":
                scope["state"]["started"] = True
            else:
                return

    return app


# -- HTTP ----------------------------------------------------------------------


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


def test_base_url_and_client_address_are_configurable() -> None:
    seen: list[Scope] = []
    client = TestClient(
        scope_recorder(seen), base_url="https://example.org:8443", client=("10.0.0.1", 1234)
    )
    client.get("/x")
    assert seen[0]["scheme"] == "https"
    assert seen[0]["server"] == ["example.org", 8443]
    assert seen[0]["client"] == ("10.0.0.1", 1234)


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


def test_a_head_response_has_no_body(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send_text_response(send, b"body")

    response = test_client_factory(app).head("/")
    assert response.status_code == 200
    assert response.content == b""


def test_an_app_error_is_raised_in_the_test(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        test_client_factory(app).get("/")


def test_an_app_error_before_responding_gives_500_when_not_raising(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("broken")

    response = test_client_factory(app, raise_server_exceptions=False).get("/")
    assert response.status_code == 500
    assert response.content == b""


def test_an_app_error_after_the_response_started_is_raised_once_the_body_is_read(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("mid-body")

    with pytest.raises(ValueError, match="mid-body"):
        test_client_factory(app).get("/")
    response = test_client_factory(app, raise_server_exceptions=False).get("/")
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


def test_redirects_are_followed_by_default_and_can_be_turned_off() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/old":
            headers = [(b"location", b"/new"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 307, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send_text_response(send, scope["path"].encode())

    assert TestClient(app).get("/old").text == "/new"
    assert TestClient(app, follow_redirects=False).get("/old").status_code == 307


def test_client_headers_and_cookies_are_sent_with_every_request() -> None:
    seen: list[Scope] = []
    client = TestClient(
        scope_recorder(seen), headers={"user-agent": "mine", "x-a": "1"}, cookies={"c": "v"}
    )
    client.get("/")
    headers = dict(seen[0]["headers"])
    assert headers[b"user-agent"] == b"mine"
    assert headers[b"x-a"] == b"1"
    assert headers[b"cookie"] == b"c=v"


def test_lilya_responses_work_through_the_client(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        client_host, client_port = scope["client"]
        await JSONResponse({"host": client_host, "port": client_port})(scope, receive, send)

    assert test_client_factory(app).get("/").json() == {"host": "testclient", "port": 50000}


# -- lifespan ------------------------------------------------------------------


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


def test_inside_the_context_every_request_runs_on_one_event_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []  # kept alive, so identities are not reused

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return  # no lifespan support: the client carries on
        loops.append(asyncio.get_running_loop())
        await send_text_response(send, b"")

    with TestClient(app) as client:
        client.get("/")
        client.get("/")
    client.get("/")
    assert loops[0] is loops[1]
    assert loops[1] is not loops[2]


def test_a_failed_startup_raises_the_app_error(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no db"})
        raise ConnectionError("no db")

    with pytest.raises(ConnectionError, match="no db"), test_client_factory(app):
        pass


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


# -- WebSocket: connecting ----------------------------------------------------------


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


def test_an_absolute_websocket_url_sets_scheme_server_and_host() -> None:
    seen: list[Scope] = []
    client = TestClient(scope_recorder(seen))
    with client.websocket_connect("wss://example.com:8443/x"):
        pass
    with client.websocket_connect("wss://example.com/x"):
        pass
    assert seen[0]["scheme"] == "wss"
    assert seen[0]["server"] == ["example.com", 8443]
    assert dict(seen[0]["headers"])[b"host"] == b"example.com:8443"
    assert seen[1]["server"] == ["example.com", 443]


def test_websocket_params_and_cookies_go_into_the_request() -> None:
    seen: list[Scope] = []
    client = TestClient(scope_recorder(seen), cookies={"session": "s"})
    with client.websocket_connect("/ws", params={"a": "1"}):
        pass
    assert seen[0]["query_string"] == b"a=1"
    assert dict(seen[0]["headers"])[b"cookie"] == b"session=s"


def test_offered_subprotocols_reach_the_scope_and_the_chosen_one_comes_back(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        assert websocket.headers["sec-websocket-protocol"] == "soap, wamp"
        await websocket.accept(subprotocol=scope["subprotocols"][1], headers={"x-extra": "1"})
        await websocket.close()

    client = test_client_factory(app)
    with client.websocket_connect("/", subprotocols=["soap", "wamp"]) as session:
        assert session.accepted_subprotocol == "wamp"
        assert session.extra_headers == [(b"x-extra", b"1")]


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


def test_a_close_before_accept_raises_websocket_disconnect_with_code_and_reason(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.close(status.WS_1008_POLICY_VIOLATION, "no entry")

    with (
        pytest.raises(WebSocketDisconnect) as caught,
        test_client_factory(app).websocket_connect("/"),
    ):
        pass  # pragma: no cover - never entered
    assert (caught.value.code, caught.value.reason) == (1008, "no entry")


def test_a_denial_response_is_both_an_http_response_and_a_disconnect(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.send_denial_response(
            PlainText("go away", status_code=403, headers={"x-why": "banned"})
        )

    with (
        pytest.raises(WebSocketDenialResponse) as caught,
        test_client_factory(app).websocket_connect("/"),
    ):
        pass  # pragma: no cover - never entered
    denial = caught.value
    assert isinstance(denial, httpx.Response)
    assert isinstance(denial, WebSocketDisconnect)
    assert denial.status_code == 403
    assert denial.headers["x-why"] == "banned"
    assert denial.text == "go away"
    assert denial.code == 1006
    assert denial.request.url == "ws://testserver/"
    assert str(denial) == "The application denied the WebSocket handshake with HTTP 403."
    assert repr(denial) == "<WebSocketDenialResponse [403]>"


def test_an_app_error_before_accept_is_raised_on_entering(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("broken handshake")

    with (
        pytest.raises(ValueError, match="broken handshake"),
        test_client_factory(app).websocket_connect("/"),
    ):
        pass  # pragma: no cover - never entered


def test_an_app_error_before_accept_gives_a_500_denial_when_not_raising() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("broken handshake")

    client = TestClient(app, raise_server_exceptions=False)
    with pytest.raises(WebSocketDenialResponse) as caught, client.websocket_connect("/"):
        pass  # pragma: no cover - never entered
    assert caught.value.status_code == 500


def test_an_app_returning_before_accept_gives_a_500_denial() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

    with pytest.raises(WebSocketDenialResponse) as caught, TestClient(app).websocket_connect("/"):
        pass  # pragma: no cover - never entered
    assert caught.value.status_code == 500


def answering_handshake_with(messages: list[Message]) -> ASGIApp:
    """An app that reads the connect, then sends *messages* as they are."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        for message in messages:
            await send(message)

    return app


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"type": "websocket.send", "text": "hi"}], r"\"websocket.accept\".*'websocket.send'"),
        ([{"type": "websocket.receive"}], r"\"websocket.accept\".*'websocket.receive'"),
        (
            [
                {"type": "websocket.http.response.start", "status": 403, "headers": []},
                {"type": "websocket.accept"},
            ],
            r"\"websocket.http.response.body\".*'websocket.accept'",
        ),
    ],
)
def test_a_handshake_answer_out_of_protocol_is_a_clear_error(
    messages: list[Message], error: str
) -> None:
    app = answering_handshake_with(messages)

    with pytest.raises(WebSocketRuntimeError, match=error), TestClient(app).websocket_connect("/"):
        pass  # pragma: no cover - never entered


def test_a_handshake_that_never_comes_times_out_with_the_state() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep_forever()

    client = TestClient(app, websocket_timeout=0.05)
    with (
        pytest.raises(TimeoutError, match=r"handshake answer.*the handshake is pending") as caught,
        client.websocket_connect("/"),
    ):
        pass  # pragma: no cover - never entered
    assert str(caught.value).endswith(
        "To wait longer, pass websocket_timeout= to the test client "
        "(TestClient or AsyncTestClient)."
    )


def test_a_denial_body_that_never_comes_times_out_naming_websocket_timeout() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 403, "headers": []})
        await anyio.sleep_forever()

    client = TestClient(app, websocket_timeout=0.05)
    with (
        pytest.raises(TimeoutError, match=r"denial response body.*websocket_timeout= to the test"),
        client.websocket_connect("/"),
    ):
        pass  # pragma: no cover - never entered


# -- WebSocket: talking -----------------------------------------------------------


def test_text_bytes_and_json_go_both_ways(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.send_bytes(await websocket.receive_bytes())
        await websocket.send_json(await websocket.receive_json())
        await websocket.send_json(await websocket.receive_json(mode="binary"), mode="binary")
        await websocket.close()

    with test_client_factory(app).websocket_connect("/") as session:
        session.send_text("héllo")
        assert session.receive_text() == "héllo"
        session.send_bytes(b"\x00\x01")
        assert session.receive_bytes() == b"\x00\x01"
        session.send_json({"a": [1, "é"]})
        assert session.receive_json() == {"a": [1, "é"]}
        session.send_json({"b": None}, mode="binary")
        assert session.receive_json(mode="binary") == {"b": None}


def test_send_json_is_compact_and_keeps_utf8() -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        received.append(await websocket.receive())
        received.append(await websocket.receive())
        await websocket.close()

    with TestClient(app).websocket_connect("/") as session:
        session.send_json({"k": "é", "n": [1, 2]})
        session.send_json({"k": "é"}, mode="binary")
    assert received[0] == {"type": "websocket.receive", "text": '{"k":"é","n":[1,2]}'}
    assert received[1] == {"type": "websocket.receive", "bytes": '{"k":"é"}'.encode()}


def test_raw_messages_go_both_ways() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"].upper()})
        await send({"type": "websocket.close", "code": 1000})

    with TestClient(app).websocket_connect("/") as session:
        session.send({"type": "websocket.receive", "text": "raw"})
        assert session.receive() == {"type": "websocket.send", "text": "RAW"}
        assert session.receive() == {"type": "websocket.close", "code": 1000}


def test_a_close_from_the_app_raises_websocket_disconnect_on_receive(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.close(status.WS_1001_GOING_AWAY, "bye")

    with test_client_factory(app).websocket_connect("/") as session:
        for receive in (session.receive_text, session.receive_bytes, session.receive_json):
            with pytest.raises(WebSocketDisconnect) as caught:
                receive()
            assert (caught.value.code, caught.value.reason) == (1001, "bye")
            break
        with pytest.raises(WebSocketDisconnect) as again:
            session.receive_text()
        assert again.value.code == 1001  # the app has returned: its close, repeated


def test_closing_the_session_tells_the_app_the_code_and_reason(
    test_client_factory: ClientFactory,
) -> None:
    seen: list[tuple[int, str]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason))

    with test_client_factory(app).websocket_connect("/") as session:
        session.close(status.WS_1001_GOING_AWAY, "Going Away")
    assert seen == [(1001, "Going Away")]


def test_leaving_the_session_disconnects_with_1000_and_waits_for_the_app(
    test_client_factory: ClientFactory,
) -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen.append(exc.code)
            await anyio.lowlevel.checkpoint()  # cleanup that awaits still runs
            seen.append("cleaned up")

    with test_client_factory(app).websocket_connect("/"):
        pass
    assert seen == [1000, "cleaned up"]


def test_an_app_that_only_pushes_is_stopped_when_the_session_ends(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        while True:
            await websocket.send_text("tick")
            await anyio.sleep(0.01)

    started = time.monotonic()
    with test_client_factory(app).websocket_connect("/") as session:
        assert session.receive_text() == "tick"
    assert time.monotonic() - started < 5


def test_an_app_error_after_accept_is_raised_on_leaving(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.receive_text()
        raise ValueError("handler failed")

    with (
        pytest.raises(ValueError, match="handler failed"),
        test_client_factory(app).websocket_connect("/") as session,
    ):
        session.send_text("go")


def test_an_app_error_is_raised_by_the_next_receive_and_only_once() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        raise ValueError("handler failed")

    with (
        TestClient(app).websocket_connect("/") as session,
        pytest.raises(ValueError, match="handler failed"),
    ):
        session.receive_text()
    # leaving did not raise it a second time


def test_an_app_error_after_accept_closes_with_1011_when_not_raising() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        raise ValueError("handler failed")

    client = TestClient(app, raise_server_exceptions=False)
    with client.websocket_connect("/") as session:
        with pytest.raises(WebSocketDisconnect) as caught:
            session.receive_text()
        assert caught.value.code == 1011


def test_an_app_returning_without_closing_ends_with_1006_after_its_messages() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_text("last words")

    with TestClient(app).websocket_connect("/") as session:
        assert session.receive_text() == "last words"
        with pytest.raises(WebSocketDisconnect) as caught:
            session.receive_text()
        assert caught.value.code == 1006


def test_sends_after_the_app_returned_are_dropped_and_after_the_session_refused() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.close()

    with TestClient(app).websocket_connect("/") as session:
        with pytest.raises(WebSocketDisconnect):
            session.receive_text()
        session.send_text("nobody listens")
    with pytest.raises(WebSocketRuntimeError, match="session is not open"):
        session.send_text("too late")


def test_receiving_text_when_the_app_sent_bytes_names_what_arrived() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_bytes(b"\x01")
        await websocket.send_text("t")
        await websocket.send({"type": "websocket.close", "code": 1000, "reason": ""})

    with TestClient(app).websocket_connect("/") as session:
        with pytest.raises(WebSocketRuntimeError, match=r"text frame.*bytes frame \(b'\\x01'\)"):
            session.receive_text()
        with pytest.raises(WebSocketRuntimeError, match=r"bytes frame.*text frame \('t'\)"):
            session.receive_bytes()


def test_receiving_a_frame_when_the_app_sent_another_message_is_a_clear_error() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.accept"})
        await receive()

    with TestClient(app).websocket_connect("/") as session:
        with pytest.raises(WebSocketRuntimeError, match=r"but got 'websocket\.accept'") as caught:
            session.receive_text()
        assert caught.value.message_type == "websocket.accept"


def test_invalid_json_and_a_bad_mode_are_clear_errors() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_text("{not json")
        await websocket.close()

    with TestClient(app).websocket_connect("/") as session:
        with pytest.raises(WebSocketRuntimeError, match='"mode" argument'):
            session.send_json({}, mode="xml")  # type: ignore[arg-type]  # the misuse under test
        with pytest.raises(WebSocketRuntimeError, match='"mode" argument'):
            session.receive_json(mode="xml")  # type: ignore[arg-type]  # the misuse under test
        with pytest.raises(ValueError, match="Expecting property name"):
            session.receive_json()


def test_receive_times_out_with_what_it_waited_for_and_the_state(
    test_client_factory: ClientFactory,
) -> None:
    client = test_client_factory(echo, websocket_timeout=0.05)
    with client.websocket_connect("/") as session:
        with pytest.raises(TimeoutError) as caught:
            session.receive_text()
        assert "Waited 0.05 s for a text frame" in str(caught.value)
        assert "the connection is open and the application is still running" in str(caught.value)
        assert str(caught.value).endswith(
            "To wait longer, pass timeout= to this call, or websocket_timeout= to the client."
        )
        with pytest.raises(TimeoutError, match=r"Waited 0\.01 s for a bytes frame") as explicit:
            session.receive_bytes(timeout=0.01)
        assert str(explicit.value).endswith(
            "To wait longer, pass a larger timeout= (None waits forever)."
        )
        session.send_text("late")
        assert session.receive_text(timeout=None) == "late"


def test_a_queued_message_is_returned_even_with_a_zero_timeout() -> None:
    with TestClient(echo).websocket_connect("/") as session:
        session.send_text("ready")
        session.send_text("sync")  # a round trip guarantees the first echo is queued
        assert session.receive_text() == "ready"
        assert session.receive_text(timeout=0) == "sync"


def test_a_timeout_after_the_test_disconnected_says_so() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.2)  # busy: has not yet read the disconnect

    with TestClient(app).websocket_connect("/") as session:
        session.close()
        with pytest.raises(TimeoutError, match="the test has disconnected with code 1000"):
            session.receive(timeout=0.01)


def test_a_timeout_after_the_app_closed_but_kept_running_says_so() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.close(1000)
        await anyio.sleep_forever()

    with TestClient(app).websocket_connect("/") as session:
        with pytest.raises(WebSocketDisconnect):
            session.receive_text()
        with pytest.raises(TimeoutError, match="closed the connection with code 1000"):
            session.receive(timeout=0.01)


# -- WebSocket: after the test closed ------------------------------------------------


def test_a_receive_after_the_test_closed_raises_the_tests_own_close_code_and_reason(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_text("sent before the close arrived")
        with contextlib.suppress(WebSocketDisconnect):
            await websocket.receive_text()
        await websocket.close()  # a no-op: the client has already gone

    with test_client_factory(app).websocket_connect("/") as session:
        session.close(status.WS_1001_GOING_AWAY, "Going Away")
        assert session.receive_text() == "sent before the close arrived"
        for _ in range(2):
            with pytest.raises(WebSocketDisconnect) as caught:
                session.receive_text()
            assert (caught.value.code, caught.value.reason) == (1001, "Going Away")
            assert "without closing" not in str(caught.value)


def test_a_receive_after_a_plain_close_raises_1000() -> None:
    with TestClient(echo).websocket_connect("/") as session:
        session.close()
        with pytest.raises(WebSocketDisconnect) as caught:
            session.receive_bytes()
        assert (caught.value.code, caught.value.reason) == (1000, "")


def test_a_raw_disconnect_without_a_code_is_reported_as_1005() -> None:
    with TestClient(echo).websocket_connect("/") as session:
        session.send({"type": "websocket.disconnect"})
        with pytest.raises(WebSocketDisconnect) as caught:
            session.receive()
        assert caught.value.code == 1005


def test_an_app_error_after_the_test_closed_still_reports_the_tests_close_when_not_raising() -> (
    None
):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await receive()
        raise ValueError("clean-up failed")

    client = TestClient(app, raise_server_exceptions=False)
    with client.websocket_connect("/") as session:
        session.close(4000, "done")
        with pytest.raises(WebSocketDisconnect) as caught:
            session.receive_text()
        assert (caught.value.code, caught.value.reason) == (4000, "done")


def test_an_app_error_after_the_test_closed_is_still_raised_when_raising() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await receive()
        raise ValueError("clean-up failed")

    with TestClient(app).websocket_connect("/") as session:
        session.close()
        with pytest.raises(ValueError, match="clean-up failed"):
            session.receive_text()


def test_an_app_close_after_the_test_closed_is_what_the_test_reads() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        await send({"type": "websocket.close", "code": 1001, "reason": "echo"})

    with TestClient(app).websocket_connect("/") as session:
        session.close()
        with pytest.raises(WebSocketDisconnect) as caught:
            session.receive_text()
        assert (caught.value.code, caught.value.reason) == (1001, "echo")


# -- WebSocket: payload types ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "data", "error"),
    [
        ("send_text", b"raw", r"send_text\(\) takes a str, but got bytes; call send_bytes\(\)"),
        ("send_text", 5, r"send_text\(\) takes a str, but got int; convert it .*send_json"),
        ("send_bytes", "text", r"send_bytes\(\) takes bytes.* got str; call send_text\(\)"),
        ("send_bytes", [1], r"send_bytes\(\) takes bytes.* got list; encode it to bytes"),
    ],
)
def test_sending_the_wrong_payload_type_is_a_type_error_naming_the_right_method(
    method: str, data: Any, error: str
) -> None:
    with TestClient(echo).websocket_connect("/") as session:
        with pytest.raises(TypeError, match=error):
            getattr(session, method)(data)
        session.send_text("still open")
        assert session.receive_text() == "still open"


def test_send_bytes_takes_any_bytes_like_value() -> None:
    with TestClient(echo).websocket_connect("/") as session:
        session.send_bytes(bytearray(b"ab"))
        session.send_bytes(memoryview(b"cd"))
        assert (session.receive_bytes(), session.receive_bytes()) == (b"ab", b"cd")


# -- WebSocket: what the app sends is checked as a server would ------------------------


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (
            {"type": "websocket.send", "text": b"hi"},
            r'"websocket\.send" needs "text" to be a str, but the application sent a bytes '
            r"\(b'hi'\); send bytes under the \"bytes\" key\.",
        ),
        (
            {"type": "websocket.send", "bytes": "hi"},
            r'"bytes" to be bytes, but the application sent a str .*under the "text" key',
        ),
        ({"type": "websocket.send", "text": 5}, r'"text" to be a str, but .* int \(5\)\.$'),
        ({"type": "websocket.send", "bytes": 5}, r'"bytes" to be bytes, but .* int \(5\)\.$'),
        ({"type": "websocket.send"}, r'exactly one of "text" and "bytes".*set neither'),
        (
            {"type": "websocket.send", "text": "a", "bytes": b"b"},
            r'exactly one of "text" and "bytes".*set both',
        ),
        ("websocket.send", r"send\(\) with a str; an ASGI message is a dict"),
        ({"type": "websocket.close", "code": "1000"}, r'"code" to be an int.*str'),
        ({"type": "websocket.close", "reason": b"bye"}, r'"reason" to be a str or None.*bytes'),
    ],
)
def test_a_malformed_send_from_the_app_raises_type_error_at_its_send(
    message: Any, error: str
) -> None:
    errors: list[TypeError] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await send(message)
        except TypeError as exc:
            errors.append(exc)
        await send({"type": "websocket.send", "text": "after"})

    with TestClient(app).websocket_connect("/") as session:
        assert session.receive_text() == "after"  # the bad message never reached the test
    assert len(errors) == 1
    assert re.search(error, str(errors[0]))


def test_a_malformed_send_from_the_app_is_raised_in_the_test() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "bytes": "oops"})

    with (
        TestClient(app).websocket_connect("/") as session,
        pytest.raises(TypeError, match='"bytes" to be bytes'),
    ):
        session.receive_bytes()


def test_a_send_with_one_payload_and_the_other_key_none_is_accepted() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": None, "bytes": bytearray(b"x")})
        await send({"type": "websocket.send", "text": "y", "bytes": None})
        await send({"type": "websocket.close", "code": 1000, "reason": None})

    with TestClient(app).websocket_connect("/") as session:
        assert session.receive_bytes() == b"x"
        assert session.receive_text() == "y"


@pytest.mark.parametrize(
    ("accept", "error"),
    [
        ({"subprotocol": b"chat"}, r'"subprotocol" to be a str or None.*bytes'),
        ({"headers": [("x-a", "1")]}, r"one of them is \('x-a', '1'\); encode names"),
        ({"headers": [(b"x-a",)]}, r"one of them is \(b'x-a',\)"),
        ({"headers": [b"x-a: 1"]}, r"one of them is b'x-a: 1'"),
        ({"headers": b"x-a: 1"}, r'"headers" to be an iterable of \(name, value\) pairs.*bytes'),
        ({"headers": {b"x-a": b"1"}}, r'"headers" to be an iterable.*dict'),
        ({"headers": 5}, r'"headers" to be an iterable.*int \(5\)'),
    ],
)
def test_a_malformed_accept_raises_type_error_on_entering(
    accept: dict[str, Any], error: str
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept", **accept})

    with pytest.raises(TypeError, match=error), TestClient(app).websocket_connect("/"):
        pass  # pragma: no cover - never entered


def test_accept_headers_may_be_any_iterable_of_byte_pairs() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        pairs = ((b"x-" + name, value) for name, value in [(b"a", b"1")])
        await send({"type": "websocket.accept", "headers": pairs})
        await receive()

    with TestClient(app).websocket_connect("/") as session:
        assert session.extra_headers == [(b"x-a", b"1")]


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"type": "websocket.http.response.start", "status": "403"}], r'"status" to be an int'),
        (
            [
                {"type": "websocket.http.response.start", "status": 403},
                {"type": "websocket.http.response.body", "body": "no"},
            ],
            r'"body" to be bytes, but the application sent a str',
        ),
    ],
)
def test_a_malformed_denial_response_raises_type_error_on_entering(
    messages: list[Message], error: str
) -> None:
    app = answering_handshake_with(messages)

    with pytest.raises(TypeError, match=error), TestClient(app).websocket_connect("/"):
        pass  # pragma: no cover - never entered


def test_the_default_websocket_timeout_is_30_seconds() -> None:
    assert TestClient(echo).websocket_timeout == 30


def test_an_exception_in_the_test_body_propagates_and_stops_the_app() -> None:
    with pytest.raises(KeyError, match="from the test"), TestClient(echo).websocket_connect("/"):
        raise KeyError("from the test")


def test_sessions_share_the_client_loop_inside_its_context() -> None:
    events: list[str] = []
    lifespan = lifespan_app(events)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await echo(scope, receive, send)
        else:
            await lifespan(scope, receive, send)

    with (
        TestClient(app, backend="trio") as client,
        client.websocket_connect("/a") as first,
        client.websocket_connect("/b") as second,
    ):
        first.send_text("1")
        second.send_text("2")
        assert (first.receive_text(), second.receive_text()) == ("1", "2")
    assert events == ["startup", "shutdown"]


def test_a_session_is_a_websocket_test_session() -> None:
    session = TestClient(echo).websocket_connect("/")
    assert isinstance(session, WebSocketTestSession)
    assert session.scope["type"] == "websocket"
    assert session.app is echo


# -- Starlette's own test-client tests, ported: only the imports changed -------------


def test_websocket_url(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        await websocket.accept()
        await websocket.send_json({"url": str(websocket.url)})
        await websocket.close()

    client = test_client_factory(app)
    with client.websocket_connect("/123?a=abc") as websocket:
        data = websocket.receive_json()
        assert data == {"url": "ws://testserver/123?a=abc"}


def test_websocket_binary_json(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        await websocket.accept()
        message = await websocket.receive_json(mode="binary")
        await websocket.send_json(message, mode="binary")
        await websocket.close()

    client = test_client_factory(app)
    with client.websocket_connect("/123?a=abc") as websocket:
        websocket.send_json({"test": "data"}, mode="binary")
        data = websocket.receive_json(mode="binary")
        assert data == {"test": "data"}


def test_websocket_query_params(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        query_params = dict(websocket.query_params)
        await websocket.accept()
        await websocket.send_json({"params": query_params})
        await websocket.close()

    client = test_client_factory(app)
    with client.websocket_connect("/?a=abc&b=456") as websocket:
        data = websocket.receive_json()
        assert data == {"params": {"a": "abc", "b": "456"}}


def test_websocket_headers(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        headers = dict(websocket.headers)
        await websocket.accept()
        await websocket.send_json({"headers": headers})
        await websocket.close()

    client = test_client_factory(app)
    with client.websocket_connect("/") as websocket:
        expected_headers = {
            "accept": "*/*",
            "accept-encoding": "gzip, deflate",
            "connection": "upgrade",
            "host": "testserver",
            "user-agent": "testclient",
            "sec-websocket-key": "testserver==",
            "sec-websocket-version": "13",
        }
        data = websocket.receive_json()
        assert data == {"headers": expected_headers}


def test_websocket_port(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        await websocket.accept()
        await websocket.send_json({"port": websocket.url.port})
        await websocket.close()

    client = test_client_factory(app)
    with client.websocket_connect("ws://example.com:123/123?a=abc") as websocket:
        data = websocket.receive_json()
        assert data == {"port": 123}


def test_websocket_send_and_receive_text(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        await websocket.accept()
        data = await websocket.receive_text()
        await websocket.send_text("Message was: " + data)
        await websocket.close()

    client = test_client_factory(app)
    with client.websocket_connect("/") as websocket:
        websocket.send_text("Hello, world!")
        data = websocket.receive_text()
        assert data == "Message was: Hello, world!"


def test_websocket_iter_text(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        await websocket.accept()
        async for data in websocket.iter_text():
            await websocket.send_text("Message was: " + data)

    client = test_client_factory(app)
    with client.websocket_connect("/") as websocket:
        websocket.send_text("Hello, world!")
        data = websocket.receive_text()
        assert data == "Message was: Hello, world!"


def test_websocket_concurrency_pattern(test_client_factory: ClientFactory) -> None:
    stream_send, stream_receive = anyio.create_memory_object_stream[Any]()

    async def reader(websocket: WebSocket) -> None:
        async with stream_send:
            async for data in websocket.iter_json():
                await stream_send.send(data)

    async def writer(websocket: WebSocket) -> None:
        async with stream_receive:
            async for message in stream_receive:
                await websocket.send_json(message)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        await websocket.accept()
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(reader, websocket)
            await writer(websocket)
        await websocket.close()

    client = test_client_factory(app)
    with client.websocket_connect("/") as websocket:
        websocket.send_json({"hello": "world"})
        data = websocket.receive_json()
        assert data == {"hello": "world"}


def test_client_close(test_client_factory: ClientFactory) -> None:
    close_code = None
    close_reason = None

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal close_code, close_reason
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            close_code = exc.code
            close_reason = exc.reason

    client = test_client_factory(app)
    with client.websocket_connect("/") as websocket:
        websocket.close(code=status.WS_1001_GOING_AWAY, reason="Going Away")
    assert close_code == status.WS_1001_GOING_AWAY
    assert close_reason == "Going Away"


def test_application_close(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        await websocket.accept()
        await websocket.close(status.WS_1001_GOING_AWAY)

    client = test_client_factory(app)
    with client.websocket_connect("/") as websocket:
        with pytest.raises(WebSocketDisconnect) as exc:
            websocket.receive_text()
        assert exc.value.code == status.WS_1001_GOING_AWAY


def test_rejected_connection(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        msg = await websocket.receive()
        assert msg == {"type": "websocket.connect"}
        await websocket.close(status.WS_1001_GOING_AWAY)

    client = test_client_factory(app)
    with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect("/"):
        pass  # pragma: no cover
    assert exc.value.code == status.WS_1001_GOING_AWAY


def test_send_denial_response(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        msg = await websocket.receive()
        assert msg == {"type": "websocket.connect"}
        response = Response(status_code=404, content="foo")
        await websocket.send_denial_response(response)

    client = test_client_factory(app)
    with pytest.raises(WebSocketDenialResponse) as exc, client.websocket_connect("/"):
        pass  # pragma: no cover
    assert exc.value.status_code == 404
    assert exc.value.content == b"foo"


def test_send_response_multi(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        msg = await websocket.receive()
        assert msg == {"type": "websocket.connect"}
        await websocket.send(
            {
                "type": "websocket.http.response.start",
                "status": 404,
                "headers": [(b"content-type", b"text/plain"), (b"foo", b"bar")],
            }
        )
        await websocket.send(
            {"type": "websocket.http.response.body", "body": b"hard", "more_body": True}
        )
        await websocket.send({"type": "websocket.http.response.body", "body": b"body"})

    client = test_client_factory(app)
    with pytest.raises(WebSocketDenialResponse) as exc, client.websocket_connect("/"):
        pass  # pragma: no cover
    assert exc.value.status_code == 404
    assert exc.value.content == b"hardbody"
    assert exc.value.headers["foo"] == "bar"


def test_subprotocol(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        assert websocket["subprotocols"] == ["soap", "wamp"]
        await websocket.accept(subprotocol="wamp")
        await websocket.close()

    client = test_client_factory(app)
    with client.websocket_connect("/", subprotocols=["soap", "wamp"]) as websocket:
        assert websocket.accepted_subprotocol == "wamp"


def test_additional_headers(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        await websocket.accept(headers=[(b"additional", b"header")])
        await websocket.close()

    client = test_client_factory(app)
    with client.websocket_connect("/") as websocket:
        assert websocket.extra_headers == [(b"additional", b"header")]


def test_no_additional_headers(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        await websocket.accept()
        await websocket.close()

    client = test_client_factory(app)
    with client.websocket_connect("/") as websocket:
        assert websocket.extra_headers == []


def test_duplicate_close(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        await websocket.accept()
        await websocket.close()
        await websocket.close()

    client = test_client_factory(app)
    with pytest.raises(RuntimeError), client.websocket_connect("/"):
        pass


def test_duplicate_disconnect(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        await websocket.accept()
        message = await websocket.receive()
        assert message["type"] == "websocket.disconnect"
        message = await websocket.receive()

    client = test_client_factory(app)
    with pytest.raises(RuntimeError), client.websocket_connect("/") as websocket:
        websocket.close()


def test_websocket_not_block_on_close(test_client_factory: ClientFactory) -> None:
    cancelled = False

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal cancelled
        try:
            websocket = WebSocket(scope, receive=receive, send=send)
            await websocket.accept()
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise

    client = test_client_factory(app)
    with client.websocket_connect("/"):
        ...
    assert cancelled


def test_websocket_raw_path_without_params(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive=receive, send=send)
        await websocket.accept()
        raw_path = scope.get("raw_path")
        assert raw_path is not None
        await websocket.send_bytes(raw_path)

    client = test_client_factory(app)
    with client.websocket_connect("/hello-world", params={"foo": "bar"}) as websocket:
        data = websocket.receive_bytes()
        assert data == b"/hello-world"


def test_a_lifespan_that_raises_at_shutdown_without_answering_raises_in_the_test() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise ValueError("shutdown broke")

    with pytest.raises(ValueError, match="shutdown broke"), TestClient(app):
        pass


@pytest.mark.parametrize("client_class", [TestClient, AsyncTestClient])
def test_the_clients_settings_are_one_object_its_transport_and_sessions_read(
    client_class: type[TestClient] | type[AsyncTestClient],
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not called")

    client = client_class(app, root_path="/r", websocket_timeout=5.0)
    assert client.app is app
    assert (client.root_path, client.raise_server_exceptions, client.websocket_timeout) == (
        "/r",
        True,
        5.0,
    )
    client.root_path = "/other"
    client.raise_server_exceptions = False
    client.websocket_timeout = None
    settings = client._settings
    assert (settings.root_path, settings.raise_server_exceptions, settings.websocket_timeout) == (
        "/other",
        False,
        None,
    )
    assert client._transport._settings is settings  # type: ignore[union-attr]  # private
