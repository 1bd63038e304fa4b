"""Routing: matching, converters, precedence, trailing slashes, reverse routing."""

from __future__ import annotations

import functools
import uuid
from typing import Any

import pytest

from lilya._matching import compile_path
from lilya.converters import Converter, register_converter
from lilya.exceptions import ImproperlyConfigured, NoMatchFound
from lilya.requests import Request
from lilya.responses import PlainText, Response
from lilya.routing import Include, Match, Path, Router, WebSocketPath, get_route_path
from lilya.testclient import TestClient
from lilya.types import Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect
from tests.support.asgi import CONNECT, call_http, call_websocket, http_scope, websocket_scope

pytestmark = pytest.mark.anyio


async def echo_params(request: Request) -> Response:
    params = {k: [type(v).__name__, str(v)] for k, v in request.path_params.items()}
    return PlainText(repr(sorted(params.items())))


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    body = f"root_path={scope.get('root_path')} path={scope['path']}"
    await PlainText(body)(scope, receive, send)


# -- path templates ---------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/users/{name}", "/users/ann", {"name": "ann"}),
        ("/users/{name:str}", "/users/a b", {"name": "a b"}),
        ("/items/{id:int}", "/items/42", {"id": 42}),
        ("/price/{p:float}", "/price/2.5", {"p": 2.5}),
        ("/price/{p:float}", "/price/3", {"p": 3.0}),
        (
            "/u/{u:uuid}",
            "/u/12345678-1234-5678-1234-567812345678",
            {"u": uuid.UUID("12345678-1234-5678-1234-567812345678")},
        ),
        ("/files/{rest:path}", "/files/a/b/c.txt", {"rest": "a/b/c.txt"}),
        ("/files/{rest:path}", "/files/", {"rest": ""}),
        ("/{a}/{b:int}", "/x/7", {"a": "x", "b": 7}),
    ],
)
def test_converters_match_and_type_their_values(
    template: str, path: str, expected: dict[str, Any]
) -> None:
    found = compile_path(template).match(path)
    assert found is not None
    params, rest = found
    assert params == expected
    assert [type(v) for v in params.values()] == [type(v) for v in expected.values()]
    assert rest == ""


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("/items/{id:int}", "/items/abc"),
        ("/items/{id:int}", "/items/-1"),
        ("/items/{id:int}", "/items/1.5"),
        ("/price/{p:float}", "/price/x"),
        ("/u/{u:uuid}", "/u/not-a-uuid"),
        ("/users/{name}", "/users/"),
        ("/users/{name}", "/users/a/b"),
        ("/users", "/users/"),
        ("/users/", "/users"),
    ],
)
def test_bad_converter_input_and_other_paths_do_not_match(template: str, path: str) -> None:
    assert compile_path(template).match(path) is None


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("users", "must start with '/'"),
        ("/x/{id:nope}", "Unknown path converter 'nope'"),
        ("/x/{id}/{id}", "appears twice"),
        ("/x/{1bad}", "Python identifier"),
        ("/x/{id", "Unbalanced brace"),
        ("/x}/{id}", "Unbalanced brace"),
    ],
)
def test_bad_templates_are_refused_when_the_route_is_built(template: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        Path(template, echo_params)


def test_an_include_prefix_cannot_use_the_path_converter() -> None:
    with pytest.raises(ImproperlyConfigured, match="swallow"):
        Include("/static/{rest:path}", routes=[])


def test_a_prefix_matches_only_up_to_a_slash() -> None:
    prefix = compile_path("/api", prefix=True)
    assert prefix.match("/api") == ({}, "")
    assert prefix.match("/api/x/y") == ({}, "/x/y")
    assert prefix.match("/apix") is None


def test_a_registered_converter_is_usable_in_templates() -> None:
    class Hex(Converter[int]):
        regex = "[0-9a-f]+"

        def convert(self, value: str) -> int:
            return int(value, 16)

        def to_string(self, value: Any) -> str:
            return format(value, "x")

    register_converter("hex_for_test", Hex())
    compiled = compile_path("/c/{n:hex_for_test}")
    assert compiled.match("/c/ff") == ({"n": 255}, "")
    assert compiled.format({"n": 255}) == "/c/ff"
    register_converter("hex_for_test", Hex())  # registering again replaces, as Starlette


# -- dispatch ---------------------------------------------------------------


async def test_path_params_reach_handlers_typed_as_keyword_arguments() -> None:
    seen: dict[str, Any] = {}

    async def item(request: Request, id: int, slug: str) -> Response:
        seen.update(id=id, slug=slug, scope=request.path_params)
        return PlainText("ok")

    router = Router([Path("/items/{id:int}/{slug}", item)])
    outcome = await call_http(router, "/items/7/hello")
    assert outcome.status == 200
    assert seen == {"id": 7, "slug": "hello", "scope": {"id": 7, "slug": "hello"}}


async def test_websocket_handlers_get_params_by_name_and_any_order() -> None:
    seen: list[Any] = []

    async def chat(room: str, websocket: WebSocket, n: int = 0) -> None:
        seen.append((room, n, websocket.path_params))
        await websocket.accept()

    router = Router([WebSocketPath("/ws/{room}/{n:int}", chat)])
    outcome = await call_websocket(router, "/ws/lobby/3")
    assert seen == [("lobby", 3, {"room": "lobby", "n": 3})]
    assert outcome.types == ["websocket.accept", "websocket.close"]


async def test_keyword_only_connection_and_var_kwargs_are_supported() -> None:
    seen: dict[str, Any] = {}

    async def handler(*, request: Request, **params: Any) -> str:
        seen.update(params, method=request.method)
        return "ok"

    async def no_connection() -> str:
        return "plain"

    router = Router([Path("/a/{x}/{y:int}", handler), Path("/b", no_connection)])
    assert (await call_http(router, "/a/q/2")).body == b"ok"
    assert seen == {"x": "q", "y": 2, "method": "GET"}
    assert (await call_http(router, "/b")).body == b"plain"


async def test_a_handler_parameter_no_route_defines_is_a_server_error() -> None:
    async def item(request: Request, id: int) -> str:
        return ""

    outcome = await call_http(Router([Path("/items", item)]), "/items")
    assert isinstance(outcome.error, TypeError)


def test_a_sync_websocket_handler_is_refused() -> None:
    def chat(websocket: WebSocket) -> None:
        pass

    with pytest.raises(ImproperlyConfigured, match="must be an async function"):
        WebSocketPath("/ws", chat)


async def test_sync_http_handlers_run_in_a_thread_and_partials_work() -> None:
    def hello(request: Request, greeting: str) -> str:
        return f"{greeting} {request.path_params['who']}"

    handler = functools.partial(hello, greeting="hi")
    router = Router([Path("/{who}", handler, name="hello")])
    assert (await call_http(router, "/ann")).body == b"hi ann"


@pytest.mark.parametrize(
    ("result", "content_type", "body"),
    [
        ("text", "text/plain; charset=utf-8", b"text"),
        (b"\x00raw", None, b"\x00raw"),
        ({"a": "é"}, "application/json", '{"a":"é"}'.encode()),
        ([1, 2], "application/json", b"[1,2]"),
    ],
)
async def test_plain_return_values_become_responses(
    result: Any, content_type: str | None, body: bytes
) -> None:
    async def handler(request: Request) -> Any:
        return result

    outcome = await call_http(Router([Path("/", handler)]), "/")
    assert outcome.status == 200
    assert outcome.body == body
    assert outcome.headers.get("content-type") == content_type


async def test_returning_none_is_a_clear_error() -> None:
    async def forgot(request: Request) -> None:
        pass

    outcome = await call_http(Router([Path("/", forgot)]), "/")
    assert isinstance(outcome.error, TypeError)
    assert "returned None; return a Response" in str(outcome.error)


async def test_the_first_declared_route_wins() -> None:
    async def first(request: Request) -> str:
        return "first"

    async def second(request: Request) -> str:
        return "second"

    router = Router([Path("/users/me", first), Path("/users/{name}", second)])
    assert (await call_http(router, "/users/me")).body == b"first"
    assert (await call_http(router, "/users/ann")).body == b"second"
    flipped = Router([Path("/users/{name}", second), Path("/users/me", first)])
    assert (await call_http(flipped, "/users/me")).body == b"second"


async def test_an_include_that_cannot_serve_a_path_lets_later_routes_try() -> None:
    async def fallback(request: Request) -> str:
        return "fallback"

    router = Router(
        [
            Include("/api", routes=[Path("/users", echo_params)]),
            Path("/api/{anything:path}", fallback),
        ]
    )
    assert (await call_http(router, "/api/users")).status == 200
    assert (await call_http(router, "/api/other")).body == b"fallback"


async def test_method_mismatch_is_405_with_allow_and_a_later_full_match_wins() -> None:
    async def create(request: Request) -> str:
        return "created"

    router = Router([Path("/items", echo_params), Path("/items", create, methods=["post"])])
    assert (await call_http(router, "/items", "POST")).body == b"created"
    outcome = await call_http(router, "/items", "DELETE")
    assert outcome.status == 405
    assert outcome.headers["allow"] == "GET, HEAD"
    assert (await call_http(router, "/items", "HEAD")).status == 200


async def test_an_asgi_app_handler_accepts_every_method() -> None:
    router = Router([Path("/raw", raw_app)])
    assert (await call_http(router, "/raw", "PATCH")).status == 200


async def test_no_match_is_404_for_http_and_a_close_before_accept_for_websockets() -> None:
    router = Router([Path("/", echo_params)])
    assert (await call_http(router, "/missing")).status == 404
    outcome = await call_websocket(router, "/missing")
    assert outcome.types == ["websocket.close"]


async def test_http_does_not_match_websocket_routes_and_back() -> None:
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()

    router = Router([WebSocketPath("/ws", ws), Path("/http", echo_params)])
    assert (await call_http(router, "/ws")).status == 404
    assert (await call_websocket(router, "/http")).types == ["websocket.close"]


# -- trailing slashes --------------------------------------------------------


async def test_a_missing_or_extra_trailing_slash_redirects_http_with_307() -> None:
    router = Router([Path("/items", echo_params), Path("/folder/", echo_params)])
    outcome = await call_http(router, "/items/", query_string=b"a=1")
    assert outcome.status == 307
    assert outcome.headers["location"] == "http://testserver/items?a=1"
    outcome = await call_http(router, "/folder")
    assert outcome.headers["location"] == "http://testserver/folder/"


async def test_trailing_slash_redirects_can_be_turned_off() -> None:
    router = Router([Path("/items", echo_params)], redirect_slashes=False)
    assert (await call_http(router, "/items/")).status == 404


async def test_websockets_never_redirect_a_wrong_trailing_slash() -> None:
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()

    router = Router([WebSocketPath("/ws", ws)])
    assert (await call_websocket(router, "/ws/")).types == ["websocket.close"]


def test_an_include_prefix_redirects_to_its_root_route() -> None:
    router = Router([Include("/api", routes=[Path("/", echo_params, name="index")])])
    client = TestClient(router, follow_redirects=False)
    response = client.get("/api")
    assert response.status_code == 307
    assert response.headers["location"] == "http://testserver/api/"
    assert client.get("/api/").status_code == 200


# -- includes -------------------------------------------------------------------


async def test_nested_includes_merge_params_and_extend_root_path() -> None:
    seen: list[Any] = []

    async def member(request: Request, org: str, id: int) -> str:
        seen.append((org, id, request.scope["root_path"], request.scope["path"]))
        return "ok"

    router = Router(
        [
            Include(
                "/orgs/{org}",
                routes=[Include("/members", routes=[Path("/{id:int}", member)])],
            )
        ]
    )
    assert (await call_http(router, "/orgs/acme/members/5")).status == 200
    assert seen == [("acme", 5, "/orgs/acme/members", "/orgs/acme/members/5")]
    assert (await call_http(router, "/orgs/acme/members/x")).status == 404


async def test_an_included_asgi_app_sees_the_prefix_in_root_path() -> None:
    router = Router([Include("/mounted", app=raw_app)])
    outcome = await call_http(router, "/mounted/deep/path")
    assert outcome.body == b"root_path=/mounted path=/mounted/deep/path"


async def test_an_include_at_the_root_serves_its_routes() -> None:
    router = Router([Include("/", routes=[Path("/hello", echo_params)])])
    assert (await call_http(router, "/hello")).status == 200


def test_include_needs_exactly_one_of_routes_and_app() -> None:
    with pytest.raises(ImproperlyConfigured, match="not both or neither"):
        Include("/x")
    with pytest.raises(ImproperlyConfigured, match="not both or neither"):
        Include("/x", routes=[], app=raw_app)


def test_routes_must_be_route_objects() -> None:
    with pytest.raises(ImproperlyConfigured, match="Path, WebSocketPath or Include"):
        Router(["/not-a-route"])  # type: ignore[list-item]


def test_route_path_is_relative_to_root_path_when_path_includes_it() -> None:
    assert get_route_path({"path": "/app/x", "root_path": "/app"}) == "/x"
    assert get_route_path({"path": "/app", "root_path": "/app"}) == ""
    assert get_route_path({"path": "/x", "root_path": "/app"}) == "/x"
    assert get_route_path({"path": "/apple", "root_path": "/app"}) == "/apple"


def test_matches_reports_partial_for_a_method_mismatch() -> None:
    route = Path("/x", echo_params)
    match, _ = route.matches(http_scope("/x", "POST"), "/x")
    assert match is Match.PARTIAL
    assert route.matches(websocket_scope("/x"), "/x")[0] is Match.NONE


def test_an_unknown_scope_type_is_a_clear_error() -> None:
    import anyio

    async def main() -> None:
        async def receive() -> Any:
            return {}

        async def send(message: Any) -> None:
            pass

        await Router([])({"type": "webtransport", "path": "/"}, receive, send)

    with pytest.raises(RuntimeError, match="got 'webtransport'"):
        anyio.run(main)


# -- reverse routing -------------------------------------------------------------


def make_tree() -> Router:
    async def ws(websocket: WebSocket) -> None:
        pass

    return Router(
        [
            Path("/", echo_params, name="home"),
            Path("/items/{id:int}", echo_params, name="item"),
            Path("/search/{q}", echo_params, name="search"),
            Path("/files/{rest:path}", echo_params, name="file"),
            WebSocketPath("/ws/{room}", ws, name="chat"),
            Include(
                "/orgs/{org}",
                name="orgs",
                routes=[
                    Path("/", echo_params, name="index"),
                    Include(
                        "/teams", name="teams", routes=[Path("/{id:int}", echo_params, name="team")]
                    ),
                ],
            ),
            Include("/plain", routes=[Path("/inner", echo_params, name="inner")]),
            Include("/static", app=raw_app, name="static"),
        ]
    )


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("home", {}, "/"),
        ("item", {"id": 3}, "/items/3"),
        ("item", {"id": "3"}, "/items/3"),
        ("search", {"q": "a b"}, "/search/a%20b"),
        ("file", {"rest": "a b/c.txt"}, "/files/a%20b/c.txt"),
        ("chat", {"room": "lobby"}, "/ws/lobby"),
        ("orgs:index", {"org": "acme"}, "/orgs/acme/"),
        ("orgs:teams:team", {"org": "acme", "id": 9}, "/orgs/acme/teams/9"),
        ("orgs", {"org": "acme", "path": "/"}, "/orgs/acme/"),
        ("orgs", {"org": "acme", "path": "x/y"}, "/orgs/acme/x/y"),
        ("inner", {}, "/plain/inner"),
        ("static", {"path": "/css/site.css"}, "/static/css/site.css"),
    ],
)
def test_path_for_builds_paths_through_includes(
    name: str, params: dict[str, Any], expected: str
) -> None:
    assert make_tree().path_for(name, **params) == expected


def test_path_for_knows_the_protocol_of_the_route() -> None:
    tree = make_tree()
    assert tree.path_for("chat", room="x").make_absolute_url("https://h.org/") == "wss://h.org/ws/x"
    assert tree.path_for("item", id=1).make_absolute_url("http://h.org/") == "http://h.org/items/1"
    nested = tree.path_for("orgs:teams:team", org="a", id=1)
    assert nested.protocol == "http"


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("nope", {}, 'No route exists for name "nope"'),
        ("item", {}, "takes params: id"),
        ("item", {"id": 1, "extra": 2}, "takes params: id"),
        ("item", {"id": -1}, "must be a non-negative int"),
        ("item", {"id": "abc"}, "must be a non-negative int"),
        ("itme", {"id": 1}, "did you mean 'item'"),
        ("orgs:teams:team", {"id": 1}, "needs params: org"),
        ("orgs:teams:nope", {"org": "a"}, 'No route exists for name "orgs:teams:nope"'),
        ("orgs", {}, 'No route exists for name "orgs"'),
        ("search", {"q": ""}, "non-empty string"),
        ("search", {"q": "a/b"}, "without '/'"),
    ],
)
def test_path_for_errors_say_what_is_missing(
    name: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(NoMatchFound, match=message) as info:
        make_tree().path_for(name, **params)
    assert info.value.name == name


def test_float_and_uuid_params_reverse_to_matchable_paths() -> None:
    compiled = compile_path("/p/{x:float}/{u:uuid}")
    u = uuid.uuid4()
    path = compiled.format({"x": 1e-7, "u": u})
    assert path == f"/p/0.0000001/{u}"
    assert compiled.match(path) == ({"x": 1e-7, "u": u}, "")
    for bad in (-1.0, float("inf"), "1", True):
        with pytest.raises(ValueError, match="'x'"):
            compiled.format({"x": bad, "u": u})
    with pytest.raises(ValueError, match="must be a UUID"):
        compiled.format({"x": 1, "u": "nope"})
    assert compiled.format({"x": 2, "u": str(u)}) == f"/p/2/{u}"


async def test_connection_path_for_uses_the_router_and_makes_an_absolute_url() -> None:
    urls: list[str] = []

    async def chat(websocket: WebSocket, room: str) -> None:
        urls.append(websocket.path_for("chat", room=room))
        urls.append(websocket.path_for("orgs:index", org="o"))
        await websocket.accept()

    router = make_tree()
    router.routes.insert(0, WebSocketPath("/ws/{room}", chat, name="chat"))
    await call_websocket(router, "/ws/lobby")
    assert urls == ["ws://testserver/ws/lobby", "http://testserver/orgs/o/"]


async def test_the_websocket_handler_ends_with_close_1000_even_if_it_does_not_close() -> None:
    async def forgetful(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")

    outcome = await call_websocket(Router([WebSocketPath("/", forgetful)]), "/")
    assert outcome.types == ["websocket.accept", "websocket.send", "websocket.close"]
    assert outcome.close == (1000, "")


async def test_a_handler_that_returns_before_accept_refuses_the_handshake() -> None:
    async def shy(websocket: WebSocket) -> None:
        pass

    outcome = await call_websocket(Router([WebSocketPath("/", shy)]), "/")
    assert outcome.types == ["websocket.close"]


async def test_nothing_is_sent_after_the_client_left() -> None:
    async def reader(websocket: WebSocket) -> None:
        await websocket.accept()
        async for _ in websocket.iter_text():
            pass

    outcome = await call_websocket(Router([WebSocketPath("/", reader)]), "/", [CONNECT])
    assert outcome.types == ["websocket.accept"]
    assert outcome.error is None


async def test_a_disconnect_escaping_the_handler_is_not_an_error() -> None:
    async def strict(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()

    outcome = await call_websocket(Router([WebSocketPath("/", strict)]), "/")
    assert outcome.error is None
    assert outcome.types == ["websocket.accept"]


async def test_a_mounted_asgi_app_is_closed_when_it_returns() -> None:
    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})

    outcome = await call_websocket(Router([Include("/m", app=bare)]), "/m/x")
    assert outcome.types == ["websocket.accept", "websocket.close"]


def test_route_reprs_name_the_route() -> None:
    assert repr(Path("/a", echo_params, methods=["GET"])) == (
        "Path(path='/a', name='echo_params', methods=['GET', 'HEAD'])"
    )
    assert repr(WebSocketPath("/w", raw_app, name="w")) == "WebSocketPath(path='/w', name='w')"
    assert repr(Include("/i", app=raw_app)) == f"Include(path='/i', name='', app={raw_app!r})"


def test_a_websocket_client_through_the_test_client_sees_a_403_like_close() -> None:
    client = TestClient(Router([]))
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/nowhere"):
        pass
    assert info.value.code == 1000


async def test_positional_only_connection_and_star_args_are_supported() -> None:
    async def handler(request: Request, /, *args: Any, id: int) -> str:
        return f"{request.method} {id}"

    outcome = await call_http(Router([Path("/{id:int}", handler)]), "/5")
    assert outcome.body == b"GET 5"


def test_a_converter_that_refuses_a_value_means_no_match() -> None:
    class Even(Converter[int]):
        regex = "[0-9]+"

        def convert(self, value: str) -> int:
            if int(value) % 2:
                raise ValueError("odd")
            return int(value)

    register_converter("even_for_test", Even())
    compiled = compile_path("/n/{n:even_for_test}")
    assert compiled.match("/n/4") == ({"n": 4}, "")
    assert compiled.match("/n/3") is None


def test_a_custom_route_must_implement_the_whole_route_interface() -> None:
    from lilya.routing import BaseRoute

    class Incomplete(BaseRoute):
        def matches(self, scope: Any, route_path: str) -> Any:
            return None

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]


async def test_an_include_matches_no_lifespan_scope() -> None:
    include = Include("/api", routes=[Path("/x", Response)])
    assert include.matches({"type": "lifespan"}, "/api/x") == (Match.NONE, {})


async def test_an_include_prefix_param_that_cannot_be_formatted_is_no_match_with_a_hint() -> None:
    router = Router([Include("/orgs/{org:int}", routes=[Path("/x", Response, name="x")])])
    with pytest.raises(NoMatchFound) as info:
        router.path_for("x", org="acme")
    assert info.value.hint is not None


async def test_a_route_without_a_name_is_left_out_of_the_suggestions() -> None:
    class Raw:
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            """A raw ASGI app instance: named after its class unless you say otherwise."""

    router = Router(
        [
            WebSocketPath("/raw", Raw()),
            WebSocketPath("/unnamed", Raw(), name=""),
            Path("/chat", Response, name="chat"),
        ]
    )
    assert [route.name for route in router.routes] == ["Raw", "", "chat"]
    with pytest.raises(NoMatchFound, match="did you mean 'chat'") as info:
        router.path_for("chatt")
    assert "''" not in str(info.value)
