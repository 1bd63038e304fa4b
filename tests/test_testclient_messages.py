"""lilya/_testclient_messages.py: what the app sends is checked as a server would."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from lilya.testclient import TestClient
from lilya.types import Message, Receive, Scope, Send
from tests.support.testclient import answering_handshake_with, call, echo, entered

MALFORMED: list[tuple[Any, str]] = [
    (
        {"type": "websocket.send", "text": b"hi"},
        r'"websocket\.send" needs "text" to be a str, but the application sent a bytes '
        r"\(b'hi'\); send bytes under the \"bytes\" key\.",
    ),
    (
        {"type": "websocket.send", "bytes": "hi"},
        r'"bytes" to be bytes, but the application sent a str .*under the "text" key',
    ),
    ({"type": "websocket.send", "text": 5}, r'"text" to be a str, but .* int \(5\)\.$'),
    ({"type": "websocket.send", "bytes": 5}, r'"bytes" to be bytes, but .* int \(5\)\.$'),
    ({"type": "websocket.send"}, r'exactly one of "text" and "bytes".*set neither'),
    (
        {"type": "websocket.send", "text": "a", "bytes": b"b"},
        r'exactly one of "text" and "bytes".*set both',
    ),
    ("websocket.send", r"send\(\) with a str; an ASGI message is a dict"),
    ({"type": "websocket.close", "code": "1000"}, r'"code" to be an int.*str'),
    ({"type": "websocket.close", "reason": b"bye"}, r'"reason" to be a str or None.*bytes'),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("message", "error"), MALFORMED)
async def test_a_malformed_send_from_the_app_raises_type_error_at_its_send(
    any_client: Callable[..., Any], message: Any, error: str
) -> None:
    errors: list[TypeError] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await send(message)
        except TypeError as exc:
            errors.append(exc)
        await send({"type": "websocket.send", "text": "after"})

    async with entered(any_client(app).websocket_connect("/")) as session:
        # The bad message never reached the test.
        assert await call(session.receive_text) == "after"
    assert len(errors) == 1
    assert re.search(error, str(errors[0]))


def test_a_malformed_send_from_the_app_is_raised_in_the_test() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "bytes": "oops"})

    with (
        TestClient(app).websocket_connect("/") as session,
        pytest.raises(TypeError, match='"bytes" to be bytes'),
    ):
        session.receive_bytes()


def test_a_send_with_one_payload_and_the_other_key_none_is_accepted() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": None, "bytes": bytearray(b"x")})
        await send({"type": "websocket.send", "text": "y", "bytes": None})
        await send({"type": "websocket.close", "code": 1000, "reason": None})

    with TestClient(app).websocket_connect("/") as session:
        assert session.receive_bytes() == b"x"
        assert session.receive_text() == "y"


@pytest.mark.parametrize(
    ("accept", "error"),
    [
        ({"subprotocol": b"chat"}, r'"subprotocol" to be a str or None.*bytes'),
        ({"headers": [("x-a", "1")]}, r"one of them is \('x-a', '1'\); encode names"),
        ({"headers": [(b"x-a",)]}, r"one of them is \(b'x-a',\)"),
        ({"headers": [b"x-a: 1"]}, r"one of them is b'x-a: 1'"),
        ({"headers": b"x-a: 1"}, r'"headers" to be an iterable of \(name, value\) pairs.*bytes'),
        ({"headers": {b"x-a": b"1"}}, r'"headers" to be an iterable.*dict'),
        ({"headers": 5}, r'"headers" to be an iterable.*int \(5\)'),
    ],
)
def test_a_malformed_accept_raises_type_error_on_entering(
    accept: dict[str, Any], error: str
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept", **accept})

    with pytest.raises(TypeError, match=error), TestClient(app).websocket_connect("/"):
        pass  # pragma: no cover - never entered


def test_accept_headers_may_be_any_iterable_of_byte_pairs() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        pairs = ((b"x-" + name, value) for name, value in [(b"a", b"1")])
        await send({"type": "websocket.accept", "headers": pairs})
        await receive()

    with TestClient(app).websocket_connect("/") as session:
        assert session.extra_headers == [(b"x-a", b"1")]


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"type": "websocket.http.response.start", "status": "403"}], r'"status" to be an int'),
        (
            [
                {"type": "websocket.http.response.start", "status": 403},
                {"type": "websocket.http.response.body", "body": "no"},
            ],
            r'"body" to be bytes, but the application sent a str',
        ),
    ],
)
def test_a_malformed_denial_response_raises_type_error_on_entering(
    messages: list[Message], error: str
) -> None:
    app = answering_handshake_with(messages)

    with pytest.raises(TypeError, match=error), TestClient(app).websocket_connect("/"):
        pass  # pragma: no cover - never entered


def test_the_default_websocket_timeout_is_30_seconds() -> None:
    assert TestClient(echo).websocket_timeout == 30
