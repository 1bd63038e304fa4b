"""lilya's own heartbeat, in process: pings answered, silent clients closed 1011, settings refused.

One test body for both clients (``any_client``) on asyncio and trio; the
corners no client reaches (a server that refuses the ping, a raw handler that
keeps going) run over scripted ASGI callables.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from lilya.apps import Lilya
from lilya.controllers import WebSocketController
from lilya.exceptions import ImproperlyConfigured
from lilya.heartbeat import PING_TEXT, PONG_TEXT, HeartbeatGone, check_heartbeat
from lilya.routing import WebSocketPath
from lilya.testclient import AsyncTestClient
from lilya.timeouts import CLOSE_GRACE
from lilya.types import Message, Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect
from tests.support.asgi import CONNECT, websocket_scope
from tests.support.testclient import ClientFactory, call, entered
from tests.test_timeouts import StallingServer

pytestmark = pytest.mark.anyio

FAST = (0.05, 0.5)  # interval, timeout: a silent client is closed within 0.55 s (+ 1 s)


async def eventually(seen: list[Any]) -> None:
    """Wait (at most 5 s) until the handler has noted something in *seen*.

    Leaving a session cancels a handler that is only sleeping, as the test
    client ends every session: wait for it first.
    """
    with anyio.fail_after(5):
        while not seen:
            await anyio.sleep(0.01)


def waiting_for_a_message(seen: list[int]) -> Callable[[WebSocket], Awaitable[None]]:
    """A handler that accepts and waits for one message, noting the disconnect's code in *seen*."""

    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen.append(exc.code)

    return handler


async def closed_with(session: Any, timeout: float = 5) -> int:
    """Read *session* until the app closes it; return the close code."""
    with pytest.raises(WebSocketDisconnect) as info:
        while True:
            await call(session.receive_text, timeout)
    return info.value.code


async def test_pings_are_answered_and_hidden_and_the_handler_never_sees_a_pong(
    any_client: Callable[..., Any],
) -> None:
    latencies: list[float | None] = []

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        latencies.append(websocket.latency)
        async for text in websocket.iter_text():
            latencies.append(websocket.latency)
            await websocket.send_text(text)

    app = Lilya(routes=[WebSocketPath("/", echo, heartbeat=FAST)])
    async with entered(any_client(app).websocket_connect("/")) as session:
        for number in range(3):
            await anyio.sleep(0.15)  # a few pings go by, each answered
            await call(session.send_text, f"m{number}")
            assert await call(session.receive_text) == f"m{number}"
    assert latencies[0] is None  # no pong before the first ping
    assert all(latency is not None and 0 <= latency < 1 for latency in latencies[1:])


async def test_a_client_that_stops_ponging_is_closed_1011_and_the_pending_receive_is_told(
    any_client: Callable[..., Any],
) -> None:
    seen: list[tuple[int, str]] = []

    async def reader(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason))
            raise

    app = Lilya(routes=[WebSocketPath("/", reader, heartbeat=FAST)])
    async with entered(any_client(app).websocket_connect("/")) as session:
        await anyio.sleep(0.2)  # answered pings keep it open
        started = time.monotonic()
        await call(session.stop_ponging)
        assert await closed_with(session) == 1011
        assert time.monotonic() - started < sum(FAST) + 1
    assert seen == [(1011, "heartbeat: no pong within 0.5 s")]


async def test_a_send_only_handler_learns_its_silent_client_is_gone_from_its_next_send(
    any_client: Callable[..., Any],
) -> None:
    seen: list[int] = []

    async def ticker(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text("tick")
                await anyio.sleep(0.01)
        except WebSocketDisconnect as exc:
            seen.append(exc.code)
        await websocket.close()  # the connection is over already: nothing happens

    app = Lilya(routes=[WebSocketPath("/", ticker)], heartbeat=FAST)
    async with entered(any_client(app).websocket_connect("/")) as session:
        await call(session.stop_ponging)
        assert await closed_with(session) == 1011
        await eventually(seen)
    assert seen == [1011]


async def test_a_send_waiting_on_a_client_that_stopped_reading_raises_1011(
    any_client: Callable[..., Any],
) -> None:
    seen: list[int] = []

    async def ticker(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_json({"tick": 1})
        except WebSocketDisconnect as exc:
            seen.append(exc.code)

    app = Lilya(routes=[WebSocketPath("/", ticker, heartbeat=FAST)])
    async with entered(any_client(app).websocket_connect("/")) as session:
        # Frozen: neither reading nor answering. The handler's send waits in
        # the server; the heartbeat cancels it.
        await call(session.pause_reading)
        await anyio.sleep(sum(FAST) + 0.5)
        assert seen == [1011]


async def test_a_client_that_closes_is_reported_to_a_send_only_handler_with_its_code(
    any_client: Callable[..., Any],
) -> None:
    seen: list[tuple[int, str]] = []
    started = anyio.Event()

    async def ticker(websocket: WebSocket) -> None:
        await websocket.accept()
        started.set()
        try:
            while True:
                await websocket.send_text("tick")
                await anyio.sleep(0.01)
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason))

    app = Lilya(routes=[WebSocketPath("/", ticker, heartbeat=(30, 10))])
    async with entered(any_client(app).websocket_connect("/")) as session:
        await started.wait()
        await call(session.close, 4000, "bye")
        await eventually(seen)
    assert seen == [(4000, "bye")]


async def test_messages_arrive_in_order_with_pings_and_pongs_in_between(
    any_client: Callable[..., Any],
) -> None:
    got: list[str] = []

    async def collect(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            got.append(text)
            if text == "last":
                await websocket.send_text(repr(websocket.latency is not None))

    app = Lilya(routes=[WebSocketPath("/", collect, heartbeat=(0.01, 5))])
    async with entered(any_client(app).websocket_connect("/")) as session:
        for number in range(200):
            await call(session.send_text, str(number))
            if number % 50 == 0:
                await anyio.sleep(0.03)  # pings and pongs go by in between
        await call(session.send_text, "last")
        assert await call(session.receive_text) == "True"
    assert got == [str(number) for number in range(200)] + ["last"]


async def test_a_pong_no_ping_asked_for_is_the_apps_to_read(
    any_client: Callable[..., Any],
) -> None:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())

    app = Lilya(routes=[WebSocketPath("/", echo, heartbeat=(30, 10))])
    async with entered(any_client(app).websocket_connect("/")) as session:
        # Unasked, it counts as any frame (and against the rate limit).
        await call(session.send_text, PONG_TEXT)
        assert await call(session.receive_text) == PONG_TEXT


async def test_a_handler_that_does_not_read_is_not_its_clients_fault(
    any_client: Callable[..., Any],
) -> None:
    got: list[str] = []

    async def slow(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()  # "go"
        # Busy for several timeouts while the client fills the queue, its
        # pongs behind what the handler has not taken.
        await anyio.sleep(sum(FAST) * 3)
        got.extend([await websocket.receive_text() for _ in range(100)])
        await websocket.send_text("read them all")

    app = Lilya(routes=[WebSocketPath("/", slow, heartbeat=FAST)])
    async with entered(any_client(app).websocket_connect("/")) as session:
        await call(session.send_text, "go")
        for number in range(100):
            await call(session.send_text, str(number))
        assert await call(session.receive_text, 10) == "read them all"
    assert got == [str(number) for number in range(100)]


async def test_the_app_heartbeat_is_the_default_and_false_turns_a_route_off(
    any_client: Callable[..., Any],
) -> None:
    async def quiet(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(repr(websocket.latency))
        await websocket.receive_text()

    app = Lilya(
        routes=[WebSocketPath("/on", quiet), WebSocketPath("/off", quiet, heartbeat=False)],
        heartbeat=FAST,
    )
    client = any_client(app)
    async with entered(client.websocket_connect("/off")) as session:
        assert await call(session.receive_text) == "None"
        await call(session.stop_ponging)  # nothing to answer here
        await anyio.sleep(sum(FAST) + 0.2)
        await call(session.send_text, "still open")
    async with entered(client.websocket_connect("/on")) as session:
        await call(session.receive_text)
        await call(session.stop_ponging)
        assert await closed_with(session) == 1011


async def test_a_ping_on_a_route_without_heartbeat_is_the_tests_to_read(
    any_client: Callable[..., Any],
) -> None:
    async def pinger(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(PING_TEXT)  # the app's own message, not lilya's heartbeat
        await websocket.close()

    app = Lilya(routes=[WebSocketPath("/", pinger)])
    async with entered(any_client(app).websocket_connect("/")) as session:
        assert await call(session.receive_text) == PING_TEXT


async def test_a_controller_on_a_heartbeat_route_is_closed_1011_when_silent(
    any_client: Callable[..., Any],
) -> None:
    codes: list[int] = []

    class Room(WebSocketController):
        async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
            codes.append(close_code)

    app = Lilya(routes=[WebSocketPath("/", Room, heartbeat=FAST)])
    async with entered(any_client(app).websocket_connect("/")) as session:
        await call(session.stop_ponging)
        assert await closed_with(session) == 1011
    assert codes == [1011]


def test_an_error_in_a_heartbeat_handler_is_answered_1011_and_raised_as_itself(
    test_client_factory: ClientFactory,
) -> None:
    async def broken(websocket: WebSocket) -> None:
        await websocket.accept()
        raise LookupError("no such room")

    app = Lilya(routes=[WebSocketPath("/", broken, heartbeat=FAST)])
    client = test_client_factory(app)
    # The error itself, not an ExceptionGroup from the heartbeat's task group.
    with pytest.raises(LookupError, match="no such room"), client.websocket_connect("/") as session:
        with pytest.raises(WebSocketDisconnect) as info:
            session.receive_text()
        assert info.value.code == 1011


async def test_a_drain_still_closes_a_heartbeat_route_with_its_code(anyio_backend: str) -> None:
    async def reader(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()

    app = Lilya(routes=[WebSocketPath("/", reader, heartbeat=(30, 10))], drain_timeout=2)
    async with AsyncTestClient(app).websocket_connect("/") as session:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(app.drain)
            assert await closed_with(session) == 1012
        app._drain.reset()


async def test_a_late_pong_by_hand_counts_and_a_frame_that_only_looks_like_one_is_data(
    any_client: Callable[..., Any],
) -> None:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text)

    app = Lilya(routes=[WebSocketPath("/", echo, heartbeat=(0.01, 2))])
    async with entered(any_client(app).websocket_connect("/")) as session:
        await call(session.stop_ponging)
        await anyio.sleep(0.1)  # a ping is waiting for its pong now
        for text in ("pong", '{"type": "pong"', '["pong"]', '{"type":"pong", "x": "' + "y" * 64):
            await call(session.send_text, text)
            assert await call(session.receive_text) == text
        await call(session.send_text, '{"type": "pong"}')  # the answer: not echoed
        await call(session.send_text, "after")
        assert await call(session.receive_text) == "after"


# -- a raw ASGI handler on a heartbeat route ---------------------------------------


async def test_a_raw_handler_that_accepts_before_reading_gets_the_connect_first(
    any_client: Callable[..., Any],
) -> None:
    seen: list[str] = []

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.accept"})
        seen.append((await receive())["type"])
        seen.append((await receive())["type"])

    app = Lilya(routes=[WebSocketPath("/", raw, heartbeat=(30, 10))])
    async with entered(any_client(app).websocket_connect("/")):
        pass
    assert seen == ["websocket.connect", "websocket.disconnect"]


async def test_a_raw_handler_gets_the_1011_disconnect_again_and_an_oserror_on_send(
    any_client: Callable[..., Any],
) -> None:
    seen: list[Any] = []

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        seen.append((await receive())["text"])
        seen.append(await receive())
        seen.append((await receive())["code"])  # asked again: the end again, no hang
        try:
            await send({"type": "websocket.send", "text": "late"})
        except OSError as exc:
            seen.append(type(exc))
        await send({"type": "websocket.close", "code": 1000})  # over already: nothing sent

    app = Lilya(routes=[WebSocketPath("/", raw, heartbeat=FAST)])
    async with entered(any_client(app).websocket_connect("/")) as session:
        await call(session.send_text, "hello")
        await call(session.stop_ponging)
        assert await closed_with(session) == 1011
    disconnect = {
        "type": "websocket.disconnect",
        "code": 1011,
        "reason": "heartbeat: no pong within 0.5 s",
    }
    assert seen == ["hello", disconnect, 1011, HeartbeatGone]


async def test_a_raw_handler_that_sends_after_reading_the_clients_close_gets_an_oserror(
    any_client: Callable[..., Any],
) -> None:
    seen: list[Any] = []

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        seen.append((await receive())["code"])
        try:
            await send({"type": "websocket.send", "text": "late"})
        except OSError:
            seen.append("refused")

    app = Lilya(routes=[WebSocketPath("/", raw, heartbeat=(30, 10))])
    async with entered(any_client(app).websocket_connect("/")) as session:
        await call(session.close, 4000)
    assert seen == [4000, "refused"]


# -- servers that misbehave ----------------------------------------------------------


async def test_a_server_that_refuses_the_ping_ends_the_pinger_quietly() -> None:
    sent: list[Message] = []
    done = anyio.Event()

    async def receive() -> Message:
        if not sent:
            return CONNECT
        await done.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        if message.get("text") == PING_TEXT:
            raise RuntimeError("Unexpected ASGI message 'websocket.send'")
        sent.append(message)

    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        await anyio.sleep(0.2)  # several intervals: the pinger stopped at the first
        await websocket.send_text("alive")
        done.set()
        await websocket.receive_text()

    route = WebSocketPath("/", handler, heartbeat=(0.01, 1))
    await route.handle(websocket_scope(), receive, send)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send"]


async def test_the_pinger_stops_once_the_handler_has_closed() -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        if not sent:
            return CONNECT
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: Message) -> None:
        sent.append(message)

    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close(4000)
        await anyio.sleep(0.2)  # pings would go out here if the pinger had not stopped

    route = WebSocketPath("/", handler, heartbeat=(0.05, 5))
    await route.handle(websocket_scope(), receive, send)
    assert [message["type"] for message in sent] == ["websocket.accept", "websocket.close"]


async def test_a_close_the_server_cannot_deliver_is_given_up_after_a_second() -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        if not sent:
            return CONNECT
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: Message) -> None:
        if message["type"] == "websocket.close":
            await anyio.sleep_forever()  # the client's window is full
        sent.append(message)

    seen: list[int] = []
    handler = waiting_for_a_message(seen)

    route = WebSocketPath("/", handler, heartbeat=(0.01, 0.05))
    with anyio.fail_after(5):
        await route.handle(websocket_scope(), receive, send)
    assert seen == [1011]
    assert [m.get("text") for m in sent] == [None, PING_TEXT]


async def test_a_silent_client_that_does_not_take_the_close_has_its_tcp_connection_dropped() -> (
    None
):
    # It stopped answering and stopped reading: the close 1011 cannot leave,
    # so the connection is dropped after the close's grace, never left half-open.
    server = StallingServer(CONNECT, stall=("websocket.close",))
    seen: list[int] = []
    handler = waiting_for_a_message(seen)

    app = Lilya(routes=[WebSocketPath("/ws", handler, heartbeat=(0.01, 0.05))])
    started = time.monotonic()
    await server.run(app)
    assert server.transport.aborted
    assert CLOSE_GRACE <= time.monotonic() - started < CLOSE_GRACE + 1
    assert seen == [1011]
    assert [m.get("text") for m in server.sent] == [None, PING_TEXT]


# -- settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (10, "heartbeat must be (interval, timeout) in seconds"),
        ([10, 5], "heartbeat must be (interval, timeout) in seconds"),
        ((10,), "heartbeat must be (interval, timeout) in seconds"),
        ((10, 5, 1), "heartbeat must be (interval, timeout) in seconds"),
        (True, "heartbeat must be (interval, timeout) in seconds"),
        ((0, 5), "the heartbeat interval must be a finite number of seconds > 0, got 0"),
        ((10, -1), "the heartbeat timeout must be a finite number of seconds > 0, got -1"),
        ((float("inf"), 5), "the heartbeat interval must be a finite number of seconds > 0"),
        ((10, float("nan")), "the heartbeat timeout must be a finite number of seconds > 0"),
        ((True, 5), "the heartbeat interval must be a finite number of seconds > 0, got True"),
        (("10", 5), "the heartbeat interval must be a finite number of seconds > 0, got '10'"),
    ],
)
def test_a_bad_heartbeat_is_refused_where_it_is_set(value: Any, problem: str) -> None:
    async def handler(websocket: WebSocket) -> None:  # pragma: no cover - never served
        pass

    with pytest.raises(ImproperlyConfigured, match=r"^WebSocketPath\('/'\): ") as info:
        WebSocketPath("/", handler, heartbeat=value)
    assert problem in str(info.value)
    with pytest.raises(ImproperlyConfigured, match=r"^Lilya: "):
        Lilya(heartbeat=value)


def test_a_heartbeat_is_kept_as_float_seconds() -> None:
    assert check_heartbeat((25, 10), "Lilya") == (25.0, 10.0)
    assert check_heartbeat(None, "Lilya") is None
    assert check_heartbeat(False, "Lilya") is False
