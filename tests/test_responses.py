"""Responses answer HTTP and refuse WebSocket handshakes, always in one body message."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from lilya.responses import HTMLResponse, JSONResponse, PlainText, RedirectResponse, Response
from lilya.types import Message
from tests.support.asgi import Wire, ws_scope

pytestmark = pytest.mark.anyio


async def run(response: Response, scope_type: str = "http") -> list[Message]:
    wire = Wire()
    scope = ws_scope() if scope_type == "websocket" else {"type": "http"}
    await response(scope, wire.receive, wire.send)
    return wire.sent


def headers_of(messages: list[Message]) -> dict[bytes, bytes]:
    return dict(messages[0]["headers"])


async def test_a_response_sends_start_and_one_body_with_content_length() -> None:
    sent = await run(Response(b"hello", status_code=201, headers={"x-a": "1"}))
    assert sent == [
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"x-a", b"1"), (b"content-length", b"5")],
        },
        {"type": "http.response.body", "body": b"hello"},
    ]


async def test_on_a_websocket_scope_a_response_is_a_denial_response() -> None:
    sent = await run(PlainText("nope", status_code=403), "websocket")
    assert [m["type"] for m in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 403
    assert headers_of(sent)[b"content-length"] == b"4"
    assert "more_body" not in sent[1]


@pytest.mark.parametrize(
    ("response", "content_type", "body"),
    [
        (PlainText("olá"), b"text/plain; charset=utf-8", "olá".encode()),
        (HTMLResponse("<b>hi</b>"), b"text/html; charset=utf-8", b"<b>hi</b>"),
        (JSONResponse({"a": "é", "n": None}), b"application/json", '{"a":"é","n":null}'.encode()),
        (Response(b"x", media_type="application/octet-stream"), b"application/octet-stream", b"x"),
        (Response("t", media_type="text/csv; charset=latin-1"), b"text/csv; charset=latin-1", b"t"),
    ],
)
async def test_media_types_and_bodies(response: Response, content_type: bytes, body: bytes) -> None:
    sent = await run(response)
    assert headers_of(sent)[b"content-type"] == content_type
    assert headers_of(sent)[b"content-length"] == str(len(body)).encode()
    assert sent[1]["body"] == body


async def test_an_explicit_content_type_or_length_is_kept() -> None:
    sent = await run(PlainText("x", headers={"Content-Type": "text/x", "content-length": "1"}))
    assert headers_of(sent)[b"content-type"] == b"text/x"
    assert [k for k, _ in sent[0]["headers"]].count(b"content-length") == 1


@pytest.mark.parametrize("status", [204, 304, 101])
async def test_bodiless_statuses_get_no_content_length(status: int) -> None:
    sent = await run(Response(status_code=status))
    assert b"content-length" not in headers_of(sent)


def test_content_of_another_type_says_to_use_json_response() -> None:
    with pytest.raises(TypeError, match="use JSONResponse"):
        Response({"a": 1})


def test_a_json_response_refuses_unserializable_content() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        JSONResponse({"a": object()})


async def test_redirect_sets_location_and_307_by_default() -> None:
    sent = await run(RedirectResponse("/chat room?x=1"))
    assert sent[0]["status"] == 307
    assert headers_of(sent)[b"location"] == b"/chat%20room?x=1"
    assert (await run(RedirectResponse("/", status_code=302)))[0]["status"] == 302


def test_set_and_delete_cookie() -> None:
    response = Response()
    response.set_cookie("session", "a b", max_age=60, httponly=True, secure=True, domain="h.io")
    response.set_cookie("plain", "v", path=None, samesite=None)
    when = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    response.set_cookie("dated", "d", expires=when, samesite="strict")
    response.set_cookie("relative", "r", expires=10)
    response.delete_cookie("old")
    cookies = response.headers.getlist("set-cookie")
    assert (
        cookies[0]
        == 'session="a b"; Domain=h.io; HttpOnly; Max-Age=60; Path=/; SameSite=lax; Secure'
    )
    assert cookies[1] == "plain=v"
    assert cookies[2] == "dated=d; expires=Wed, 02 Jan 2030 03:04:05 GMT; Path=/; SameSite=strict"
    assert cookies[3].startswith("relative=r; expires=")
    assert cookies[4].startswith('old=""; expires=')
    assert cookies[4].endswith("; Max-Age=0; Path=/; SameSite=lax")
    with pytest.raises(ValueError, match="samesite"):
        response.set_cookie("bad", samesite="sometimes")  # type: ignore[arg-type]


def test_repr_names_the_class_and_status() -> None:
    assert repr(PlainText("x", status_code=418)) == "PlainText(status_code=418)"


def test_body_accepts_bytes_like_content() -> None:
    content: Any = bytearray(b"ab")
    assert Response(content).body == b"ab"
    assert Response(memoryview(b"cd")).body == b"cd"
