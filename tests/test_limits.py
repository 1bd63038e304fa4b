"""lilya.limits: max_message_size per app and per route, enforced on every way of reading.

The real servers are in tests/interop (the 1009 row on six server setups) and
tests/test_cli.py (``lilya run`` giving the server the app's largest limit).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lilya import limits
from lilya.apps import Lilya
from lilya.controllers import WebSocketController
from lilya.exceptions import ImproperlyConfigured
from lilya.limits import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_RATE_LIMIT,
    RATE_LIMIT_KEY,
    RateLimit,
    largest_message_size,
    message_size,
    too_big_reason,
)
from lilya.routing import Include, Path, Router, WebSocketPath
from lilya.testclient import TestClient
from lilya.types import ASGIApp, Message, Receive, Scope, Send
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


# -- rate_limit ---------------------------------------------------------------


class Clock:
    """The token bucket's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(limits, "_clock", fake)
    return fake


def echo_app(seen: list[object], reader: Reader = by_receive_text, **route: Any) -> Lilya:
    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(f"echo {await reader(websocket)}")
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason))

    return Lilya([WebSocketPath("/ws", handler, **route)])


@pytest.mark.parametrize(("reader", "_", "__"), READERS)
def test_a_flood_over_the_rate_limit_closes_1008_and_the_handler_sees_it(
    reader: Reader, _: Any, __: Any, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[object] = []
    limit = RateLimit(per_second=1, burst=3)
    payload: str | bytes = b"1" if reader is by_receive_bytes else "1"
    if reader is by_receive_json_binary:
        payload = b"1"
    with (
        TestClient(echo_app(seen, reader, rate_limit=limit)) as client,
        client.websocket_connect("/ws") as session,
    ):
        for _n in range(4):
            send(session, payload)
        replies = [session.receive_text() for _n in range(3)]
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_text()
    assert len(replies) == 3
    assert (closed.value.code, closed.value.reason) == (1008, limit.reason())
    assert seen == [(1008, "over rate_limit (1 messages/s, burst 3)")]
    assert caplog.messages == [f"Closing /ws with 1008: {limit.reason()}"]


def test_tokens_come_back_at_the_rate_up_to_the_burst(clock: Clock) -> None:
    seen: list[object] = []
    app = echo_app(seen, rate_limit=RateLimit(per_second=2, burst=2))
    with TestClient(app) as client, client.websocket_connect("/ws") as session:
        for text in ["a", "b"]:
            session.send_text(text)
            assert session.receive_text() == f"echo {text}"
        clock.now += 1.0  # two tokens back
        for text in ["c", "d"]:
            session.send_text(text)
            assert session.receive_text() == f"echo {text}"
        clock.now += 100.0  # many seconds: still only the burst
        for text in ["e", "f"]:
            session.send_text(text)
            assert session.receive_text() == f"echo {text}"
        clock.now += 0.25  # half a token: not enough
        session.send_text("g")
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_text()
    assert closed.value.code == 1008


def test_drop_answers_the_error_frame_and_keeps_the_connection(clock: Clock) -> None:
    seen: list[object] = []
    limit = RateLimit(per_second=1, burst=2, on_exceed="drop", error_frame="slow down")
    with (
        TestClient(echo_app(seen, rate_limit=limit)) as client,
        client.websocket_connect("/ws") as session,
    ):
        for text in "abcd":
            session.send_text(text)
        got = [session.receive_text() for _n in range(4)]
        clock.now += 1.0
        session.send_text("e")
        got.append(session.receive_text())
        session.close(1000)
    assert got == ["echo a", "echo b", "slow down", "slow down", "echo e"]
    assert seen == [(1000, "")]


@pytest.mark.parametrize(("reader", "payload", "_"), READERS)
def test_drop_mode_still_sees_the_client_leave_while_dropping(
    reader: Reader, payload: Any, _: Any, clock: Clock
) -> None:
    seen: list[object] = []
    limit = RateLimit(per_second=1, burst=1, on_exceed="drop")
    app = echo_app(seen, reader, rate_limit=limit)
    with TestClient(app) as client, client.websocket_connect("/ws") as session:
        send(session, payload)
        assert session.receive_text().startswith("echo ")
        send(session, payload)
        assert session.receive_text() == limit.error_frame
        session.close(4000, "bye")
    assert seen == [(4000, "bye")]


def test_an_iterator_in_drop_mode_ends_when_the_client_leaves(clock: Clock) -> None:
    got: list[object] = []

    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        async for item in websocket.iter_text():
            got.append(item)
        got.append("ended")

    limit = RateLimit(per_second=1, burst=1, on_exceed="drop")
    app = Lilya([WebSocketPath("/ws", handler, rate_limit=limit)])
    with TestClient(app) as client, client.websocket_connect("/ws") as session:
        session.send_text("a")
        session.send_text("b")
        assert session.receive_text() == limit.error_frame
        session.close()
    assert got == ["a", "ended"]


@pytest.mark.anyio
async def test_drop_mode_learns_the_client_is_gone_when_the_error_frame_fails() -> None:
    incoming: list[dict[str, Any]] = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "a"},
        {"type": "websocket.receive", "text": "b"},
    ]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        if message["type"] == "websocket.send":
            raise OSError("the client is gone")

    limit = RateLimit(per_second=1e-9, burst=1, on_exceed="drop")
    scope = {"type": "websocket", "path": "/ws", "headers": [], RATE_LIMIT_KEY: limit}
    websocket = WebSocket(scope, receive, send)
    await websocket.accept()
    assert await websocket.receive_text() == "a"
    with pytest.raises(WebSocketDisconnect) as gone:
        await websocket.receive_text()
    assert gone.value.code == 1006


@pytest.mark.parametrize("kind", ["text", "json"])
def test_iterators_end_when_the_rate_limit_closes(kind: str, clock: Clock) -> None:
    got: list[object] = []

    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        async for item in websocket.iter_text() if kind == "text" else websocket.iter_json():
            got.append(item)
        got.append("ended")

    app = Lilya([WebSocketPath("/ws", handler)], rate_limit=RateLimit(per_second=1, burst=2))
    with TestClient(app) as client, client.websocket_connect("/ws") as session:
        for _n in range(3):
            session.send_text("1")
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_text()
    assert closed.value.code == 1008
    assert got == (["1", "1"] if kind == "text" else [1, 1]) + ["ended"]


def test_a_raw_asgi_handler_gets_the_rate_limit_too(clock: Clock) -> None:
    received: list[dict[str, Any]] = []

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = dict(await receive())
            received.append(message)
            if message["type"] == "websocket.disconnect":
                return

    cases: list[tuple[str, list[object]]] = [("close", [1008]), ("drop", ["dropped", 1000])]
    for on_exceed, expected in cases:
        received.clear()
        limit = RateLimit(per_second=1, burst=1, on_exceed=on_exceed, error_frame="dropped")  # type: ignore[arg-type]
        app = Lilya([WebSocketPath("/ws", raw, rate_limit=limit)], max_message_size=None)
        with TestClient(app) as client, client.websocket_connect("/ws") as session:
            session.send_text("a")
            session.send_text("b")
            if on_exceed == "close":
                with pytest.raises(WebSocketDisconnect) as closed:
                    session.receive_text()
                seen: list[object] = [closed.value.code]
            else:
                seen = [session.receive_text()]
                session.close()
        seen.append(received[-1]["code"])
        assert received[0] == {"type": "websocket.receive", "text": "a"}
        assert seen == expected + ([1008] if on_exceed == "close" else [])


def test_a_controller_is_closed_1008_by_the_rate_limit(clock: Clock) -> None:
    codes: list[int] = []

    class Echo(WebSocketController):
        encoding = "text"

        async def on_receive(self, websocket: WebSocket, data: Any) -> None:
            await websocket.send_text(data)

        async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
            codes.append(close_code)

    limit = RateLimit(per_second=1, burst=1)
    app = Lilya([WebSocketPath("/ws", Echo, rate_limit=limit)])
    with TestClient(app) as client, client.websocket_connect("/ws") as session:
        session.send_text("a")
        session.send_text("b")
        assert session.receive_text() == "a"
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_text()
    assert closed.value.code == 1008
    assert codes == [1008]


def test_the_default_rate_limit_lets_a_burst_of_1000_through_and_none_turns_it_off() -> None:
    assert RateLimit(per_second=100, burst=1000) == DEFAULT_RATE_LIMIT
    for rate_limit, count in [(DEFAULT_RATE_LIMIT, 1000), (None, 3000)]:
        seen: list[object] = []

        async def handler(websocket: WebSocket, count: int = count) -> None:
            await websocket.accept()
            total = 0
            async for _ in websocket.iter_bytes():
                total += 1
                if total == count:
                    await websocket.send_text(str(total))

        app = Lilya([WebSocketPath("/ws", handler)], rate_limit=rate_limit)
        with TestClient(app) as client, client.websocket_connect("/ws") as session:
            for _n in range(count):
                session.send_bytes(b"x")
            assert session.receive_text() == str(count)
        assert seen == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_second": 0, "burst": 1}, "per_second must be a positive number"),
        ({"per_second": float("inf"), "burst": 1}, "per_second must be a positive number"),
        ({"per_second": True, "burst": 1}, "per_second must be a positive number"),
        ({"per_second": "5", "burst": 1}, "per_second must be a positive number"),
        ({"per_second": 1, "burst": 0}, "burst must be a whole number"),
        ({"per_second": 1, "burst": 2.5}, "burst must be a whole number"),
        ({"per_second": 1, "burst": 1, "on_exceed": "ignore"}, 'on_exceed must be "close"'),
        ({"per_second": 1, "burst": 1, "error_frame": b"x"}, "error_frame must be a str"),
    ],
)
def test_a_bad_rate_limit_is_refused_when_it_is_made(kwargs: Any, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        RateLimit(**kwargs)


def test_a_rate_limit_that_is_not_a_ratelimit_is_refused_by_the_app_and_route() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"Lilya: rate_limit must be a lilya"):
        Lilya(rate_limit=100)  # type: ignore[arg-type]
    with pytest.raises(ImproperlyConfigured, match=r"WebSocketPath\('/ws'\): rate_limit"):
        WebSocketPath("/ws", by_receive, rate_limit=(100, 10))  # type: ignore[arg-type]


@pytest.mark.parametrize("where", ["receive", "iter", "raw", "bytes", "json"])
def test_a_message_is_let_through_once_its_token_came_back(where: str, clock: Clock) -> None:
    got: list[object] = []

    async def read(websocket: WebSocket) -> None:
        await websocket.accept()
        if where == "iter":
            async for text in websocket.iter_text():
                got.append(text)
                await websocket.send_text("ok")
        elif where in ("bytes", "json"):
            while True:
                try:
                    if where == "bytes":
                        got.append((await websocket.receive_bytes()).decode())
                    else:
                        got.append(await websocket.receive_json(mode="binary"))
                except WebSocketDisconnect:
                    return
                await websocket.send_text("ok")
        else:
            while (message := await websocket.receive())["type"] == "websocket.receive":
                got.append(message["text"])
                await websocket.send_text("ok")

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            got.append(message["text"])
            await send({"type": "websocket.send", "text": "ok"})

    handler: Any = raw if where == "raw" else read
    limit = RateLimit(per_second=1, burst=1)
    app = Lilya([WebSocketPath("/ws", handler, rate_limit=limit)])
    with TestClient(app) as client, client.websocket_connect("/ws") as session:
        for text in ["a", "b"]:
            if where in ("bytes", "json"):
                session.send_bytes(f'"{text}"'.encode() if where == "json" else text.encode())
            else:
                session.send_text(text)
            assert session.receive_text() == "ok"
            clock.now += 1.0
    assert got == ["a", "b"]
