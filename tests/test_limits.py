"""lilya.limits: max_message_size per app and per route, enforced on every way of reading.

The real servers are in tests/interop (the 1009 row on six server setups) and
tests/test_cli.py (``lilya run`` giving the server the app's largest limit).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lilya.apps import Lilya
from lilya.controllers import WebSocketController
from lilya.exceptions import ImproperlyConfigured
from lilya.limits import (
    DEFAULT_MAX_MESSAGE_SIZE,
    largest_message_size,
    message_size,
    too_big_reason,
)
from lilya.routing import Include, Path, Router, WebSocketPath
from lilya.testclient import TestClient
from lilya.types import ASGIApp, Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect

Reader = Callable[[WebSocket], Awaitable[Any]]


async def by_receive_text(websocket: WebSocket) -> Any:
    return await websocket.receive_text()


async def by_receive_bytes(websocket: WebSocket) -> Any:
    return await websocket.receive_bytes()


async def by_receive_json(websocket: WebSocket) -> Any:
    return await websocket.receive_json()


async def by_receive_json_binary(websocket: WebSocket) -> Any:
    return await websocket.receive_json(mode="binary")


async def by_receive(websocket: WebSocket) -> Any:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message["code"], message["reason"])
    return message.get("text") or message.get("bytes")


# reader, a message of exactly 10 bytes, one of 11
READERS: list[tuple[Reader, Any, Any]] = [
    (by_receive_text, "é" * 5, "é" * 5 + "x"),  # UTF-8 bytes count, not characters
    (by_receive_bytes, b"x" * 10, b"x" * 11),
    (by_receive_json, '"' + "x" * 8 + '"', '"' + "x" * 9 + '"'),
    (by_receive_json_binary, b'"' + b"x" * 8 + b'"', b'"' + b"x" * 9 + b'"'),
    (by_receive, "x" * 10, b"x" * 11),
]


def reading_app(reader: Reader, seen: list[object], **route: Any) -> Lilya:
    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await reader(websocket)
                await websocket.send_text("ok")
        except WebSocketDisconnect as exc:
            seen.append(exc)
            await websocket.close()  # nothing left to do: lilya closed it

    return Lilya([WebSocketPath("/ws", handler, **route)])


def send(session: Any, payload: str | bytes) -> None:
    if isinstance(payload, str):
        session.send_text(payload)
    else:
        session.send_bytes(payload)


@pytest.mark.parametrize(("reader", "at_limit", "over"), READERS)
def test_a_message_over_max_message_size_closes_1009_and_the_handler_sees_it(
    reader: Reader, at_limit: Any, over: Any, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[object] = []
    reason = too_big_reason(11, 10)
    with (
        TestClient(reading_app(reader, seen, max_message_size=10)) as client,
        client.websocket_connect("/ws") as session,
    ):
        send(session, at_limit)
        assert session.receive_text() == "ok"
        send(session, over)
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_text()
    assert (closed.value.code, closed.value.reason) == (1009, reason)
    assert [(exc.code, exc.reason) for exc in seen] == [(1009, reason)]  # type: ignore[attr-defined]
    assert caplog.messages == [f"Closing /ws with 1009: {reason}"]


@pytest.mark.parametrize("kind", ["text", "bytes", "json"])
def test_iterators_end_on_a_message_over_the_limit_after_closing_1009(kind: str) -> None:
    got: list[object] = []

    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        iterate = {
            "text": websocket.iter_text,
            "bytes": websocket.iter_bytes,
            "json": websocket.iter_json,
        }[kind]
        async for item in iterate():
            got.append(item)
        got.append("ended")

    app = Lilya([WebSocketPath("/ws", handler)], max_message_size=10)
    small, big = ("[1,2]", "[" + "1," * 5 + "1]") if kind != "bytes" else (b"12", b"x" * 11)
    with TestClient(app) as client, client.websocket_connect("/ws") as session:
        send(session, small)
        send(session, big)
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_text()
    assert closed.value.code == 1009
    assert got == [[1, 2] if kind == "json" else small, "ended"]


def test_the_app_default_is_one_mebibyte() -> None:
    seen: list[object] = []
    with (
        TestClient(reading_app(by_receive_bytes, seen)) as client,
        client.websocket_connect("/ws") as session,
    ):
        session.send_bytes(bytes(DEFAULT_MAX_MESSAGE_SIZE))
        assert session.receive_text() == "ok"
        session.send_bytes(bytes(DEFAULT_MAX_MESSAGE_SIZE + 1))
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_text()
    assert closed.value.code == 1009
    assert DEFAULT_MAX_MESSAGE_SIZE == 1024 * 1024


def test_a_route_limit_overrides_the_apps_either_way() -> None:
    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(str(len(await websocket.receive_bytes())))

    app = Lilya(
        [
            WebSocketPath("/small", handler, max_message_size=5),
            WebSocketPath("/big", handler, max_message_size=100),
            WebSocketPath("/default", handler),
        ],
        max_message_size=20,
    )
    with TestClient(app) as client:
        for path, size, answer in [
            ("/small", 6, None),
            ("/big", 100, "100"),
            ("/default", 20, "20"),
            ("/default", 21, None),
        ]:
            with client.websocket_connect(path) as session:
                session.send_bytes(bytes(size))
                if answer is None:
                    with pytest.raises(WebSocketDisconnect) as closed:
                        session.receive_text()
                    assert closed.value.code == 1009, path
                else:
                    assert session.receive_text() == answer


def test_no_limit_of_lilyas_with_max_message_size_none_nor_on_a_bare_websocket() -> None:
    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_text(str(len(await websocket.receive_bytes())))
        await websocket.close()

    big = bytes(2 * DEFAULT_MAX_MESSAGE_SIZE)
    apps: list[ASGIApp] = [bare, Lilya([WebSocketPath("/ws", bare)], max_message_size=None)]
    for app in apps:
        with TestClient(app) as client, client.websocket_connect("/ws") as session:
            session.send_bytes(big)
            assert session.receive_text() == str(len(big))


def test_a_mounted_app_applies_its_own_default() -> None:
    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(str(len(await websocket.receive_bytes())))

    inner = Lilya([WebSocketPath("/ws", handler)], max_message_size=50)
    outer = Lilya([Include("/inner", app=inner)], max_message_size=10)
    with TestClient(outer) as client, client.websocket_connect("/inner/ws") as session:
        session.send_bytes(bytes(50))
        assert session.receive_text() == "50"
    assert largest_message_size(outer) == 50


def test_a_raw_asgi_handler_gets_a_disconnect_1009_after_lilya_closed() -> None:
    received: list[dict[str, Any]] = []

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        received.append(dict(await receive()))
        received.append(dict(await receive()))

    reason = too_big_reason(11, 10)
    with (
        TestClient(Lilya([WebSocketPath("/ws", raw)], max_message_size=10)) as client,
        client.websocket_connect("/ws") as session,
    ):
        session.send_text("x" * 10)
        session.send_text("x" * 11)
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_text()
    assert (closed.value.code, closed.value.reason) == (1009, reason)
    assert received == [
        {"type": "websocket.receive", "text": "x" * 10},
        {"type": "websocket.disconnect", "code": 1009, "reason": reason},
    ]


def test_a_controller_sees_on_disconnect_1009() -> None:
    codes: list[int] = []

    class Echo(WebSocketController):
        encoding = "text"

        async def on_receive(self, websocket: WebSocket, data: Any) -> None:
            await websocket.send_text(data)

        async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
            codes.append(close_code)

    with (
        TestClient(Lilya([WebSocketPath("/ws", Echo, max_message_size=4)])) as client,
        client.websocket_connect("/ws") as session,
    ):
        session.send_text("four")
        assert session.receive_text() == "four"
        session.send_text("fives")
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_text()
    assert closed.value.code == 1009
    assert codes == [1009]


def test_a_big_message_read_after_the_app_closed_is_not_closed_twice() -> None:
    messages: list[dict[str, Any]] = []

    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("go")
        assert await websocket.receive_text() == "sent"
        await websocket.close(4000, "done")
        messages.append(dict(await websocket.receive()))  # the big one the client sent before

    with (
        TestClient(Lilya([WebSocketPath("/ws", handler, max_message_size=10)])) as client,
        client.websocket_connect("/ws") as session,
    ):
        assert session.receive_text() == "go"
        session.send_text("sent")
        session.send_bytes(bytes(11))
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_text()
    assert closed.value.code == 4000
    assert [message["code"] for message in messages] == [1009]


def test_a_bare_router_applies_the_default() -> None:
    seen: list[object] = []

    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_bytes()
        except WebSocketDisconnect as exc:
            seen.append(exc.code)

    with (
        TestClient(Router([WebSocketPath("/ws", handler)])) as client,
        client.websocket_connect("/ws") as session,
    ):
        session.send_bytes(bytes(DEFAULT_MAX_MESSAGE_SIZE + 1))
        with pytest.raises(WebSocketDisconnect):
            session.receive_text()
    assert seen == [1009]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "1MB"])
def test_a_bad_max_message_size_is_refused_when_the_app_or_route_is_made(bad: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="max_message_size must be a positive number"):
        Lilya(max_message_size=bad)
    with pytest.raises(ImproperlyConfigured, match=r"WebSocketPath\('/ws'\): max_message_size"):
        WebSocketPath("/ws", by_receive, max_message_size=bad)


def test_message_size_counts_utf8_bytes_and_tolerates_an_empty_message() -> None:
    assert message_size({"type": "websocket.receive", "text": "é"}) == 2
    assert message_size({"type": "websocket.receive", "bytes": b"abc"}) == 3
    assert message_size({"type": "websocket.receive"}) == 0


def test_largest_message_size_is_none_for_a_raw_app_or_an_unlimited_route() -> None:
    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        pass  # never called: only inspected

    assert largest_message_size(raw) is None
    assert largest_message_size(Lilya(max_message_size=None)) is None
    assert largest_message_size(Lilya([WebSocketPath("/ws", raw, max_message_size=7)])) == (
        DEFAULT_MAX_MESSAGE_SIZE
    )
    assert largest_message_size(Lilya([Path("/", raw)], max_message_size=7)) == 7
    nested = Include("/x", routes=[WebSocketPath("/ws", raw, max_message_size=9)])
    assert largest_message_size(Lilya([nested], max_message_size=7)) == 9


def test_the_reason_fits_a_close_frame_for_absurd_sizes() -> None:
    assert len(too_big_reason(2**63, 2**62).encode()) <= 123
