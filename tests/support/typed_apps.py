"""Typed apps for tests/test_typed.py; a real server imports them (tests.support.typed_apps:app)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, TypedDict

import msgspec
import pydantic

from lilya.apps import Lilya
from lilya.controllers import WebSocketController
from lilya.typed import TypedWebSocket


class Join(msgspec.Struct, tag="join"):
    """Enter a room."""

    room: str


class Say(msgspec.Struct, tag="say"):
    text: str
    times: int = 1


class Said(msgspec.Struct, tag="said"):
    text: str


class Joined(msgspec.Struct, tag="joined"):
    room: str


@dataclasses.dataclass
class Ping:
    type: Literal["ping"]
    n: int


class Pong(TypedDict):
    type: Literal["pong"]
    n: int


class PJoin(pydantic.BaseModel):
    type: Literal["join"]
    room: str


class PSay(pydantic.BaseModel):
    type: Literal["say"]
    text: str


class PSaid(pydantic.BaseModel):
    type: Literal["said"]
    text: str


app = Lilya()


@app.websocket("/chat/{room}", receives=Join | Say, sends=Said | Joined)
async def chat(websocket: TypedWebSocket[Join | Say, Said | Joined], room: str) -> None:
    """A typed chat room."""
    await websocket.accept()
    async for message in websocket.iter_messages():
        if isinstance(message, Join):
            await websocket.send_message(Joined(room=message.room))
        elif message.text == "bad-send":
            await websocket.send_message(Said(text=123))  # type: ignore[arg-type]  # the bug under test
        else:
            for _ in range(message.times):
                await websocket.send_message(Said(text=message.text))


@app.websocket("/strict", receives=Join | Say, sends=Said, on_invalid="close")
async def strict(websocket: TypedWebSocket[Join | Say, Said]) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive_message()
        await websocket.send_message(Said(text=str(message)))


@app.websocket("/ping", receives=Ping, sends=Pong)
async def ping(websocket: TypedWebSocket[Ping, Pong]) -> None:
    await websocket.accept()
    async for message in websocket.iter_messages():
        await websocket.send_message(Pong(type="pong", n=message.n + 1))


@app.websocket("/pydantic", receives=PJoin | PSay, sends=PSaid)
async def pydantic_chat(websocket: TypedWebSocket[PJoin | PSay, PSaid]) -> None:
    await websocket.accept()
    async for message in websocket.iter_messages():
        text = message.room if isinstance(message, PJoin) else message.text
        said = PSaid(type="said", text=text)
        if text == "bad-send":
            said.text = 5  # type: ignore[assignment]  # pydantic does not check assignment
        elif text == "partial-send":
            said = PSaid.model_construct(type="said")  # no text: a bug under test
        await websocket.send_message(said)


class Room(WebSocketController):
    """A typed controller."""

    receives = Join | Say
    sends = Said

    async def on_receive(self, websocket: Any, data: Any) -> None:
        text = data.room if isinstance(data, Join) else data.text
        await websocket.send_message(Said(text=text))


class StrictRoom(Room):
    on_invalid = "close"


app.add_websocket_route("/room", Room)
app.add_websocket_route("/strict-room", StrictRoom)
app.serve_asyncapi(title="typed test app", version="2.0.0")
