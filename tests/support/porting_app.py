"""A routed app with what a port relies on, served by uvicorn behind ``--root-path /api/``.

Reverse routing from inside an ``Include``, route middleware that appends to
the accept's headers, cookies set and read back, an exception handler that
reads the body the endpoint read, and a route served as an app of its own.
"""

from __future__ import annotations

from lilya.apps import Lilya
from lilya.datastructures import MutableHeader
from lilya.middleware import DefineMiddleware
from lilya.requests import Request
from lilya.responses import JSONResponse, PlainText, Response
from lilya.routing import Include, Path, WebSocketPath
from lilya.types import ASGIApp, Message, Receive, Scope, Send
from lilya.websockets import WebSocket


class ServedBy:
    """Starlette's idiom: ``MutableHeader(scope=message)`` on the way out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_wrapper(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                MutableHeader(scope=message).append("x-served-by", "lilya")
            await send(message)

        await self.app(scope, receive, send_wrapper)


class Refused(Exception):
    pass


async def urls(websocket: WebSocket, room: str) -> None:
    await websocket.accept()
    await websocket.send_json(
        {
            "inner": websocket.url_for("rooms:chat", room="y"),
            "top": websocket.url_for("home"),
            "room": room,
        }
    )
    await websocket.close()


async def home(request: Request) -> Response:
    return JSONResponse({"path": request.url.path, "chat": request.url_for("rooms:chat", room="x")})


async def cookies(request: Request) -> Response:
    if request.cookies:
        return JSONResponse(request.cookies)
    response = PlainText("set")
    response.set_cookie("greeting", "Hello, cookies!")
    response.set_cookie("token", "YWJj==")
    return response


async def read_then_refuse(request: Request) -> Response:
    await request.body()
    raise Refused()


async def echo_body(request: Request, exc: Exception) -> Response:
    return JSONResponse({"again": await request.json()}, 422)


app = Lilya(
    routes=[
        Path("/", home, name="home"),
        Path("/cookies", cookies),
        Path("/refuse", read_then_refuse, methods=["POST"]),
        Include(
            "/rooms",
            routes=[
                WebSocketPath("/{room}", urls, name="chat", middleware=[DefineMiddleware(ServedBy)])
            ],
            name="rooms",
        ),
    ],
    exception_handlers={Refused: echo_body},
)
