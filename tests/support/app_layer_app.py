"""A routed lilya app with every error row, served by real servers in the tests."""

from __future__ import annotations

from typing import Any

from lilya.apps import Lilya
from lilya.controllers import WebSocketController
from lilya.exceptions import HTTPException, WebSocketException
from lilya.middleware import DefineMiddleware
from lilya.middleware.authentication import AuthenticationError, AuthenticationMiddleware
from lilya.middleware.trusted_host import TrustedHostMiddleware
from lilya.requests import Request
from lilya.routing import Include, Path, WebSocketPath
from lilya.websockets import WebSocket


class Boom(Exception):
    pass


async def echo_room(websocket: WebSocket, room: str) -> None:
    await websocket.accept()
    async for message in websocket.iter_text():
        await websocket.send_text(f"{room}: {message}")


async def raise_before(websocket: WebSocket) -> None:
    raise Boom("before accept")


async def raise_after(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("ready")
    raise Boom("after accept")


async def ws_exception(websocket: WebSocket) -> None:
    await websocket.accept()
    raise WebSocketException(4001, "bye now")


async def ws_exception_before(websocket: WebSocket) -> None:
    raise WebSocketException(4403, "go away")


async def http_exception(websocket: WebSocket) -> None:
    raise HTTPException(401, "who are you")


async def returns_open(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("bye")


async def waits(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.receive_text()


class JsonEcho(WebSocketController):
    encoding = "json"

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_json({"echo": data})


class TextOnly(WebSocketController):
    encoding = "text"


async def backend(connection: Any) -> tuple[Any, Any] | None:
    if connection.query_params.get("token") != "secret":
        raise AuthenticationError("bad token")
    return "auth", "ann"


async def whoami(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(str(websocket.user))


async def page(request: Request) -> str:
    return "page"


async def http_boom(request: Request) -> str:
    raise Boom("http")


app = Lilya(
    routes=[
        WebSocketPath("/echo/{room}", echo_room),
        WebSocketPath("/raise-before", raise_before),
        WebSocketPath("/raise-after", raise_after),
        WebSocketPath("/ws-exception", ws_exception),
        WebSocketPath("/ws-exception-before", ws_exception_before),
        WebSocketPath("/http-exception", http_exception),
        WebSocketPath("/returns-open", returns_open),
        WebSocketPath("/waits", waits),
        WebSocketPath("/json", JsonEcho),
        WebSocketPath("/text", TextOnly),
        Include(
            "/private",
            routes=[WebSocketPath("/whoami", whoami)],
            middleware=[DefineMiddleware(AuthenticationMiddleware, backend=backend)],
        ),
        Include(
            "/hosted",
            routes=[WebSocketPath("/ws", returns_open)],
            middleware=[DefineMiddleware(TrustedHostMiddleware, allowed_hosts=["localhost"])],
        ),
        Path("/page", page),
        Path("/boom", http_boom),
    ]
)


def _fail() -> None:
    raise RuntimeError("cannot reach the database")


failing_startup = Lilya(on_startup=[_fail])
