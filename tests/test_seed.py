"""The seed page, sentence by sentence: each test quotes what it proves.

The seed (``shared/seed/README.md``) is the page this project was created from;
every sentence of it is a requirement. These tests go through it in order,
through the test client on both event loops. The same sentences are proved
against real servers in ``test_websockets_server.py`` and ``tests/interop``.
"""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDictProxy, MultiDictProxy

from examples.seed import echo as seed_echo
from examples.seed import hello as seed_hello
from lilya._connection import Connection
from lilya.apps import Lilya
from lilya.requests import Request
from lilya.responses import PlainText
from lilya.routing import WebSocketPath
from lilya.testclient import TestClient, WebSocketDenialResponse
from lilya.types import Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect, WebSocketState


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client_for(app: Any, backend: str) -> TestClient:
    assert backend in ("asyncio", "trio")
    return TestClient(app, backend=backend)  # type: ignore[arg-type]  # one of the two, checked


Seen = dict[str, Any]


def recording(handler: Any) -> tuple[Any, Seen]:
    """An app that runs *handler(websocket, seen)* and keeps what it stored in *seen*."""
    seen: Seen = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        await handler(websocket, seen)

    return app, seen


# "Lilya provides a WebSocket class that plays a role comparable to an HTTP
# request, but makes it easy to exchange data over a WebSocket, allowing send
# and receive operations."
def test_websocket_is_the_http_requests_counterpart_with_send_and_receive() -> None:
    assert issubclass(WebSocket, Connection)
    assert issubclass(Request, Connection)
    for operation in ("send", "receive", "send_text", "receive_text", "accept", "close"):
        assert callable(getattr(WebSocket, operation))


# The first example, unchanged (written once, in examples/seed.py).
def test_the_first_example_sends_binary_json_and_closes(backend: str) -> None:
    with client_for(seed_hello, backend).websocket_connect("/") as session:
        assert session.receive_bytes() == b'{"message":"Hello, world!"}'
        with pytest.raises(WebSocketDisconnect) as info:
            session.receive_text()
    assert info.value.code == 1000


# "WebSockets present a mapping interface, so they can be used the same way as a
# scope. For example: websocket['path'] returns the ASGI path."
def test_websocket_path_item_returns_the_asgi_path(backend: str) -> None:
    async def handler(websocket: WebSocket, seen: Seen) -> None:
        seen["path"] = websocket["path"]
        seen["as_dict"] = dict(websocket) == websocket.scope
        await websocket.close()

    app, seen = recording(handler)
    with pytest.raises(WebSocketDisconnect), client_for(app, backend).websocket_connect("/chat"):
        pass
    assert seen == {"path": "/chat", "as_dict": True}


# "The WebSocket URL is accessed through websocket.url. This property, a
# subclass of str, not only represents the URL itself but also exposes every
# individual component that can be extracted from the URL."
def test_websocket_url_is_a_str_exposing_scheme_path_and_port(backend: str) -> None:
    async def handler(websocket: WebSocket, seen: Seen) -> None:
        url = websocket.url
        seen.update(
            is_str=isinstance(url, str),
            url=str(url),
            parts=(url.scheme, url.path, url.port, url.hostname, url.query),
        )
        await websocket.close()

    app, seen = recording(handler)
    client = client_for(app, backend)
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("ws://example.com:8080/a?b=1"),
    ):
        pass
    assert seen == {
        "is_str": True,
        "url": "ws://example.com:8080/a?b=1",
        "parts": ("ws", "/a", 8080, "example.com", "b=1"),
    }


# "Lilya uses multidict for its headers and adds some extras on top."
# websocket.headers['sec-websocket-version']
def test_headers_are_a_multidict_with_extras(backend: str) -> None:
    async def handler(websocket: WebSocket, seen: Seen) -> None:
        headers = websocket.headers
        seen.update(
            multidict=isinstance(headers, CIMultiDictProxy),
            version=headers["sec-websocket-version"],
            any_case=headers["Sec-WebSocket-Version"],
            extras=headers.getlist("x-tag"),
        )
        await websocket.close()

    app, seen = recording(handler)
    client = client_for(app, backend)
    tags = [("x-tag", "a"), ("x-tag", "b")]
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/", headers=tags):
        pass
    assert seen == {"multidict": True, "version": "13", "any_case": "13", "extras": ["a", "b"]}


# "Lilya uses multidict for its query parameters and adds some extras on top."
# websocket.query_params['search']
def test_query_params_are_a_multidict_with_extras(backend: str) -> None:
    async def handler(websocket: WebSocket, seen: Seen) -> None:
        params = websocket.query_params
        seen.update(
            multidict=isinstance(params, MultiDictProxy),
            search=params["search"],
            all=params.getlist("search"),
        )
        await websocket.close()

    app, seen = recording(handler)
    client = client_for(app, backend)
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/?search=a&search=b"):
        pass
    assert seen == {"multidict": True, "search": "a", "all": ["a", "b"]}


# "Taken directly from the scope as a Python dictionary."
# websocket.path_params['username']
def test_path_params_are_the_scopes_dictionary(backend: str) -> None:
    seen: Seen = {}

    async def profile(websocket: WebSocket) -> None:
        seen["username"] = websocket.path_params["username"]
        seen["same"] = websocket.path_params is websocket.scope["path_params"]
        seen["type"] = type(websocket.path_params)
        await websocket.close()

    app = Lilya(routes=[WebSocketPath("/users/{username}", profile)])
    with (
        pytest.raises(WebSocketDisconnect),
        client_for(app, backend).websocket_connect("/users/ann"),
    ):
        pass
    assert seen == {"username": "ann", "same": True, "type": dict}


# "Accepting the connection: await websocket.accept(subprotocol=None, headers=None)"
def test_accept_with_subprotocol_and_headers(backend: str) -> None:
    async def handler(websocket: WebSocket, seen: Seen) -> None:
        await websocket.accept(subprotocol="v2", headers=[(b"x-extra", b"yes")])
        await websocket.close()

    app, _ = recording(handler)
    with client_for(app, backend).websocket_connect("/", subprotocols=["v2", "v1"]) as session:
        assert session.accepted_subprotocol == "v2"
        assert session.extra_headers == [(b"x-extra", b"yes")]


# "Sending data ... JSON messages are sent by default as text data frames. To
# send JSON over binary data frames use websocket.send_json(data, mode="binary")."
def test_sending_text_bytes_and_json_in_text_or_binary_frames(backend: str) -> None:
    async def handler(websocket: WebSocket, seen: Seen) -> None:
        await websocket.accept()
        await websocket.send_text("text")
        await websocket.send_bytes(b"bytes")
        await websocket.send_json({"a": 1})
        await websocket.send_json({"a": 2}, mode="binary")
        await websocket.close()

    app, _ = recording(handler)
    with client_for(app, backend).websocket_connect("/") as session:
        assert session.receive() == {"type": "websocket.send", "text": "text"}
        assert session.receive() == {"type": "websocket.send", "bytes": b"bytes"}
        assert session.receive() == {"type": "websocket.send", "text": '{"a":1}'}
        assert session.receive() == {"type": "websocket.send", "bytes": b'{"a":2}'}


# "Receiving data ... The operation can raise lilya.websockets.WebSocketDisconnect().
# JSON messages are received over text data frames by default; to receive JSON
# over binary frames use websocket.receive_json(mode="binary")."
def test_receiving_text_bytes_json_and_the_disconnect(backend: str) -> None:
    async def handler(websocket: WebSocket, seen: Seen) -> None:
        await websocket.accept()
        seen["text"] = await websocket.receive_text()
        seen["bytes"] = await websocket.receive_bytes()
        seen["json"] = await websocket.receive_json()
        seen["json_binary"] = await websocket.receive_json(mode="binary")
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen["disconnect"] = exc.code

    app, seen = recording(handler)
    with client_for(app, backend).websocket_connect("/") as session:
        session.send_text("t")
        session.send_bytes(b"b")
        session.send_text('{"x": 1}')
        session.send_bytes(b'{"y": 2}')
        session.close(1001)
    assert seen == {
        "text": "t",
        "bytes": b"b",
        "json": {"x": 1},
        "json_binary": {"y": 2},
        "disconnect": 1001,
    }


# "Iterating data: websocket.iter_text(), websocket.iter_bytes(),
# websocket.iter_json() return async iterators ... When WebSocketDisconnect
# happens, the iterator ends."
@pytest.mark.parametrize(
    ("iterator", "frames", "expected"),
    [
        ("iter_text", ["a", "b"], ["a", "b"]),
        ("iter_bytes", [b"a", b"b"], [b"a", b"b"]),
        ("iter_json", ['{"n": 1}', "[2]"], [{"n": 1}, [2]]),
    ],
)
def test_iterators_yield_until_the_disconnect_and_then_end(
    backend: str, iterator: str, frames: list[Any], expected: list[Any]
) -> None:
    async def handler(websocket: WebSocket, seen: Seen) -> None:
        await websocket.accept()
        seen["items"] = [item async for item in getattr(websocket, iterator)()]
        seen["ended"] = True

    app, seen = recording(handler)
    with client_for(app, backend).websocket_connect("/") as session:
        for frame in frames:
            session.send(
                {
                    "type": "websocket.receive",
                    "bytes" if isinstance(frame, bytes) else "text": frame,
                }
            )
    assert seen == {"items": expected, "ended": True}


# The second example, unchanged (written once, in examples/seed.py).
def test_the_second_example_echoes_json_until_the_client_leaves(backend: str) -> None:
    with client_for(seed_echo, backend).websocket_connect("/") as session:
        session.send_json({"hello": "world"})
        assert session.receive_json(mode="binary") == {
            "message": "Message text was: {'hello': 'world'}"
        }
    # Leaving sent a disconnect; the example's close() after it did not raise
    # (the session re-raises app errors on exit).


# "Closing the connection: await websocket.close(code=1000, reason=None)"
@pytest.mark.parametrize(("args", "expected"), [((), (1000, "")), ((4001, "bye"), (4001, "bye"))])
def test_close_with_default_or_given_code_and_reason(
    backend: str, args: tuple[Any, ...], expected: tuple[int, str]
) -> None:
    async def handler(websocket: WebSocket, seen: Seen) -> None:
        await websocket.accept()
        await websocket.close(*args)

    app, _ = recording(handler)
    with (
        client_for(app, backend).websocket_connect("/") as session,
        pytest.raises(WebSocketDisconnect) as info,
    ):
        session.receive_text()
    assert (info.value.code, info.value.reason) == expected


# "use websocket.send() and websocket.receive() rather than the raw send and
# receive callables, so the WebSocket's internal state stays correct."
def test_raw_messages_through_the_websocket_keep_its_state(backend: str) -> None:
    async def handler(websocket: WebSocket, seen: Seen) -> None:
        seen["connect"] = (await websocket.receive())["type"]
        await websocket.send({"type": "websocket.accept"})
        seen["states"] = (websocket.client_state, websocket.application_state)
        seen["text"] = await websocket.receive_text()  # allowed: the state says accepted
        await websocket.send({"type": "websocket.close", "code": 1000})
        seen["closed"] = websocket.application_state

    app, seen = recording(handler)
    with client_for(app, backend).websocket_connect("/") as session:
        session.send_text("hi")
    assert seen == {
        "connect": "websocket.connect",
        "states": (WebSocketState.CONNECTED, WebSocketState.CONNECTED),
        "text": "hi",
        "closed": WebSocketState.DISCONNECTED,
    }


# "If websocket.close() is called before websocket.accept(), the server
# automatically sends an HTTP 403 error to the client." (Over real servers:
# test_websockets_server.py::test_close_before_accept_gives_the_client_http_403.)
def test_close_before_accept_refuses_the_handshake(backend: str) -> None:
    async def handler(websocket: WebSocket, seen: Seen) -> None:
        await websocket.close()
        seen["state"] = websocket.application_state

    app, seen = recording(handler)
    with (
        pytest.raises(WebSocketDisconnect) as info,
        client_for(app, backend).websocket_connect("/"),
    ):
        pass
    assert info.value.code == 1000
    assert not isinstance(info.value, WebSocketDenialResponse)
    assert seen == {"state": WebSocketState.DISCONNECTED}


# "For custom error responses, websocket.send_denial_response(response) sends
# the given response before closing the connection."
def test_send_denial_response_sends_status_headers_and_body(backend: str) -> None:
    async def handler(websocket: WebSocket, seen: Seen) -> None:
        response = PlainText("no entry", status_code=401, headers={"x-why": "token"})
        await websocket.send_denial_response(response)
        seen["state"] = websocket.application_state

    app, seen = recording(handler)
    with (
        pytest.raises(WebSocketDenialResponse) as info,
        client_for(app, backend).websocket_connect("/"),
    ):
        pass
    denial = info.value
    assert (denial.status_code, denial.headers["x-why"], denial.text) == (401, "token", "no entry")
    assert seen == {"state": WebSocketState.DISCONNECTED}


# "This depends on the ASGI server supporting the WebSocket Denial Response
# extension; without that support, trying it raises RuntimeError."
def test_send_denial_response_without_the_extension_raises_runtime_error(backend: str) -> None:
    def without_extension(app: Any) -> Any:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            await app({**scope, "extensions": {}}, receive, send)

        return wrapped

    async def handler(websocket: WebSocket, seen: Seen) -> None:
        try:
            await websocket.send_denial_response(PlainText("no", status_code=401))
        except RuntimeError as exc:
            seen["error"] = str(exc)
        await websocket.close()

    app, seen = recording(handler)
    client = client_for(without_extension(app), backend)
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/"):
        pass
    assert seen == {"error": "The server doesn't support the Websocket Denial Response extension."}
