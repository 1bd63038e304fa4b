"""The session's ending paths, staged one by one over a scripted wire (no scheduler luck)."""

from __future__ import annotations

import functools
import json
from typing import Any

import anyio
import pytest

from lilya.channels import Channels, Event
from lilya.protocol import ChannelOptions, ChannelsEndpoint, Client, _Session
from lilya.websockets import WebSocket, WebSocketState
from tests.support.asgi import CONNECT, Wire, call_websocket, websocket, websocket_scope

pytestmark = pytest.mark.anyio


async def accepted(wire_error: BaseException | None = None) -> tuple[WebSocket, Wire]:
    ws, wire = websocket(CONNECT)
    await ws.accept()
    wire.send_error = wire_error
    return ws, wire


def session_for(ws: WebSocket, **options: Any) -> _Session:
    endpoint = ChannelsEndpoint(Channels("memory://"), **{"heartbeat": None, **options})
    client = Client(ws)
    client.connected = True
    return _Session(endpoint, client)


def frames(wire: Wire) -> list[Any]:
    return [json.loads(m["text"]) for m in wire.sent if m["type"] == "websocket.send"]


async def test_two_reasons_to_end_at_once_send_one_disconnect_and_one_close() -> None:
    ws, wire = await accepted()
    session = session_for(ws)
    async with anyio.create_task_group() as group:
        session._group = group
        group.start_soon(session._writer)
        group.start_soon(functools.partial(session.end, 4001, "token expired", reconnect=False))
        group.start_soon(functools.partial(session.end, 1011, "heartbeat", reconnect=True))
    await session._leave_all()
    # Whichever came first (the backends start tasks in different orders) won alone.
    (push,) = frames(wire)
    (close,) = [m for m in wire.sent if m["type"] == "websocket.close"]
    assert push["type"] == "disconnect"
    assert (close["code"], close["reason"]) == (push["code"], push["reason"])


async def test_a_writer_that_finds_the_socket_closed_under_it_stops_quietly() -> None:
    ws, wire = await accepted()
    session = session_for(ws)
    await session._out.send('{"id":1,"ok":{}}')
    await ws.close(1008, "over rate_limit")  # what the reader's receive does over the limit
    async with anyio.create_task_group() as group:
        session._group = group
        await session._writer()  # raises nothing
        assert session._writer_stopped.is_set()
        await session.end(1011, "heartbeat timeout", reconnect=True)
    await session._leave_all()
    assert ws.application_state is WebSocketState.DISCONNECTED
    assert frames(wire) == []  # nothing after the close


async def test_a_writer_that_finds_the_client_gone_stops_and_end_sends_nothing_more() -> None:
    ws, wire = await accepted(wire_error=OSError("connection reset"))
    session = session_for(ws)
    await session._out.send('{"id":1,"ok":{}}')
    async with anyio.create_task_group() as group:
        session._group = group
        await session._writer()
        await session.end(4001, "token expired", reconnect=False)
    await session._leave_all()
    assert wire.sent_types == ["websocket.accept"]


async def test_a_client_gone_during_the_handshake_ends_the_handler_quietly() -> None:
    endpoint = ChannelsEndpoint(Channels("memory://"))
    wire = Wire(CONNECT, send_error=OSError("connection reset"))
    await endpoint(websocket_scope("/"), wire.receive, wire.send)  # raises nothing
    assert wire.sent == []


async def test_a_bad_token_without_the_denial_extension_closes_before_accept() -> None:
    endpoint = ChannelsEndpoint(Channels("memory://"), authenticate=lambda ws, token: None)
    scope = websocket_scope("/", extensions=False, query_string=b"token=bad")
    outcome = await call_websocket(endpoint, scope=scope)
    assert outcome.error is None
    assert outcome.sent == [
        {"type": "websocket.close", "code": 4003, "reason": "The token was refused."}
    ]


async def test_a_reset_event_of_the_channels_becomes_a_reset_push() -> None:
    ws, wire = await accepted()
    hub = Channels("memory://")
    async with hub:
        endpoint = ChannelsEndpoint(hub, heartbeat=None)
        client = Client(ws)
        client.connected = True
        session = _Session(endpoint, client)
        async with anyio.create_task_group() as group:
            session._group = group
            group.start_soon(session._writer)
            await session._handle('{"type":"subscribe","id":1,"channel":"c"}')
            hub.deliver(Event("c", 7, "e2", None, "reset"))
            with anyio.fail_after(5):
                while len(frames(wire)) < 2:
                    await anyio.sleep(0.01)
            assert client.channels == frozenset({"c"})
            assert "Client" in repr(client) and "ChannelsEndpoint" in repr(endpoint)
            group.cancel_scope.cancel()
        await session._leave_all()
    assert frames(wire)[1] == {"type": "reset", "channel": "c", "epoch": "e2", "offset": 7}


async def test_an_authenticate_hook_that_raises_on_connect_is_internal_then_4003(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(websocket: Any, token: str) -> Any:
        raise RuntimeError("auth db down")

    ws, wire = await accepted()
    session = session_for(ws, authenticate=boom)
    session.client.connected = False
    async with anyio.create_task_group() as group:
        session._group = group
        group.start_soon(session._writer)
        await session._handle('{"type":"connect","id":1,"token":"t"}')
    await session._leave_all()
    assert frames(wire)[0]["error"]["code"] == "internal"
    assert wire.sent[-1] == {"type": "websocket.close", "code": 4003, "reason": "bad token"}
    assert len([r for r in caplog.records if r.exc_info]) == 1


async def test_presence_info_and_already_subscribed() -> None:
    ws, wire = await accepted()
    hub = Channels("memory://")
    async with hub:
        endpoint = ChannelsEndpoint(
            hub,
            heartbeat=None,
            channels={"*": ChannelOptions(presence=True)},
            presence_info=lambda client: {"id": client.id},
        )
        client = Client(ws)
        client.connected = True
        session = _Session(endpoint, client)
        async with anyio.create_task_group() as group:
            session._group = group
            group.start_soon(session._writer)
            await session._handle('{"type":"subscribe","id":1,"channel":"c"}')
            await session._handle('{"type":"subscribe","id":2,"channel":"c"}')
            await session._handle('{"type":"presence","id":3,"channel":"c"}')
            with anyio.fail_after(5):
                while len(frames(wire)) < 3:
                    await anyio.sleep(0.01)
            group.cancel_scope.cancel()
        await session._leave_all()
    replies = frames(wire)
    assert replies[1]["error"]["code"] == "already_subscribed"
    assert list(replies[2]["ok"]["members"].values()) == [{"id": client.id}]
