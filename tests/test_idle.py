"""lilya.idle: an idle connection closed 1001, activity either way resets it, heartbeats do not.

In process, on asyncio and trio: the test client for what a user sees, the
fake stalling server of tests/test_timeouts.py for a client that does not
read the close (its transport is dropped), and scripted callables for the
corners. The real servers are in tests/interop (a row on six setups).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Any

import anyio
import pytest

from lilya._connection_state import ConnectionState
from lilya.apps import Lilya
from lilya.caps import ConnectionCaps
from lilya.controllers import WebSocketController
from lilya.exceptions import ImproperlyConfigured
from lilya.idle import IdleGone, Watchdog, check_idle_timeout, idle_reason
from lilya.metrics import Metrics
from lilya.routing import WebSocketPath
from lilya.testclient import AsyncTestClient
from lilya.timeouts import CLOSE_GRACE, DEFAULT
from lilya.types import Message, Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect
from tests.support.asgi import CONNECT
from tests.test_timeouts import StallingServer

pytestmark = pytest.mark.anyio

IDLE = 0.2
REASON = idle_reason(IDLE)


async def eventually(seen: list[Any], count: int = 1, within: float = 5) -> None:
    """Wait until the handler has noted *count* things in *seen* (at most *within* s)."""
    with anyio.fail_after(within):
        while len(seen) < count:
            await anyio.sleep(0.01)


async def close_of(session: Any, within: float = 5) -> tuple[int, str, float]:
    """Read *session* until the app closes it: (code, reason, monotonic time of the close)."""
    with pytest.raises(WebSocketDisconnect) as info:
        while True:
            await session.receive_text(timeout=within)
    return info.value.code, info.value.reason, time.monotonic()


def receiving_app(seen: list[Any], **settings: Any) -> Lilya:
    """A handler blocked in receive: it notes what it is told, then its finally."""

    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            async for text in websocket.iter_text():
                await websocket.send_text(text)
            seen.append((websocket.client_state.name, websocket._state.code))
            await websocket.close()  # closed already by lilya: does nothing
        finally:
            seen.append("finally")

    route = {key: settings.pop(key) for key in ("idle_timeout", "heartbeat") if key in settings}
    return Lilya(routes=[WebSocketPath("/ws", handler, **route)], **settings)


# -- the close -------------------------------------------------------------------------


async def test_an_idle_connection_is_closed_1001_with_a_reason_naming_the_setting(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Any] = []
    app = receiving_app(seen, idle_timeout=IDLE)
    with caplog.at_level(logging.INFO, logger="lilya"):
        opened = time.monotonic()  # before the accept, which starts the clock
        async with AsyncTestClient(app).websocket_connect("/ws") as session:
            code, reason, closed = await close_of(session)
            await eventually(seen)
    assert (code, reason) == (1001, REASON)
    assert len(reason.encode()) <= 123
    assert IDLE <= closed - opened < IDLE + 1
    assert seen == [("DISCONNECTED", 1001), "finally"]
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("lilya")]
    assert lines == [(logging.INFO, f"Closing /ws with 1001: {REASON}")]


async def test_messages_from_the_client_keep_the_connection_open(anyio_backend: str) -> None:
    seen: list[Any] = []
    async with AsyncTestClient(receiving_app(seen, idle_timeout=IDLE)).websocket_connect(
        "/ws"
    ) as session:
        for n in range(8):  # 0.8 s of traffic, four idle timeouts long
            last = time.monotonic()
            await session.send_text(str(n))
            assert await session.receive_text(timeout=1) == str(n)
            await anyio.sleep(IDLE / 2)
        code, _, closed = await close_of(session)
    assert code == 1001
    assert IDLE <= closed - last < IDLE + 1


async def test_messages_the_handler_sends_keep_the_connection_open(anyio_backend: str) -> None:
    seen: list[Any] = []

    async def ticker(websocket: WebSocket) -> None:
        await websocket.accept()
        for _ in range(8):
            sent = time.monotonic()
            await websocket.send_text("tick")
            await anyio.sleep(IDLE / 2)
        seen.append(sent)
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen.append(exc.code)

    app = Lilya(routes=[WebSocketPath("/ws", ticker, idle_timeout=IDLE)])
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        for _ in range(8):
            assert await session.receive_text(timeout=1) == "tick"
        code, _, closed = await close_of(session)
        await eventually(seen, 2)
    assert (code, seen[1]) == (1001, 1001)
    assert IDLE <= closed - seen[0] < IDLE + 1


async def test_heartbeat_frames_do_not_count_as_activity(anyio_backend: str) -> None:
    seen: list[Any] = []
    # Pings every 50 ms, each answered by the test client: 20 ping-pongs a second.
    app = receiving_app(seen, idle_timeout=IDLE, heartbeat=(0.05, 0.5))
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        opened = time.monotonic()
        code, reason, closed = await close_of(session)
        await eventually(seen)
    assert (code, reason) == (1001, REASON)
    assert closed - opened < IDLE + 1
    assert seen == [("DISCONNECTED", 1001), "finally"]


async def test_a_heartbeat_that_goes_unanswered_first_closes_1011(anyio_backend: str) -> None:
    seen: list[Any] = []
    app = receiving_app(seen, idle_timeout=5, heartbeat=(0.05, 0.1))
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        await session.stop_ponging()
        code, _, _ = await close_of(session)
        await eventually(seen)
    assert code == 1011
    assert seen == [("DISCONNECTED", 1011), "finally"]


async def test_a_send_only_handler_asleep_past_the_timeout_is_told_by_its_next_send(
    anyio_backend: str,
) -> None:
    seen: list[Any] = []

    async def sleepy(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text("tick")
                await anyio.sleep(IDLE * 3)  # longer than the idle timeout
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason))
        finally:
            seen.append("finally")

    app = Lilya(routes=[WebSocketPath("/ws", sleepy)], idle_timeout=IDLE)
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        assert await session.receive_text(timeout=1) == "tick"
        code, _, _ = await close_of(session)
        await eventually(seen, 2)
    assert code == 1001
    assert seen == [(1001, REASON), "finally"]


async def test_a_controller_blocked_in_receive_gets_on_disconnect_1001(anyio_backend: str) -> None:
    seen: list[Any] = []

    class Quiet(WebSocketController):
        async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
            seen.append(close_code)

    app = Lilya(routes=[WebSocketPath("/ws", Quiet, idle_timeout=IDLE)])
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        code, _, _ = await close_of(session)
        await eventually(seen)
    assert (code, seen) == (1001, [1001])


async def test_a_raw_handler_gets_the_disconnect_and_its_next_send_raises(
    anyio_backend: str,
) -> None:
    seen: list[Any] = []

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        first = await receive()
        again = await receive()  # asked again after the end: the end again
        seen.append((first["code"], first["reason"], again is first))
        try:
            await send({"type": "websocket.send", "text": "late"})
        except IdleGone as exc:
            seen.append(str(exc))
        await send({"type": "websocket.close", "code": 1000})  # closed already: a no-op

    app = Lilya(routes=[WebSocketPath("/ws", raw, idle_timeout=IDLE)])
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        code, _, _ = await close_of(session)
        await eventually(seen, 2)
    assert code == 1001
    assert seen == [(1001, REASON, True), f"the connection was closed: {REASON}"]


async def test_a_handler_that_raises_is_answered_as_without_an_idle_timeout(
    anyio_backend: str,
) -> None:
    async def boom(websocket: WebSocket) -> None:
        await websocket.accept()
        raise RuntimeError("boom")

    app = Lilya(routes=[WebSocketPath("/ws", boom, idle_timeout=IDLE)])
    client = AsyncTestClient(app, raise_server_exceptions=False)
    async with client.websocket_connect("/ws") as session:
        code, _, _ = await close_of(session)
    assert code == 1011


# -- settings ---------------------------------------------------------------------------


async def test_a_route_sets_its_own_idle_timeout_or_turns_the_apps_off(
    anyio_backend: str,
) -> None:
    seen: list[Any] = []

    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen.append((websocket.url.path, exc.code))

    app = Lilya(
        routes=[
            WebSocketPath("/app", handler),
            WebSocketPath("/own", handler, idle_timeout=IDLE / 2),
            WebSocketPath("/none", handler, idle_timeout=None),
            WebSocketPath("/false", handler, idle_timeout=False),
        ],
        idle_timeout=IDLE,
    )
    client = AsyncTestClient(app)
    async with (
        client.websocket_connect("/app") as at_app,
        client.websocket_connect("/own") as own,
        client.websocket_connect("/none") as none,
        client.websocket_connect("/false") as off,
    ):
        started = time.monotonic()
        assert (await close_of(own))[0] == 1001
        own_closed = time.monotonic() - started
        assert (await close_of(at_app))[0] == 1001
        app_closed = time.monotonic() - started
        await anyio.sleep(IDLE * 3)
        for session in (none, off):  # still open: they take messages
            await session.send_text("still here")
        await eventually(seen, 2)
        assert sorted(seen) == [("/app", 1001), ("/own", 1001)]
        assert own_closed < app_closed
    assert sorted(seen) == [("/app", 1001), ("/false", 1000), ("/none", 1000), ("/own", 1001)]


async def test_idle_timeout_is_off_by_default_and_adds_no_layer() -> None:
    callables: list[Any] = []

    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        callables.append(websocket._receive)
        await websocket.close()

    app = Lilya(routes=[WebSocketPath("/ws", handler), WebSocketPath("/on", handler)])
    app.router.routes[1].idle_timeout = IDLE  # type: ignore[attr-defined]
    assert app.idle_timeout is None
    assert app.router.routes[0].idle_timeout is DEFAULT  # type: ignore[attr-defined]
    client = AsyncTestClient(app)
    for path in ("/ws", "/on"):
        async with client.websocket_connect(path) as session:
            await close_of(session)
    off, on = callables
    assert not isinstance(getattr(off, "__self__", None), Watchdog)
    assert isinstance(getattr(on, "__self__", None), Watchdog)


BAD = [0, -1, math.inf, math.nan, "1", True, [1]]


@pytest.mark.parametrize("value", BAD)
def test_a_bad_idle_timeout_is_refused_naming_the_setting(value: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="Lilya: idle_timeout must be a positive"):
        Lilya(idle_timeout=value)
    with pytest.raises(
        ImproperlyConfigured, match=r"WebSocketPath\('/ws'\): idle_timeout must be a positive"
    ):
        WebSocketPath("/ws", receiving_app, idle_timeout=value)


def test_a_route_takes_default_none_false_or_seconds() -> None:
    where = "WebSocketPath('/ws')"
    assert check_idle_timeout(DEFAULT, where) is DEFAULT
    assert check_idle_timeout(None, where) is None
    assert check_idle_timeout(False, where) is None
    assert check_idle_timeout(3, where) == 3.0


# -- what goes with the close -------------------------------------------------------------


async def test_the_connection_slot_is_freed_and_metrics_count_the_close(
    anyio_backend: str,
) -> None:
    seen: list[Any] = []
    metrics = Metrics()
    app = receiving_app(
        seen, idle_timeout=IDLE, metrics=metrics, connection_caps=ConnectionCaps(per_address=1)
    )
    client = AsyncTestClient(app)
    for _ in range(2):  # a cap of one: the second handshake needs the first's slot back
        async with client.websocket_connect("/ws") as session:
            assert app.connection_counter.counts
            assert (await close_of(session))[0] == 1001
            await eventually(seen)
        seen.clear()
    assert app.connection_counter.counts == {}
    assert metrics.limit_closes.labels("idle_timeout")._value.get() == 2


async def test_two_hundred_silent_connections_are_all_closed_in_time(anyio_backend: str) -> None:
    seen: list[Any] = []
    # Over the default 100 per address: the test client's sockets all come from one.
    app = receiving_app(seen, idle_timeout=IDLE, connection_caps=None)
    client = AsyncTestClient(app)
    async with contextlib.AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(client.websocket_connect("/ws")) for _ in range(200)
        ]
        opened = time.monotonic()
        codes = {(await close_of(session))[0] for session in sessions}
        closed = time.monotonic() - opened
        await eventually(seen, 400)
    assert codes == {1001}
    assert closed < IDLE + 1
    assert seen.count(("DISCONNECTED", 1001)) == 200


async def test_a_client_that_stops_reading_is_still_ended(anyio_backend: str) -> None:
    seen: list[Any] = []
    app = receiving_app(seen, idle_timeout=IDLE)
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        await session.pause_reading()  # the close cannot reach it
        started = time.monotonic()
        await eventually(seen, 2)
        ended = time.monotonic() - started
    # The handler was told at once; the close had its grace, and the app's task ended.
    assert seen == [("DISCONNECTED", 1001), "finally"]
    assert ended < IDLE + CLOSE_GRACE + 1
    assert app.connection_counter.counts == {}


async def test_a_send_stuck_where_the_server_cannot_drop_ends_1001_at_its_send_timeout(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Any] = []

    async def pusher(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text("tick")
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason))

    # The test client, like hypercorn and granian, offers no way to drop a client.
    app = Lilya(routes=[WebSocketPath("/ws", pusher, idle_timeout=IDLE, send_timeout=IDLE * 2)])
    with caplog.at_level(logging.INFO, logger="lilya"):
        async with AsyncTestClient(app).websocket_connect("/ws") as session:
            await session.pause_reading()  # the first send waits, and then the close
            await eventually(seen)
    # The idle close stands: no second close (1013) after it.
    assert seen == [(1001, REASON)]
    assert "1013" not in caplog.text


async def test_a_close_the_client_does_not_take_drops_the_tcp_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Any] = []
    server = StallingServer(CONNECT, stall=("websocket.close",))
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="lilya"):
        await server.run(receiving_app(seen, idle_timeout=IDLE))
    assert server.transport.aborted  # the close did not leave within its grace
    assert IDLE + CLOSE_GRACE <= time.monotonic() - started < IDLE + CLOSE_GRACE + 1
    assert seen == [("DISCONNECTED", 1001), "finally"]
    assert server.types == ["websocket.accept"]
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("lilya")]
    assert lines == [f"Closing /ws with 1001: {REASON}"]


async def test_a_handshake_slower_than_the_timeout_is_not_idle(anyio_backend: str) -> None:
    seen: list[Any] = []

    async def slow(websocket: WebSocket) -> None:
        await anyio.sleep(IDLE * 2)  # before accept: the handshake timeout's business
        seen.append(time.monotonic())
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.receive_text()

    app = Lilya(routes=[WebSocketPath("/ws", slow, idle_timeout=IDLE)])
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        assert await session.receive_text(timeout=1) == "hello"
        code, _, closed = await close_of(session)
    assert code == 1001
    assert IDLE <= closed - seen[0] < IDLE + 1


async def test_a_connection_the_client_ended_is_left_alone(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Any] = []

    async def lingering(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen.append(exc.code)
        await anyio.sleep(IDLE * 3)  # past the deadline, the client long gone
        seen.append("done")

    app = Lilya(routes=[WebSocketPath("/ws", lingering, idle_timeout=IDLE)])
    with caplog.at_level(logging.INFO, logger="lilya"):
        async with AsyncTestClient(app).websocket_connect("/ws") as session:
            await session.close(4000)
            await eventually(seen, 2)
    assert seen == [4000, "done"]
    assert "1001" not in caplog.text


# -- the corners, over scripted callables ----------------------------------------------------


def watchdog(receive: Receive, send: Send | None = None) -> Watchdog:
    async def nowhere(message: Message) -> None:
        return None

    return Watchdog(IDLE, ConnectionState(), receive, send or nowhere, send or nowhere)


async def test_a_message_that_comes_as_the_timeout_fires_is_not_delivered(
    anyio_backend: str,
) -> None:
    gone: Message = {"type": "websocket.disconnect", "code": 1001, "reason": REASON}

    async def receive() -> Message:
        await anyio.sleep(0)
        dog._gone = gone  # the watchdog fired while this message was on its way
        return {"type": "websocket.receive", "text": "late"}

    dog = watchdog(receive)
    assert await dog.receive() is gone


async def test_someone_elses_cancellation_of_a_receive_goes_on_up(anyio_backend: str) -> None:
    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    dog = watchdog(receive)
    with anyio.move_on_after(0.05) as scope:
        await dog.receive()
    assert scope.cancelled_caught
    assert dog._receiving is None


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_receive_cancelled_by_the_watchdog_withdraws_the_request() -> None:
    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    dog = watchdog(receive)
    dog.last -= IDLE  # idle already
    dog._state.client = dog._state.application = dog._state.client.CONNECTED
    task = asyncio.current_task()
    assert task is not None
    async with anyio.create_task_group() as group:
        group.start_soon(dog.watch)
        message = await dog.receive()
    assert message["code"] == 1001
    assert (
        getattr(task, "cancelling", lambda: 0)() == 0
    )  # the watchdog's cancellation is not left pending


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_cancellation_the_servers_receive_swallows_is_withdrawn_all_the_same() -> None:
    async def receive() -> Message:
        with contextlib.suppress(asyncio.CancelledError):  # a server that hands a message instead
            await anyio.sleep_forever()
        return {"type": "websocket.receive", "text": "late"}

    dog = watchdog(receive)
    dog.last -= IDLE
    dog._state.client = dog._state.application = dog._state.client.CONNECTED
    task = asyncio.current_task()
    assert task is not None
    async with anyio.create_task_group() as group:
        group.start_soon(dog.watch)
        message = await dog.receive()
    assert message["code"] == 1001
    assert getattr(task, "cancelling", lambda: 0)() == 0


async def test_a_pong_due_when_the_idle_timeout_closes_does_not_close_again(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Any] = []

    async def lingering(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen.append(exc.code)
        await anyio.sleep(0.6)  # still here when the unanswered ping's pong is due
        seen.append("done")

    route = WebSocketPath("/ws", lingering, idle_timeout=IDLE, heartbeat=(0.1, 0.3))
    with caplog.at_level(logging.INFO, logger="lilya"):
        async with AsyncTestClient(Lilya(routes=[route])).websocket_connect("/ws") as session:
            await session.stop_ponging()
            code, _, _ = await close_of(session)
            await eventually(seen, 2)
    assert (code, seen) == (1001, [1001, "done"])
    assert "1011" not in caplog.text
