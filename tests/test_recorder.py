"""The recorder: one connection state per connection, and handlers' WebSockets on the server.

The error answers themselves (500 denial, 1011, nothing after the client left)
are checked row by row in ``test_errors.py``; here: who talks to whom, and how
the recorder and a ``WebSocket`` share the one state.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, ClassVar

import pytest

from lilya._connection_state import CONNECTED, RESPONSE, STATE_KEY
from lilya._exception_handlers import ExceptionHandler, HandlerKey
from lilya._recorder import enter, server_callables
from lilya.apps import Lilya
from lilya.controllers import WebSocketController
from lilya.middleware import DefineMiddleware
from lilya.middleware.authentication import AuthenticationMiddleware
from lilya.middleware.trusted_host import TrustedHostMiddleware
from lilya.responses import PlainText
from lilya.routing import Include, Router, WebSocketPath
from lilya.types import ASGIApp, Message, Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketState
from tests.support.asgi import CONNECT, disconnect, text, websocket_scope

pytestmark = pytest.mark.anyio


class Boom(Exception):
    """The error the handlers below raise."""


class Server:
    """Plays the server with plain functions (not bound methods), so identity can be checked.

    After the scripted messages the client leaves (1006).
    """

    def __init__(self, *incoming: Message, fail_on: str | None = None) -> None:
        self.incoming = list(incoming)
        self.sent: list[Message] = []

        async def receive() -> Message:
            if self.incoming:
                return self.incoming.pop(0)
            return disconnect(1006)

        async def send(message: Message) -> None:
            if message["type"] == fail_on:
                raise OSError("the client vanished")
            self.sent.append(message)

        self.receive: Receive = receive
        self.send: Send = send

    @property
    def types(self) -> list[str]:
        return [message["type"] for message in self.sent]

    async def run(self, app: ASGIApp, path: str = "/ws") -> BaseException | None:
        try:
            await app(websocket_scope(path), self.receive, self.send)
        except Exception as exc:
            return exc
        return None


class PassThrough:
    """User middleware that hands ``receive``/``send`` on untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class CountingSend:
    """User middleware that wraps ``send`` itself (as a compression middleware would)."""

    seen: ClassVar[list[str]] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting(message: Message) -> None:
            CountingSend.seen.append(message["type"])
            await send(message)

        await self.app(scope, receive, counting)


async def anyone(connection: Any) -> tuple[str, str]:
    return "token", "user"


def echo_recording(into: list[WebSocket]) -> Any:
    """A handler that echoes one message and returns, leaving the close to the route."""

    async def echo(websocket: WebSocket) -> None:
        into.append(websocket)
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())

    return echo


class RecordingController(WebSocketController):
    seen: ClassVar[list[WebSocket]] = []

    async def on_connect(self, websocket: WebSocket) -> None:
        RecordingController.seen.append(websocket)
        await websocket.accept()

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_text(data)


def _lilya(handler: Any) -> ASGIApp:
    return Lilya(routes=[WebSocketPath("/ws", handler)])


def _included(handler: Any) -> ASGIApp:
    return Lilya(routes=[Include("/api", routes=[WebSocketPath("/ws", handler)])])


def _with_middleware(handler: Any) -> ASGIApp:
    middleware = [
        DefineMiddleware(TrustedHostMiddleware, allowed_hosts=["testserver"]),
        DefineMiddleware(AuthenticationMiddleware, backend=anyone),
        DefineMiddleware(PassThrough),
    ]
    route = WebSocketPath("/ws", handler, middleware=[DefineMiddleware(PassThrough)])
    return Lilya(routes=[route], middleware=middleware)


def _router(handler: Any) -> ASGIApp:
    return Router([WebSocketPath("/ws", handler)])


APPS = [_lilya, _included, _with_middleware, _router]


# -- no frame between the handler and the server ---------------------------------------


@pytest.mark.parametrize("make_app", APPS)
async def test_a_routed_function_handler_talks_to_the_server_callables(make_app: Any) -> None:
    seen: list[WebSocket] = []
    server = Server(CONNECT, text("a"))
    path = "/api/ws" if make_app is _included else "/ws"
    assert await server.run(make_app(echo_recording(seen)), path) is None
    [websocket] = seen
    assert websocket._send is server.send
    assert websocket._receive is server.receive
    assert server.types == ["websocket.accept", "websocket.send", "websocket.close"]
    assert websocket.application_state is WebSocketState.DISCONNECTED  # the route closed it


@pytest.mark.parametrize("make_app", APPS)
async def test_a_routed_controller_talks_to_the_server_callables(make_app: Any) -> None:
    RecordingController.seen.clear()
    server = Server(CONNECT, text("a"))
    path = "/api/ws" if make_app is _included else "/ws"
    assert await server.run(make_app(RecordingController), path) is None
    [websocket] = RecordingController.seen
    assert websocket._send is server.send
    assert websocket._receive is server.receive
    assert server.types == ["websocket.accept", "websocket.send"]  # then the client left


async def test_a_controller_served_alone_talks_to_the_server_callables() -> None:
    RecordingController.seen.clear()
    server = Server(CONNECT, text("a"))
    assert await server.run(RecordingController) is None
    [websocket] = RecordingController.seen
    assert websocket._send is server.send
    assert websocket._receive is server.receive


async def test_a_middleware_that_wraps_send_makes_the_route_wrap_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[WebSocket] = []

    async def echo_then_fail(websocket: WebSocket) -> None:
        await echo_recording(seen)(websocket)
        raise Boom("after the echo")

    CountingSend.seen = []
    app = Lilya(
        routes=[WebSocketPath("/ws", echo_recording(seen)), WebSocketPath("/fail", echo_then_fail)],
        middleware=[DefineMiddleware(CountingSend)],
    )
    server = Server(CONNECT, text("a"))
    assert await server.run(app) is None
    assert seen[0]._send is not server.send  # the route's tracker, over the middleware's send
    assert server.types == ["websocket.accept", "websocket.send", "websocket.close"]
    assert CountingSend.seen == server.types

    CountingSend.seen = []
    server = Server(CONNECT, text("a"))
    assert isinstance(await server.run(app, "/fail"), Boom)
    assert server.sent[-1] == {"type": "websocket.close", "code": 1011, "reason": ""}
    assert CountingSend.seen == server.types
    # Re-raised to the server, which logs it: lilya logs no traceback of its own.
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


# -- errors answered through the handler's own WebSocket -------------------------------


async def test_exception_handlers_get_the_handlers_own_websocket() -> None:
    seen: list[WebSocket] = []
    given: list[WebSocket] = []

    async def fails(websocket: WebSocket) -> None:
        seen.append(websocket)
        await websocket.accept()
        raise Boom("after accept")

    async def on_boom(websocket: WebSocket, exc: Boom) -> None:
        given.append(websocket)
        await websocket.close(4000)

    async def on_error(websocket: WebSocket, exc: Exception) -> None:
        given.append(websocket)

    choices: list[dict[HandlerKey, ExceptionHandler]] = [{Boom: on_boom}, {Exception: on_error}]
    for handlers in choices:
        seen.clear()
        given.clear()
        app = Lilya(routes=[WebSocketPath("/ws", fails)], exception_handlers=handlers)
        server = Server(CONNECT)
        await server.run(app)
        assert given == seen
        assert given[0] is seen[0]
        assert server.types == ["websocket.accept", "websocket.close"]
    assert server.sent[-1]["code"] == 1011


async def test_the_error_close_moves_the_handlers_websocket_to_disconnected() -> None:
    seen: list[WebSocket] = []

    async def fails(websocket: WebSocket) -> None:
        seen.append(websocket)
        await websocket.accept()
        raise Boom("after accept")

    server = Server(CONNECT)
    assert isinstance(await server.run(_lilya(fails)), Boom)
    assert server.sent[-1] == {"type": "websocket.close", "code": 1011, "reason": ""}
    assert seen[0].application_state is WebSocketState.DISCONNECTED


async def test_the_error_denial_moves_the_handlers_websocket_to_disconnected() -> None:
    seen: list[WebSocket] = []

    async def fails(websocket: WebSocket) -> None:
        seen.append(websocket)
        raise Boom("before accept")

    server = Server(CONNECT)
    assert isinstance(await server.run(_lilya(fails)), Boom)
    assert server.types == ["websocket.http.response.start", "websocket.http.response.body"]
    assert server.sent[0]["status"] == 500
    assert seen[0].application_state is WebSocketState.DISCONNECTED


async def test_a_denial_for_a_client_that_left_before_accept_is_not_sent() -> None:
    async def waits(websocket: WebSocket) -> None:
        await websocket.receive()  # connect
        await websocket.receive()  # the client leaves before we accept
        raise Boom("too late")

    def deny(websocket: WebSocket, exc: Boom) -> PlainText:
        return PlainText("no", 400)

    app = Lilya(routes=[WebSocketPath("/ws", waits)], exception_handlers={Boom: deny})
    server = Server(CONNECT)
    assert await server.run(app) is None
    assert server.sent == []


async def test_a_server_that_fails_a_send_means_the_client_is_gone() -> None:
    async def talks(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")

    server = Server(CONNECT, fail_on="websocket.send")
    assert await server.run(_lilya(talks)) is None
    assert server.types == ["websocket.accept"]


async def test_a_server_that_fails_the_error_close_is_not_an_error_twice() -> None:
    async def fails(websocket: WebSocket) -> None:
        await websocket.accept()
        raise Boom("after accept")

    server = Server(CONNECT, fail_on="websocket.close")
    assert isinstance(await server.run(_lilya(fails)), Boom)
    assert server.types == ["websocket.accept"]


async def test_a_server_that_fails_midway_through_a_denial_ends_it_quietly() -> None:
    async def half(websocket: WebSocket) -> None:
        await websocket.send({"type": "websocket.http.response.start", "status": 400})
        raise Boom("midway")

    server = Server(CONNECT, fail_on="websocket.http.response.body")
    assert isinstance(await server.run(_lilya(half)), Boom)
    assert server.types == ["websocket.http.response.start"]


# -- the recorder on its own ------------------------------------------------------------


async def test_the_first_layer_to_enter_puts_the_state_in_the_scope_and_records() -> None:
    server = Server(CONNECT)
    scope = websocket_scope()
    state, receive, send = enter(scope, server.receive, server.send)
    assert scope[STATE_KEY] is state
    assert receive != server.receive  # the recorder's
    again = enter(dict(scope), receive, send)  # a later layer, a shallow copy of the scope
    assert again == (state, receive, send)  # the same state, nothing wrapped twice
    await receive()
    await send({"type": "websocket.accept"})
    assert (state.client, state.application, state.accepted) == (CONNECTED, CONNECTED, True)
    assert server.types == ["websocket.accept"]


async def test_the_recorder_notes_raw_code_leniently_and_a_gone_client_on_send() -> None:
    server = Server(CONNECT, disconnect(1001), fail_on="websocket.send")
    state, receive, send = enter(websocket_scope(), server.receive, server.send)
    # A body with no response started: no row, so noted as nothing (the
    # server is the one to refuse raw code's mistakes).
    await send({"type": "websocket.http.response.body", "body": b""})
    assert state.application is WebSocketState.CONNECTING
    await receive()
    await send({"type": "websocket.accept"})
    with pytest.raises(OSError, match="vanished"):
        await send({"type": "websocket.send", "text": "lost"})
    assert (state.client_gone, state.lost_on_send, state.code) == (True, True, 1006)
    assert state.closing_message(1000) is None  # nothing more may go out
    await receive()  # the server's disconnect, with the real code
    assert (state.code, state.lost_on_send) == (1001, False)


async def test_server_callables_skip_only_a_recorder() -> None:
    server = Server()
    _, receive, send = enter(websocket_scope(), server.receive, server.send)
    assert server_callables(receive, send) == (server.receive, server.send)

    async def wrapped(message: Message) -> None:
        await send(message)

    assert server_callables(receive, wrapped) == (server.receive, wrapped)
    assert server_callables(server.receive, server.send) == (server.receive, server.send)


async def test_a_websocket_over_the_recorder_and_the_recorder_agree_on_every_message() -> None:
    # A raw handler that builds its own WebSocket over what it was handed:
    # each message is moved strictly by the WebSocket and noted by the
    # recorder, and seeing it twice changes nothing.
    server = Server(CONNECT, text("a"), disconnect(1001))
    scope = websocket_scope()
    state, receive, send = enter(scope, server.receive, server.send)
    websocket = WebSocket(scope, receive, send)
    await websocket.accept()
    assert await websocket.receive_text() == "a"
    assert [chunk async for chunk in websocket.iter_text()] == []
    assert (state.client, state.code) == (WebSocketState.DISCONNECTED, 1001)
    await websocket.close()  # silent: the client left
    assert state.application is WebSocketState.DISCONNECTED
    assert server.types == ["websocket.accept"]


async def test_a_denial_recorded_by_the_recorder_is_ended_with_its_last_body() -> None:
    server = Server(CONNECT)
    scope = websocket_scope()
    state, _, send = enter(scope, server.receive, server.send)
    await send({"type": "websocket.http.response.start", "status": 403, "headers": []})
    assert (state.started, state.accepted, state.application) == (True, False, RESPONSE)
    websocket = WebSocket(scope, server.receive, server.send)  # reads the same state
    assert websocket.application_state is RESPONSE
    assert state.closing_message(1000) == {"type": "websocket.http.response.body", "body": b""}


class RefusesStandardCodes:
    """A server like daphne: its send refuses close codes but 1000 and 3000-4999."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.incoming: list[Message] = [CONNECT]

    async def receive(self) -> Message:
        return self.incoming.pop(0) if self.incoming else disconnect()

    async def send(self, message: Message) -> None:
        code = message.get("code", 1000)
        if message["type"] == "websocket.close" and code != 1000 and not 3000 <= code <= 4999:
            raise Exception(f"invalid close code {code}")  # what autobahn raises
        self.sent.append(message)


@pytest.mark.anyio
@pytest.mark.parametrize("handler_kind", ["raw ASGI app", "function"])
async def test_the_error_close_falls_back_to_the_private_range_on_every_path(
    handler_kind: str,
) -> None:
    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        raise ValueError("boom")

    async def function(websocket: WebSocket) -> None:
        await websocket.accept()
        raise ValueError("boom")

    handler = raw if handler_kind == "raw ASGI app" else function
    app = Lilya(routes=[WebSocketPath("/ws", handler)])
    server = RefusesStandardCodes()
    with pytest.raises(ValueError, match="boom"):  # the app's own error, not the server's
        await app(websocket_scope("/ws"), server.receive, server.send)
    assert server.sent[-1] == {"type": "websocket.close", "code": 4011, "reason": ""}


# -- the end-of-handler close, from the layer that decides it to the server ------------


@pytest.mark.parametrize("make_app", APPS)
async def test_the_end_of_handler_close_reaches_the_server_in_four_hops(make_app: Any) -> None:
    async def returns(websocket: WebSocket) -> None:
        await websocket.accept()  # and returns: the route closes it

    hops: list[str] = []
    server = Server(CONNECT)
    plain_send = server.send

    async def send(message: Message) -> None:
        if message["type"] == "websocket.close":
            frames = [frame.function for frame in inspect.stack()[1:]]
            hops.extend(frames[: frames.index("guard") + 1])
        await plain_send(message)

    server.send = send
    path = "/api/ws" if make_app is _included else "/ws"
    assert await server.run(make_app(returns), path) is None
    assert server.types == ["websocket.accept", "websocket.close"]
    # guard -> end -> close_within (the send timeout) -> send_with_close_fallback -> the
    # server's send.
    assert hops == ["send_with_close_fallback", "close_within", "end", "guard"]
