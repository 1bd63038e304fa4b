"""Faults on demand: a session that drops (the app sees 1006) or stops reading (its send waits).

One test body for both clients (``any_client``) on asyncio and trio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest

from lilya.apps import Lilya
from lilya.routing import WebSocketPath
from lilya.testclient import AsyncTestClient, assert_fanout, assert_fanout_async
from lilya.websockets import WebSocket, WebSocketDisconnect
from tests.support.testclient import call, entered

pytestmark = pytest.mark.anyio


async def test_drop_gives_the_apps_pending_receive_1006_and_the_test_a_1006(
    any_client: Callable[..., Any],
) -> None:
    seen: list[int] = []

    async def reader(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen.append(exc.code)

    app = Lilya(routes=[WebSocketPath("/", reader)])
    async with entered(any_client(app).websocket_connect("/")) as session:
        await call(session.drop)
        await call(session.drop)  # dropped already: nothing more happens
        with pytest.raises(WebSocketDisconnect) as info:
            await call(session.receive_text)
        assert info.value.code == 1006
    assert seen == [1006]


async def test_a_send_waiting_when_the_connection_drops_raises_disconnect_1006(
    any_client: Callable[..., Any],
) -> None:
    seen: list[int] = []

    async def pusher(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()  # "go"
        try:
            await websocket.send_text("anyone there?")
        except WebSocketDisconnect as exc:
            seen.append(exc.code)

    app = Lilya(routes=[WebSocketPath("/", pusher)])
    async with entered(any_client(app).websocket_connect("/")) as session:
        await call(session.pause_reading)
        await call(session.send_text, "go")
        await anyio.sleep(0.1)  # the app's send is waiting
        await call(session.drop)
        await call(session.pause_reading)  # a dropped session has nothing to pause
    assert seen == [1006]


async def test_pause_reading_holds_the_apps_send_until_resume_reading(
    any_client: Callable[..., Any],
) -> None:
    progress: list[str] = []

    async def pusher(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()  # "go"
        for number in range(3):
            await websocket.send_text(str(number))
            progress.append(f"sent {number}")
        await websocket.receive_text()

    app = Lilya(routes=[WebSocketPath("/", pusher)])
    async with entered(any_client(app).websocket_connect("/")) as session:
        await call(session.pause_reading)
        await call(session.pause_reading)  # paused already
        await call(session.send_text, "go")
        await anyio.sleep(0.1)
        assert progress == []  # the first send waits
        await call(session.resume_reading)
        assert [await call(session.receive_text) for _ in range(3)] == ["0", "1", "2"]
        assert progress == ["sent 0", "sent 1", "sent 2"]


async def test_a_session_left_while_paused_lets_the_apps_send_through(
    any_client: Callable[..., Any],
) -> None:
    seen: list[str] = []

    async def once(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()  # "go"
        await websocket.send_text("late")
        seen.append("sent")

    app = Lilya(routes=[WebSocketPath("/", once)])
    async with entered(any_client(app).websocket_connect("/")) as session:
        await call(session.pause_reading)
        await call(session.send_text, "go")
    assert seen == ["sent"]


async def test_a_send_timeout_is_testable_with_pause_reading(
    any_client: Callable[..., Any],
) -> None:
    outcome: list[str] = []

    async def careful(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()  # "go"
        with anyio.move_on_after(0.2) as scope:
            await websocket.send_text("are you reading?")
        if scope.cancelled_caught:
            outcome.append("timed out")
            await websocket.close(1013)

    app = Lilya(routes=[WebSocketPath("/", careful)])
    async with entered(any_client(app).websocket_connect("/")) as session:
        await call(session.pause_reading)
        await call(session.send_text, "go")
        await anyio.sleep(0.5)
        await call(session.resume_reading)
        with pytest.raises(WebSocketDisconnect) as info:
            await call(session.receive_text)
        assert info.value.code == 1013
    assert outcome == ["timed out"]


async def test_assert_fanout_names_the_session_that_missed_a_message_or_got_it_out_of_order(
    anyio_backend: str,
) -> None:
    async def replay(websocket: WebSocket) -> None:
        await websocket.accept()
        for item in websocket.query_params["items"].split(","):
            await websocket.send_json(int(item))
        await websocket.receive_text()

    app = Lilya(routes=[WebSocketPath("/", replay)])
    client = AsyncTestClient(app)
    async with (
        client.websocket_connect("/?items=1,2") as good,
        client.websocket_connect("/?items=2,1") as swapped,
    ):
        await assert_fanout_async([good], [1, 2])
        with pytest.raises(AssertionError, match=r"Session 0 .* got \[2, 1\].*message 0"):
            await assert_fanout_async([swapped], [1, 2])
    async with client.websocket_connect("/?items=1") as short:
        with pytest.raises(AssertionError, match=r"Session 0 .* got \[1\].*message 1"):
            await assert_fanout_async([short], [1, 2], timeout=0.2)


def test_assert_fanout_sync_fails_on_a_missing_or_wrong_message(test_client_factory: Any) -> None:
    async def replay(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"n": 1})
        await websocket.receive_text()

    app = Lilya(routes=[WebSocketPath("/", replay)])
    client = test_client_factory(app)
    with (
        client.websocket_connect("/") as session,
        pytest.raises(AssertionError, match="first difference at message 1"),
    ):
        assert_fanout([session], [{"n": 1}, {"n": 2}], timeout=0.2)
    with (
        client.websocket_connect("/") as session,
        pytest.raises(AssertionError, match="first difference at message 0"),
    ):
        assert_fanout([session], [{"n": 2}])
