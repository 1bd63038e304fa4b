"""WebSocketController: encodings, bad data, lifecycle, standalone use."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from lilya.apps import Lilya
from lilya.controllers import WebSocketController
from lilya.exceptions import ImproperlyConfigured, WebSocketException
from lilya.routing import Include, WebSocketPath
from lilya.testclient import TestClient
from lilya.types import Message
from lilya.websockets import WebSocket, WebSocketDisconnect
from tests.support.asgi import CONNECT, binary, call_http, call_websocket, disconnect, text

pytestmark = pytest.mark.anyio

EVENTS: list[Any] = []


class Recorder(WebSocketController):
    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        EVENTS.append(("receive", data))
        await websocket.send_json({"got": data if not isinstance(data, bytes) else data.hex()})

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        EVENTS.append(("disconnect", close_code))


class TextOnly(Recorder):
    encoding = "text"


class BytesOnly(Recorder):
    encoding = "bytes"


class Json(Recorder):
    encoding = "json"


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    EVENTS.clear()


@pytest.mark.parametrize(
    ("controller", "frames", "received"),
    [
        (Recorder, [text("a"), binary(b"\x01")], ["a", b"\x01"]),
        (TextOnly, [text("a"), text("")], ["a", ""]),
        (BytesOnly, [binary(b"\x00"), binary(b"")], [b"\x00", b""]),
        (Json, [text('{"a":1}'), binary(b"[1,2]")], [{"a": 1}, [1, 2]]),
    ],
)
async def test_each_encoding_decodes_what_on_receive_gets(
    controller: type[WebSocketController], frames: list[Any], received: list[Any]
) -> None:
    outcome = await call_websocket(controller, "/", [CONNECT, *frames, disconnect(1001)])
    assert [*(("receive", r) for r in received), ("disconnect", 1001)] == EVENTS
    assert outcome.types == ["websocket.accept", "websocket.send", "websocket.send"]
    assert outcome.error is None


@pytest.mark.parametrize(
    ("controller", "frame", "code"),
    [
        (TextOnly, binary(b"x"), 1003),
        (BytesOnly, text("x"), 1003),
        (Json, text("{bad"), 1007),
        (Json, binary(b"\xff\xfe"), 1007),
    ],
)
async def test_bad_data_closes_then_calls_on_disconnect_and_only_warns(
    controller: type[WebSocketController],
    frame: dict[str, Any],
    code: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcome = await call_websocket(controller, "/", [CONNECT, frame])
    assert outcome.close == (code, "")
    assert [("disconnect", code)] == EVENTS
    assert outcome.error is None
    records = [r for r in caplog.records if r.name == "lilya"]
    assert [r.levelno for r in records] == [logging.WARNING]


def test_encoding_must_be_one_of_the_four() -> None:
    with pytest.raises(ImproperlyConfigured, match="encoding is 'xml'"):

        class Bad(WebSocketController):
            encoding = "xml"  # type: ignore[assignment]


async def test_an_error_in_on_receive_closes_1011_calls_on_disconnect_and_is_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(Recorder):
        async def on_receive(self, websocket: WebSocket, data: Any) -> None:
            raise ZeroDivisionError("oops")

    for app in (Failing, Lilya(routes=[WebSocketPath("/", Failing)])):
        EVENTS.clear()
        outcome = await call_websocket(app, "/", [CONNECT, text("x")])
        assert outcome.close == (1011, "")
        assert isinstance(outcome.error, ZeroDivisionError)
        assert EVENTS == [("disconnect", 1011)]


async def test_a_client_leaving_during_on_connect_is_not_an_error() -> None:
    class Talker(Recorder):
        async def on_connect(self, websocket: WebSocket) -> None:
            await websocket.accept()
            await websocket.receive_text()  # the client leaves here (1006)

    outcome = await call_websocket(Talker, "/", [CONNECT])
    assert outcome.error is None
    assert EVENTS == []  # on_connect did not finish: never connected as far as events go


async def test_a_disconnect_raised_by_a_send_is_passed_to_on_disconnect() -> None:
    class Late(Recorder):
        async def on_receive(self, websocket: WebSocket, data: Any) -> None:
            raise WebSocketDisconnect(1001)

    outcome = await call_websocket(Late, "/", [CONNECT, text("x")])
    assert outcome.error is None
    assert EVENTS == [("disconnect", 1001)]


async def test_on_connect_chooses_a_subprotocol_and_sees_path_params() -> None:
    class Chat(WebSocketController):
        async def on_connect(self, websocket: WebSocket) -> None:
            offered = websocket["subprotocols"]
            EVENTS.append(websocket.path_params)
            await websocket.accept(subprotocol="chat.v2" if "chat.v2" in offered else None)

    app = Lilya(routes=[Include("/rooms", routes=[WebSocketPath("/{room}", Chat)])])
    outcome = await call_websocket(
        app, "/rooms/lobby", [CONNECT, disconnect()], subprotocols=["chat.v1", "chat.v2"]
    )
    assert outcome.sent[0] == {"type": "websocket.accept", "subprotocol": "chat.v2", "headers": []}
    assert EVENTS == [{"room": "lobby"}]


async def test_on_connect_may_refuse() -> None:
    class Closed(Recorder):
        async def on_connect(self, websocket: WebSocket) -> None:
            await websocket.close(4003)

    class Raising(Recorder):
        async def on_connect(self, websocket: WebSocket) -> None:
            raise WebSocketException(4004, "no")

    assert (await call_websocket(Closed)).close == (4003, "")
    assert (await call_websocket(Raising)).close == (4004, "no")
    assert EVENTS == []


def test_a_controller_is_an_asgi_app_for_the_test_client() -> None:
    with TestClient(Json) as client, client.websocket_connect("/anything") as session:
        session.send_json({"n": 1})
        assert session.receive_json() == {"got": {"n": 1}}
    assert EVENTS[-1] == ("disconnect", 1000)


async def test_a_controller_answers_http_with_426() -> None:
    outcome = await call_http(Json, "/")
    assert outcome.status == 426
    assert outcome.headers["upgrade"] == "websocket"


async def test_the_default_controller_accepts_and_ignores_messages() -> None:
    outcome = await call_websocket(WebSocketController, "/", [CONNECT, text("x"), disconnect()])
    assert outcome.types == ["websocket.accept"]


async def test_a_controller_served_alone_ignores_lifespan_messages_it_does_not_know() -> None:
    sent: list[Message] = []
    incoming: list[Message] = [
        {"type": "lifespan.startup"},
        {"type": "lifespan.bogus"},
        {"type": "lifespan.shutdown"},
    ]

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await WebSocketController({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
