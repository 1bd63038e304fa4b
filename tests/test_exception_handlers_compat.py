"""Exception handling, lifespans and controllers as ported code expects them.

Sync exception handlers run in a worker thread (so ``anyio.from_thread.run``
works in them), ``ExceptionMiddleware`` is public, ``debug`` 500s are HTML for
browsers, a handled exception after the response started says what Starlette
says, generator lifespans are accepted, and ``with_init`` bakes controller
arguments in.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.from_thread
import pytest

from lilya.apps import Lilya
from lilya.controllers import WebSocketController
from lilya.exceptions import HTTPException, ImproperlyConfigured
from lilya.middleware.exceptions import ExceptionMiddleware
from lilya.middleware.server_error import ServerErrorMiddleware
from lilya.requests import Request
from lilya.responses import PlainText, Response
from lilya.routing import Path, Router, WebSocketPath
from lilya.testclient import AsyncTestClient, TestClient
from lilya.types import Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect

pytestmark = pytest.mark.anyio


class Teapot(Exception):
    pass


async def brew(request: Request) -> Response:
    raise Teapot("short and stout")


async def brew_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    raise Teapot("over the wire")


async def test_a_sync_exception_handler_runs_in_a_worker_thread() -> None:
    loop_thread = threading.get_ident()
    seen: list[Any] = []

    async def in_the_loop() -> str:
        return "from the loop"

    def handler(request: Request, exc: Exception) -> Response:
        seen.append(threading.get_ident())
        return PlainText(anyio.from_thread.run(in_the_loop), 418)

    app = Lilya(routes=[Path("/", brew)], exception_handlers={Teapot: handler})
    response = await AsyncTestClient(app).get("/")
    assert (response.status_code, response.text) == (418, "from the loop")
    assert seen and seen[0] != loop_thread


async def test_a_sync_websocket_exception_handler_can_close_from_its_thread() -> None:
    def handler(websocket: WebSocket, exc: Exception) -> None:
        anyio.from_thread.run(websocket.close, 4000, str(exc))

    app = Lilya(routes=[WebSocketPath("/ws", brew_ws)], exception_handlers={Teapot: handler})
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        with pytest.raises(WebSocketDisconnect) as closed:
            await session.receive_text()
    assert (closed.value.code, closed.value.reason) == (4000, "over the wire")


async def test_a_sync_server_error_handler_runs_in_a_worker_thread_too() -> None:
    def handler(request: Request, exc: Exception) -> Response:
        return PlainText(f"sorry, {threading.current_thread() is threading.main_thread()}", 500)

    app = Lilya(routes=[Path("/", brew)], exception_handlers={Exception: handler})
    response = await AsyncTestClient(app, raise_server_exceptions=False).get("/")
    assert response.text == "sorry, False"


async def test_handled_after_the_response_started_gives_starlettes_message() -> None:
    async def half(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise HTTPException(400)

    with pytest.raises(
        RuntimeError, match=re.escape("Caught handled exception, but response already started.")
    ):
        await AsyncTestClient(Lilya(routes=[Path("/", half)])).get("/")


# -- ExceptionMiddleware -----------------------------------------------------------


async def test_exception_middleware_handles_around_a_bare_router() -> None:
    async def teapot(request: Request, exc: Teapot) -> Response:
        return PlainText(str(exc), 418)

    app = ExceptionMiddleware(Router([Path("/", brew)]), handlers={Teapot: teapot})
    app.add_exception_handler(404, lambda request, exc: PlainText("nothing here", 404))
    client = AsyncTestClient(app)
    response = await client.get("/")
    assert (response.status_code, response.text) == (418, "short and stout")
    missing = await client.get("/missing")
    assert (missing.status_code, missing.text) == (404, "nothing here")


async def test_an_exception_handler_for_exception_answers_and_still_raises() -> None:
    async def sorry(request: Request, exc: Exception) -> Response:
        return PlainText(f"sorry: {exc}", 503)

    app = ExceptionMiddleware(Router([Path("/", brew)]), handlers={Exception: sorry})
    response = await AsyncTestClient(app, raise_server_exceptions=False).get("/")
    assert (response.status_code, response.text) == (503, "sorry: short and stout")
    with pytest.raises(Teapot):
        await AsyncTestClient(app).get("/")
    later = ExceptionMiddleware(Router([Path("/", brew)]), debug=True)
    later.add_exception_handler(500, sorry)
    response = await AsyncTestClient(later, raise_server_exceptions=False).get("/")
    assert response.status_code == 503


def test_exception_middleware_refuses_a_key_that_is_not_a_class_or_code() -> None:
    app = ExceptionMiddleware(Router())
    with pytest.raises(ImproperlyConfigured, match="exception class or a status"):
        app.add_exception_handler("teapot", lambda r, e: None)  # type: ignore[arg-type]  # the mistake under test


# -- debug pages -----------------------------------------------------------------


async def test_debug_500_is_html_for_browsers_and_plain_text_otherwise() -> None:
    client = AsyncTestClient(
        Lilya(routes=[Path("/", brew)], debug=True), raise_server_exceptions=False
    )
    page = await client.get("/", headers={"accept": "text/html,application/xhtml+xml,*/*"})
    assert page.status_code == 500
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h2>Teapot: short and stout</h2>" in page.text
    assert "Traceback" in page.text
    plain = await client.get("/")
    assert plain.headers["content-type"] == "text/plain; charset=utf-8"
    assert plain.text.startswith("Traceback") and "Teapot: short and stout" in plain.text


async def test_the_debug_page_escapes_what_the_error_says() -> None:
    async def loud(request: Request) -> Response:
        raise ValueError("<script>alert(1)</script>")

    app = ServerErrorMiddleware(Router([Path("/", loud)]), debug=True)
    page = await AsyncTestClient(app, raise_server_exceptions=False).get(
        "/", headers={"accept": "text/html"}
    )
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_without_debug_a_browser_gets_the_plain_500() -> None:
    client = AsyncTestClient(Lilya(routes=[Path("/", brew)]), raise_server_exceptions=False)
    response = await client.get("/", headers={"accept": "text/html"})
    assert (response.status_code, response.text) == (500, "Internal Server Error")


# -- lifespans ---------------------------------------------------------------------


async def test_an_async_generator_lifespan_is_accepted() -> None:
    events: list[str] = []

    async def lifespan(app: Lilya) -> AsyncIterator[dict[str, Any]]:
        events.append("start")
        yield {"db": "ready"}
        events.append("stop")

    async def state(request: Request) -> Response:
        return PlainText(request.state.db)

    async with AsyncTestClient(Lilya(routes=[Path("/", state)], lifespan=lifespan)) as client:
        assert (await client.get("/")).text == "ready"
        assert events == ["start"]
    assert events == ["start", "stop"]


async def test_a_sync_generator_lifespan_is_accepted() -> None:
    events: list[str] = []

    def lifespan(app: Lilya) -> Iterator[None]:
        events.append("start")
        yield
        events.append("stop")

    async with AsyncTestClient(Lilya(lifespan=lifespan)):
        assert events == ["start"]
    assert events == ["start", "stop"]


async def test_a_lifespan_context_manager_function_still_works() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: Lilya) -> AsyncIterator[None]:
        yield

    async with AsyncTestClient(Router(lifespan=lifespan)) as client:
        assert (await client.get("/")).status_code == 404


def test_a_lifespan_that_is_not_callable_is_refused_when_the_app_is_built() -> None:
    async def lifespan(app: Lilya) -> AsyncIterator[None]:
        yield  # pragma: no cover - only its generator object is passed

    with pytest.raises(ImproperlyConfigured, match="pass the function itself"):
        Lilya(lifespan=lifespan(Lilya()))  # type: ignore[arg-type]  # the mistake under test


# -- with_init ---------------------------------------------------------------------


class Prefixed(WebSocketController):
    encoding = "text"

    def __init__(self, scope: Scope, receive: Receive, send: Send, *, prefix: str) -> None:
        super().__init__(scope, receive, send)
        self.prefix = prefix

    async def on_receive(self, websocket: WebSocket, data: str) -> None:
        await websocket.send_text(f"{self.prefix}: {data}")


async def test_with_init_bakes_constructor_arguments_into_a_controller() -> None:
    echo = Prefixed.with_init(prefix="Echo")
    assert issubclass(echo, Prefixed)
    assert echo.__name__ == "Prefixed"
    route = WebSocketPath("/ws", echo)
    assert route.name == "Prefixed"
    async with AsyncTestClient(Lilya(routes=[route])).websocket_connect("/ws") as session:
        await session.send_text("hi")
        assert await session.receive_text() == "Echo: hi"
    async with AsyncTestClient(Prefixed.with_init(prefix="Alone")).websocket_connect("/") as alone:
        await alone.send_text("hi")
        assert await alone.receive_text() == "Alone: hi"


def test_with_init_works_under_the_sync_client_on_both_loops(anyio_backend: str) -> None:
    client = TestClient(Prefixed.with_init(prefix="Sync"), backend=anyio_backend)  # type: ignore[arg-type]  # the fixture's str
    with client.websocket_connect("/") as session:
        session.send_text("hi")
        assert session.receive_text() == "Sync: hi"


async def test_a_plain_handler_that_returns_an_awaitable_is_awaited_in_the_loop() -> None:
    async def answer(request: Request, exc: Exception) -> Response:
        return PlainText("awaited", 418)

    app = Lilya(
        routes=[Path("/", brew)],
        exception_handlers={Teapot: lambda request, exc: answer(request, exc)},
    )
    response = await AsyncTestClient(app).get("/")
    assert (response.status_code, response.text) == (418, "awaited")
