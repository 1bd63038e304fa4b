"""AsyncTestClient on its own: what only an in-loop client does (asyncio and trio).

What both clients share is tested once, for both, in the test-client modules
(the ``any_client`` fixture); here are the scenarios written for this client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from lilya.exceptions import WebSocketRuntimeError
from lilya.responses import PlainText
from lilya.testclient import AsyncTestClient, AsyncWebSocketTestSession
from lilya.types import Message, Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect

pytestmark = pytest.mark.anyio


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Lifespan, HTTP (echo the body) and WebSocket (echo frames, JSON on /json)."""
    if scope["type"] == "lifespan":
        await receive()
        scope["state"]["ready"] = True
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http":
        body = b""
        while True:
            message = await receive()
            body += message["body"]
            if not message["more_body"]:
                break
        await PlainText(body or repr(scope["state"]))(scope, receive, send)
        return
    websocket = WebSocket(scope, receive, send)
    await websocket.accept(subprotocol=(scope["subprotocols"] or [None])[0])
    if scope["path"] == "/json":
        await websocket.send_json({"state": scope["state"]}, mode="binary")
    async for text in websocket.iter_text():
        await websocket.send_text(text)
    await websocket.close()


async def test_http_requests_run_the_app_in_the_test_loop() -> None:
    async with AsyncTestClient(app) as client:
        response = await client.post("/", content=b"hello")
        assert (response.status_code, response.text) == (200, "hello")
        assert (await client.get("/")).text == "{'ready': True}"


async def test_an_async_request_body_streams_in_chunks() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"one,"
        yield b"two"

    client = AsyncTestClient(app)
    assert (await client.post("/", content=chunks())).text == "one,two"


async def test_websocket_sessions_talk_to_the_app() -> None:
    async with AsyncTestClient(app) as client:
        session = client.websocket_connect("/json", subprotocols=["chat"])
        assert isinstance(session, AsyncWebSocketTestSession)
        async with session:
            assert session.accepted_subprotocol == "chat"
            assert session.extra_headers == []
            assert await session.receive_json(mode="binary") == {"state": {"ready": True}}
            await session.send_text("ping")
            assert await session.receive_text() == "ping"
            await session.send_json({"a": 1})
            assert await session.receive_json() == {"a": 1}
            await session.send({"type": "websocket.receive", "text": "raw"})
            assert await session.receive() == {"type": "websocket.send", "text": "raw"}


async def test_websocket_bytes_go_both_ways() -> None:
    async def echo_bytes(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_bytes(await websocket.receive_bytes())
        await websocket.send_json(await websocket.receive_json(mode="binary"), mode="binary")
        await websocket.close()

    async with AsyncTestClient(echo_bytes).websocket_connect("/") as session:
        await session.send_bytes(b"\x00")
        assert await session.receive_bytes() == b"\x00"
        await session.send_json([1], mode="binary")
        assert await session.receive_json(mode="binary") == [1]


async def test_the_app_closing_is_seen_and_the_session_then_refuses_sends() -> None:
    async def closer(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.close(4001, "bye")

    async with AsyncTestClient(closer).websocket_connect("/") as session:
        with pytest.raises(WebSocketDisconnect) as caught:
            await session.receive_text()
        assert (caught.value.code, caught.value.reason) == (4001, "bye")
    with pytest.raises(WebSocketRuntimeError, match="session has ended"):
        await session.send_text("too late")


async def test_a_handshake_timeout_names_the_clients_websocket_timeout() -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep_forever()

    client = AsyncTestClient(silent, websocket_timeout=0.01)
    with pytest.raises(TimeoutError, match="pass websocket_timeout= to the test client"):
        async with client.websocket_connect("/"):
            pass  # pragma: no cover - never entered


async def test_receive_times_out_instead_of_hanging() -> None:
    client = AsyncTestClient(app, websocket_timeout=0.05)
    async with client.websocket_connect("/") as session:
        with pytest.raises(TimeoutError, match=r"Waited 0\.05 s for a text frame"):
            await session.receive_text()
        with pytest.raises(TimeoutError, match=r"Waited 0\.01 s for a bytes frame"):
            await session.receive_bytes(timeout=0.01)
        with pytest.raises(TimeoutError, match="Waited 0 s for a message"):
            await session.receive(timeout=0)


async def test_the_websocket_scope_matches_the_sync_client() -> None:
    seen: list[Message] = []

    async def recorder(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(dict(scope))
        await WebSocket(scope, receive, send).close()

    with pytest.raises(WebSocketDisconnect):
        async with AsyncTestClient(recorder, root_path="/r").websocket_connect("ws://h:81/p?q=1"):
            pass  # pragma: no cover - never entered
    scope = seen[0]
    assert (scope["scheme"], scope["server"], scope["path"]) == ("ws", ["h", 81], "/p")
    assert (scope["query_string"], scope["root_path"]) == (b"q=1", "/r")
    assert dict(scope["headers"])[b"host"] == b"h:81"
