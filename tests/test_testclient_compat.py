"""The test client as Starlette's users expect it: ASGI 2 apps, disconnects raised on request."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lilya.apps import Lilya
from lilya.controllers import WebSocketController
from lilya.responses import PlainText
from lilya.routing import WebSocketPath
from lilya.testclient import AsyncTestClient, TestClient, as_asgi3
from lilya.types import Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect

pytestmark = pytest.mark.anyio


def asgi2_function(scope: Scope) -> Callable[[Receive, Send], Awaitable[None]]:
    async def instance(receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await PlainText(f"asgi2 {scope['path']}")(scope, receive, send)
            return
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    return instance


class ASGI2Class:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        if self.scope["type"] == "lifespan":
            return  # no lifespan: returning at once says so (ASGI lifespan spec)
        await PlainText("asgi2 class")(self.scope, receive, send)


async def test_the_async_client_runs_asgi2_apps() -> None:
    client = AsyncTestClient(asgi2_function)  # type: ignore[arg-type]  # ASGI 2 on purpose
    assert (await client.get("/x")).text == "asgi2 /x"
    async with client.websocket_connect("/ws") as session:
        await session.send_text("two")
        assert await session.receive_text() == "two"
    assert (await AsyncTestClient(ASGI2Class).get("/")).text == "asgi2 class"  # type: ignore[arg-type]  # ASGI 2 on purpose


def test_the_sync_client_runs_asgi2_apps_with_their_lifespan_skipped(anyio_backend: str) -> None:
    backend: Any = anyio_backend
    with TestClient(ASGI2Class, backend=backend) as client:  # type: ignore[arg-type]  # ASGI 2 on purpose
        assert client.get("/").text == "asgi2 class"


class Obj:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An ASGI 3 object."""


async def three(scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI 3 function."""


class Anything:
    def __call__(self, *args: Any) -> None:
        """Takes anything: not ASGI 2's single scope."""


class Controller(WebSocketController):
    pass


@pytest.mark.parametrize(
    "app",
    [three, Obj(), Controller, Lilya(), functools.partial(three), Anything(), print, int],
    ids=["function", "object", "controller", "app", "partial", "varargs", "builtin", "unsigned"],
)
def test_asgi3_apps_are_passed_through_unwrapped(app: Any) -> None:
    assert as_asgi3(app) is app


def test_asgi2_apps_are_wrapped() -> None:
    wrapped: list[object] = [as_asgi3(asgi2_function), as_asgi3(ASGI2Class)]
    assert wrapped[0] is not asgi2_function
    assert wrapped[1] is not ASGI2Class


# -- WebSocketDisconnect escaping a handler ----------------------------------------------


async def endless(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:  # the FastAPI docs' loop: the client leaving ends it with an exception
        data = await websocket.receive_text()
        await websocket.send_text(f"Message text was: {data}")


APP = Lilya(routes=[WebSocketPath("/ws", endless)])


async def test_by_default_a_disconnect_escaping_the_handler_is_a_normal_end() -> None:
    async with AsyncTestClient(APP).websocket_connect("/ws") as session:
        await session.send_text("hi")
        assert await session.receive_text() == "Message text was: hi"


async def test_raise_websocket_disconnect_can_be_switched_on_after_the_client_is_made() -> None:
    client = AsyncTestClient(APP)
    assert client.raise_websocket_disconnect is False
    client.raise_websocket_disconnect = True  # as raise_server_exceptions, for what follows
    with pytest.raises(WebSocketDisconnect):
        async with client.websocket_connect("/ws") as session:
            await session.send_text("hi")
            assert await session.receive_text() == "Message text was: hi"


async def test_raise_websocket_disconnect_shows_it_as_starlettes_client_does() -> None:
    client = AsyncTestClient(APP, raise_websocket_disconnect=True)
    with pytest.raises(WebSocketDisconnect) as left:
        async with client.websocket_connect("/ws") as session:
            await session.send_text("hi")
            assert await session.receive_text() == "Message text was: hi"
    assert left.value.code == 1000


def test_raise_websocket_disconnect_on_the_sync_client(anyio_backend: str) -> None:
    backend: Any = anyio_backend
    client = TestClient(APP, backend=backend, raise_websocket_disconnect=True)
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/ws") as session:
        session.send_text("hi")
        assert session.receive_text() == "Message text was: hi"


async def test_raise_websocket_disconnect_also_sees_one_that_middleware_let_through() -> None:
    class Passthrough:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "websocket":
                await self.app(scope, receive, send)
                return
            websocket = WebSocket(scope, receive, send)
            await websocket.accept()
            await websocket.receive_text()  # raises when the test leaves

    from lilya.middleware import DefineMiddleware

    app = Lilya(middleware=[DefineMiddleware(Passthrough)])
    client = AsyncTestClient(app, raise_websocket_disconnect=True)
    with pytest.raises(WebSocketDisconnect):
        async with client.websocket_connect("/ws"):
            pass
    async with AsyncTestClient(app).websocket_connect("/ws"):
        pass  # without the flag: a normal end


async def test_the_flag_does_not_hide_a_real_error() -> None:
    async def broken(websocket: WebSocket) -> None:
        await websocket.accept()
        raise ValueError("real")

    client = AsyncTestClient(
        Lilya(routes=[WebSocketPath("/ws", broken)]), raise_websocket_disconnect=True
    )
    with pytest.raises(ValueError, match="real"):
        async with client.websocket_connect("/ws") as session:
            await session.receive_text()
