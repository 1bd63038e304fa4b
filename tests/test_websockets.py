"""The WebSocket class: every sentence of the seed, every cell of the state table."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from lilya import status
from lilya.exceptions import (
    InvalidJSONError,
    WebSocketFrameError,
    WebSocketPeerError,
    WebSocketRuntimeError,
)
from lilya.responses import PlainText
from lilya.types import Message, Receive, Scope, Send
from lilya.websockets import (
    TRANSITIONS,
    WebSocket,
    WebSocketClose,
    WebSocketDisconnect,
    WebSocketState,
)
from tests.support.asgi import CONNECT, Wire, binary, disconnect, text, websocket, ws_scope

pytestmark = pytest.mark.anyio

ALL_TYPES = sorted(
    {row[2] for row in TRANSITIONS} | {"websocket.bogus", "http.request", "lifespan.startup"}
)


def message_for(message_type: str, more_body: bool | None = None) -> Message:
    message: Message = {"type": message_type}
    if message_type == "websocket.receive":
        message["text"] = "x"
    if message_type == "websocket.send":
        message["text"] = "x"
    if message_type == "websocket.http.response.start":
        message.update(status=403, headers=[])
    if message_type == "websocket.http.response.body":
        message.update(body=b"", more_body=bool(more_body))
    return message


# -- the seed's examples, unchanged ------------------------------------------


async def test_seed_first_example_accepts_sends_binary_json_and_closes() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        await websocket.accept()
        await websocket.send_json({"message": "Hello, world!"}, mode="binary")
        await websocket.close()

    wire = Wire(CONNECT)
    await app(ws_scope(), wire.receive, wire.send)
    assert wire.sent == [
        {"type": "websocket.accept", "subprotocol": None, "headers": []},
        {"type": "websocket.send", "bytes": b'{"message":"Hello, world!"}'},
        {"type": "websocket.close", "code": 1000, "reason": ""},
    ]


async def test_seed_iter_json_example_echoes_then_closes_after_the_client_left() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope=scope, receive=receive, send=send)
        await websocket.accept()
        async for message in websocket.iter_json():
            data = {"message": f"Message text was: {message}"}
            await websocket.send_json(data, mode="binary")
        await websocket.close()

    wire = Wire(CONNECT, text('{"a": 1}'), text("[1]"), disconnect(1001))
    await app(ws_scope(), wire.receive, wire.send)
    assert wire.sent == [
        {"type": "websocket.accept", "subprotocol": None, "headers": []},
        {"type": "websocket.send", "bytes": b'{"message":"Message text was: {\'a\': 1}"}'},
        {"type": "websocket.send", "bytes": b'{"message":"Message text was: [1]"}'},
    ]  # the final close() sent nothing: the client had already gone


# -- the mapping interface -----------------------------------------------------


def test_websocket_reads_the_scope_like_a_mapping() -> None:
    scope = ws_scope(path="/chat/room")
    ws = WebSocket(scope, Wire().receive, Wire().send)
    assert ws["path"] == "/chat/room"
    assert len(ws) == len(scope)
    assert list(ws) == list(scope)
    assert dict(ws) == scope
    assert "subprotocols" in ws
    with pytest.raises(KeyError):
        ws["missing"]


def test_websockets_compare_and_hash_by_identity() -> None:
    scope = ws_scope()
    wire = Wire()
    first = WebSocket(scope, wire.receive, wire.send)
    second = WebSocket(scope, wire.receive, wire.send)
    assert first == first
    assert first != second
    assert len({first, second, first}) == 2


def test_websocket_accepts_positional_and_keyword_arguments() -> None:
    wire = Wire()
    scope = ws_scope()
    assert WebSocket(scope, wire.receive, wire.send).scope is scope
    assert WebSocket(scope=scope, receive=wire.receive, send=wire.send).scope is scope


@pytest.mark.parametrize("scope", [{"type": "http"}, {"type": "lifespan"}, {}, None])
def test_a_scope_that_is_not_a_websocket_scope_is_refused(scope: Any) -> None:
    wire = Wire()
    with pytest.raises(WebSocketRuntimeError, match='scope of type "websocket"'):
        WebSocket(scope, wire.receive, wire.send)


# -- connection data ------------------------------------------------------------


def test_url_is_a_str_with_scheme_path_and_port() -> None:
    ws, _ = websocket(
        scheme="ws", server=("testserver", 80), path="/123", query_string=b"a=abc", headers=[]
    )
    assert isinstance(ws.url, str)
    assert ws.url == "ws://testserver/123?a=abc"
    assert (ws.url.scheme, ws.url.path, ws.url.port) == ("ws", "/123", None)
    assert ws.url is ws.url  # computed once


def test_headers_are_a_case_insensitive_multidict() -> None:
    ws, _ = websocket(
        headers=[(b"sec-websocket-version", b"13"), (b"x-many", b"1"), (b"x-many", b"2")]
    )
    assert ws.headers["sec-websocket-version"] == "13"
    assert ws.headers["Sec-WebSocket-Version"] == "13"
    assert ws.headers.getlist("x-many") == ["1", "2"]
    assert ws.headers is ws.headers


def test_query_params_are_a_multidict() -> None:
    ws, _ = websocket(query_string=b"search=lilya&tag=a&tag=b&empty=")
    assert ws.query_params["search"] == "lilya"
    assert ws.query_params.getlist("tag") == ["a", "b"]
    assert ws.query_params["empty"] == ""


def test_path_params_come_from_the_scope_as_a_dict() -> None:
    ws, _ = websocket(path_params={"username": "ann"})
    assert ws.path_params == {"username": "ann"}
    assert websocket()[0].path_params == {}


def test_cookies_client_server_state_and_app_come_from_the_scope() -> None:
    app = object()
    ws, _ = websocket(
        headers=[(b"cookie", b'a=1; b="two"'), (b"cookie", b"c=3")],
        client=("10.0.0.1", "5000"),  # granian sends ports as str
        server=("example.com", 8000),
        state={"db": "conn"},
        app=app,
    )
    assert ws.cookies == {"a": "1", "b": "two", "c": "3"}
    client = ws.client
    assert client is not None
    assert client.port == 5000
    assert client == ("10.0.0.1", 5000)
    assert ws.server == ("example.com", 8000)
    assert ws.state.db == "conn"
    assert ws.app is app


def test_state_is_created_when_the_server_gives_none() -> None:
    scope = ws_scope()
    del scope["state"]
    ws = WebSocket(scope, Wire().receive, Wire().send)
    ws.state.user = "ann"
    assert scope["state"] == {"user": "ann"}


def test_client_and_server_are_none_when_the_server_does_not_say() -> None:
    ws, _ = websocket(client=None, server=None)
    assert ws.client is None
    assert ws.server is None


def test_path_for_without_a_router_says_what_to_do() -> None:
    ws, _ = websocket()
    with pytest.raises(RuntimeError, match="through a lilya app or Router"):
        ws.path_for("chat")


def test_path_for_asks_the_router_and_returns_an_absolute_url() -> None:
    from lilya.datastructures import URLPath

    class Router:
        def path_for(self, name: str, **params: Any) -> URLPath:
            return URLPath(f"/{name}/{params['room']}", protocol="websocket")

    ws, _ = websocket(router=Router(), root_path="/api", path="/api/ws")
    assert ws.path_for("chat", room="lobby") == "ws://testserver/api/chat/lobby"


# -- the state table: every cell, legal and illegal ---------------------------

LEGAL = {(side, state, mtype, more): nxt for side, state, mtype, more, nxt in TRANSITIONS}


def _prepare(side: str, state: WebSocketState) -> tuple[WebSocket, Wire]:
    ws, wire = websocket()
    if side == "receive":
        ws.client_state = state
    else:
        ws.application_state = state
        ws.client_state = WebSocketState.CONNECTED
    return ws, wire


@pytest.mark.parametrize(("side", "state", "message_type", "more_body", "next_state"), TRANSITIONS)
async def test_every_legal_transition_moves_to_its_next_state(
    side: str,
    state: WebSocketState,
    message_type: str,
    more_body: bool | None,
    next_state: WebSocketState,
) -> None:
    ws, wire = _prepare(side, state)
    message = message_for(message_type, more_body)
    if side == "receive":
        wire.incoming.append(message)
        assert await ws.receive() is message
        assert ws.client_state is next_state
    else:
        await ws.send(message)
        assert wire.sent == [message]
        assert ws.application_state is next_state


ILLEGAL = [
    (side, state, mtype)
    for side in ("receive", "send")
    for state in WebSocketState
    for mtype in ALL_TYPES
    if not any(k[:3] == (side, state, mtype) for k in LEGAL)
    and not (side == "receive" and state is WebSocketState.DISCONNECTED)
    and not (side == "send" and state is WebSocketState.DISCONNECTED)
]


def _expected_names(side: str, state: WebSocketState) -> str:
    names = list(dict.fromkeys(m for s, st, m, _, _ in TRANSITIONS if s == side and st is state))
    quoted = [f'"{n}"' for n in names]
    if not quoted:
        return f"no ASGI message in {state.name}"
    return (
        "ASGI message " + quoted[0]
        if len(quoted) == 1
        else "ASGI message " + ", ".join(quoted[:-1]) + " or " + quoted[-1]
    )


@pytest.mark.parametrize(("side", "state", "message_type"), ILLEGAL)
async def test_every_illegal_message_raises_naming_what_was_expected(
    side: str, state: WebSocketState, message_type: str
) -> None:
    ws, wire = _prepare(side, state)
    message = message_for(message_type)
    expected = f"Expected {_expected_names(side, state)}, but got {message_type!r}."
    with pytest.raises(WebSocketRuntimeError) as info:
        if side == "receive":
            wire.incoming.append(message)
            await ws.receive()
        else:
            await ws.send(message)
    assert str(info.value) == expected
    assert info.value.state == state.name
    assert wire.sent == []
    assert (ws.client_state if side == "receive" else ws.application_state) is state


async def test_the_spec_example_error_message_for_a_second_accept() -> None:
    ws, _ = websocket(CONNECT)
    await ws.accept()
    with pytest.raises(WebSocketRuntimeError) as info:
        await ws.accept()
    assert str(info.value) == (
        'Expected ASGI message "websocket.send" or "websocket.close", but got \'websocket.accept\'.'
    )
    assert info.value.message_type == "websocket.accept"


async def test_a_message_without_a_type_is_refused_clearly() -> None:
    ws, wire = websocket({"text": "no type"})
    with pytest.raises(WebSocketRuntimeError, match="but got None"):
        await ws.receive()
    with pytest.raises(WebSocketRuntimeError, match="but got None"):
        await ws.send({})
    assert wire.sent == []


async def test_receive_after_a_disconnect_raises_without_calling_the_server() -> None:
    ws, wire = websocket(CONNECT, disconnect(1001))
    await ws.accept()
    await ws.receive()
    with pytest.raises(WebSocketRuntimeError) as info:
        await ws.receive()
    assert str(info.value) == 'Cannot call "receive" once a disconnect message has been received.'
    assert wire.receive_calls == 2


@pytest.mark.parametrize("message_type", ["websocket.send", "websocket.close", "websocket.accept"])
async def test_send_after_close_raises(message_type: str) -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    await ws.close()
    with pytest.raises(WebSocketRuntimeError) as info:
        await ws.send(message_for(message_type))
    assert str(info.value) == 'Cannot call "send" once a close message has been sent.'
    assert wire.sent_types == ["websocket.accept", "websocket.close"]


# -- accept -------------------------------------------------------------------------


async def test_accept_waits_for_the_connect_message_first() -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    assert wire.receive_calls == 1
    assert ws.client_state is WebSocketState.CONNECTED
    assert ws.application_state is WebSocketState.CONNECTED


async def test_accept_does_not_wait_again_when_connect_was_already_received() -> None:
    ws, wire = websocket(CONNECT)
    assert await ws.receive() == CONNECT
    await ws.accept()
    assert wire.receive_calls == 1


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-a", b"1"), (b"set-cookie", b"s=1")],
        [("x-a", "1"), ("Set-Cookie", "s=1")],
        {"x-a": "1", "set-cookie": "s=1"},
    ],
)
async def test_accept_sends_subprotocol_and_headers_as_bytes(headers: Any) -> None:
    ws, wire = websocket(CONNECT, subprotocols=["v2", "v1"])
    await ws.accept(subprotocol="v2", headers=headers)
    assert wire.sent == [
        {
            "type": "websocket.accept",
            "subprotocol": "v2",
            "headers": [(b"x-a", b"1"), (b"set-cookie", b"s=1")],
        }
    ]


@pytest.mark.parametrize("headers", [[("x-a",)], [(1, 2)], ["ab"]])
async def test_accept_with_malformed_headers_raises_a_type_error(headers: Any) -> None:
    ws, wire = websocket(CONNECT)
    with pytest.raises(TypeError, match=r"(?i)header"):
        await ws.accept(headers=headers)
    assert wire.sent == []


# -- sending -------------------------------------------------------------------------


async def test_send_text_and_bytes_make_text_and_binary_frames() -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    await ws.send_text("héllo")
    await ws.send_bytes(b"\x00\x01")
    await ws.send_text("")
    assert wire.sent[1:] == [
        {"type": "websocket.send", "text": "héllo"},
        {"type": "websocket.send", "bytes": b"\x00\x01"},
        {"type": "websocket.send", "text": ""},
    ]


async def test_send_json_is_compact_utf8_text_by_default_and_binary_on_request() -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    await ws.send_json({"msg": "olá", "n": [1, 2.5, None]})
    await ws.send_json({"msg": "olá"}, mode="binary")
    assert wire.sent[1] == {"type": "websocket.send", "text": '{"msg":"olá","n":[1,2.5,null]}'}
    assert wire.sent[2] == {"type": "websocket.send", "bytes": '{"msg":"olá"}'.encode()}


async def test_send_json_rejects_what_json_cannot_encode() -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    with pytest.raises(TypeError, match="not JSON serializable"):
        await ws.send_json({"when": object()})
    assert wire.sent_types == ["websocket.accept"]


@pytest.mark.parametrize("operation", ["send_json", "receive_json", "iter_json"])
async def test_a_bad_mode_is_refused_on_send_and_receive(operation: str) -> None:
    ws, wire = websocket(CONNECT, text("{}"))
    await ws.accept()
    with pytest.raises(WebSocketRuntimeError) as info:
        if operation == "send_json":
            await ws.send_json({}, mode="json")  # type: ignore[arg-type]
        elif operation == "receive_json":
            await ws.receive_json(mode="json")  # type: ignore[arg-type]
        else:
            async for _ in ws.iter_json(mode="json"):  # type: ignore[arg-type]
                pass
    assert str(info.value) == 'The "mode" argument should be "text" or "binary".'
    assert wire.sent_types == ["websocket.accept"]
    assert wire.incoming == [text("{}")]  # nothing was consumed


async def test_send_before_accept_is_refused_without_reaching_the_server() -> None:
    ws, wire = websocket(CONNECT)
    with pytest.raises(WebSocketRuntimeError) as info:
        await ws.send_text("too early")
    assert "but got 'websocket.send'" in str(info.value)
    assert '"websocket.accept"' in str(info.value)
    assert wire.sent == []


async def test_a_send_after_the_client_left_raises_the_code_seen_without_calling_the_server() -> (
    None
):
    ws, wire = websocket(CONNECT, disconnect(4000, "client-bye"))
    await ws.accept()
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.receive_text()
    assert (info.value.code, info.value.reason) == (4000, "client-bye")
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.send_text("anyone?")
    assert (info.value.code, info.value.reason) == (4000, "client-bye")
    assert wire.sent_types == ["websocket.accept"]


async def test_an_oserror_from_the_server_becomes_disconnect_1006() -> None:
    class ClientDisconnected(OSError):
        """What uvicorn raises when the peer is gone."""

    ws, wire = websocket(CONNECT)
    await ws.accept()
    wire.send_error = ClientDisconnected()
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.send_text("lost")
    assert info.value.code == 1006
    assert ws.client_state is WebSocketState.DISCONNECTED
    with pytest.raises(WebSocketDisconnect):
        await ws.send_text("still lost")
    await ws.close()  # no error, nothing sent: the client is gone
    assert ws.application_state is WebSocketState.DISCONNECTED
    with pytest.raises(WebSocketRuntimeError, match="once a close message has been sent"):
        await ws.close()


async def test_an_oserror_while_closing_just_ends_the_connection() -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    wire.send_error = ConnectionResetError()
    await ws.close()
    assert ws.application_state is WebSocketState.DISCONNECTED
    assert ws.client_state is WebSocketState.DISCONNECTED


# -- receiving -------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["receive_text", "receive_bytes", "receive_json"])
async def test_receiving_before_accept_says_to_call_accept(operation: str) -> None:
    ws, wire = websocket(CONNECT, text("x"))
    with pytest.raises(WebSocketRuntimeError) as info:
        await getattr(ws, operation)()
    assert str(info.value) == 'WebSocket is not connected. Need to call "accept" first.'
    assert wire.receive_calls == 0


@pytest.mark.parametrize("operation", ["receive_text", "receive_bytes", "receive_json"])
async def test_receiving_after_the_app_closed_is_refused(operation: str) -> None:
    ws, wire = websocket(CONNECT, text("x"))
    await ws.accept()
    await ws.close()
    with pytest.raises(WebSocketRuntimeError, match="has closed the connection"):
        await getattr(ws, operation)()
    assert wire.receive_calls == 1


async def test_receive_text_bytes_and_json_return_payloads_including_empty_ones() -> None:
    ws, _ = websocket(
        CONNECT,
        text("hi"),
        text(""),
        binary(b"\x00"),
        binary(b""),
        text('{"a": [1]}'),
        binary('{"é": true}'.encode()),
    )
    await ws.accept()
    assert await ws.receive_text() == "hi"
    assert await ws.receive_text() == ""
    assert await ws.receive_bytes() == b"\x00"
    assert await ws.receive_bytes() == b""
    assert await ws.receive_json() == {"a": [1]}
    assert await ws.receive_json(mode="binary") == {"é": True}


async def test_frames_with_both_keys_are_read_by_the_one_that_is_not_none() -> None:
    # hypercorn sends both "text" and "bytes", the unused one None.
    ws, _ = websocket(
        CONNECT,
        {"type": "websocket.receive", "text": "t", "bytes": None},
        {"type": "websocket.receive", "text": None, "bytes": b"b"},
    )
    await ws.accept()
    assert await ws.receive_text() == "t"
    assert await ws.receive_bytes() == b"b"


@pytest.mark.parametrize(
    ("operation", "frame", "expected", "received"),
    [
        ("receive_text", binary(b"x"), "text", "bytes"),
        ("receive_bytes", text("x"), "bytes", "text"),
        ("receive_json", binary(b"{}"), "text", "bytes"),
        ("receive_json_binary", text("{}"), "bytes", "text"),
    ],
)
async def test_a_frame_of_the_other_kind_raises_a_frame_error_not_a_key_error(
    operation: str, frame: Message, expected: str, received: str
) -> None:
    ws, _ = websocket(CONNECT, frame)
    await ws.accept()
    with pytest.raises(WebSocketFrameError) as info:
        if operation == "receive_json_binary":
            await ws.receive_json(mode="binary")
        else:
            await getattr(ws, operation)()
    # The peer's fault, not an API misuse: a WebSocketPeerError, never a
    # WebSocketRuntimeError, answered with 1003.
    assert isinstance(info.value, WebSocketPeerError)
    assert not isinstance(info.value, WebSocketRuntimeError)
    assert info.value.close_code == status.WS_1003_UNSUPPORTED_DATA
    assert (info.value.expected, info.value.received) == (expected, received)
    assert f"client sent a {received} frame" in str(info.value)


@pytest.mark.parametrize(
    ("frame", "mode", "detail"),
    [
        (text("{not json"), "text", "text frame"),
        (text(""), "text", "Expecting value"),
        (binary(b"[1,"), "binary", "binary frame"),
        (binary(b'{"a": "\xff"}'), "binary", "not valid UTF-8"),
        (text("[" * 100_000 + "]" * 100_000), "text", "nested too deeply"),
    ],
)
async def test_invalid_json_raises_a_value_error_that_says_so(
    frame: Message, mode: Any, detail: str
) -> None:
    ws, _ = websocket(CONNECT, frame)
    await ws.accept()
    with pytest.raises(InvalidJSONError) as info:
        await ws.receive_json(mode=mode)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, json.JSONDecodeError)
    assert info.value.mode == mode
    assert "invalid JSON" in str(info.value)
    assert detail in str(info.value)


async def test_json_the_stdlib_accepts_is_accepted_even_where_orjson_is_stricter() -> None:
    ws, _ = websocket(CONNECT, text("[NaN, 1e400, 123456789012345678901234567890]"))
    await ws.accept()
    value = await ws.receive_json()
    assert value[0] != value[0]  # NaN
    assert value[1] == float("inf")
    assert value[2] == 123456789012345678901234567890


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [(1000, "", (1000, "")), (4000, "bye", (4000, "bye")), (None, None, (1005, ""))],
)
async def test_a_disconnect_raises_websocket_disconnect_with_code_and_reason(
    code: int | None, reason: str | None, expected: tuple[int, str]
) -> None:
    ws, _ = websocket(CONNECT, disconnect(code, reason))
    await ws.accept()
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.receive_bytes()
    assert (info.value.code, info.value.reason) == expected


async def test_a_disconnect_without_a_code_key_means_1005() -> None:
    ws, _ = websocket(CONNECT, {"type": "websocket.disconnect"})
    await ws.accept()
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.receive_json()
    assert info.value.code == 1005


async def test_iterators_yield_until_the_disconnect_then_end_cleanly() -> None:
    ws, _ = websocket(CONNECT, text("a"), text("b"), disconnect())
    await ws.accept()
    assert [m async for m in ws.iter_text()] == ["a", "b"]

    ws, _ = websocket(CONNECT, binary(b"a"), disconnect(1001))
    await ws.accept()
    assert [m async for m in ws.iter_bytes()] == [b"a"]

    ws, _ = websocket(CONNECT, binary(b"[1]"), binary(b"{}"), disconnect())
    await ws.accept()
    assert [m async for m in ws.iter_json(mode="binary")] == [[1], {}]


# -- close ---------------------------------------------------------------------------


async def test_close_sends_code_and_an_empty_reason_when_none() -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    await ws.close()
    assert wire.sent[-1] == {"type": "websocket.close", "code": 1000, "reason": ""}
    assert ws.application_state is WebSocketState.DISCONNECTED


async def test_close_with_code_and_reason() -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    await ws.close(code=4001, reason="bye")
    assert wire.sent[-1] == {"type": "websocket.close", "code": 4001, "reason": "bye"}


async def test_close_before_accept_sends_close_so_the_server_answers_403() -> None:
    ws, wire = websocket(CONNECT)
    await ws.close()
    assert wire.sent == [{"type": "websocket.close", "code": 1000, "reason": ""}]
    assert ws.application_state is WebSocketState.DISCONNECTED


async def test_close_after_the_client_left_sends_nothing_and_closing_twice_raises() -> None:
    ws, wire = websocket(CONNECT, disconnect(1001))
    await ws.accept()
    assert [m async for m in ws.iter_text()] == []
    await ws.close()
    assert wire.sent_types == ["websocket.accept"]
    assert ws.application_state is WebSocketState.DISCONNECTED
    with pytest.raises(WebSocketRuntimeError, match="once a close message has been sent"):
        await ws.close()


async def test_websocket_close_app_closes_with_its_code_and_reason() -> None:
    wire = Wire(CONNECT)
    await WebSocketClose(code=1008, reason="policy")(ws_scope(), wire.receive, wire.send)
    await WebSocketClose()(ws_scope(), wire.receive, wire.send)
    assert wire.sent == [
        {"type": "websocket.close", "code": 1008, "reason": "policy"},
        {"type": "websocket.close", "code": 1000, "reason": ""},
    ]


def test_websocket_disconnect_keeps_code_and_reason() -> None:
    assert (WebSocketDisconnect().code, WebSocketDisconnect().reason) == (1000, "")
    exc = WebSocketDisconnect(4000, "bye")
    assert (exc.code, exc.reason) == (4000, "bye")
    assert "4000" in str(exc) and "bye" in str(exc)
    assert repr(exc) == "WebSocketDisconnect(code=4000, reason='bye')"
    assert str(WebSocketDisconnect(1006)) == "WebSocket disconnected with code 1006"


# -- denial response ---------------------------------------------------------------


async def test_a_denial_response_goes_through_the_state_machine() -> None:
    ws, wire = websocket(CONNECT)
    await ws.send_denial_response(PlainText("go away", status_code=401, headers={"x-a": "b"}))
    assert wire.sent == [
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [
                (b"x-a", b"b"),
                (b"content-length", b"7"),
                (b"content-type", b"text/plain; charset=utf-8"),
            ],
        },
        {"type": "websocket.http.response.body", "body": b"go away"},
    ]
    assert ws.application_state is WebSocketState.DISCONNECTED


@pytest.mark.parametrize("extensions", [None, {}, {"http.response.pathsend": {}}])
async def test_a_denial_response_without_the_extension_raises_runtime_error(
    extensions: Any,
) -> None:
    ws, wire = websocket(CONNECT, extensions=extensions)
    with pytest.raises(RuntimeError) as info:
        await ws.send_denial_response(PlainText("no"))
    assert str(info.value) == "The server doesn't support the Websocket Denial Response extension."
    assert wire.sent == []


async def test_a_denial_response_after_accept_is_refused() -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    with pytest.raises(WebSocketRuntimeError, match="before the connection is accepted"):
        await ws.send_denial_response(PlainText("no"))
    assert wire.sent_types == ["websocket.accept"]


async def test_raw_denial_messages_with_more_body_pass_through_as_they_are() -> None:
    ws, wire = websocket(CONNECT)
    await ws.send({"type": "websocket.http.response.start", "status": 400, "headers": []})
    await ws.send({"type": "websocket.http.response.body", "body": b"a", "more_body": True})
    assert ws.application_state is WebSocketState.RESPONSE
    await ws.send({"type": "websocket.http.response.body", "body": b"b"})
    # (Read again: mypy narrowed the property on the line before the send.)
    assert ws.application_state.name == "DISCONNECTED"
    assert [m.get("body") for m in wire.sent[1:]] == [b"a", b"b"]


# -- the paths the fast paths fall back to --------------------------------------------


class Gone(OSError):
    """A server's ClientDisconnected."""


@pytest.mark.parametrize(
    "operation",
    [
        ("send_text", "x"),
        ("send_bytes", b"x"),
        ("send_json", {"a": 1}),
        ("send", {"type": "websocket.send", "text": "raw"}),
    ],
)
async def test_every_send_turns_an_oserror_into_disconnect_1006(operation: tuple[str, Any]) -> None:
    name, payload = operation
    ws, wire = websocket(CONNECT)
    await ws.accept()
    wire.send_error = Gone()
    with pytest.raises(WebSocketDisconnect) as info:
        await getattr(ws, name)(payload)
    assert info.value.code == 1006
    assert ws.client_state is WebSocketState.DISCONNECTED
    assert ws.application_state is WebSocketState.CONNECTED


async def test_raw_close_through_send_after_an_oserror_just_ends_the_connection() -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    wire.send_error = Gone()
    await ws.send({"type": "websocket.close", "code": 1000})
    assert ws.application_state is WebSocketState.DISCONNECTED


async def test_data_is_read_after_a_connect_the_app_never_received() -> None:
    # The app accepted through raw send() without reading websocket.connect.
    ws, _ = websocket(CONNECT, text("a"), text("b"), binary(b"c"), text("[1]"), disconnect())
    await ws.send({"type": "websocket.accept"})
    assert await ws.receive_text() == "a"

    ws, _ = websocket(CONNECT, text("a"), disconnect())
    await ws.send({"type": "websocket.accept"})
    assert [m async for m in ws.iter_text()] == ["a"]

    ws, _ = websocket(CONNECT, binary(b"c"))
    await ws.send({"type": "websocket.accept"})
    assert await ws.receive_bytes() == b"c"

    ws, _ = websocket(CONNECT, text("[1]"))
    await ws.send({"type": "websocket.accept"})
    assert await ws.receive_json() == [1]


async def test_iterating_before_accept_or_after_a_disconnect_is_refused() -> None:
    ws, _ = websocket(CONNECT, text("x"))
    with pytest.raises(WebSocketRuntimeError, match="Need to call"):
        async for _ in ws.iter_text():
            pass
    ws, _ = websocket(CONNECT, disconnect())
    await ws.accept()
    with pytest.raises(WebSocketDisconnect):
        await ws.receive_text()
    with pytest.raises(WebSocketRuntimeError, match="once a disconnect message"):
        await ws.receive_bytes()
    with pytest.raises(WebSocketRuntimeError, match="once a disconnect message"):
        async for _ in ws.iter_bytes():
            pass


@pytest.mark.parametrize(
    ("frames", "iterate", "code", "reason"),
    [
        ([text("a"), binary(b"x")], "iter_text", 1003, "expected a text frame"),
        ([binary(b"a"), text("x")], "iter_bytes", 1003, "expected a bytes frame"),
        ([text("[1]"), binary(b"{}")], "iter_json", 1003, "expected a text frame"),
        ([text("[1]"), text("{nope")], "iter_json", 1007, "invalid JSON"),
        ([text("[1]"), text("1" * 5000)], "iter_json", 1007, "invalid JSON"),
        ([binary(b"[1]"), binary(b'["\xff"]')], "iter_json_binary", 1007, "invalid JSON"),
    ],
)
async def test_iterators_close_with_the_code_naming_bad_data_and_end(
    frames: list[Message], iterate: str, code: int, reason: str
) -> None:
    ws, wire = websocket(CONNECT, *frames, text("never read"))
    await ws.accept()
    if iterate == "iter_json_binary":
        seen = [m async for m in ws.iter_json(mode="binary")]
    else:
        seen = [m async for m in getattr(ws, iterate)()]
    assert len(seen) == 1  # the good frame, then the loop ends
    assert wire.sent[-1] == {"type": "websocket.close", "code": code, "reason": reason}
    assert ws.application_state is WebSocketState.DISCONNECTED
    await ws.close()  # the seed's close() after its loop: nothing left to do, no error
    assert wire.sent_types.count("websocket.close") == 1


@pytest.mark.parametrize(
    ("frame", "operation", "error", "code"),
    [
        (binary(b"x"), "receive_text", WebSocketFrameError, 1003),
        (text("x"), "receive_bytes", WebSocketFrameError, 1003),
        (binary(b"{}"), "receive_json", WebSocketFrameError, 1003),
        (text("{nope"), "receive_json", InvalidJSONError, 1007),
    ],
)
async def test_a_receive_of_bad_data_closes_with_its_code_then_raises_the_documented_error(
    frame: Message, operation: str, error: type[Exception], code: int
) -> None:
    ws, wire = websocket(CONNECT, frame)
    await ws.accept()
    with pytest.raises(error):
        await getattr(ws, operation)()
    assert wire.sent[-1]["code"] == code
    await ws.close()  # lilya closed it already: a no-op
    with pytest.raises(WebSocketRuntimeError, match="once a close message"):
        await ws.send_text("after the close")


async def test_send_json_after_the_client_left_raises_disconnect_without_sending() -> None:
    ws, wire = websocket(CONNECT, disconnect(1001))
    await ws.accept()
    assert [m async for m in ws.iter_json()] == []
    for operation in (ws.send_json({}), ws.send_bytes(b""), ws.send_json([], mode="binary")):
        with pytest.raises(WebSocketDisconnect) as info:
            await operation
        assert info.value.code == 1001
    assert wire.sent_types == ["websocket.accept"]


class RefusesStandardCodes(Wire):
    """A server like daphne, whose autobahn refuses close codes but 1000 and 3000-4999."""

    async def send(self, message: Message) -> None:
        code = message.get("code", 1000)
        if message["type"] == "websocket.close" and code != 1000 and not 3000 <= code <= 4999:
            raise Exception(f"invalid close code {code}")  # what autobahn raises
        await super().send(message)


@pytest.mark.parametrize(("code", "sent"), [(1008, 4008), (1011, 4011), (1000, 1000), (4001, 4001)])
async def test_a_close_code_the_server_refuses_is_retried_in_the_private_range(
    code: int, sent: int
) -> None:
    wire = RefusesStandardCodes(CONNECT)
    ws = WebSocket(ws_scope(), wire.receive, wire.send)
    await ws.accept()
    await ws.close(code, "why")
    assert wire.sent[-1] == {"type": "websocket.close", "code": sent, "reason": "why"}
    assert ws.application_state is WebSocketState.DISCONNECTED


async def test_other_server_errors_on_send_are_not_swallowed() -> None:
    wire = Wire(CONNECT)
    ws = WebSocket(ws_scope(), wire.receive, wire.send)
    await ws.accept()
    wire.send_error = ValueError("server bug")
    with pytest.raises(ValueError, match="server bug"):
        await ws.send_text("x")
    with pytest.raises(ValueError, match="server bug"):
        await ws.close(1000)


async def test_a_receive_waiting_when_a_send_finds_the_client_gone_gets_its_disconnect() -> None:
    # A reader and a writer at once (relay() does this): the writer's send fails
    # with OSError while the reader waits; then the server delivers the disconnect.
    import anyio

    send_failed, reader_waiting = anyio.Event(), anyio.Event()
    incoming = [CONNECT]

    async def receive() -> Message:
        if incoming:
            return incoming.pop()
        reader_waiting.set()
        await send_failed.wait()
        return disconnect(1001, "tab closed")

    async def send(message: Message) -> None:
        if message["type"] == "websocket.send":
            send_failed.set()
            raise Gone()

    ws = WebSocket(ws_scope(), receive, send)
    await ws.accept()
    seen: list[WebSocketDisconnect] = []

    async def reader() -> None:
        try:
            await ws.receive_text()
        except WebSocketDisconnect as exc:
            seen.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await reader_waiting.wait()
            with pytest.raises(WebSocketDisconnect) as info:
                await ws.send_text("into the void")
            assert info.value.code == 1006
    assert [(e.code, e.reason) for e in seen] == [(1001, "tab closed")]
    assert ws.client_state is WebSocketState.DISCONNECTED
    await ws.close()  # silent: the client is gone
    with pytest.raises(WebSocketRuntimeError, match="no ASGI message in DISCONNECTED"):
        # A second disconnect is the server misbehaving.
        ws._state.take_receive(disconnect(), WebSocketState.DISCONNECTED)


@pytest.mark.parametrize("operation", ["receive_text", "receive_bytes", "receive_json", "iter"])
async def test_a_typed_receive_after_a_send_found_the_client_gone_is_a_disconnect(
    operation: str,
) -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    wire.send_error = Gone()
    with pytest.raises(WebSocketDisconnect):
        await ws.send_bytes(b"x")
    if operation == "iter":
        assert [m async for m in ws.iter_text()] == []
    else:
        with pytest.raises(WebSocketDisconnect) as info:
            await getattr(ws, operation)()
        assert info.value.code == 1006
    assert wire.receive_calls == 1  # only the connect: the server is not asked again


# -- what a close frame may carry, and payload types ------------------------------------


@pytest.mark.parametrize(
    "code", [999, 1004, 1005, 1006, 1015, 2000, 2999, 5000, 99999, True, 1000.0]
)
async def test_close_refuses_codes_no_endpoint_may_send(code: Any) -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    with pytest.raises(ValueError, match="cannot be sent"):
        await ws.close(code)
    assert wire.sent_types == ["websocket.accept"]
    assert ws.application_state is WebSocketState.CONNECTED  # still open: close properly


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1008, 1011, 1014, 3000, 4999])
async def test_close_sends_every_code_an_endpoint_may_send(code: int) -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    await ws.close(code)
    assert wire.sent[-1]["code"] == code


async def test_close_refuses_a_reason_over_123_bytes_of_utf8() -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    with pytest.raises(ValueError, match="at most 123 bytes"):
        await ws.close(1000, "é" * 62)  # 124 bytes
    with pytest.raises(TypeError, match="reason must be a str"):
        await ws.close(1000, b"bytes")  # type: ignore[arg-type]
    await ws.close(1000, "é" * 61 + "x")  # 123 bytes: fine
    assert wire.sent[-1]["reason"] == "é" * 61 + "x"


def test_websocket_exception_and_websocket_close_check_their_code_and_reason() -> None:
    from lilya.exceptions import WebSocketException

    with pytest.raises(ValueError, match="cannot be sent"):
        WebSocketException(1006)
    with pytest.raises(ValueError, match="at most 123 bytes"):
        WebSocketException(4000, "x" * 124)
    with pytest.raises(ValueError, match="cannot be sent"):
        WebSocketClose(1005)
    assert WebSocketException(4000, None).reason == ""


async def test_a_server_refusal_that_is_not_daphnes_is_not_retried_and_the_state_stays() -> None:
    class RefusesEverything(Wire):
        async def send(self, message: Message) -> None:
            if message["type"] == "websocket.close":
                raise RuntimeError("server says no")
            await super().send(message)

    wire = RefusesEverything(CONNECT)
    ws = WebSocket(ws_scope(), wire.receive, wire.send)
    await ws.accept()
    with pytest.raises(RuntimeError, match="server says no"):
        await ws.send({"type": "websocket.close", "code": 1005})  # raw: not checked, not retried
    assert ws.application_state is WebSocketState.CONNECTED  # the close never went out


@pytest.mark.parametrize(
    ("operation", "payload", "message"),
    [
        ("send_text", b"bytes", "text frame needs a str, got bytes; use send_bytes()"),
        ("send_bytes", "text", "binary frame needs bytes, got str; use send_text()"),
    ],
)
async def test_a_payload_of_the_wrong_type_gets_a_clear_error_where_the_server_fails(
    operation: str, payload: Any, message: str
) -> None:
    class StrictServer(Wire):
        """Fails as uvicorn does on a payload of the wrong type."""

        async def send(self, message: Message) -> None:
            if message["type"] == "websocket.send":
                if "text" in message:
                    message["text"].encode()
                else:
                    memoryview(message["bytes"])
            await super().send(message)

    wire = StrictServer(CONNECT)
    ws = WebSocket(ws_scope(), wire.receive, wire.send)
    await ws.accept()
    with pytest.raises(TypeError, match=re.escape(message)):
        await getattr(ws, operation)(payload)
    with pytest.raises(TypeError, match=r"got bytes|got str"):
        await ws.send(
            {"type": "websocket.send", "text": b"raw"}
            if operation == "send_text"
            else {"type": "websocket.send", "bytes": "raw"}
        )
    await ws.send_text("still open")  # the refused frame left the state as it was
    assert wire.sent[-1] == {"type": "websocket.send", "text": "still open"}


async def test_other_server_type_errors_pass_through_unchanged() -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    wire.send_error = TypeError("the server's own bug")
    with pytest.raises(TypeError, match="the server's own bug"):
        await ws.send_text("fine")


async def test_send_refuses_something_that_is_not_a_message() -> None:
    ws, wire = websocket(CONNECT)
    with pytest.raises(TypeError, match="takes an ASGI message"):
        await ws.send("hello")  # type: ignore[arg-type]
    assert wire.sent == []


async def test_iterators_end_when_the_app_itself_closed_inside_the_loop() -> None:
    ws, wire = websocket(CONNECT, text("hi"), text("quit"), text("never read"))
    await ws.accept()
    seen = []
    async for message in ws.iter_text():
        seen.append(message)
        if message == "quit":
            await ws.close()
    assert seen == ["hi", "quit"]
    assert wire.sent_types[-1] == "websocket.close"


async def test_a_json_frame_of_the_other_kind_points_at_the_right_mode() -> None:
    ws, _ = websocket(CONNECT, text("{}"))
    await ws.accept()
    with pytest.raises(WebSocketFrameError, match=r'use receive_json\(mode="text"\)'):
        await ws.receive_json(mode="binary")


async def test_send_json_refuses_lone_surrogates_in_both_modes() -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    with pytest.raises(UnicodeEncodeError):
        await ws.send_json({"bad": "\ud800"})
    with pytest.raises(UnicodeEncodeError):
        await ws.send_json({"bad": "\ud800"}, mode="binary")
    assert wire.sent_types == ["websocket.accept"]


def test_supports_denial_reads_the_scopes_extensions() -> None:
    from lilya.websockets import supports_denial

    assert supports_denial(ws_scope())
    assert not supports_denial(ws_scope(extensions={}))
    assert not supports_denial({"type": "websocket"})  # daphne: no extensions key


async def test_a_raw_receive_after_a_lost_send_still_returns_the_queued_frames() -> None:
    # relay() drains this way: the frames the client sent before leaving are
    # data, then the server's disconnect ends it; only then is receive refused.
    ws, wire = websocket(CONNECT, text("before"), binary(b"leaving"), disconnect(1001))
    await ws.accept()
    wire.send_error = Gone()
    with pytest.raises(WebSocketDisconnect):
        await ws.send_text("into the void")
    assert (await ws.receive())["text"] == "before"
    assert (await ws.receive())["bytes"] == b"leaving"
    assert (await ws.receive())["type"] == "websocket.disconnect"
    assert ws.client_state is WebSocketState.DISCONNECTED
    with pytest.raises(WebSocketRuntimeError, match="once a disconnect message"):
        await ws.receive()


async def test_a_typed_receive_after_an_accept_through_send_reads_the_connect_then_the_leave() -> (
    None
):
    ws, wire = websocket(CONNECT, disconnect(1001))
    await ws.send({"type": "websocket.accept"})  # the connect is still unread
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.receive_text()
    assert info.value.code == 1001
    assert wire.sent_types == ["websocket.accept"]


async def test_a_server_type_error_on_good_bytes_is_the_servers_and_passes_through() -> None:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    wire.send_error = TypeError("the server's own trouble")
    with pytest.raises(TypeError, match="the server's own trouble"):
        await ws.send_bytes(b"fine")


async def test_a_bad_frame_arriving_after_the_app_closed_is_refused_without_a_second_close() -> (
    None
):
    # One task waits in receive_text() while another closes: the binary frame
    # the client sent meanwhile is still its mistake, but nothing more is sent.
    wire = Wire(CONNECT, binary(b"late"))

    async def receive() -> Message:
        message = await wire.receive()
        if message["type"] == "websocket.receive":
            await ws.close(1001)  # the other task closed while this receive waited
        return message

    ws = WebSocket(ws_scope(), receive, wire.send)
    await ws.accept()
    with pytest.raises(WebSocketFrameError):
        await ws.receive_text()
    assert wire.sent_types == ["websocket.accept", "websocket.close"]
    assert wire.sent[-1]["code"] == 1001
