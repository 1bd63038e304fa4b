"""Typed messages: receives=/sends= on routes, controllers and channels (lilya.typed)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Coroutine, Iterator
from typing import Any, Literal, TypedDict

import anyio
import msgspec
import pydantic
import pytest

from lilya.apps import Lilya
from lilya.channels import Channels
from lilya.controllers import WebSocketController
from lilya.exceptions import ImproperlyConfigured, WebSocketRuntimeError
from lilya.routing import WebSocketPath
from lilya.testclient import TestClient
from lilya.typed import (
    InvalidMessageError,
    MessageCodec,
    MessageTypeError,
    TypedChannel,
    TypedWebSocket,
)
from lilya.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from tests.support.asgi import CONNECT, Wire, ws_scope
from tests.support.typed_apps import Join, Joined, Ping, PJoin, PSaid, PSay, Said, Say, app


@pytest.fixture(params=["asyncio", "trio"])
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    with TestClient(app, backend=request.param) as test_client:
        yield test_client


def test_a_typed_route_hands_the_handler_decoded_objects_and_encodes_its_sends(
    client: TestClient,
) -> None:
    with client.websocket_connect("/chat/lobby") as ws:
        ws.send_text('{"type": "join", "room": "lobby"}')
        assert ws.receive_json() == {"type": "joined", "room": "lobby"}
        ws.send_bytes(b'{"type": "say", "text": "h\xc3\xa9", "times": 2}')
        assert ws.receive_text() == '{"type":"said","text":"hé"}'
        assert ws.receive_json() == {"type": "said", "text": "hé"}


@pytest.mark.parametrize(
    ("frame", "path", "problem"),
    [
        ('{"type": "say", "text": 5}', "$.text", "Expected `str`, got `int`"),
        ('{"type": "shout", "text": "x"}', "$.type", "Invalid value 'shout'"),
        ('{"text": "x"}', "$", "Object missing required field `type`"),
        ("[1, 2]", "$", "Expected `object`, got `array`"),
        ("not json", "$", "JSON is malformed: invalid character (byte 4)"),
        ('{"type": "say", "text": "x", "times": 1e999}', "$.times", "Number out of range"),
    ],
)
def test_an_invalid_message_gets_an_error_frame_with_its_path_and_the_socket_stays_open(
    client: TestClient, frame: str, path: str, problem: str
) -> None:
    with client.websocket_connect("/chat/lobby") as ws:
        ws.send_text(frame)
        assert ws.receive_json() == {"type": "invalid_message", "path": path, "problem": problem}
        ws.send_text('{"type": "say", "text": "still here"}')
        assert ws.receive_json() == {"type": "said", "text": "still here"}


def test_a_huge_invalid_value_is_quoted_back_shortened() -> None:
    codec = MessageCodec(Join | Say)
    with pytest.raises(InvalidMessageError) as caught:
        codec.decode(json.dumps({"type": "x" * 100_000}))
    assert len(caught.value.problem) <= 200
    assert caught.value.problem.endswith("...")


def test_on_invalid_close_closes_1007_with_a_reason_of_at_most_123_bytes(
    client: TestClient,
) -> None:
    with client.websocket_connect("/strict") as ws:
        ws.send_text(json.dumps({"type": "é" * 500}))
        with pytest.raises(WebSocketDisconnect) as caught:
            ws.receive_text()
    assert caught.value.code == 1007
    assert isinstance(caught.value.reason, str)
    assert 0 < len(caught.value.reason.encode()) <= 123
    assert caught.value.reason.startswith("invalid message at $.type: Invalid value")


def test_sending_an_object_of_the_wrong_field_type_raises_and_sends_nothing() -> None:
    client = TestClient(app, raise_server_exceptions=False)
    with client, client.websocket_connect("/chat/lobby") as ws:
        ws.send_text('{"type": "say", "text": "bad-send"}')
        with pytest.raises(WebSocketDisconnect) as caught:
            ws.receive_text()
        assert caught.value.code == 1011
    # The app's bug surfaces in the app, as a MessageTypeError.
    client = TestClient(app)
    with client, pytest.raises(MessageTypeError, match=r"at \$\.text"):  # noqa: SIM117  # the error ends the session
        with client.websocket_connect("/chat/lobby") as ws:
            ws.send_text('{"type": "say", "text": "bad-send"}')
            ws.receive_text()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_dataclass_and_typeddict_messages_go_through_msgspec(
    backend: Literal["asyncio", "trio"],
) -> None:
    with TestClient(app, backend=backend) as client, client.websocket_connect("/ping") as ws:
        ws.send_text('{"type": "ping", "n": 1}')
        assert ws.receive_json() == {"type": "pong", "n": 2}
        ws.send_text('{"type": "ping", "n": "one"}')
        assert ws.receive_json() == {
            "type": "invalid_message",
            "path": "$.n",
            "problem": "Expected `int`, got `str`",
        }


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_pydantic_models_are_validated_by_pydantic(backend: Literal["asyncio", "trio"]) -> None:
    with TestClient(app, backend=backend) as client, client.websocket_connect("/pydantic") as ws:
        ws.send_text('{"type": "join", "room": "r1"}')
        assert ws.receive_json() == {"type": "said", "text": "r1"}
        ws.send_text('{"type": "say", "text": 3}')
        assert ws.receive_json() == {
            "type": "invalid_message",
            "path": "$.text",
            "problem": "Input should be a valid string",
        }
        ws.send_text('{"type": "nope"}')
        frame = ws.receive_json()
        assert (frame["path"], frame["problem"][:9]) == ("$.type", "Input tag")
        ws.send_text('{"room": "x"}')
        assert ws.receive_json()["path"] == "$"


def test_a_pydantic_model_mutated_to_a_wrong_type_is_refused_on_send() -> None:
    with TestClient(app) as client, pytest.raises(MessageTypeError, match="PSaid"):  # noqa: SIM117
        with client.websocket_connect("/pydantic") as ws:
            ws.send_text('{"type": "say", "text": "bad-send"}')
            ws.receive_text()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_typed_controller_gets_decoded_objects(backend: Literal["asyncio", "trio"]) -> None:
    with TestClient(app, backend=backend) as client:
        with client.websocket_connect("/room") as ws:
            ws.send_text('{"type": "join", "room": "x"}')
            assert ws.receive_json() == {"type": "said", "text": "x"}
            ws.send_text('{"type": "join"}')
            assert ws.receive_json() == {
                "type": "invalid_message",
                "path": "$",
                "problem": "Object missing required field `room`",
            }
        with client.websocket_connect("/strict-room") as ws:
            ws.send_text("{}")
            with pytest.raises(WebSocketDisconnect) as caught:
                ws.receive_text()
            assert caught.value.code == 1007


def test_untagged_union_members_are_refused_when_the_route_is_built() -> None:
    class A(msgspec.Struct):
        x: int

    class B(msgspec.Struct):
        y: int

    with pytest.raises(ImproperlyConfigured, match="has no tag"):
        WebSocketPath("/ws", _handler, receives=A | B)


def test_shared_tags_other_tag_fields_and_foreign_types_are_refused() -> None:
    class A(msgspec.Struct, tag="same"):
        x: int

    class B(msgspec.Struct, tag="same"):
        y: int

    class C(msgspec.Struct, tag="c", tag_field="kind"):
        y: int

    with pytest.raises(ImproperlyConfigured, match="share the tag 'same'"):
        MessageCodec(A | B)
    with pytest.raises(ImproperlyConfigured, match="tagged on 'kind'"):
        MessageCodec(C)
    with pytest.raises(ImproperlyConfigured, match="cannot be a message type"):
        MessageCodec(int)
    with pytest.raises(ImproperlyConfigured, match="mixes pydantic"):
        MessageCodec(PJoin | Say)


def test_message_types_on_a_non_function_handler_are_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="attributes of the controller"):
        WebSocketPath("/ws", WebSocketController, receives=Join)


def test_a_bad_on_invalid_is_refused_on_routes_and_controllers() -> None:
    with pytest.raises(ImproperlyConfigured, match="on_invalid"):
        WebSocketPath("/ws", _handler, receives=Join, on_invalid="ignore")  # type: ignore[arg-type]
    with pytest.raises(ImproperlyConfigured, match="on_invalid"):

        class Bad(WebSocketController):
            on_invalid = "drop"  # type: ignore[assignment]


async def _handler(websocket: WebSocket) -> None:
    await websocket.close()


def test_receive_and_send_message_without_declared_types_say_what_to_do() -> None:
    seen: list[str] = []
    application = Lilya()

    @application.websocket("/only-sends", sends=Said)
    async def only_sends(websocket: TypedWebSocket[Any, Said]) -> None:
        await websocket.accept()
        try:
            await websocket.receive_message()
        except WebSocketRuntimeError as exc:
            seen.append(str(exc))
        typed: TypedWebSocket[Any, Any] = TypedWebSocket(
            websocket.scope, websocket.receive, websocket.send
        )
        try:
            await typed.send_message(Said(text="x"))
        except WebSocketRuntimeError as exc:
            seen.append(str(exc))
        await websocket.send_message(Said(text="done"))

    with TestClient(application) as client, client.websocket_connect("/only-sends") as ws:
        assert ws.receive_json() == {"type": "said", "text": "done"}
    assert "receive_message() needs a declared type" in seen[0]
    assert "send_message() needs a declared type" in seen[1]


def test_receive_message_before_accept_and_after_a_disconnect() -> None:
    seen: list[Any] = []
    application = Lilya()

    @application.websocket("/early", receives=Join)
    async def early(websocket: TypedWebSocket[Join, Any]) -> None:
        try:
            await websocket.receive_message()
        except WebSocketRuntimeError as exc:
            seen.append(str(exc))
        await websocket.accept()
        try:
            await websocket.receive_message()
        except WebSocketDisconnect as exc:
            seen.append(exc.code)

    with TestClient(application) as client, client.websocket_connect("/early") as ws:
        ws.close(4001)
    assert seen == ['WebSocket is not connected. Need to call "accept" first.', 4001]


def test_send_checks_are_by_type_for_dataclasses_and_by_value_for_typeddicts() -> None:
    codec = MessageCodec(Ping)
    assert codec.encode(Ping(type="ping", n=1)) == b'{"type":"ping","n":1}'
    with pytest.raises(MessageTypeError, match=r"at \$\.n"):
        codec.encode(Ping(type="ping", n="x"))  # type: ignore[arg-type]  # the bug under test
    with pytest.raises(MessageTypeError, match="expected one of Ping"):
        codec.encode({"type": "ping", "n": 1})

    class Bag(msgspec.Struct):
        value: Any

    with pytest.raises(MessageTypeError, match="Encoding objects of type object"):
        MessageCodec(Bag).encode(Bag(value=object()))


@dataclasses.dataclass
class Up:
    type: Literal["up"]


class Down(TypedDict):
    type: Literal["down"]


def test_a_union_of_a_dataclass_and_a_typeddict_reads_the_tag_first() -> None:
    codec = MessageCodec(Up | Down)
    assert codec.decode(b'{"type": "up"}') == Up(type="up")
    assert codec.decode('{"type": "down"}') == {"type": "down"}
    with pytest.raises(InvalidMessageError) as caught:
        codec.decode('{"type": "sideways"}')
    assert caught.value.path == "$.type"
    assert "expected one of 'up', 'down'" in caught.value.problem
    assert repr(codec) == "MessageCodec(Up | Down)"


@pytest.mark.anyio
async def test_a_typed_channel_checks_what_it_publishes_and_decodes_what_it_delivers() -> None:
    async with Channels("memory://") as channels:
        rooms: TypedChannel[Say] = TypedChannel(channels, "room:{room}", Say)
        assert repr(rooms) == "TypedChannel('room:{room}', Say)"
        async with rooms.subscribe(room="lobby") as subscription:
            event = await rooms.publish(Say(text="hi", times=2), room="lobby")
            assert event.data == {"type": "say", "text": "hi", "times": 2}
            delivered = await subscription.receive()
            assert rooms.payload(delivered) == Say(text="hi", times=2)
            with pytest.raises(MessageTypeError):
                await rooms.publish(Said(text="wrong type"), room="lobby")  # type: ignore[arg-type]
            with pytest.raises(ImproperlyConfigured, match="takes the parameters room"):
                await rooms.publish(Say(text="x"))
            with pytest.raises(ImproperlyConfigured, match="got room, other"):
                rooms.name(room="a", other="b")
            await channels.publish("room:lobby", {"type": "say", "text": 5})
            with pytest.raises(InvalidMessageError):
                rooms.payload(await subscription.receive())


@pytest.mark.anyio
async def test_a_typed_channel_payload_of_a_non_message_event_is_none() -> None:
    async with Channels("memory://") as channels:
        rooms: TypedChannel[Join] = TypedChannel(channels, "r", Join)
        async with channels.subscribe("r", presence={"nick": "a"}) as subscription:
            event = await subscription.receive()
            assert event.type == "presence"
            assert rooms.payload(event) is None


def test_pydantic_unions_and_single_models_build_codecs() -> None:
    assert MessageCodec(PJoin | PSay).engine == "pydantic"
    single = MessageCodec(PJoin)
    assert single.decode('{"type": "join", "room": "a"}') == PJoin(type="join", room="a")
    with pytest.raises(InvalidMessageError) as caught:
        single.decode('{"type": "join"}')
    assert caught.value.path == "$.room"


def test_joined_round_trips() -> None:
    assert MessageCodec(Joined).decode(MessageCodec(Joined).encode(Joined(room="a"))) == Joined(
        room="a"
    )


def test_pydantic_engine_is_used_for_a_validated_model() -> None:
    class Model(pydantic.BaseModel):
        n: int

    assert MessageCodec(Model).encode(Model(n=1)) == b'{"n":1}'


class Box(msgspec.Struct, tag="box"):
    value: Any


class PBox(pydantic.BaseModel):
    type: Literal["box"]
    value: Any


@pytest.mark.parametrize("message_type", [Box, PBox])
def test_a_message_nested_too_deeply_is_invalid_input_not_a_crash(message_type: Any) -> None:
    deep = '{"type": "box", "value": ' + "[" * 200_000 + "]" * 200_000 + "}"
    with pytest.raises(InvalidMessageError) as caught:
        MessageCodec(message_type).decode(deep)
    assert caught.value.path == "$"
    assert "deep" in caught.value.problem or "recursion" in caught.value.problem


@dataclasses.dataclass
class TwoTags:
    type: Literal["a", "b"]


def test_a_literal_of_two_values_is_not_a_tag() -> None:
    with pytest.raises(ImproperlyConfigured, match="TwoTags is in the union"):
        MessageCodec(TwoTags | Join)


def test_receive_message_skips_the_connect_of_an_app_that_accepted_through_send() -> None:
    application = Lilya()

    @application.websocket("/raw-accept", receives=Join, sends=Joined)
    async def raw_accept(websocket: TypedWebSocket[Join, Joined]) -> None:
        await websocket.send({"type": "websocket.accept"})
        message = await websocket.receive_message()
        await websocket.send_message(Joined(room=message.room))

    with TestClient(application) as client, client.websocket_connect("/raw-accept") as ws:
        ws.send_text('{"type": "join", "room": "r"}')
        assert ws.receive_json() == {"type": "joined", "room": "r"}


def test_an_invalid_message_error_left_unhandled_closes_1007_as_the_peers_fault(
    caplog: pytest.LogCaptureFixture,
) -> None:
    application = Lilya()

    @application.websocket("/manual")
    async def manual(websocket: WebSocket) -> None:
        await websocket.accept()
        MessageCodec(Join).decode(await websocket.receive_text())

    with TestClient(application) as client, client.websocket_connect("/manual") as ws:
        ws.send_text('{"type": "join"}')
        with pytest.raises(WebSocketDisconnect) as caught:
            ws.receive_text()
    assert caught.value.code == 1007
    assert "Object missing required field `room`" in caplog.text


# -- send_message(): one coroutine, checked when awaited ----------------------------


def _typed_socket(**options: Any) -> tuple[TypedWebSocket[Any, Any], Wire]:
    wire = Wire(CONNECT)
    return TypedWebSocket(ws_scope(), wire.receive, wire.send, **options), wire


@pytest.mark.anyio
@pytest.mark.parametrize("good", [Said(text="ok"), PSaid(type="said", text="ok")])
async def test_send_message_checks_when_awaited_so_a_bad_message_raises_from_the_await(
    good: Any,
) -> None:
    ws, wire = _typed_socket(sends=type(good))
    await ws.accept()
    sending = ws.send_message(Joined(room="r"))  # not checked yet: nothing raised here
    with pytest.raises(MessageTypeError, match="does not match the declared sends"):
        await sending
    assert wire.sent_types == ["websocket.accept"]  # nothing was sent
    await ws.send_message(good)
    assert wire.sent[-1] == {"type": "websocket.send", "text": '{"type":"said","text":"ok"}'}


@pytest.mark.anyio
async def test_send_message_without_sends_raises_from_the_await_too() -> None:
    ws, wire = _typed_socket()
    await ws.accept()
    sending = ws.send_message(Said(text="x"))
    with pytest.raises(WebSocketRuntimeError, match="send_message\\(\\) needs a declared type"):
        await sending
    assert wire.sent_types == ["websocket.accept"]


@pytest.mark.anyio
async def test_send_message_runs_as_a_task_and_one_bad_message_fails_only_its_own() -> None:
    ws, wire = _typed_socket(sends=Said)
    await ws.accept()
    results = []
    async with anyio.create_task_group() as tasks:

        async def send(message: Any) -> None:
            try:
                await ws.send_message(message)
            except MessageTypeError as exc:
                results.append(type(exc).__name__)
            else:
                results.append("sent")

        tasks.start_soon(send, Joined(room="r"))
        tasks.start_soon(send, Said(text="ok"))
    assert sorted(results) == ["MessageTypeError", "sent"]
    assert wire.sent_types == ["websocket.accept", "websocket.send"]


@pytest.mark.anyio
async def test_send_message_turns_an_oserror_into_disconnect_1006_like_every_send() -> None:
    ws, wire = _typed_socket(sends=Said)
    await ws.accept()
    wire.send_error = ConnectionResetError()
    with pytest.raises(WebSocketDisconnect) as info:
        await ws.send_message(Said(text="lost"))
    assert info.value.code == 1006
    assert ws.client_state is WebSocketState.DISCONNECTED
    assert ws.application_state is WebSocketState.CONNECTED
    with pytest.raises(WebSocketDisconnect):  # the client is gone: not the server's to refuse
        await ws.send_message(Said(text="still lost"))


@pytest.mark.anyio
async def test_send_message_before_accept_and_after_close_is_refused_like_send_text() -> None:
    ws, wire = _typed_socket(sends=Said)
    with pytest.raises(WebSocketRuntimeError, match="accept"):
        await ws.send_message(Said(text="early"))
    await ws.accept()
    await ws.close()
    with pytest.raises(WebSocketRuntimeError, match="close"):
        await ws.send_message(Said(text="late"))
    assert wire.sent_types == ["websocket.accept", "websocket.close"]


def test_send_message_without_an_event_loop_sends_untimed() -> None:
    # A coroutine driven by hand (no loop): nothing to time, the frame still goes.
    ws, wire = _typed_socket(sends=Said)
    _drive(ws.accept())
    _drive(ws.send_message(Said(text="by hand")))
    assert wire.sent[-1] == {"type": "websocket.send", "text": '{"type":"said","text":"by hand"}'}


def _drive(coroutine: Coroutine[Any, Any, None]) -> None:
    with pytest.raises(StopIteration):
        coroutine.send(None)
