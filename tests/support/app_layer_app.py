"""A routed lilya app with every error row, served by real servers in the tests.

The routes under "handled" raise exceptions that the app's exception handlers
answer: by class (``OutOfStock``, ``Banned``), by status code (402, 404) and by
close code (4003), for WebSockets and HTTP alike.
"""

from __future__ import annotations

from typing import Any

from lilya.apps import Lilya
from lilya.controllers import WebSocketController
from lilya.exceptions import HTTPException, WebSocketException
from lilya.middleware import DefineMiddleware
from lilya.middleware.authentication import AuthenticationError, AuthenticationMiddleware
from lilya.middleware.trusted_host import TrustedHostMiddleware
from lilya.requests import Request
from lilya.responses import JSONResponse, PlainText, Response
from lilya.routing import Include, Path, WebSocketPath
from lilya.websockets import WebSocket


class Boom(Exception):
    pass


class OutOfStock(Exception):
    """Handled by class: close 4409 on a WebSocket, a 409 JSON response on HTTP."""


class Banned(Exception):
    """Handled by class before accept: the handler denies the handshake with a 451."""


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


# -- handled errors -------------------------------------------------------------


async def out_of_stock(connection: Request | WebSocket, exc: OutOfStock) -> Response | None:
    if isinstance(connection, WebSocket):
        state = connection.application_state.name
        await connection.close(4409, f"out of stock: {exc} ({state})")
        return None
    return JSONResponse({"error": "out of stock", "item": str(exc)}, 409)


def banned(websocket: WebSocket, exc: Banned) -> Response:
    return PlainText(f"banned: {exc}", 451, headers={"x-ban": "yes"})


def payment_required(connection: Request | WebSocket, exc: HTTPException) -> Response:
    return JSONResponse({"pay": connection.url.path, "detail": exc.detail}, 402)


def not_found(request: Request, exc: HTTPException) -> Response:
    return JSONResponse({"missing": request.url.path}, 404)


async def renumber_4003(websocket: WebSocket, exc: WebSocketException) -> None:
    await websocket.close(4013, f"the 4003 handler saw {exc.reason!r}")


async def sold_out_after_accept(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("ready")
    raise OutOfStock("tea")


async def banned_before_accept(websocket: WebSocket) -> None:
    raise Banned("mallory")


async def pay_first(websocket: WebSocket) -> None:
    raise HTTPException(402, "pay first")


async def ws_exception_4003(websocket: WebSocket) -> None:
    await websocket.accept()
    raise WebSocketException(4003, "raw")


async def sold_out_page(request: Request) -> str:
    raise OutOfStock("coffee")


async def pay_first_page(request: Request) -> str:
    raise HTTPException(402, "pay first")


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
        Include(
            "/handled",
            routes=[
                WebSocketPath("/sold-out", sold_out_after_accept),
                WebSocketPath("/banned", banned_before_accept),
                WebSocketPath("/pay", pay_first),
                WebSocketPath("/ws-4003", ws_exception_4003),
                Path("/sold-out", sold_out_page),
                Path("/pay", pay_first_page),
            ],
        ),
    ],
    exception_handlers={
        OutOfStock: out_of_stock,
        Banned: banned,
        402: payment_required,
        404: not_found,
        4003: renumber_4003,
    },
)


def _fail() -> None:
    raise RuntimeError("cannot reach the database")


failing_startup = Lilya(on_startup=[_fail])
