"""The session's ending paths, staged one by one over a scripted wire (no scheduler luck)."""

from __future__ import annotations

import functools
import json
from collections import deque
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
    await session._send('{"id":1,"ok":{}}')
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
    await session._send('{"id":1,"ok":{}}')
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


# -- the writer: one task per socket, fed by its subscriptions directly ------------------


def session_over(hub: Channels, ws: WebSocket, **options: Any) -> _Session:
    endpoint = ChannelsEndpoint(hub, **{"heartbeat": None, **options})
    client = Client(ws)
    client.connected = True
    return _Session(endpoint, client)


async def flush(session: _Session) -> None:
    """Run the writer until everything queued is sent (what end() asks of it)."""
    session._flushing = True
    with anyio.fail_after(5):
        await session._writer()


async def test_replies_go_first_then_ready_channels_take_turns_one_event_each() -> None:
    ws, wire = await accepted()
    async with Channels("memory://") as hub, anyio.create_task_group() as group:
        session = session_over(hub, ws)
        session._group = group
        await session._handle('{"type":"subscribe","id":1,"channel":"a"}')
        await session._handle('{"type":"subscribe","id":2,"channel":"b"}')
        for n in range(3):
            await hub.publish("a", f"a{n}")
            await hub.publish("b", f"b{n}")
        await session._handle('{"type":"ping","id":3}')
        await flush(session)
        await session._leave_all()
    sent = frames(wire)
    assert [frame.get("id") for frame in sent[:3]] == [1, 2, 3]
    assert [frame["data"] for frame in sent[3:]] == ["a0", "b0", "a1", "b1", "a2", "b2"]


async def test_subscribing_to_fifty_channels_starts_no_task_and_each_publish_wakes_the_writer() -> (
    None
):
    ws, wire = await accepted()
    async with Channels("memory://") as hub, anyio.create_task_group() as group:
        session = session_over(hub, ws)
        session._group = group
        group.start_soon(session._writer)
        await anyio.sleep(0.01)
        before = len(anyio.get_running_tasks())
        for n in range(50):
            await session._handle(f'{{"type":"subscribe","id":{n},"channel":"c{n}"}}')
        with anyio.fail_after(5):
            while len(frames(wire)) < 50:
                await anyio.sleep(0.01)
        assert len(anyio.get_running_tasks()) == before
        for n in range(50):
            await hub.publish(f"c{n}", n)
        with anyio.fail_after(5):
            while len(frames(wire)) < 100:
                await anyio.sleep(0.01)
        group.cancel_scope.cancel()
    await session._leave_all()
    pushes = frames(wire)[50:]
    assert [(push["channel"], push["data"]) for push in pushes] == [(f"c{n}", n) for n in range(50)]


async def test_a_message_frame_is_made_once_per_event_and_left_on_it_for_every_socket() -> None:
    async with Channels("memory://") as hub, anyio.create_task_group() as group:
        wires = []
        sessions = []
        for _ in range(3):
            ws, wire = await accepted()
            session = session_over(hub, ws)
            session._group = group
            await session._handle('{"type":"subscribe","id":1,"channel":"c"}')
            wires.append(wire)
            sessions.append(session)
        event = await hub.publish("c", {"n": 1})
        assert event._frame is None
        for session in sessions:
            await flush(session)
            await session._leave_all()
    assert event._frame is not None
    texts = [[m["text"] for m in wire.sent if m["type"] == "websocket.send"][1] for wire in wires]
    assert texts == [event._frame] * 3
    assert json.loads(event._frame) == {
        "type": "message",
        "channel": "c",
        "epoch": event.epoch,
        "offset": 1,
        "data": {"n": 1},
    }


async def test_nothing_of_a_channel_is_sent_after_its_unsubscribe_reply() -> None:
    ws, wire = await accepted()
    async with Channels("memory://") as hub, anyio.create_task_group() as group:
        session = session_over(hub, ws)
        session._group = group
        await session._handle('{"type":"subscribe","id":1,"channel":"c"}')
        for n in range(3):
            await hub.publish("c", n)  # queued in the subscription, not sent yet
        await session._handle('{"type":"unsubscribe","id":2,"channel":"c"}')
        await hub.publish("c", 3)
        await flush(session)
        await session._leave_all()
    assert [frame["id"] for frame in frames(wire)] == [1, 2]
    assert session._ready == deque()


async def test_a_subscription_closed_by_overflow_ends_the_socket_1013_with_reconnect() -> None:
    ws, wire = await accepted()
    async with Channels("memory://") as hub:
        session = session_over(hub, ws)
        async with anyio.create_task_group() as group:
            session._group = group
            group.start_soon(session._writer)
            await session._handle('{"type":"subscribe","id":1,"channel":"c"}')
            with anyio.fail_after(5):
                while not frames(wire):
                    await anyio.sleep(0.01)
            session.entries["c"].subscription._overflow()  # what policy "close" does
        await session._leave_all()
    assert frames(wire)[1:] == [
        {"type": "disconnect", "code": 1013, "reason": "subscriber too slow", "reconnect": True}
    ]
    assert wire.sent[-1] == {
        "type": "websocket.close",
        "code": 1013,
        "reason": "subscriber too slow",
    }


async def test_a_reply_waits_for_room_and_is_dropped_once_the_writer_has_stopped() -> None:
    ws, wire = await accepted()
    session = session_for(ws, send_queue=1)
    done: list[str] = []

    async def reply(frame: str) -> None:
        await session._send(frame)
        done.append(frame)

    async with anyio.create_task_group() as group:
        session._group = group
        await session._send('{"id":1,"ok":{}}')  # the outbox is full
        group.start_soon(reply, '{"id":2,"ok":{}}')
        group.start_soon(reply, '{"type":"ping"}')  # the heartbeat waits beside the reader
        await anyio.sleep(0.01)
        assert done == []  # both waiting for room
        wire.send_error = OSError("connection reset")  # the client is gone
        group.start_soon(session._writer)
        with anyio.fail_after(5):
            while len(done) < 2:
                await anyio.sleep(0.01)
        await session._send('{"id":3,"ok":{}}')  # returns at once: nothing would send it
        group.cancel_scope.cancel()
    await session._leave_all()
    assert list(session._outbox) == []
    assert wire.sent_types == ["websocket.accept"]
