"""docs/websockets.md: its examples run, and its state table is the code's table."""

from __future__ import annotations

import re
from typing import Any

import pytest

from lilya.websockets import TRANSITIONS, WebSocket
from tests.support.asgi import CONNECT, Wire, disconnect, text, ws_scope
from tests.support.docs import DOCS, python_blocks

BLOCKS = python_blocks("websockets.md")


def run_block(index: int, **namespace: Any) -> dict[str, Any]:
    exec(compile(BLOCKS[index], f"docs/websockets.md[{index}]", "exec"), namespace)
    return namespace


def test_the_page_has_the_examples_these_tests_run() -> None:
    assert len(BLOCKS) == 8


def doc_websocket() -> WebSocket:
    scope = ws_scope(
        path="/chat",
        query_string=b"room=lobby&search=lilya&tag=a&tag=b",
        headers=[
            (b"host", b"testserver"),
            (b"sec-websocket-version", b"13"),
            (b"x-forwarded-for", b"1.1.1.1"),
            (b"x-forwarded-for", b"2.2.2.2"),
        ],
        path_params={"username": "ann"},
    )
    wire = Wire()
    return WebSocket(scope, wire.receive, wire.send)


@pytest.mark.anyio
async def test_the_first_example_says_hello_in_binary_json() -> None:
    app = run_block(0)["app"]
    wire = Wire(CONNECT)
    await app(ws_scope(), wire.receive, wire.send)
    assert wire.sent[1] == {"type": "websocket.send", "bytes": b'{"message":"Hello, world!"}'}
    assert wire.sent_types[-1] == "websocket.close"


def test_the_url_headers_query_and_path_examples_read_what_they_say() -> None:
    websocket = doc_websocket()
    namespace = run_block(1, websocket=websocket)
    assert namespace["url"] == "ws://testserver/chat?room=lobby&search=lilya&tag=a&tag=b"
    assert (namespace["url"].scheme, namespace["url"].path) == ("ws", "/chat")
    for index in (2, 3, 4):
        run_block(index, websocket=websocket)
    assert websocket.headers.getlist("x-forwarded-for") == ["1.1.1.1", "2.2.2.2"]


@pytest.mark.anyio
async def test_the_iteration_example_echoes_until_the_client_leaves() -> None:
    namespace = run_block(0)
    app = run_block(5, **namespace)["app"]
    wire = Wire(CONNECT, text('{"a": 1}'), disconnect(1001))
    await app(ws_scope(), wire.receive, wire.send)
    assert wire.sent_types == ["websocket.accept", "websocket.send"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "extensions", "expected"),
    [
        (b"token=1", {"websocket.http.response": {}}, ["websocket.accept", "websocket.close"]),
        (
            b"",
            {"websocket.http.response": {}},
            ["websocket.http.response.start", "websocket.http.response.body"],
        ),
        (b"", {}, ["websocket.close"]),
    ],
)
async def test_the_denial_example_denies_with_401_or_falls_back_to_403(
    query: bytes, extensions: dict[str, Any], expected: list[str]
) -> None:
    app = run_block(6, **run_block(0))["app"]
    wire = Wire(CONNECT)
    await app(ws_scope(query_string=query, extensions=extensions), wire.receive, wire.send)
    assert wire.sent_types == expected


def test_the_testing_example_passes_against_the_iteration_example() -> None:
    namespace = run_block(5, **run_block(0))
    run_block(7, **namespace)["test_echo"]()


def test_the_documented_state_table_is_the_code_table() -> None:
    page = (DOCS / "websockets.md").read_text()
    table = page.split("<!-- transitions:start -->")[1].split("<!-- transitions:end -->")[0]
    rows = []
    for line in table.strip().splitlines()[2:]:
        side, state, message, target = (cell.strip() for cell in line.strip("|").split("|"))
        more_body: bool | None = None
        if "(`more_body` true)" in message:
            more_body = True
        elif "(last)" in message:
            more_body = False
        name = re.search(r"`([^`]+)`", message)
        assert name is not None
        rows.append((side, state, name.group(1), more_body, target))
    code = [(s, st.name, m, mb, nxt.name) for s, st, m, mb, nxt in TRANSITIONS]
    assert rows == code
