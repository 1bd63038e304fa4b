"""Routing as code ported from Starlette, FastAPI and Lilya expects it.

Reverse routing inside an ``Include`` and under a ``root_path``, a ``root_path``
with a trailing slash, routes served as ASGI apps of their own,
``Include(path, app)``, ``Router(middleware=...)``, the peers' reprs and
messages, default route names and the ``url_path_for`` / ``url_for`` aliases.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from lilya.apps import Lilya
from lilya.converters import CONVERTERS, Converter, IntegerConverter, register_converter
from lilya.exceptions import ImproperlyConfigured, NoMatchFound
from lilya.middleware import DefineMiddleware
from lilya.requests import Request
from lilya.responses import PlainText, Response
from lilya.routing import Include, Path, Router, WebSocketPath
from lilya.testclient import AsyncTestClient
from lilya.types import ASGIApp, Message, Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect

pytestmark = pytest.mark.anyio


async def urls(websocket: WebSocket, room: str) -> None:
    await websocket.accept()
    await websocket.send_json(
        {
            "inner": websocket.path_for("rooms:chat", room="y"),
            "top": websocket.path_for("top"),
            "home": websocket.url_for("home"),
            "same": websocket.url_path_for("rooms:chat", room=room),
        }
    )
    await websocket.close()


async def home(request: Request) -> Response:
    return PlainText(str(request.url_for("rooms:chat", room="x")))


async def top(websocket: WebSocket) -> None:
    await websocket.close()  # pragma: no cover - only reversed, never served


def chat_app() -> Lilya:
    return Lilya(
        routes=[
            Path("/", home, name="home"),
            WebSocketPath("/top", top),
            Include("/rooms", routes=[WebSocketPath("/{room}", urls, name="chat")], name="rooms"),
        ]
    )


async def test_path_for_inside_an_include_does_not_add_the_prefix_again() -> None:
    async with AsyncTestClient(chat_app()).websocket_connect("/rooms/x") as session:
        assert await session.receive_json() == {
            "inner": "ws://testserver/rooms/y",
            "top": "ws://testserver/top",
            "home": "http://testserver/",
            "same": "ws://testserver/rooms/x",
        }


@pytest.mark.parametrize("root_path", ["/api", "/api/"])
async def test_path_for_under_a_root_path_names_the_root_once(root_path: str) -> None:
    client = AsyncTestClient(chat_app(), root_path=root_path)
    async with client.websocket_connect("/api/rooms/x") as session:
        assert await session.receive_json() == {
            "inner": "ws://testserver/api/rooms/y",
            "top": "ws://testserver/api/top",
            "home": "http://testserver/api/",
            "same": "ws://testserver/api/rooms/x",
        }
    assert (await client.get("/api/")).text == "ws://testserver/api/rooms/x"


@pytest.mark.parametrize("path", ["/api/items/3", "/items/3"])
async def test_a_root_path_ending_in_a_slash_still_routes(path: str) -> None:
    async def item(request: Request, id: int) -> Response:
        return PlainText(f"{id} {request.url.path} {request.base_url}")

    client = AsyncTestClient(Lilya(routes=[Path("/items/{id:int}", item)]), root_path="/api/")
    response = await client.get(path)
    assert (response.status_code, response.text) == (200, "3 /api/items/3 http://testserver/api/")


async def test_an_include_under_a_slashed_root_path_does_not_double_slashes() -> None:
    async def where(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainText(scope["root_path"])(scope, receive, send)

    client = AsyncTestClient(Lilya(routes=[Include("/sub", where)]), root_path="/api/")
    assert (await client.get("/api/sub/x")).text == "/api/sub"


# -- routes are ASGI apps ------------------------------------------------------


async def hello(request: Request) -> Response:
    return PlainText("hello")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())


async def test_a_path_is_an_asgi_app_that_answers_404_to_other_paths() -> None:
    client = AsyncTestClient(Path("/hello", hello))
    assert (await client.get("/hello")).text == "hello"
    missing = await client.get("/other")
    assert (missing.status_code, missing.text) == (404, "Not Found")
    refused = await client.post("/hello")
    assert (refused.status_code, refused.headers["allow"]) == (405, "GET, HEAD")


async def test_a_websocket_path_is_an_asgi_app_that_refuses_other_paths() -> None:
    client = AsyncTestClient(WebSocketPath("/ws", echo))
    async with client.websocket_connect("/ws") as session:
        await session.send_text("hi")
        assert await session.receive_text() == "hi"
    with pytest.raises(WebSocketDisconnect) as refused:
        async with client.websocket_connect("/elsewhere"):
            pass  # pragma: no cover - never entered
    assert refused.value.code == 1000


async def test_an_include_is_an_asgi_app_and_a_route_ignores_lifespan() -> None:
    include = Include("/app", [Path("/hello", hello)])
    async with AsyncTestClient(include) as client:  # the lifespan scope is ignored
        assert (await client.get("/app/hello")).text == "hello"
        assert (await client.get("/nope")).status_code == 404


# -- Include(path, app) ------------------------------------------------------------


async def test_include_takes_an_app_second_as_both_peers_do() -> None:
    inner = Lilya(routes=[Path("/hello", hello)])
    include = Include("/inner", inner)
    assert include.router is None
    assert include.mounted is inner
    client = AsyncTestClient(Lilya(routes=[include]))
    assert (await client.get("/inner/hello")).text == "hello"


def test_include_says_what_is_wrong_with_its_second_argument() -> None:
    app = Lilya()
    with pytest.raises(ImproperlyConfigured, match="got two apps"):
        Include("/x", app, app=app)
    with pytest.raises(ImproperlyConfigured, match="list of routes or an ASGI app second, got int"):
        Include("/x", 3)  # type: ignore[arg-type]  # the mistake under test
    with pytest.raises(ImproperlyConfigured, match="list of routes or an ASGI app second, got str"):
        Include("/x", "myapp.urls")  # type: ignore[arg-type]  # the mistake under test
    with pytest.raises(ImproperlyConfigured, match="needs an ASGI app"):
        Include("/x", app=3)  # type: ignore[arg-type]  # the mistake under test


# -- Router(middleware=...) --------------------------------------------------------


class Tag:
    """Adds ``x-tag`` to HTTP responses and to the WebSocket accept."""

    def __init__(self, app: ASGIApp, tag: str) -> None:
        self.app = app
        self.tag = tag

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def tagged(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message["headers"].append((b"x-tag", self.tag.encode()))
            await send(message)

        await self.app(scope, receive, tagged)


async def test_router_middleware_wraps_every_route_and_sees_the_accept_headers() -> None:
    router = Router(
        [Path("/hello", hello), WebSocketPath("/ws", echo)],
        middleware=[DefineMiddleware(Tag, tag="router")],
    )
    assert [type(entry) for entry in router.middleware] == [DefineMiddleware]
    client = AsyncTestClient(router)
    assert (await client.get("/hello")).headers["x-tag"] == "router"
    async with client.websocket_connect("/ws") as session:
        assert session.extra_headers == [(b"x-tag", b"router")]


async def test_route_middleware_can_append_to_the_accept_headers_of_a_plain_accept() -> None:
    app = Lilya(routes=[WebSocketPath("/ws", echo, middleware=[DefineMiddleware(Tag, tag="r")])])
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        assert session.extra_headers == [(b"x-tag", b"r")]


# -- names, reprs, messages, aliases -------------------------------------------------


class Endpoint:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await PlainText("object")(scope, receive, send)  # pragma: no cover - named only


def test_a_callable_object_handler_is_named_after_its_class() -> None:
    assert Path("/e", Endpoint()).name == "Endpoint"
    assert WebSocketPath("/e", Endpoint()).name == "Endpoint"
    assert Path("/h", hello).name == "hello"


def test_routes_repr_as_the_peers_do() -> None:
    assert repr(Path("/welcome", hello, methods=["POST"])) == (
        "Path(path='/welcome', name='hello', methods=['POST'])"
    )
    assert repr(Path("/any", Endpoint())) == "Path(path='/any', name='Endpoint', methods=[])"
    assert repr(WebSocketPath("/ws", echo)) == "WebSocketPath(path='/ws', name='echo')"
    inner = Lilya()
    assert repr(Include("/app", inner)) == f"Include(path='/app', name='', app={inner!r})"


def test_an_unknown_route_name_gives_starlettes_message() -> None:
    with pytest.raises(
        NoMatchFound, match="^" + re.escape('No route exists for name "x" and params "".')
    ):
        Router().path_for("x")
    with pytest.raises(
        NoMatchFound, match="^" + re.escape('No route exists for name "x" and params "a, b".')
    ):
        Lilya().url_path_for("x", b=1, a=2)


def test_url_path_for_is_path_for_on_routes_routers_and_apps() -> None:
    app = chat_app()
    assert app.url_path_for("rooms:chat", room="r") == "/rooms/r"
    assert app.router.url_path_for("top") == "/top"
    assert app.routes[0].url_path_for("home") == "/"


# -- converters ---------------------------------------------------------------------


class Hex(Converter[int]):
    regex = "[0-9a-f]+"

    def convert(self, value: str) -> int:
        return int(value, 16)

    def to_string(self, value: int) -> str:
        return format(value, "x")


async def test_a_public_generic_converter_routes_and_reverses() -> None:
    register_converter("hex_compat", Hex())

    async def color(request: Request, value: int) -> Response:
        return PlainText(f"{value} {request.url_for('color', value=value)}")

    client = AsyncTestClient(Lilya(routes=[Path("/c/{value:hex_compat}", color, name="color")]))
    assert (await client.get("/c/ff")).text == "255 http://testserver/c/ff"


def test_registering_a_converter_name_again_replaces_it() -> None:
    class Shout(Converter[str]):
        def convert(self, value: str) -> str:
            return value.upper()

    register_converter("shout_compat", IntegerConverter())
    register_converter("shout_compat", Shout())
    assert isinstance(CONVERTERS["shout_compat"], Shout)
    route = Path("/s/{word:shout_compat}", hello)
    assert route.matches({"type": "http", "method": "GET", "path": "/s/a"}, "/s/a")[1] == {
        "path_params": {"word": "A"}
    }


def test_register_converter_refuses_what_cannot_be_a_converter() -> None:
    with pytest.raises(ImproperlyConfigured, match="needs a Converter instance"):
        register_converter("bad_compat", Hex)  # type: ignore[arg-type]  # a class, not an instance
    with pytest.raises(ImproperlyConfigured, match="must be a word"):
        register_converter("no spaces", Hex())


def test_the_builtin_converters_keep_their_types() -> None:
    found: dict[str, Any] = {}
    value = uuid.uuid4()
    route = Path("/{u:uuid}/{n:int}/{f:float}", hello)
    scope: dict[str, Any] = {"type": "http", "method": "GET"}
    found = route.matches(scope, f"/{value}/3/1.5")[1]["path_params"]
    assert found == {"u": value, "n": 3, "f": 1.5}


async def test_uvicorns_double_slash_under_a_slashed_root_path_is_read_as_one() -> None:
    async def item(request: Request, id: int) -> Response:
        return PlainText(f"{id} {request.url.path} {request.scope['root_path']}")

    app = chat_app()
    app.add_route("/items/{id:int}", item)
    client = AsyncTestClient(app, root_path="/api/")
    response = await client.get("/api//items/3")
    assert (response.status_code, response.text) == (200, "3 /api/items/3 /api")
    async with client.websocket_connect("/api//rooms/x") as session:
        assert (await session.receive_json())["inner"] == "ws://testserver/api/rooms/y"


async def test_a_route_served_alone_reads_a_slashed_root_path_too() -> None:
    response = await AsyncTestClient(Path("/hello", hello), root_path="/api/").get("/api//hello")
    assert (response.status_code, response.text) == (200, "hello")


def test_get_route_path_reads_a_scope_the_router_has_not_seen() -> None:
    from lilya.routing import get_route_path

    assert get_route_path({"path": "/api//items", "root_path": "/api/"}) == "/items"
    assert get_route_path({"path": "/items", "root_path": "/api/"}) == "/items"
    assert get_route_path({"path": "/api", "root_path": "/api/"}) == ""


@pytest.mark.parametrize(
    "text",
    [
        "00000000-aaaa-ffff-9999-000000000000",
        "00000000aaaaffff9999000000000000",
        "00000000-AAAA-FFFF-9999-000000000000",
    ],
)
async def test_the_uuid_converter_takes_hyphenless_and_upper_case_uuids(text: str) -> None:
    async def show(request: Request, id: uuid.UUID) -> Response:
        return PlainText(f"{id} {request.url_for('show', id=id)}")

    client = AsyncTestClient(Router([Path("/u/{id:uuid}", show)]))
    expected = "00000000-aaaa-ffff-9999-000000000000"
    assert (await client.get(f"/u/{text}")).text == f"{expected} http://testserver/u/{expected}"


def test_a_bad_route_is_a_value_error_as_in_starlette_and_lilya() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        Path("/{id}/{id}", hello)
    assert issubclass(ImproperlyConfigured, ValueError)


def test_an_include_reversed_by_its_own_name_needs_a_path() -> None:
    router = Router([Include("/users", PlainText("OK"), name="users")])
    assert router.url_path_for("users", path="/a") == "/users/a"
    with pytest.raises(NoMatchFound, match=re.escape('needs path="/..." too')):
        router.url_path_for("users")
    with pytest.raises(NoMatchFound):
        router.url_path_for("users", path="/a", foo="bar")


class SetsHeader:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"].append((b"x-test", b"set"))
            await send(message)

        await self.app(scope, receive, tagged)


async def test_a_route_mounted_as_an_app_serves_the_bare_prefix_as_its_root() -> None:
    app = Lilya(
        routes=[
            Include(
                "/http",
                app=Path("/", hello, name="route"),
                middleware=[DefineMiddleware(SetsHeader)],
            ),
        ]
    )
    client = AsyncTestClient(app)
    for path in ("/http", "/http/"):
        response = await client.get(path)
        assert (response.status_code, response.text, response.headers["x-test"]) == (
            200,
            "hello",
            "set",
        )


def test_no_match_found_is_importable_from_routing_as_both_peers_have_it() -> None:
    from lilya import routing

    assert routing.NoMatchFound is NoMatchFound
    assert "NoMatchFound" in routing.__all__
