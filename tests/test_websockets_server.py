"""The seed's WebSocket against real servers and a real client (``websockets``).

uvicorn is the default server; hypercorn proves the denial response on a second
implementation. The full six-server matrix lives in tests/interop.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection

from tests.support.servers import RunningServer, serve, tracebacks

pytestmark = pytest.mark.server

APP = "tests.support.seed_apps:app"


@pytest.fixture(scope="module")
def uvicorn() -> Iterator[RunningServer]:
    with serve(APP, "uvicorn") as server:
        yield server


def _connect(server: RunningServer, path: str, **kwargs: object) -> ClientConnection:
    return server.connect(path, **kwargs)


def test_seed_hello_example_sends_binary_json_then_closes(uvicorn: RunningServer) -> None:
    with _connect(uvicorn, "/seed/hello") as ws:
        frame = ws.recv(timeout=5)
        assert frame == b'{"message":"Hello, world!"}'
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1000


def test_seed_iter_json_example_echoes_until_the_client_leaves(uvicorn: RunningServer) -> None:
    with _connect(uvicorn, "/seed/echo") as ws:
        ws.send(json.dumps({"n": 1}))
        assert json.loads(ws.recv(timeout=5)) == {"message": "Message text was: {'n': 1}"}
        ws.send(json.dumps([1, 2]))
        assert isinstance(reply := ws.recv(timeout=5), bytes)
        assert json.loads(reply) == {"message": "Message text was: [1, 2]"}
    time.sleep(0.2)
    assert tracebacks(uvicorn.log()) == []


def test_accept_sends_subprotocol_and_extra_headers(uvicorn: RunningServer) -> None:
    with _connect(uvicorn, "/echo", subprotocols=["chat.v2", "chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v2"
        assert ws.response is not None
        assert ws.response.headers["x-lilya"] == "accepted"


@pytest.mark.parametrize(
    ("kind", "payload", "expected"),
    [
        ("text", "héllo", "héllo"),
        ("text", "", ""),
        ("bytes", b"\x00\xffbin", b"\x00\xffbin"),
        ("bytes", b"", b""),
        ("json-text", '{"a":"é"}', '{"got":{"a":"é"}}'),
        ("json-binary", b'{"a":[1,2.5]}', b'{"got":{"a":[1,2.5]}}'),
    ],
)
def test_every_frame_kind_travels_both_ways(
    uvicorn: RunningServer, kind: str, payload: str | bytes, expected: str | bytes
) -> None:
    with _connect(uvicorn, "/echo") as ws:
        ws.send(kind)
        ws.send(payload)
        assert ws.recv(timeout=5) == expected


def test_close_code_and_reason_reach_the_client(uvicorn: RunningServer) -> None:
    with _connect(uvicorn, "/echo") as ws:
        ws.send("close")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "bye")


def test_close_before_accept_gives_the_client_http_403(uvicorn: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        _connect(uvicorn, "/reject")
    assert info.value.response.status_code == 403


@pytest.mark.parametrize("server_name", ["uvicorn", "hypercorn"])
def test_denial_response_gives_the_client_status_headers_and_body(server_name: str) -> None:
    with serve(APP, server_name) as server:
        with pytest.raises(InvalidStatus) as info:
            _connect(server, "/deny")
        response = info.value.response
        assert response.status_code == 401
        assert response.headers["x-why"] == "token"
        assert response.body == b"no token"
        time.sleep(0.2)
        assert tracebacks(server.log()) == []


def test_a_vanished_client_makes_the_next_send_raise_1006_without_traceback(
    uvicorn: RunningServer,
) -> None:
    with _connect(uvicorn, "/vanish") as ws:
        assert ws.recv(timeout=5) == "ready"
        # Drop the TCP connection with no close frame (RST), as a crashed browser would.
        ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.socket.close()
    log = uvicorn.wait_for_log("vanish: closed cleanly", timeout=10)
    assert "vanish: send raised WebSocketDisconnect(1006)" in log
    assert "closed cleanly, state DISCONNECTED" in log
    assert tracebacks(log) == []


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", 1007),
        ("1" * 5000, 1007),  # the stdlib's integer-length guard
        ("[" * 200_000 + "]" * 200_000, 1007),  # deeper than any reader allows
        (b'{"a": 1}', 1003),  # a binary frame where the seed reads text
    ],
)
def test_the_seed_iter_json_example_fed_bad_data_closes_with_the_code_naming_it(
    uvicorn: RunningServer, frame: str | bytes, code: int
) -> None:
    with _connect(uvicorn, "/seed/echo", max_size=None) as ws:
        ws.send(json.dumps({"n": 1}))
        assert json.loads(ws.recv(timeout=5)) == {"message": "Message text was: {'n': 1}"}
        ws.send(frame)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == code
    time.sleep(0.2)
    assert tracebacks(uvicorn.log()) == []


# A text frame that is not UTF-8 never reaches the app: the server checks it.
# uvicorn's websockets mode closes with 1007; its websockets-sansio mode (the
# "auto" default) prints a UnicodeDecodeError traceback first, and its wsproto
# mode drops TCP with no close frame: server bugs before lilya sees anything.
def test_the_seed_iter_json_example_fed_a_text_frame_that_is_not_utf8_ends_with_1007() -> None:
    with serve(APP, "uvicorn-websockets") as server:
        with _connect(server, "/seed/echo") as ws:
            ws.send(b'{"a": "\xff"}', text=True)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=5)
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1007
        time.sleep(0.2)
        assert tracebacks(server.log()) == []
