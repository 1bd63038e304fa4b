"""Headers and URLs with the constructors and operators ported code uses."""

from __future__ import annotations

from typing import Any

import pytest

from lilya.apps import Lilya
from lilya.datastructures import URL, Header, MutableHeader
from lilya.middleware import DefineMiddleware
from lilya.requests import Request
from lilya.responses import PlainText, Response
from lilya.routing import Path, WebSocketPath
from lilya.testclient import AsyncTestClient
from lilya.types import ASGIApp, Message, Receive, Scope, Send
from lilya.websockets import WebSocket

pytestmark = pytest.mark.anyio


def test_header_is_built_from_raw_pairs_or_a_scope() -> None:
    raw = [(b"X-A", b"1"), (b"x-a", b"2")]
    assert Header(raw=raw).getlist("x-a") == ["1", "2"]
    assert Header(scope={"headers": raw})["X-A"] == "1"
    assert list(Header(scope={"type": "http"})) == []


@pytest.mark.parametrize("cls", [Header, MutableHeader])
def test_header_takes_only_one_source(cls: Any) -> None:
    with pytest.raises(
        TypeError, match="takes one of headers, raw= and scope=, got headers and raw"
    ):
        cls({"a": "1"}, raw=[(b"a", b"1")])


def test_or_gives_a_new_header_with_the_right_side_winning() -> None:
    left = Header({"a": "1", "b": "2"})
    merged = left | {"a": "3", "c": "4"}
    assert isinstance(merged, Header)
    assert dict(merged) == {"a": "3", "b": "2", "c": "4"}
    assert dict(left) == {"a": "1", "b": "2"}
    mutable = MutableHeader({"a": "1"})
    other = mutable | [("a", "2")]
    assert isinstance(other, MutableHeader)
    assert (dict(other), dict(mutable)) == ({"a": "2"}, {"a": "1"})


def test_or_equals_updates_a_mutable_header_in_place() -> None:
    headers = MutableHeader({"a": "1"})
    same = headers
    headers |= {"a": "2", "b": "3"}
    assert headers is same
    assert dict(headers) == {"a": "2", "b": "3"}


def test_a_mutable_header_over_a_message_writes_every_change_back() -> None:
    message: dict[str, Any] = {"type": "http.response.start", "headers": [(b"a", b"1")]}
    headers = MutableHeader(scope=message)
    headers.append("X-Served-By", "lilya")
    assert message["headers"] == [(b"a", b"1"), (b"x-served-by", b"lilya")]
    headers["a"] = "2"
    headers.setdefault("b", "3")
    headers.extend({"c": "4"})
    headers.update({"d": "5"})
    headers |= {"e": "6"}
    assert dict(Header(raw=message["headers"])) == {
        "a": "2",
        "x-served-by": "lilya",
        "b": "3",
        "c": "4",
        "d": "5",
        "e": "6",
    }
    del headers["b"]
    assert headers.pop("c") == "4"
    assert headers.popall("d") == ["5"]
    headers.popitem()
    assert [name for name, _ in message["headers"]] == [b"a", b"x-served-by"]
    headers.clear()
    assert message["headers"] == []


def test_a_mutable_header_over_a_message_without_headers_creates_them() -> None:
    message: dict[str, Any] = {"type": "websocket.accept"}
    MutableHeader(scope=message).add("x", "1")
    assert message["headers"] == [(b"x", b"1")]


def test_add_vary_header_keeps_the_names_already_there() -> None:
    headers = MutableHeader()
    headers.add_vary_header("Accept")
    headers.add_vary_header("Origin")
    assert headers["vary"] == "Accept, Origin"


class ServedBy:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_wrapper(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                MutableHeader(scope=message).append("x-served-by", "lilya")
            await send(message)

        await self.app(scope, receive, send_wrapper)


async def test_the_starlette_middleware_idiom_edits_responses_and_accepts() -> None:
    async def hello(request: Request) -> Response:
        return PlainText("hi")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()

    app = Lilya(
        routes=[Path("/", hello), WebSocketPath("/ws", ws)],
        middleware=[DefineMiddleware(ServedBy)],
    )
    client = AsyncTestClient(app)
    assert (await client.get("/")).headers["x-served-by"] == "lilya"
    async with client.websocket_connect("/ws") as session:
        assert session.extra_headers == [(b"x-served-by", b"lilya")]


@pytest.mark.parametrize(
    ("url", "relative"),
    [
        ("https://user:pw@h.org:8443/a/b?q=1#frag", "/a/b?q=1#frag"),
        ("ws://testserver/ws", "/ws"),
        ("http://h.org", ""),
    ],
)
def test_relative_url_drops_scheme_and_host(url: str, relative: str) -> None:
    result = URL(url).relative_url()
    assert isinstance(result, URL)
    assert result == relative


def test_a_url_from_a_scope_under_a_slashed_root_path_has_no_double_slash() -> None:
    scope = {
        "type": "websocket",
        "scheme": "ws",
        "server": ("h", 80),
        "root_path": "/api/",
        "path": "/api//rooms/x",  # uvicorn --root-path /api/
        "headers": [],
    }
    assert URL(scope=scope) == "ws://h/api/rooms/x"
