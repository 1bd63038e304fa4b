"""The drain, in process: refusals, batches, what handlers see, the lifespan, bad settings."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import anyio
import pytest

from lilya._connection_state import CONNECTED, CONNECTING, ConnectionState
from lilya._drain import DRAIN_REFUSAL, Drain
from lilya.apps import Lilya
from lilya.exceptions import ImproperlyConfigured
from lilya.routing import WebSocketPath
from lilya.testclient import AsyncTestClient, WebSocketDenialResponse
from lilya.types import Message
from lilya.websockets import WebSocket, WebSocketDisconnect
from tests.support.asgi import CONNECT, websocket_scope

pytestmark = pytest.mark.anyio


def client_for(app: Lilya, anyio_backend: str) -> AsyncTestClient:
    """An in-loop client: it runs on the test's own backend (the fixture's)."""
    return AsyncTestClient(app)


async def closed_with(session: Any) -> int:
    """Read *session* until the app closes it; return the close code."""
    with pytest.raises(WebSocketDisconnect) as info:
        while True:
            await session.receive_text(timeout=10)
    return info.value.code


async def test_drain_closes_every_open_socket_with_1012_in_batches_in_order(
    anyio_backend: str,
) -> None:
    ended: list[int] = []

    async def push(websocket: WebSocket) -> None:
        await websocket.accept()
        number = int(websocket.query_params["n"])
        try:
            while True:
                await websocket.send_text("tick")
                await anyio.sleep(0.01)
        finally:
            ended.append(number)

    app = Lilya(routes=[WebSocketPath("/", push)], drain_batch=2, drain_interval=0.1)
    client = client_for(app, anyio_backend)
    codes: list[int] = []
    async with contextlib.AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(client.websocket_connect(f"/?n={n}")) for n in range(5)
        ]
        assert app.open_websockets == 5
        started = time.monotonic()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(app.drain)
            for session in sessions:
                codes.append(await closed_with(session))
        # Three batches, 0.1 s apart: the last waits for two intervals at least.
        assert time.monotonic() - started >= 0.2
    assert codes == [1012] * 5
    # A batch's handlers end before the next batch is closed.
    assert (set(ended[:2]), set(ended[2:4]), ended[4:]) == ({0, 1}, {2, 3}, [4])
    assert app.open_websockets == 0


async def test_a_handshake_during_the_drain_gets_503_with_retry_after(anyio_backend: str) -> None:
    async def linger(websocket: WebSocket) -> None:
        await websocket.accept()
        await anyio.sleep(1)

    app = Lilya(routes=[WebSocketPath("/", linger)], drain_timeout=0.2, drain_retry_after=7)
    client = client_for(app, anyio_backend)
    async with client.websocket_connect("/"), anyio.create_task_group() as tasks:
        tasks.start_soon(app.drain)
        await anyio.sleep(0.01)
        assert app.draining
        with pytest.raises(WebSocketDenialResponse) as info:
            async with client.websocket_connect("/"):
                pass  # pragma: no cover  # the handshake is refused
    assert info.value.status_code == 503
    assert info.value.headers["retry-after"] == "7"
    assert info.value.text == DRAIN_REFUSAL


async def test_a_handshake_not_yet_answered_gets_503_and_its_accept_raises_disconnect() -> None:
    seen: list[object] = []
    checking = anyio.Event()

    async def slow_auth(websocket: WebSocket) -> None:
        await websocket.receive()  # the connect
        checking.set()
        await anyio.sleep(0.1)  # checking a token, say
        try:
            await websocket.accept()
        except WebSocketDisconnect as exc:
            seen.append(exc.code)
        await websocket.close()  # done already: nothing happens
        seen.append("closed")

    app = Lilya(routes=[WebSocketPath("/", slow_auth)])
    sent: list[Message] = []
    messages = [CONNECT]

    async def receive() -> Message:
        if messages:
            return messages.pop()
        raise AssertionError("unreachable: the handler receives once")

    async def send(message: Message) -> None:
        sent.append(message)

    async def drain_when_checking() -> None:
        await checking.wait()
        await app.drain()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(drain_when_checking)
        await app(websocket_scope(), receive, send)
    assert [message["type"] for message in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 503
    assert seen == [1012, "closed"]


async def test_a_send_only_loop_gets_disconnect_with_the_drain_code(anyio_backend: str) -> None:
    seen: list[object] = []

    async def push(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text("tick")
                await anyio.sleep(0.01)
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason))
            await websocket.close()  # the drain closed it already: a no-op

    app = Lilya(routes=[WebSocketPath("/", push)], drain_code=1001)
    client = client_for(app, anyio_backend)
    async with client.websocket_connect("/") as session, anyio.create_task_group() as tasks:
        tasks.start_soon(app.drain)
        assert await closed_with(session) == 1001
    assert seen == [(1001, "the server is shutting down")]


async def test_handlers_awaiting_wait_for_drain_wake_when_it_begins(anyio_backend: str) -> None:
    seen: list[object] = []

    async def watcher(websocket: WebSocket) -> None:
        await websocket.accept()
        await app.wait_for_drain()
        seen.append(app.draining)
        await app.wait_for_drain()  # already draining: returns at once
        try:
            await websocket.send_text("still here?")
        except WebSocketDisconnect as exc:
            seen.append(exc.code)

    app = Lilya(routes=[WebSocketPath("/", watcher)])
    client = client_for(app, anyio_backend)
    async with client.websocket_connect("/") as session:
        await anyio.sleep(0.05)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(app.drain)
            assert await closed_with(session) == 1012
    assert seen == [True, 1012]
    await app.drain()  # a second drain does nothing
    assert app.draining


async def test_the_drain_gives_up_on_a_handler_that_ignores_it_after_drain_timeout(
    anyio_backend: str,
) -> None:
    async def stubborn(websocket: WebSocket) -> None:
        await websocket.accept()
        await anyio.sleep(1)

    app = Lilya(routes=[WebSocketPath("/", stubborn)], drain_timeout=0.2)
    client = client_for(app, anyio_backend)
    async with client.websocket_connect("/") as session:
        started = time.monotonic()
        await app.drain()
        assert time.monotonic() - started < 0.9
        assert app.open_websockets == 1
        assert await closed_with(session) == 1012


async def test_a_socket_that_has_already_ended_is_not_closed_again() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)  # pragma: no cover  # nothing may be sent

    async def receive() -> Message:
        return {"type": "websocket.disconnect", "code": 1000}  # pragma: no cover

    state = ConnectionState()
    state.take_receive(CONNECT, CONNECTING)
    state.take_send({"type": "websocket.accept"})
    state.take_receive({"type": "websocket.disconnect", "code": 1000}, CONNECTED)
    await Drain().close(state, websocket_scope(), receive, send)
    assert sent == []
    assert state.drained is None


def test_the_lifespan_shutdown_drains_before_the_shutdown_hooks(
    test_client_factory: Any,
) -> None:
    seen: list[bool] = []
    app = Lilya(on_shutdown=[lambda: seen.append(app.draining)])
    with test_client_factory(app) as client:
        seen.append(app.draining)
        assert client.get("/").status_code == 404  # HTTP is not drained
    assert seen == [False, True]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"code": 1006}, "drain_code"),
        ({"code": "1012"}, "drain_code must be a close code"),
        ({"code": True}, "drain_code must be a close code"),
        ({"batch": 0}, "drain_batch must be at least 1"),
        ({"batch": 1.5}, "drain_batch must be a whole number"),
        ({"interval": -1}, "drain_interval must be at least 0"),
        ({"interval": float("nan")}, "drain_interval must be a finite number"),
        ({"timeout": float("inf")}, "drain_timeout must be a finite number"),
        ({"timeout": "30"}, "drain_timeout must be a finite number"),
        ({"retry_after": -5}, "drain_retry_after must be at least 1"),
    ],
)
def test_bad_drain_settings_are_refused_when_the_app_is_made(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        Drain(**settings)
    with pytest.raises(ImproperlyConfigured, match=message):
        Lilya(**{f"drain_{name}": value for name, value in settings.items()})


def test_a_new_lifespan_serves_again_after_a_drain(test_client_factory: Any) -> None:
    async def hello(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")

    app = Lilya(routes=[WebSocketPath("/", hello)])
    for _ in range(2):  # two tests sharing one module-level app
        with test_client_factory(app) as client, client.websocket_connect("/") as session:
            assert session.receive_text() == "hello"
        assert not app.draining  # the lifespan ended: stopped, not stopping
    with test_client_factory(app).websocket_connect("/") as session:  # no lifespan at all
        assert session.receive_text() == "hello"
