"""The Lilya application: building routes, scope keys, lifespan, state."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from lilya._connection_state import state_of
from lilya.apps import Lilya
from lilya.middleware import DefineMiddleware
from lilya.middleware.origin import OriginMiddleware
from lilya.requests import Request
from lilya.routing import Include, Path, Router, WebSocketPath
from lilya.testclient import TestClient
from lilya.types import Message
from lilya.websockets import WebSocket
from tests.support.asgi import call_http, call_websocket


async def hello(request: Request) -> str:
    return "hello"


def test_decorators_add_routes_for_their_method() -> None:
    app = Lilya()

    @app.get("/r")
    async def read(request: Request) -> str:
        return "get"

    @app.post("/r")
    async def create(request: Request) -> str:
        return "post"

    @app.put("/r")
    async def replace(request: Request) -> str:
        return "put"

    @app.patch("/r")
    async def update(request: Request) -> str:
        return "patch"

    @app.delete("/r")
    async def remove(request: Request) -> str:
        return "delete"

    @app.route("/any", methods=["GET", "OPTIONS"], name="anything")
    async def anything(request: Request) -> str:
        return request.method

    @app.websocket("/ws/{room}")
    async def chat(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        await websocket.send_text(room)

    client = TestClient(app)
    for method in ("get", "post", "put", "patch", "delete"):
        assert client.request(method.upper(), "/r").text == method
    assert client.options("/any").text == "OPTIONS"
    assert app.path_for("anything") == "/any"
    assert app.path_for("chat", room="x") == "/ws/x"
    with client.websocket_connect("/ws/lobby") as ws:
        assert ws.receive_text() == "lobby"


def test_add_route_add_websocket_route_and_include() -> None:
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("ws")

    app = Lilya()
    app.add_route("/a", hello, name="a")
    app.add_websocket_route("/w", ws, name="w")
    app.include("/sub", [Path("/b", hello, name="b")], name="sub")
    app.include("/raw", Router([Path("/c", hello)]))
    client = TestClient(app)
    assert client.get("/a").text == "hello"
    assert client.get("/sub/b").text == "hello"
    assert client.get("/raw/c").text == "hello"
    assert app.path_for("sub:b") == "/sub/b"
    assert len(app.routes) == 4
    with client.websocket_connect("/w") as session:
        assert session.receive_text() == "ws"


def test_scope_carries_the_app_and_the_router() -> None:
    seen: dict[str, Any] = {}

    async def look(request: Request) -> str:
        seen.update(app=request.app, router=request.scope["router"])
        return ""

    app = Lilya(routes=[Path("/", look)])
    TestClient(app).get("/")
    assert seen == {"app": app, "router": app.router}


def test_app_state_is_application_wide() -> None:
    app = Lilya()
    app.state.counter = 1
    assert app.state.counter == 1


def test_configuration_after_start_is_refused() -> None:
    app = Lilya(routes=[Path("/", hello)])
    TestClient(app).get("/")
    with pytest.raises(RuntimeError, match="after the application has started"):
        app.add_middleware(DefineMiddleware)
    with pytest.raises(RuntimeError, match="after the application has started"):
        app.add_exception_handler(ValueError, lambda c, e: None)


def test_add_middleware_and_handler_before_start() -> None:
    calls: list[str] = []

    class Tag:
        def __init__(self, app: Any, tag: str) -> None:
            self.app, self.tag = app, tag

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            calls.append(self.tag)
            await self.app(scope, receive, send)

    async def fail(request: Request) -> str:
        raise KeyError("k")

    app = Lilya(routes=[Path("/", fail)], middleware=[DefineMiddleware(Tag, "inner")])
    app.add_middleware(Tag, tag="outer")
    app.add_exception_handler(KeyError, lambda request, exc: "handled")
    assert TestClient(app).get("/").text == "handled"
    assert calls == ["outer", "inner"]


# -- lifespan -------------------------------------------------------------------------


def test_startup_and_shutdown_hooks_run_once_around_the_lifespan() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Lilya) -> AsyncIterator[dict[str, Any]]:
        events.append(f"lifespan enter {type(app).__name__}")
        yield {"db": "connected"}
        events.append("lifespan exit")

    async def read_state(request: Request) -> str:
        return str(request.state.db)

    app = Lilya(
        routes=[Path("/", read_state)],
        on_startup=[lambda: events.append("sync startup"), _async_hook(events, "async startup")],
        on_shutdown=[lambda: events.append("shutdown")],
        lifespan=lifespan,
    )
    with TestClient(app) as client:
        assert events == ["sync startup", "async startup", "lifespan enter Lilya"]
        assert client.get("/").text == "connected"
        assert client.get("/").text == "connected"
    assert events == [
        "sync startup",
        "async startup",
        "lifespan enter Lilya",
        "lifespan exit",
        "shutdown",
    ]


def _async_hook(events: list[str], label: str) -> Any:
    async def hook() -> None:
        await anyio.sleep(0)
        events.append(label)

    return hook


async def _run_lifespan(app: Any, *, state: bool = True) -> tuple[list[Message], Exception | None]:
    sent: list[Message] = []
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> Message:
        if not incoming:
            await anyio.sleep_forever()
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}}
    if state:
        scope["state"] = {}
    error = None
    with anyio.fail_after(5):
        try:
            await app(scope, receive, send)
        except Exception as exc:
            error = exc
    return sent, error


@pytest.mark.anyio
async def test_a_failing_startup_is_reported_with_the_error_and_reraised() -> None:
    def broken() -> None:
        raise RuntimeError("database unreachable")

    sent, error = await _run_lifespan(Lilya(on_startup=[broken]))
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert "RuntimeError: database unreachable" in sent[0]["message"]
    assert isinstance(error, RuntimeError)


@pytest.mark.anyio
async def test_a_failing_shutdown_is_reported_too() -> None:
    def broken() -> None:
        raise ValueError("flush failed")

    sent, error = await _run_lifespan(Lilya(on_shutdown=[broken]))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.failed"]
    assert "ValueError: flush failed" in sent[1]["message"]
    assert isinstance(error, ValueError)


@pytest.mark.anyio
async def test_lifespan_state_needs_a_server_that_supports_it() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"x": 1}

    sent, error = await _run_lifespan(Lilya(lifespan=lifespan), state=False)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert 'does not support "state" in the lifespan scope' in sent[0]["message"]
    assert isinstance(error, RuntimeError)


@pytest.mark.anyio
async def test_lifespan_without_hooks_completes() -> None:
    sent, error = await _run_lifespan(Lilya())
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert error is None


def test_a_failing_startup_surfaces_in_the_test_client() -> None:
    def broken() -> None:
        raise RuntimeError("no config")

    with pytest.raises(RuntimeError, match="no config"), TestClient(Lilya(on_startup=[broken])):
        pass


@pytest.mark.anyio
async def test_an_included_app_is_reached_through_the_outer_app() -> None:
    inner = Lilya(routes=[Path("/x", hello, name="x")])
    outer = Lilya(routes=[Include("/inner", app=inner, name="inner")])
    assert (await call_http(outer, "/inner/x")).body == b"hello"
    assert outer.path_for("inner:x") == "/inner/x"
    assert (await call_websocket(outer, "/inner/none")).types == ["websocket.close"]


def test_the_app_runs_on_trio_too() -> None:
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"ok": True})

    app = Lilya(routes=[Path("/", hello)])
    app.add_websocket_route("/ws", ws)
    with TestClient(app, backend="trio") as client:
        assert client.get("/").text == "hello"
        with client.websocket_connect("/ws") as session:
            assert session.receive_json() == {"ok": True}


def _parked_frames(app: Lilya) -> tuple[list[str], dict[str, Any], Any]:
    """Open one WebSocket on *app* in-process, park its handler, and name the frames it holds."""
    found: dict[str, Any] = {}

    async def main() -> list[str]:
        parked = asyncio.Event()
        leave = asyncio.Event()
        messages = [{"type": "websocket.connect"}]

        async def receive() -> Message:
            if messages:
                return messages.pop()
            await leave.wait()
            return {"type": "websocket.disconnect", "code": 1000}

        async def send(message: Message) -> None:
            if message["type"] == "websocket.accept":
                parked.set()

        scope: dict[str, Any] = {"type": "websocket", "path": "/ws", "headers": [], "state": {}}
        task = asyncio.get_running_loop().create_task(app(scope, receive, send))
        await parked.wait()
        await asyncio.sleep(0)
        names = []
        awaited: Any = task.get_coro()
        while inspect.iscoroutine(awaited):
            names.append(awaited.__qualname__)
            awaited = awaited.cr_await
        found["scope"] = scope
        leave.set()
        await task
        return names

    names = asyncio.run(main())
    return names, found["scope"], state_of(found["scope"])


@pytest.mark.parametrize("caps", [False, True])
def test_an_open_socket_holds_no_frame_of_the_pass_through_layers(caps: bool) -> None:
    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive()

    settings: dict[str, Any] = {} if caps else {"connection_caps": None}
    app = Lilya(routes=[WebSocketPath("/ws", handler)], **settings)
    names, _, _ = _parked_frames(app)
    assert isinstance(app.build_middleware_stack().app.app, OriginMiddleware)  # type: ignore[attr-defined]
    # The layers that must catch or clean up stay; the pass-throughs do not.
    assert "guard" in names
    assert "ExceptionHandlerMiddleware.__call__" in names
    assert "test_an_open_socket_holds_no_frame_of_the_pass_through_layers.<locals>.handler" in names
    assert "ServerErrorMiddleware.__call__" in names
    assert "OriginMiddleware.__call__" not in names
    assert "Router.__call__" not in names
    assert "WebSocketPath._run" not in names
    # With caps, the slot must be released at the end: that layer stays.
    assert ("_serve_in_slot" in names) is caps
    assert "serve_capped" not in names


def test_the_handlers_websocket_is_kept_on_the_state_not_in_the_scope() -> None:
    seen: list[WebSocket] = []

    async def handler(websocket: WebSocket) -> None:
        seen.append(websocket)
        await websocket.accept()
        await websocket.receive()

    app = Lilya(routes=[WebSocketPath("/ws", handler)])
    _, scope, state = _parked_frames(app)
    assert state.websocket is seen[0]
    assert "lilya.websocket" not in scope
    # What the server gave (4 keys here) plus lilya's own: the documented
    # keys stay (app, router, path_params, the state, the limits).
    assert {"app", "router", "path_params", "lilya.connection_state"} <= scope.keys()


def test_the_layers_a_server_may_serve_directly_stay_coroutine_functions() -> None:
    # uvicorn's ASGI 2/3 detection inspects the app it is given: a bare
    # Router or an outermost OriginMiddleware must still look like ASGI 3.
    router = Router(routes=[])
    assert inspect.iscoroutinefunction(router.__call__)
    assert inspect.iscoroutinefunction(OriginMiddleware(router).__call__)
    assert inspect.iscoroutinefunction(Lilya().__call__)
