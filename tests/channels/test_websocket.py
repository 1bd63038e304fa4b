"""relay(): a subscription into a WebSocket, reading the client at the same time."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import anyio
import pytest

from lilya._json import dumps_text
from lilya.channels import Channels, Event, events, relay
from lilya.channels.websocket import _close, _Sides
from lilya.websockets import WebSocketState
from tests.channels.fake_client import FakeClient
from tests.channels.helpers import take

pytestmark = pytest.mark.anyio

#: The form send_json promises (SPEC §2).
COMPACT: dict[str, Any] = {"separators": (",", ":"), "ensure_ascii": False}


@pytest.fixture
async def channels() -> AsyncIterator[Channels]:
    async with Channels("memory://") as channels:
        yield channels


@pytest.fixture
def client() -> Any:
    client = FakeClient()
    yield client
    client.close_streams()


async def test_relay_accepts_and_sends_each_kind_of_data(
    channels: Channels, client: FakeClient
) -> None:
    async with anyio.create_task_group() as group, channels.subscribe("c") as sub:
        group.start_soon(relay, client.websocket, sub)
        assert (await client.next_message())["type"] == "websocket.accept"
        await channels.publish("c", "text")
        await channels.publish("c", b"bytes")
        await channels.publish("c", {"json": [1, 2]})
        assert await client.next_data() == "text"
        assert await client.next_data() == b"bytes"
        assert await client.next_data() == '{"json":[1,2]}'
        client.disconnect()
    assert client.websocket.client_state is WebSocketState.DISCONNECTED


async def test_relay_encodes_each_event_once_for_all_subscribers_with_unchanged_frames(
    channels: Channels, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []

    def counting(data: Any) -> str:
        calls.append(data)
        return dumps_text(data)

    monkeypatch.setattr(events, "dumps_text", counting)
    # Values where a naive encoder would differ from the stdlib's compact form:
    # non-ASCII, exponents, tiny floats, big integers, integer keys.
    published: list[Any] = [
        {"user": "zoë", "text": "héllo ☃"},
        [1e16, 0.00001, 2**70],
        {1: "int key"},
        42,
        True,
    ]
    clients = [FakeClient() for _ in range(5)]
    try:
        async with anyio.create_task_group() as group, channels.subscribe("c") as plain:
            subs = []
            for c in clients:
                sub = channels.subscribe("c")
                await sub.__aenter__()
                subs.append(sub)
                group.start_soon(relay, c.websocket, sub)
                await c.next_message()  # accept
            for data in published:
                await channels.publish("c", data)
            # What send_json made of each delivered value before events kept their JSON.
            expected = [
                {"type": "websocket.send", "text": json.dumps(e.data, **COMPACT)}
                for e in await take(plain, len(published))
            ]
            for c in clients:
                assert [await c.next_message() for _ in published] == expected
                c.disconnect()
            for sub in subs:
                await sub.__aexit__(None, None, None)
    finally:
        for c in clients:
            c.close_streams()
    assert len(calls) == len(published)


async def test_relay_sends_what_send_json_would_for_a_payload_that_is_not_the_events_data(
    channels: Channels, client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "dumps_text", None)  # the cached path must not be taken

    async with anyio.create_task_group() as group, channels.subscribe("c") as sub:
        group.start_soon(lambda: relay(client.websocket, sub, encode=lambda e: [e.data]))
        await client.next_message()  # accept
        await channels.publish("c", {"a": 1.5})
        assert await client.next_data() == '[{"a":1.5}]'
        client.disconnect()


async def test_relay_skips_presence_events_unless_encode_says_otherwise(
    channels: Channels, client: FakeClient
) -> None:
    await client.websocket.accept()
    await client.next_message()

    def encode(event: Event) -> Any:
        return {"type": event.type, "offset": event.offset, "data": event.data}

    async with anyio.create_task_group() as group, channels.subscribe("c") as sub:
        group.start_soon(lambda: relay(client.websocket, sub, encode=encode))
        async with channels.subscribe("c", presence={"user": "ann"}) as ann:
            pass
        await channels.publish("c", "hi")
        # The join and the leave, in one burst, coalesce into one presence
        # diff, sent once the burst is over (after the message published in it).
        assert await client.next_data() == '{"type":"message","offset":1,"data":"hi"}'
        diff = json.loads(await client.next_data())
        assert diff == {
            "type": "presence",
            "offset": 1,
            "data": {"snapshot": False, "joined": {}, "left": {ann.member: {"user": "ann"}}},
        }
        client.disconnect()


async def test_relay_hands_client_messages_to_on_receive_in_order(
    channels: Channels, client: FakeClient
) -> None:
    received: list[Any] = []

    async def on_receive(data: Any) -> None:
        received.append(data)
        await channels.publish("c", data)

    async with channels.subscribe("c") as sub:
        client.send_text("one")
        client.send_bytes(b"two")
        client.send_text("three")
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: relay(client.websocket, sub, on_receive=on_receive))
            await client.next_message()  # accept
            assert [await client.next_data() for _ in range(3)] == ["one", b"two", "three"]
            client.disconnect()
    assert received == ["one", b"two", "three"]


async def test_relay_returns_when_the_client_leaves_even_with_no_events(
    channels: Channels, client: FakeClient
) -> None:
    async with channels.subscribe("c") as sub:
        client.disconnect()
        with anyio.fail_after(2):
            await relay(client.websocket, sub)
    assert client.websocket.client_state is WebSocketState.DISCONNECTED


async def test_relay_closes_a_socket_that_cannot_keep_up_with_1013(
    channels: Channels, client: FakeClient
) -> None:
    async with channels.subscribe("c", max_queue=5, policy="close") as sub:
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: relay(client.websocket, sub, drain_timeout=0.2))
            await client.next_message()  # accept
            client.stall()
            with anyio.fail_after(3):
                for i in range(20):
                    await channels.publish("c", i)
                    await anyio.sleep(0)
        messages = [await client.next_message() for _ in range(1)]
    assert messages[-1] == {
        "type": "websocket.close",
        "code": 1013,
        "reason": "subscriber too slow",
    }
    assert sub.dropped > 0


async def test_relay_gives_up_on_a_close_the_client_never_takes(
    channels: Channels, client: FakeClient
) -> None:
    async with channels.subscribe("c", max_queue=2, policy="close") as sub:
        await client.websocket.accept()
        client.stall(close_too=True)
        started = time.monotonic()
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: relay(client.websocket, sub, close_timeout=0.2))
            for i in range(5):
                await channels.publish("c", i)
                await anyio.sleep(0)
        assert time.monotonic() - started < 2


async def test_relay_closes_with_1001_when_the_channels_shut_down(client: FakeClient) -> None:
    async with anyio.create_task_group() as group:
        # connect() and disconnect() nest inside the group's scope, as they
        # must: Channels holds a task group open between the two.
        channels = Channels("memory://")
        await channels.connect()
        sub = channels.subscribe("c")
        await sub.__aenter__()
        group.start_soon(relay, client.websocket, sub)
        await client.next_message()  # accept
        await channels.disconnect()
    await sub.__aexit__(None, None, None)
    assert await client.next_message() == {
        "type": "websocket.close",
        "code": 1001,
        "reason": "channel closed",
    }


async def test_an_error_in_on_receive_stops_the_relay_and_propagates(
    channels: Channels, client: FakeClient
) -> None:
    async def on_receive(data: Any) -> None:
        raise ValueError(f"bad message {data!r}")

    async with channels.subscribe("c") as sub:
        client.send_text("boom")
        with pytest.raises(ValueError, match="bad message 'boom'"):
            await relay(client.websocket, sub, on_receive=on_receive)


async def test_an_error_in_encode_stops_the_relay_and_propagates(
    channels: Channels, client: FakeClient
) -> None:
    def encode(event: Event) -> Any:
        raise KeyError("no encoder")

    async with channels.subscribe("c") as sub:
        await channels.publish("c", "x")
        with pytest.raises(KeyError, match="no encoder"):
            await relay(client.websocket, sub, encode=encode)


async def test_a_stalled_client_does_not_slow_the_other_clients(channels: Channels) -> None:
    """The slow-reader test: measure everyone else's delivery while one client is stalled."""
    clients = [FakeClient() for _ in range(6)]
    stalled, others = clients[0], clients[1:]
    count = 500
    latencies: list[float] = []
    try:
        async with anyio.create_task_group() as group:
            subs = []
            for c in clients:
                sub = channels.subscribe("c", max_queue=50, policy="close")
                await sub.__aenter__()
                subs.append(sub)
                group.start_soon(partial(relay, c.websocket, sub, drain_timeout=0.2))
                await c.next_message()  # accept
            stalled.stall()

            async def read_all(c: FakeClient) -> None:
                for i in range(count):
                    data = await c.next_data()
                    sent = float(data.split(":")[1])
                    latencies.append(time.perf_counter() - sent)
                    assert data.startswith(f"{i}:")
                c.disconnect()

            async with anyio.create_task_group() as readers:
                for c in others:
                    readers.start_soon(read_all, c)
                for i in range(count):
                    await channels.publish("c", f"{i}:{time.perf_counter()}")
                    await anyio.sleep(0)  # a publisher paced by its own loop, not by readers
            assert await stalled.next_message() == {
                "type": "websocket.close",
                "code": 1013,
                "reason": "subscriber too slow",
            }
            for sub in subs:
                await sub.__aexit__(None, None, None)
    finally:
        for c in clients:
            c.close_streams()
    latencies.sort()
    assert len(latencies) == count * len(others)
    p99 = latencies[int(len(latencies) * 0.99)]
    assert p99 < 0.1, f"others' p99 delivery latency {p99 * 1000:.1f} ms with a stalled client"


# -- the close race: what the client sent before it left is still handled -------------


@pytest.mark.parametrize("reader", ["busy", "waiting"])
async def test_every_message_a_client_sent_before_leaving_is_handled_when_a_send_finds_it_gone(
    channels: Channels, client: FakeClient, reader: str
) -> None:
    """Deterministic: N messages and a disconnect are queued at the server when a send fails.

    ``busy``: the relay is inside on_receive when the send fails; ``waiting``: it
    is waiting in receive() (the server's queue is still empty) when the send
    fails, and the client's frames arrive only after. Either way all N are
    published and nothing raises.
    """
    count = 1000
    release = anyio.Event()
    handled: list[str] = []

    async def on_receive(data: Any) -> None:
        if not handled:
            await release.wait()
        handled.append(data)
        await channels.publish("inbox", data)

    async with channels.subscribe("feed") as sub, anyio.create_task_group() as group:
        group.start_soon(lambda: relay(client.websocket, sub, on_receive=on_receive))
        await client.next_message()  # accept
        if reader == "busy":
            client.send_text("first")
            await anyio.sleep(0.05)  # the relay is now blocked in on_receive
        client.vanish()
        await channels.publish("feed", "to a client that has gone")
        await anyio.sleep(0.05)  # the send has failed
        if reader == "waiting":
            client.send_text("first")
        for i in range(count):
            client.send_text(str(i))
        client.disconnect(1001)
        release.set()
    assert handled == ["first", *map(str, range(count))]
    assert (await channels.position("inbox")).offset == count + 1
    assert client.websocket.client_state is WebSocketState.DISCONNECTED


async def test_a_reply_from_on_receive_to_a_client_that_has_gone_does_not_stop_the_relay(
    channels: Channels, client: FakeClient
) -> None:
    handled: list[str] = []

    async def on_receive(data: Any) -> None:
        handled.append(data)
        await client.websocket.send_text(f"ack {data}")

    async with channels.subscribe("feed") as sub:
        await client.websocket.accept()
        client.vanish()
        for word in ("one", "two", "three"):
            client.send_text(word)
        client.disconnect()
        with anyio.fail_after(5):
            await relay(client.websocket, sub, on_receive=on_receive)
    assert handled == ["one", "two", "three"]


async def test_the_drain_after_a_lost_send_is_bounded_by_drain_timeout(
    channels: Channels, client: FakeClient
) -> None:
    async with channels.subscribe("feed") as sub, anyio.create_task_group() as group:
        started = time.monotonic()
        group.start_soon(lambda: relay(client.websocket, sub, drain_timeout=0.2))
        await client.next_message()  # accept
        client.vanish()
        await channels.publish("feed", "x")  # the server never reports the disconnect
    assert time.monotonic() - started < 3


async def test_what_a_too_slow_client_sent_before_its_1013_is_still_handled(
    channels: Channels, client: FakeClient
) -> None:
    handled: list[Any] = []

    async def on_receive(data: Any) -> None:
        handled.append(data)
        await client.websocket.send_text(f"got {data}")  # too late: the relay closed it

    async with (
        channels.subscribe("feed", max_queue=2, policy="close") as sub,
        anyio.create_task_group() as group,
    ):
        group.start_soon(lambda: relay(client.websocket, sub, on_receive=on_receive))
        await client.next_message()  # accept
        client.stall()
        for i in range(10):
            await channels.publish("feed", i)
            await anyio.sleep(0)
        with anyio.fail_after(5):
            while not sub.closed:
                await anyio.sleep(0.01)
        client.send_text("sent before the close arrived")
        client.disconnect(1013)
    assert handled == ["sent before the close arrived"]


async def test_relay_forwards_a_gap_as_a_frame_naming_the_lost_offsets(
    client: FakeClient,
) -> None:
    async with (
        Channels("memory://", stall_timeout=0.2) as channels,
        channels.subscribe("c", max_queue=3, policy="drop_newest") as sub,
        anyio.create_task_group() as group,
    ):
        group.start_soon(relay, client.websocket, sub)
        await client.next_message()  # accept
        client.stall()
        epoch = (await channels.publish("c", "taken")).epoch  # the relay is stuck sending it
        for i in range(6):
            await channels.publish("c", i)
        client._unstall.set()
        frames = [await client.next_data() for _ in range(5)]
        client.disconnect()
    assert frames[:4] == ["taken", "0", "1", "2"]
    assert json.loads(frames[4]) == {
        "type": "gap",
        "epoch": epoch,
        "first": 5,
        "last": 7,
        "dropped": 3,
    }


def test_default_encode_skips_presence_and_reset_events() -> None:
    from lilya.channels import default_encode

    presence = Event("c", 0, "e", {"snapshot": True, "joined": {}, "left": {}}, "presence")
    assert default_encode(presence) is None
    assert default_encode(Event("c", 0, "e", None, "reset")) is None
    assert default_encode(Event("c", 1, "e", {"a": 1})) == {"a": 1}


async def test_a_state_error_in_on_receive_while_the_socket_is_open_propagates(
    channels: Channels, client: FakeClient
) -> None:
    from lilya.exceptions import WebSocketRuntimeError

    async def on_receive(data: Any) -> None:
        await client.websocket.accept()  # a mistake: already accepted

    async with channels.subscribe("c") as sub:
        client.send_text("x")
        with pytest.raises(WebSocketRuntimeError):
            await relay(client.websocket, sub, on_receive=on_receive)


async def test_an_overflow_after_the_app_closed_the_socket_itself_sends_no_second_close(
    client: FakeClient,
) -> None:
    async with Channels("memory://", stall_timeout=0.05) as channels:

        async def on_receive(data: Any) -> None:
            await client.websocket.close(4000, "bye")
            client.stall()
            for i in range(5):
                await channels.publish("c", i)

        async with channels.subscribe("c", max_queue=1) as sub:
            client.send_text("close, please")
            async with anyio.create_task_group() as group:
                group.start_soon(
                    lambda: relay(client.websocket, sub, on_receive=on_receive, drain_timeout=0.2)
                )
                await client.next_message()  # accept
                assert (await client.next_message())["code"] == 4000
                client.disconnect(4000)
    assert sub.closed


async def test_a_shutdown_after_the_app_closed_the_socket_sends_no_second_close(
    client: FakeClient,
) -> None:
    async with anyio.create_task_group() as group:
        channels = Channels("memory://")
        await channels.connect()
        sub = channels.subscribe("c")
        await sub.__aenter__()
        closed = anyio.Event()

        async def on_receive(data: Any) -> None:
            await client.websocket.close(4000, "bye")
            closed.set()

        client.send_text("close, please")
        group.start_soon(lambda: relay(client.websocket, sub, on_receive=on_receive))
        await client.next_message()  # accept
        await closed.wait()
        await channels.disconnect()
        client.disconnect(4000)
    await sub.__aexit__(None, None, None)
    assert await client.next_message() == {"type": "websocket.close", "code": 4000, "reason": "bye"}


async def test_relay_without_on_receive_reads_and_drops_client_messages(
    channels: Channels, client: FakeClient
) -> None:
    async with channels.subscribe("c") as sub:
        client.send_text("ignored")
        client.send_bytes(b"ignored too")
        client.disconnect()
        with anyio.fail_after(2):
            await relay(client.websocket, sub)
    assert await client.next_message() == {
        "type": "websocket.accept",
        "subprotocol": None,
        "headers": [],
    }
    assert client.websocket.client_state is WebSocketState.DISCONNECTED


async def test_the_relays_close_leaves_a_socket_that_is_no_longer_open_alone(
    client: FakeClient,
) -> None:
    await client.websocket.accept()
    await client.websocket.close()
    await _close(
        client.websocket, 1013, "subscriber too slow", 1.0, _Sides()
    )  # nothing more is sent
    assert [await client.next_message() for _ in range(2)][-1]["type"] == "websocket.close"


async def test_relay_with_the_default_encoder_sends_messages_and_skips_presence(
    channels: Channels, client: FakeClient
) -> None:
    await client.websocket.accept()
    await client.next_message()
    async with anyio.create_task_group() as group, channels.subscribe("c") as sub:
        group.start_soon(relay, client.websocket, sub)
        async with channels.subscribe("c", presence={"user": "ann"}):
            pass  # a join and a leave: not sent
        await channels.publish("c", "hi")
        assert await client.next_data() == "hi"
        client.disconnect()


async def test_relay_of_a_subscription_that_already_overflowed_closes_with_1013(
    channels: Channels, client: FakeClient
) -> None:
    async with channels.subscribe("c", max_queue=1, policy="close") as sub:
        for i in range(3):
            await channels.publish("c", i)
        with anyio.fail_after(5):
            # The client never confirms the close: the drain ends at its bound.
            await relay(client.websocket, sub, drain_timeout=0.2)
    messages = [await client.next_message() for _ in range(2)]
    assert messages[-1]["code"] == 1013


# -- one writer, one reader: no task outlives the relay ------------------------------


async def test_a_relay_cancelled_from_outside_leaves_no_reader_behind(
    channels: Channels, client: FakeClient
) -> None:
    async with channels.subscribe("c") as sub:
        with anyio.move_on_after(0.1) as scope:
            await relay(client.websocket, sub)
        assert scope.cancelled_caught
        client.send_text("nobody reads this")
        await anyio.sleep(0.05)
    # Still queued at the "server": the reader ended with the relay.
    assert client._from_client.statistics().current_buffer_used == 1


async def test_a_client_that_leaves_while_its_1013_is_stuck_ends_the_relay_at_once(
    channels: Channels, client: FakeClient
) -> None:
    async with channels.subscribe("c", max_queue=2, policy="close") as sub:
        await client.websocket.accept()
        client.stall(close_too=True)
        started = time.monotonic()
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: relay(client.websocket, sub, close_timeout=30))
            for i in range(5):
                await channels.publish("c", i)
                await anyio.sleep(0)
            with anyio.fail_after(5):
                while not sub.closed:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.05)  # the relay now waits in its close
            client.disconnect(1006)
        assert time.monotonic() - started < 10  # not the close_timeout of 30 s
