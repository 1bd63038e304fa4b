"""ChannelsEndpoint over the in-process test client: the protocol's requests and pushes."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest

from lilya.apps import Lilya
from lilya.channels import Channels, PublishOutcomeUnknownError
from lilya.exceptions import ImproperlyConfigured
from lilya.limits import RateLimit
from lilya.protocol import ChannelOptions, ChannelsEndpoint, ProtocolError
from lilya.routing import WebSocketPath
from lilya.testclient import AsyncTestClient
from lilya.websockets import WebSocketDisconnect
from tests.protocol import hooks
from tests.protocol.peer import Peer

pytestmark = pytest.mark.anyio

Connector = Callable[..., Any]


@asynccontextmanager
async def served(
    hub: Channels | None = None,
    route: dict[str, Any] | None = None,
    lifespan: bool = True,
    **options: Any,
) -> AsyncIterator[tuple[Channels, Connector]]:
    """An app with the endpoint at /ws over memory channels; yields (channels, connect).

    Without *lifespan* the test connects the channels itself (from its own task,
    so that it may disconnect them too).
    """
    hub = hub or Channels("memory://")
    endpoint = ChannelsEndpoint(hub, **{"heartbeat": None, **options})
    routes = [WebSocketPath("/ws", endpoint, **(route or {}))]
    app = Lilya(routes=routes, lifespan=hub.lifespan if lifespan else None)
    async with AsyncTestClient(app) as client:

        @asynccontextmanager
        async def connect(path: str = "/ws", **kwargs: Any) -> AsyncIterator[Peer]:
            async with client.websocket_connect(path, **kwargs) as session:
                yield Peer(session)

        yield hub, connect


async def test_connect_subscribe_publish_and_the_message_push_with_its_position() -> None:
    async with served() as (hub, connect), connect() as peer:
        ok = await peer.ok("connect", name="tab")
        assert ok["user"] is None and ok["expires_at"] is None and ok["heartbeat"] is None
        assert isinstance(ok["client"], str)
        sub = await peer.ok("subscribe", channel="room:1")
        assert sub["recovered"] is False and sub["offset"] == 0
        pub = await peer.ok("publish", channel="room:1", data={"text": "hi"})
        assert pub == {"epoch": sub["epoch"], "offset": 1}
        push = await peer.push()
        assert push == {
            "type": "message",
            "channel": "room:1",
            "epoch": sub["epoch"],
            "offset": 1,
            "data": {"text": "hi"},
        }
        await hub.publish("room:1", "from the server")
        assert (await peer.push())["data"] == "from the server"
        assert await peer.ok("unsubscribe", channel="room:1") == {}
        assert (await peer.error("unsubscribe", channel="room:1"))["code"] == "not_subscribed"
        assert await peer.ok("ping") == {}


async def test_a_hundred_channels_over_one_socket_each_get_their_message_at_their_position() -> (
    None
):
    async with served() as (hub, connect), connect() as peer:
        for n in range(100):
            await peer.ok("subscribe", channel=f"c{n}")
        for n in range(100):
            for _ in range(n % 3):  # each channel at its own offset
                await hub.publish(f"c{n}", "filler")
        for n in range(100):
            await hub.publish(f"c{n}", {"n": n})
        got: dict[str, list[tuple[int, Any]]] = {}
        for _ in range(100 + sum(n % 3 for n in range(100))):
            push = await peer.push()
            assert push["type"] == "message"
            got.setdefault(push["channel"], []).append((push["offset"], push["data"]))
        for n in range(100):
            offsets = [offset for offset, _ in got[f"c{n}"]]
            assert offsets == list(range(1, n % 3 + 2))
            assert got[f"c{n}"][-1] == (n % 3 + 1, {"n": n})
        assert (await peer.error("subscribe", channel="c100"))["code"] == "limit"


async def test_a_retried_publish_with_the_same_message_id_is_delivered_once() -> None:
    async with served() as (_, connect), connect() as peer:
        await peer.ok("subscribe", channel="c")
        first = await peer.ok("publish", channel="c", data=1, message_id="m-1")
        again = await peer.ok("publish", channel="c", data=1, message_id="m-1")
        assert first == again
        await peer.ok("publish", channel="c", data=2, message_id="m-2")
        assert [(await peer.push())["data"] for _ in range(2)] == [1, 2]
        assert peer.pushes == []


async def test_since_recovers_what_was_missed_after_a_reconnect_without_gap_or_duplicate() -> None:
    async with served() as (hub, connect):
        async with connect() as peer:
            await peer.ok("subscribe", channel="c")
            await hub.publish("c", "a")
            last = await peer.push()
        for text in ("b", "c"):
            await hub.publish("c", text)
        async with connect() as peer:
            since = {"epoch": last["epoch"], "offset": last["offset"]}
            reply = await peer.ok("subscribe", channel="c", since=since)
            assert reply["recovered"] is True
            await hub.publish("c", "d")
            got = [await peer.push() for _ in range(3)]
            assert [(p["offset"], p["data"]) for p in got] == [(2, "b"), (3, "c"), (4, "d")]


async def test_since_from_another_epoch_replies_not_recovered_and_pushes_a_reset() -> None:
    async with served() as (hub, connect), connect() as peer:
        await hub.publish("c", "a")
        reply = await peer.ok("subscribe", channel="c", since={"epoch": "gone", "offset": 3})
        assert reply["recovered"] is False
        reset = await peer.push()
        assert reset == {"type": "reset", "channel": "c", "epoch": reply["epoch"], "offset": 1}
        await hub.publish("c", "b")
        assert (await peer.push())["offset"] == 2


async def test_since_is_not_served_when_the_channel_keeps_no_history() -> None:
    options = {"log:*": ChannelOptions(history_size=0)}
    async with served(channels=options) as (hub, connect), connect() as peer:
        await hub.publish("log:1", "a")
        position = await hub.position("log:1")
        since = {"epoch": position.epoch, "offset": 0}
        reply = await peer.ok("subscribe", channel="log:1", since=since)
        assert reply["recovered"] is False
        assert (await peer.push())["type"] == "reset"
        assert (await peer.error("history", channel="log:1"))["code"] == "forbidden"


# -- bad frames: the peer's doing, answered, the socket stays open -------------------


@pytest.mark.parametrize(
    ("frame", "request_id", "problem"),
    [
        ("not json", None, "malformed"),
        ("[1, 2]", None, "Expected `object`"),
        ('{"type": "nope", "id": 4}', 4, "`$.type`"),
        ('{"id": 5}', 5, "`type`"),
        ('{"type": "subscribe", "id": 6, "channel": 7}', 6, "`$.channel`"),
        ('{"type": "subscribe", "id": "s", "channel": "c", "since": {"epoch": 1}}', "s", "since"),
        ('{"type": "ping", "id": true}', None, "`$.id`"),
        ('{"type": "publish", "id": 8, "channel": "c"}', 8, "`data`"),
        ('{"type": "history", "id": 9, "channel": "c", "limit": -1}', 9, "limit"),
        ('{"type": "subscribe", "id": 10, "channel": ""}', 10, "channel"),
        (
            '{"type": "subscribe", "id": 11, "channel": "c", '
            '"since": {"epoch": "e", "offset": -1}}',
            11,
            "offset",
        ),
        ('{"type": "connect", "id": 12, "name": "' + "x" * 300 + '"}', 12, "name"),
        (
            '{"type": "publish", "id": 13, "channel": "c", "data": 1, "message_id": ""}',
            13,
            "message_id",
        ),
    ],
)
async def test_a_frame_the_server_cannot_use_gets_bad_request_and_the_socket_stays_open(
    frame: str, request_id: Any, problem: str
) -> None:
    async with served() as (_, connect), connect() as peer:
        await peer.session.send_text(frame)
        reply = await peer.frame()
        assert reply["id"] == request_id
        assert reply["error"]["code"] == "bad_request"
        assert problem in reply["error"]["message"]
        assert await peer.ok("ping") == {}


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 100_000,
        '{"type": "publish", "id": 1, "channel": "c", "data": ' + "[" * 100_000,
        '{"type": "nope", "id": 1, "data": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"type": "ping", "id": "\\ud800"}',
        '{"type": "ping", "id": "\ud800"}',
    ],
    ids=["deep", "deep-data", "deep-after-a-bad-type", "escaped-surrogate", "raw-surrogate"],
)
async def test_hostile_json_is_a_bad_request_with_no_id_and_no_traceback(
    frame: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with served() as (_, connect), connect() as peer:
        await peer.session.send_text(frame)
        reply = await peer.frame()
        assert reply["id"] is None and reply["error"]["code"] == "bad_request"
        assert await peer.ok("ping") == {}
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_binary_frame_is_read_as_json_too() -> None:
    async with served() as (_, connect), connect() as peer:
        await peer.session.send_bytes(b'{"type": "ping", "id": 1}')
        assert await peer.frame() == {"id": 1, "ok": {}}


async def test_ten_thousand_subscribe_requests_hit_the_channel_limit_then_the_rate_limit() -> None:
    route = {"rate_limit": RateLimit(per_second=10, burst=300)}
    async with served(route=route) as (_, connect), connect() as peer:
        for n in range(10_000):
            await peer.send({"type": "subscribe", "id": n, "channel": f"c{n}"})
        codes: list[str] = []
        code, reason = await peer.closed()
        assert code == 1008 and "rate_limit" in reason
        for frame in peer.pushes:
            codes.append("ok" if "ok" in frame else frame["error"]["code"])
        assert codes[:100] == ["ok"] * 100
        assert set(codes[100:]) == {"limit"}
        assert 100 < len(codes) < 10_000  # the rest were never read: the socket closed


async def test_a_frame_over_max_message_size_closes_1009() -> None:
    route = {"max_message_size": 100}
    async with served(route=route) as (_, connect), connect() as peer:
        await peer.ok("subscribe", channel="c")
        await peer.send({"type": "publish", "id": 1, "channel": "c", "data": "x" * 200})
        assert (await peer.closed())[0] == 1009


async def test_a_rate_limit_close_while_the_writer_is_blocked_ends_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    route = {"rate_limit": RateLimit(per_second=1, burst=50)}
    async with served(route=route, send_queue=1) as (hub, connect), connect() as peer:
        await peer.ok("subscribe", channel="c")
        await peer.session.pause_reading()
        for n in range(20):
            await hub.publish("c", n)  # the writer blocks on the first of them
        for n in range(60):
            await peer.send({"type": "ping", "id": n})
        await peer.session.resume_reading()
        code, _ = await peer.closed()
        assert code == 1008
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_client_that_stops_reading_gets_a_gap_for_what_was_dropped() -> None:
    hub = Channels("memory://", max_queue=5, stall_timeout=0.05)
    async with served(hub, send_queue=2) as (_, connect), connect() as peer:
        await peer.ok("subscribe", channel="c")
        await peer.session.pause_reading()
        for n in range(60):
            await hub.publish("c", n)
        await peer.session.resume_reading()
        seen: list[dict[str, Any]] = []
        while True:
            try:
                seen.append(await peer.push(timeout=0.3))
            except TimeoutError:
                break
        kinds = [frame["type"] for frame in seen]
        assert "gap" in kinds
        gap = next(frame for frame in seen if frame["type"] == "gap")
        delivered = [frame["offset"] for frame in seen if frame["type"] == "message"]
        assert len(delivered) + gap["dropped"] == 60
        assert gap["first"] is not None and gap["last"] >= gap["first"]


async def test_a_flood_to_a_client_that_stopped_reading_holds_bounded_queues() -> None:
    hub = Channels("memory://", max_queue=5, stall_timeout=0.05)
    async with served(hub, send_queue=2) as (_, connect), connect() as slow, connect() as healthy:
        await slow.ok("subscribe", channel="c")
        await healthy.ok("subscribe", channel="c")
        await slow.session.pause_reading()
        for n in range(50):
            await slow.send({"type": "ping", "id": 100 + n})  # replies it will not read
        deepest = 0
        for n in range(2000):
            await hub.publish("c", n)
            deepest = max(deepest, *(sub.queued for sub in hub._locals["c"].subs))
        assert deepest <= 5  # the channel's bound, whatever the flood
        got = [(await healthy.push())["data"] for _ in range(2000)]
        assert got == list(range(2000))
        await slow.session.resume_reading()
        seen: list[dict[str, Any]] = []
        while True:
            try:
                seen.append(await slow.frame(timeout=0.3))
            except TimeoutError:
                break
        replies = [frame["id"] for frame in seen if "id" in frame]
        assert replies == list(range(100, 150))  # every one, in order
        messages = [frame["data"] for frame in seen if frame.get("type") == "message"]
        dropped = sum(frame["dropped"] for frame in seen if frame.get("type") == "gap")
        assert messages == sorted(messages)
        assert len(messages) + dropped == 2000
        assert dropped > 0


# -- authentication ---------------------------------------------------------------------


async def test_with_authenticate_every_request_before_connect_is_unauthorized() -> None:
    async with served(authenticate=hooks.authenticate) as (_, connect), connect() as peer:
        assert (await peer.error("subscribe", channel="c"))["code"] == "unauthorized"
        ok = await peer.ok("connect", token="ann", name="tab")
        assert ok["user"] == "ann"
        await peer.ok("subscribe", channel="c")
        assert (await peer.error("connect", token="ann"))["code"] == "bad_request"


async def test_a_bad_token_in_connect_is_answered_then_closed_4003() -> None:
    async with served(authenticate=hooks.authenticate) as (_, connect), connect() as peer:
        assert (await peer.error("connect", token="mallory"))["code"] == "unauthorized"
        assert await peer.closed() == (4003, "bad token")
        assert peer.pushes == [
            {"type": "disconnect", "code": 4003, "reason": "bad token", "reconnect": False}
        ]


async def test_connect_without_a_token_when_one_is_needed_closes_4003() -> None:
    async with served(authenticate=hooks.authenticate) as (_, connect), connect() as peer:
        assert (await peer.error("connect"))["code"] == "unauthorized"
        assert (await peer.closed())[0] == 4003


async def test_no_connect_within_connect_timeout_closes_4003() -> None:
    options: dict[str, Any] = {"authenticate": hooks.authenticate, "connect_timeout": 0.2}
    async with served(**options) as (_, connect), connect() as peer:
        assert await peer.closed() == (4003, "no connect in time")


@pytest.mark.parametrize(
    ("kwargs", "subprotocol"),
    [
        ({"subprotocols": ["bearer", "ann"]}, "bearer"),
        ({"cookies": {"token": "ann"}}, None),
        ({"params": {"token": "ann"}}, None),
    ],
)
async def test_a_handshake_token_authenticates_the_socket(
    kwargs: dict[str, Any], subprotocol: str | None
) -> None:
    async with served(authenticate=hooks.authenticate) as (_, connect), connect(**kwargs) as peer:
        assert peer.session.accepted_subprotocol == subprotocol
        await peer.ok("subscribe", channel="c")  # no connect needed
        assert (await peer.ok("connect", name="tab"))["user"] == "ann"


async def test_a_bad_handshake_token_is_a_401_denial_before_accept() -> None:
    async with served(authenticate=hooks.authenticate) as (_, connect):
        with pytest.raises(WebSocketDisconnect) as caught:
            async with connect(subprotocols=["bearer", "mallory"]):
                pass
        assert getattr(caught.value, "status_code", None) == 401


async def test_an_authenticate_hook_that_raises_on_the_handshake_is_a_500_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(websocket: Any, token: str) -> Any:
        raise RuntimeError("auth db down")

    async with served(authenticate=boom) as (_, connect):
        with pytest.raises(WebSocketDisconnect) as caught:
            async with connect(params={"token": "x"}):
                pass
        assert getattr(caught.value, "status_code", None) == 500
    assert len([r for r in caplog.records if r.exc_info]) == 1


async def test_an_expired_token_gets_a_disconnect_push_and_close_4001() -> None:
    async with served(authenticate=hooks.authenticate) as (_, connect), connect() as peer:
        ok = await peer.ok("connect", token="ann:0.2")
        assert ok["expires_at"] is not None
        assert await peer.closed() == (4001, "token expired")
        assert peer.pushes[-1] == {
            "type": "disconnect",
            "code": 4001,
            "reason": "token expired",
            "reconnect": False,
        }


async def test_refresh_with_an_accepted_token_extends_the_socket() -> None:
    async with served(authenticate=hooks.authenticate) as (_, connect), connect() as peer:
        await peer.ok("connect", token="ann:0.3")
        assert (await peer.error("refresh", token="mallory"))["code"] == "unauthorized"
        assert (await peer.error("refresh", token="bob:60"))["code"] == "forbidden"
        refreshed = await peer.ok("refresh", token="ann:60")
        assert refreshed["expires_at"] > 0
        await anyio.sleep(0.5)
        assert await peer.ok("ping") == {}
        assert (await peer.ok("refresh", token="ann"))["expires_at"] is None


async def test_refresh_without_an_authenticate_hook_is_a_bad_request() -> None:
    async with served() as (_, connect), connect() as peer:
        assert (await peer.error("refresh", token="t"))["code"] == "bad_request"


# -- authorization, options, rpc, presence, history -------------------------------------


async def test_authorize_is_asked_for_each_action_and_refuses_unless_true() -> None:
    options: dict[str, Any] = {"authenticate": hooks.authenticate, "authorize": hooks.authorize}
    async with served(**options) as (_, connect), connect(params={"token": "bob"}) as peer:
        await peer.ok("subscribe", channel="public:1")
        error = await peer.error("publish", channel="public:1", data=1)
        assert error == {"code": "forbidden", "message": "not allowed to publish 'public:1'"}
        assert (await peer.error("subscribe", channel="secret"))["code"] == "forbidden"
        assert (await peer.error("history", channel="secret"))["code"] == "forbidden"


async def test_channel_options_are_found_by_exact_name_then_longest_prefix() -> None:
    options = {
        "*": ChannelOptions(),
        "news:*": ChannelOptions(publish="server"),
        "news:open:*": ChannelOptions(),
        "news:locked": ChannelOptions(publish="server"),
    }
    async with (
        served(channels=options, authenticate=hooks.authenticate) as (_, connect),
        connect(params={"token": "ann"}) as peer,
    ):
        assert (await peer.error("publish", channel="news:1", data=1))["code"] == "forbidden"
        await peer.ok("publish", channel="news:open:1", data=1)
        await peer.ok("publish", channel="other", data=1)
        error = await peer.error("publish", channel="news:locked", data=1)
        assert error["code"] == "forbidden"


async def test_a_channel_no_pattern_names_is_forbidden_and_users_only_publish_needs_a_user() -> (
    None
):
    options = {"room:*": ChannelOptions(publish="users")}
    async with served(channels=options) as (_, connect), connect() as peer:
        error = await peer.error("subscribe", channel="elsewhere")
        assert error["code"] == "forbidden" and "elsewhere" in error["message"]
        assert (await peer.error("publish", channel="room:1", data=1))["code"] == "forbidden"


async def test_rpc_returns_the_result_and_tells_every_failure_apart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with served(rpc=hooks.RPC) as (_, connect), connect() as peer:
        await peer.ok("connect", name="tab")
        ok = await peer.ok("rpc", method="whoami", data=[1])
        assert ok == {"data": {"user": None, "name": "tab", "echo": [1]}}
        assert (await peer.error("rpc", method="nope"))["code"] == "not_found"
        assert await peer.error("rpc", method="refuse") == {
            "code": "forbidden",
            "message": "not today",
        }
        assert (await peer.error("rpc", method="broken"))["code"] == "internal"
        assert (await peer.error("rpc", method="unencodable"))["code"] == "internal"
        assert await peer.ok("ping") == {}
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 2


async def test_presence_lists_members_and_pushes_joins_and_leaves_to_who_asked() -> None:
    options = {"room:*": ChannelOptions(presence=True), "quiet": ChannelOptions()}
    async with served(channels=options) as (_, connect), connect() as watcher:
        await watcher.ok("connect", name="watcher")
        await watcher.ok("subscribe", channel="room:1", presence=True)
        joined = await watcher.push()  # itself, in the snapshot
        assert joined["type"] == "join" and joined["info"] == {"user": None, "name": "watcher"}
        async with connect() as other:
            await other.ok("connect", name="other")
            await other.ok("subscribe", channel="room:1")
            join = await watcher.push()
            assert join["type"] == "join" and join["info"]["name"] == "other"
            members = (await watcher.ok("presence", channel="room:1"))["members"]
            assert sorted(info["name"] for info in members.values()) == ["other", "watcher"]
        leave = await watcher.push()
        assert leave == {**join, "type": "leave"}
        assert (await watcher.error("presence", channel="quiet"))["code"] == "forbidden"
        error = await watcher.error("subscribe", channel="quiet", presence=True)
        assert error["code"] == "forbidden"


async def test_history_returns_retained_messages_capped_by_the_channel_option() -> None:
    options = {"*": ChannelOptions(history_size=2)}
    async with served(channels=options) as (hub, connect), connect() as peer:
        for n in range(4):
            await hub.publish("c", n)
        empty = await peer.ok("history", channel="nothing-yet")
        assert (empty["messages"], empty["offset"]) == ([], 0)
        ok = await peer.ok("history", channel="c")
        assert [m["data"] for m in ok["messages"]] == [2, 3]
        assert ok["offset"] == 4
        assert [
            m["offset"] for m in (await peer.ok("history", channel="c", limit=1))["messages"]
        ] == [4]


async def test_a_message_published_while_history_is_read_is_not_skipped_by_since(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Staged: a publish lands just after the endpoint read the history. The
    # reply's position must not claim it (it is not in the list), so that a
    # client resuming since that position still gets it.
    async with served() as (hub, connect), connect() as peer:
        await hub.publish("c", "first")
        read_history = hub.history

        async def history_then_a_publish(channel: str, *, limit: int | None = None) -> Any:
            events = await read_history(channel, limit=limit)
            monkeypatch.setattr(hub, "history", read_history)
            await hub.publish(channel, "raced")
            return events

        monkeypatch.setattr(hub, "history", history_then_a_publish)
        ok = await peer.ok("history", channel="c")
        assert [m["data"] for m in ok["messages"]] == ["first"]
        assert ok["offset"] == 1
        since = {"epoch": ok["epoch"], "offset": ok["offset"]}
        await peer.ok("subscribe", channel="c", since=since)
        assert (await peer.push())["data"] == "raced"


async def test_a_message_published_after_the_position_was_read_is_in_the_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Staged the other way: the publish lands between the position and the
    # history. It is in the list, so the reply's position moves past it.
    async with served() as (hub, connect), connect() as peer:
        await hub.publish("c", "first")
        read_position = hub.position

        async def position_then_a_publish(channel: str) -> Any:
            position = await read_position(channel)
            monkeypatch.setattr(hub, "position", read_position)
            await hub.publish(channel, "raced")
            return position

        monkeypatch.setattr(hub, "position", position_then_a_publish)
        ok = await peer.ok("history", channel="c")
        assert [m["data"] for m in ok["messages"]] == ["first", "raced"]
        assert ok["offset"] == 2


async def test_a_typed_channel_refuses_a_payload_that_does_not_fit() -> None:
    class Said(msgspec.Struct):
        text: str

    options = {"room:*": ChannelOptions(payload=Said)}
    async with served(channels=options) as (_, connect), connect() as peer:
        await peer.ok("subscribe", channel="room:1")
        error = await peer.error("publish", channel="room:1", data={"text": 5})
        assert error["code"] == "bad_request" and "text" in error["message"]
        await peer.ok("publish", channel="room:1", data={"text": "hi"})
        assert (await peer.push())["data"] == {"text": "hi"}


async def test_bytes_published_by_the_server_reach_the_client_as_a_gap_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with served() as (hub, connect), connect() as peer:
        await peer.ok("subscribe", channel="c")
        await hub.publish("c", b"\x00raw")
        gap = await peer.push()
        assert gap == {"type": "gap", "channel": "c", "epoch": gap["epoch"], "first": 1,
                       "last": 1, "dropped": 1}  # fmt: skip
        assert (await peer.ok("history", channel="c"))["messages"] == []
    assert "carries bytes" in caplog.text


async def test_backend_failures_are_unavailable_and_unknown_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with served(lifespan=False) as (hub, connect), connect() as peer:
        assert (await peer.error("subscribe", channel="c"))["code"] == "unavailable"

        async def lost(*args: Any, **kwargs: Any) -> Any:
            raise PublishOutcomeUnknownError(hub.url, "c", "m", TimeoutError("timed out"))

        monkeypatch.setattr(hub, "publish", lost)
        error = await peer.error("publish", channel="c", data=1, message_id="m")
        assert error["code"] == "unknown_outcome"


async def test_when_the_channels_shut_down_the_socket_is_told_and_closed_1001() -> None:
    async with served(lifespan=False) as (hub, connect), connect() as peer:
        await hub.connect()
        await peer.ok("subscribe", channel="c")
        await hub.disconnect()
        assert await peer.closed() == (1001, "channels closed")
        assert peer.pushes[-1]["reconnect"] is True


# -- heartbeat -------------------------------------------------------------------------


async def test_a_pong_keeps_the_socket_and_a_missing_one_closes_1011() -> None:
    async with served(heartbeat=(0.05, 0.2)) as (_, connect), connect() as peer:
        assert (await peer.ok("connect"))["heartbeat"] == 0.05
        for _ in range(3):
            assert await peer.push() == {"type": "ping"}
            await peer.send({"type": "pong"})
        assert await peer.push() == {"type": "ping"}
        assert await peer.closed() == (1011, "heartbeat timeout")


# -- construction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"authenticate": "nope"},
        {"identify": 3},
        {"rpc": {"m": 3}},
        {"max_channels": 0},
        {"connect_timeout": 0},
        {"heartbeat": (1.0,)},
        {"heartbeat": (1.0, float("inf"))},
        {"tokens": "query"},
        {"send_queue": 0},
        {"channels": {"room:*": {}}},
        {"channels": {"ro*m": ChannelOptions()}},
    ],
)
def test_a_wrong_setting_is_improperly_configured_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ImproperlyConfigured):
        ChannelsEndpoint(Channels("memory://"), **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"history_size": -1}, {"publish": "everyone"}, {"max_queue": 0}, {"payload": 3}],
)
def test_a_wrong_channel_option_is_improperly_configured(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ImproperlyConfigured):
        ChannelOptions(**kwargs)


def test_the_endpoint_needs_channels_and_protocol_errors_need_a_known_code() -> None:
    with pytest.raises(ImproperlyConfigured):
        ChannelsEndpoint("memory://")  # type: ignore[arg-type]  # the mistake under test
    with pytest.raises(ValueError, match="bad_request"):
        ProtocolError("oops", "x")  # type: ignore[arg-type]  # the mistake under test


async def test_an_http_request_to_the_endpoint_is_told_to_upgrade() -> None:
    hub = Channels("memory://")
    endpoint = ChannelsEndpoint(hub)
    async with AsyncTestClient(endpoint) as client:
        response = await client.get("/")
    assert response.status_code == 426


def test_frames_round_trip_as_the_documented_json() -> None:
    from lilya.protocol import Request, Subscribe

    frame = msgspec.json.decode(
        b'{"type":"subscribe","id":1,"channel":"c","since":{"epoch":"e","offset":2}}',
        type=Request,
    )
    assert isinstance(frame, Subscribe) and frame.since is not None
    assert json.loads(msgspec.json.encode(frame))["type"] == "subscribe"
    assert logging.getLogger("lilya.protocol").name == "lilya.protocol"


async def _ends_by_client_close(peer: Peer) -> None:
    await peer.session.close(1000)


async def _ends_by_drop(peer: Peer) -> None:
    await peer.session.drop()


async def _ends_by_expiry(peer: Peer) -> None:
    await peer.ok("refresh", token="ann:0.1")
    assert (await peer.closed())[0] == 4001


async def _ends_by_size(peer: Peer) -> None:
    await peer.session.send_text("x" * 5000)
    assert (await peer.closed())[0] == 1009


async def _ends_by_rate(peer: Peer) -> None:
    for n in range(200):
        await peer.send({"type": "ping", "id": n})
    assert (await peer.closed())[0] == 1008


async def _ends_by_heartbeat(peer: Peer) -> None:
    assert (await peer.closed(timeout=10))[0] == 1011


@pytest.mark.parametrize(
    "ending",
    [
        _ends_by_client_close,
        _ends_by_drop,
        _ends_by_expiry,
        _ends_by_size,
        _ends_by_rate,
        _ends_by_heartbeat,
    ],
)
async def test_every_way_a_connection_ends_is_quiet_and_leaves_every_subscription(
    ending: Callable[[Peer], Any], caplog: pytest.LogCaptureFixture
) -> None:
    options: dict[str, Any] = {
        "authenticate": hooks.authenticate,
        "channels": {"*": ChannelOptions(presence=True)},
        "route": {"max_message_size": 1000, "rate_limit": RateLimit(per_second=1, burst=100)},
    }
    if ending is _ends_by_heartbeat:
        options["heartbeat"] = (0.1, 0.1)
    async with served(**options) as (hub, connect):
        async with connect(params={"token": "ann"}) as peer:
            for n in range(5):
                await peer.ok("subscribe", channel=f"c{n}")
            assert len((await peer.ok("presence", channel="c0"))["members"]) == 1
            await ending(peer)
        with anyio.fail_after(5):
            while hub._locals:  # every subscription left, on every channel
                await anyio.sleep(0.01)
        assert await hub.presence("c0") == {}
    assert not [r for r in caplog.records if r.exc_info]
