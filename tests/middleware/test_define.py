"""DefineMiddleware and the order of middleware on the app, an Include and a route."""

from __future__ import annotations

from typing import Any

import pytest

from lilya.apps import Lilya
from lilya.exceptions import ImproperlyConfigured
from lilya.middleware import DefineMiddleware, wrap_middleware
from lilya.requests import Request
from lilya.routing import Include, Path, WebSocketPath
from lilya.types import ASGIApp, Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketClose
from tests.support.asgi import call_http, call_websocket

pytestmark = pytest.mark.anyio


class Trace:
    """Records entering and leaving, per scope type, in a shared list."""

    def __init__(self, app: ASGIApp, log: list[str], name: str) -> None:
        self.app = app
        self.log = log
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.log.append(f"{self.name}:{scope['type']}")
        await self.app(scope, receive, send)
        self.log.append(f"/{self.name}")


def traced(log: list[str], *names: str) -> list[DefineMiddleware]:
    return [DefineMiddleware(Trace, log, name=name) for name in names]


def build(log: list[str]) -> Lilya:
    async def page(request: Request) -> str:
        log.append("handler")
        return "ok"

    async def ws(websocket: WebSocket) -> None:
        log.append("handler")
        await websocket.accept()

    return Lilya(
        routes=[
            Include(
                "/inc",
                middleware=traced(log, "include1", "include2"),
                routes=[
                    Path("/page", page, middleware=traced(log, "route1", "route2")),
                    WebSocketPath("/ws", ws, middleware=traced(log, "route1", "route2")),
                ],
            )
        ],
        middleware=traced(log, "app1", "app2"),
    )


@pytest.mark.parametrize(("kind", "path"), [("http", "/inc/page"), ("websocket", "/inc/ws")])
async def test_middleware_runs_app_then_include_then_route_first_listed_outermost(
    kind: str, path: str
) -> None:
    log: list[str] = []
    app = build(log)
    if kind == "http":
        assert (await call_http(app, path)).status == 200
    else:
        assert (await call_websocket(app, path)).close == (1000, "")
    names = ["app1", "app2", "include1", "include2", "route1", "route2"]
    assert log == [f"{n}:{kind}" for n in names] + ["handler"] + [f"/{n}" for n in reversed(names)]


async def test_route_middleware_does_not_run_for_other_routes_or_no_match() -> None:
    log: list[str] = []
    app = build(log)
    await call_http(app, "/elsewhere")
    assert log == ["app1:http", "app2:http", "/app2", "/app1"]


async def test_app_middleware_sees_lifespan_and_route_middleware_does_not() -> None:
    import anyio

    log: list[str] = []
    app = build(log)
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> Any:
        return messages.pop(0)

    async def send(message: Any) -> None:
        pass

    with anyio.fail_after(5):
        await app({"type": "lifespan", "state": {}}, receive, send)
    assert log == ["app1:lifespan", "app2:lifespan", "/app2", "/app1"]


def test_define_middleware_unpacks_and_describes_itself() -> None:
    entry = DefineMiddleware(Trace, [], name="x")
    cls, args, kwargs = entry
    assert (cls, args, kwargs) == (Trace, ([],), {"name": "x"})
    assert repr(entry) == "DefineMiddleware(Trace, [], name='x')"


def test_middleware_entries_must_be_defined() -> None:
    with pytest.raises(ImproperlyConfigured, match="DefineMiddleware"):
        wrap_middleware(WebSocketClose(), [Trace])  # type: ignore[list-item]  # the bad entry under test
    with pytest.raises(ImproperlyConfigured, match="class or factory"):
        DefineMiddleware("Trace")
