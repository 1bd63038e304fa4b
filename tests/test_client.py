"""lilya.client against a fake protocol server in process, on asyncio and trio."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import anyio
import pytest

from lilya import client as lc
from lilya.client import _Connection
from lilya.exceptions import ImproperlyConfigured
from lilya.responses import PlainText
from lilya.testclient import AsyncTestClient
from lilya.websockets import WebSocket
from tests.support.protocol_fake import FakeServer

pytestmark = pytest.mark.anyio


def open_client(server: FakeServer, **options: object) -> lc.Client:
    options.setdefault("token", "good")
    options.setdefault("reconnect_delay", (0.01, 0.05))
    return lc.connect("/ws", test_client=AsyncTestClient(server), **options)  # type: ignore[arg-type]


def state_of(client: lc.Client) -> lc.State:
    """The client's state, read afresh (mypy narrows an attribute read before an await)."""
    return client.state


async def take(sub: lc.Subscription, n: int) -> list[lc.Event]:
    got: list[lc.Event] = []
    with anyio.fail_after(5):
        async for event in sub:
            got.append(event)
            if len(got) == n:
                break
    return got


async def test_subscribe_publish_and_receive_in_order() -> None:
    server = FakeServer()
    async with open_client(server, name="bot") as client:
        assert client.state is lc.State.CONNECTED
        assert client.client_id == "c1" and client.user == "good"
        sub = await client.subscribe("room")
        assert sub.position == lc.Position("e1", 0)
        for i in range(3):
            assert await client.publish("room", {"n": i}) == lc.Position("e1", i + 1)
        got = await take(sub, 3)
        assert [e.data for e in got if isinstance(e, lc.Message)] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert sub.position == lc.Position("e1", 3)
    assert state_of(client) is lc.State.CLOSED
    assert server.frames[0]["name"] == "bot"


async def until(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait (bounded) until *predicate()* holds; fail the test otherwise."""
    with anyio.fail_after(seconds):
        while not predicate():
            await anyio.sleep(0.005)


def offsets(events: list[lc.Event]) -> list[int]:
    return [e.offset for e in events if isinstance(e, lc.Message)]


# -- resume ------------------------------------------------------------------------


async def test_a_restart_resumes_every_channel_from_its_last_position() -> None:
    server = FakeServer()
    states: list[lc.State] = []
    async with open_client(server, on_state=states.append) as client:
        room, news = await client.subscribe("room"), await client.subscribe("news")
        await client.publish("room", "r1")
        assert offsets(await take(room, 1)) == [1]
        # Published while the client is away: stored, not pushed.
        server.store("room", "r2")
        server.store("news", "n1")
        server.close_all(1012)
        assert [e.data for e in await take(room, 1)] == ["r2"]  # type: ignore[union-attr]
        assert [e.data for e in await take(news, 1)] == ["n1"]  # type: ignore[union-attr]
        assert client.connections == 2
        await client.publish("room", "r3")
        assert offsets(await take(room, 1)) == [3]
        resubscribes = [f for f in server.frames if f["type"] == "subscribe"][2:]
        assert {f["channel"]: f["since"] for f in resubscribes} == {
            "room": {"epoch": "e1", "offset": 1},
            "news": {"epoch": "e1", "offset": 0},
        }
        assert room.recovered and news.recovered
    assert states == [
        lc.State.CONNECTED,
        lc.State.RECONNECTING,
        lc.State.CONNECTED,
        lc.State.CLOSED,
    ]


async def test_a_replayed_message_already_taken_is_dropped_once() -> None:
    server = FakeServer()
    async with open_client(server) as client:
        sub = await client.subscribe("room")
        await client.publish("room", "a")
        await client.publish("room", "b")
        assert offsets(await take(sub, 2)) == [1, 2]
        await server.inject(
            {"type": "message", "channel": "room", "epoch": "e1", "offset": 2, "data": "b"}
        )
        await client.publish("room", "c")
        assert offsets(await take(sub, 1)) == [3]
        assert sub.duplicates == 1


async def test_history_lost_under_a_new_epoch_gives_a_reset_then_the_new_stream() -> None:
    server = FakeServer()
    async with open_client(server) as client:
        sub = await client.subscribe("room")
        await client.publish("room", "old")
        await take(sub, 1)
        server.forget("e2")
        server.close_all(1001)
        (reset,) = await take(sub, 1)
        assert reset == lc.Reset("room", "e2", 0)
        assert not sub.recovered
        await client.publish("room", "new")
        (message,) = await take(sub, 1)
        assert message == lc.Message("room", "e2", 1, "new")
        assert message.position == sub.position == lc.Position("e2", 1)


async def test_subscribe_since_a_stored_position_replays_what_came_after() -> None:
    server = FakeServer()
    for text in ("a", "b", "c"):
        server.store("room", text)
    async with open_client(server) as client:
        sub = await client.subscribe("room", since=lc.Position("e1", 1))
        assert [e.data for e in await take(sub, 2)] == ["b", "c"]  # type: ignore[union-attr]
        assert sub.recovered


async def test_a_gap_is_delivered_and_moves_the_position() -> None:
    server = FakeServer()
    async with open_client(server) as client:
        sub = await client.subscribe("room")
        gap = {"type": "gap", "channel": "room", "epoch": "e1", "first": 1, "last": 4, "dropped": 4}
        await server.inject(gap)
        assert await take(sub, 1) == [lc.Gap("room", "e1", 1, 4, 4)]
        assert sub.position == lc.Position("e1", 4)


async def test_presence_events_reach_a_subscription_that_asked_for_them() -> None:
    server = FakeServer()
    async with open_client(server) as client:
        sub = await client.subscribe("room", presence=True)
        assert server.frames[-1]["presence"] is True
        await server.inject({"type": "join", "channel": "room", "member": "u1", "info": {"a": 1}})
        await server.inject({"type": "leave", "channel": "room", "member": "u1", "info": {}})
        assert await take(sub, 2) == [
            lc.Join("room", "u1", {"a": 1}),
            lc.Leave("room", "u1", {}),
        ]
        assert await client.presence("room") == {"good": {"n": 0}}


async def test_a_push_for_a_channel_not_subscribed_is_ignored() -> None:
    server = FakeServer()
    async with open_client(server) as client:
        await server.inject(
            {"type": "message", "channel": "other", "epoch": "e1", "offset": 1, "data": 1}
        )
        assert await client.call("echo", 1) == 1
        assert client.connections == 1


# -- publish -----------------------------------------------------------------------


async def test_a_publish_cut_off_before_its_answer_is_retried_and_delivered_once() -> None:
    server = FakeServer(drop_after_publish=1)
    async with open_client(server) as client:
        sub = await client.subscribe("room")
        position = await client.publish("room", "once")
        assert position == lc.Position("e1", 1)
        publishes = [f for f in server.frames if f["type"] == "publish"]
        assert len(publishes) == 2
        assert publishes[0]["message_id"] == publishes[1]["message_id"]
        assert server.messages["room"] == [(1, "once")]
        await client.publish("room", "next")
        assert [e.data for e in await take(sub, 2)] == ["once", "next"]  # type: ignore[union-attr]
        assert client.connections == 2


async def test_publish_sends_the_message_id_you_give() -> None:
    server = FakeServer()
    async with open_client(server) as client:
        await client.publish("room", 1, message_id="m-1")
        await client.publish("room", 1, message_id="m-1")
        assert server.messages["room"] == [(1, 1)]
        assert server.frames[-1]["message_id"] == "m-1"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("unknown_outcome", lc.UnknownOutcome),
        ("unavailable", lc.Unavailable),
        ("forbidden", lc.Forbidden),
        ("limit", lc.LimitExceeded),
        ("something_new", lc.RequestError),
    ],
)
async def test_publish_errors_are_specific_exceptions(
    code: str, error: type[lc.RequestError]
) -> None:
    server = FakeServer(publish_errors=[code])
    async with open_client(server) as client:
        with pytest.raises(error) as info:
            await client.publish("room", 1, message_id="m-7")
        assert type(info.value) is error
        assert info.value.code == code and info.value.request == "publish"
        assert "as told" in str(info.value)
        if error is lc.UnknownOutcome:
            assert info.value.message_id == "m-7"  # type: ignore[attr-defined]
            # Retrying with the same id is what the error asks for, and it works.
            assert await client.publish("room", 1, message_id="m-7") == lc.Position("e1", 1)


async def test_data_json_cannot_carry_is_refused_before_sending() -> None:
    server = FakeServer()
    async with open_client(server) as client:
        with pytest.raises(TypeError, match="not JSON serializable"):
            await client.publish("room", object())
        assert [f["type"] for f in server.frames] == ["connect"]


# -- call, presence, history ----------------------------------------------------------


async def test_call_returns_what_the_handler_returned_and_raises_its_errors() -> None:
    server = FakeServer()
    async with open_client(server) as client:
        assert await client.call("echo", {"x": [1, 2]}) == {"x": [1, 2]}
        with pytest.raises(lc.InternalError):
            await client.call("boom")
        with pytest.raises(lc.NotFound, match="nope"):
            await client.call("nope")


async def test_a_call_cut_off_is_not_sent_again() -> None:
    server = FakeServer()
    async with open_client(server) as client:
        with pytest.raises(lc.ConnectionLost, match="whether it ran is unknown"):
            await client.call("hang")
        await client.wait_connected(timeout=5)
        assert server.rpc_calls == 1
        assert client.connections == 2


async def test_a_call_not_answered_in_time_raises_timeout_and_its_late_answer_is_ignored() -> None:
    server = FakeServer(silent={"rpc"})
    async with open_client(server) as client:
        with pytest.raises(TimeoutError, match=r"No answer to 'rpc' within 0\.05 s"):
            await client.call("echo", 1, timeout=0.05)
        late = server.frames[-1]["id"]
        await server.inject({"id": late, "ok": {"data": 1}})
        server.silent.clear()
        assert await client.call("echo", 2) == 2
        assert client.connections == 1


async def test_history_returns_the_retained_messages() -> None:
    server = FakeServer()
    for text in ("a", "b", "c"):
        server.store("room", text)
    async with open_client(server) as client:
        history = await client.history("room", limit=2)
        assert history.position == lc.Position("e1", 3)
        assert history.messages == [
            lc.Message("room", "e1", 2, "b"),
            lc.Message("room", "e1", 3, "c"),
        ]
        assert "messages=<2>" in repr(history)
        assert len((await client.history("room")).messages) == 3


# -- subscriptions -------------------------------------------------------------------


async def test_a_refused_subscribe_raises_and_leaves_no_subscription() -> None:
    server = FakeServer()
    async with open_client(server) as client:
        with pytest.raises(lc.Forbidden, match="not yours"):
            await client.subscribe("secret")
        sub = await client.subscribe("room")
        with pytest.raises(ValueError, match="subscribed to 'room' already"):
            await client.subscribe("room")
        assert repr(sub) == "<Subscription 'room' at Position(epoch='e1', offset=0)>"


async def test_unsubscribe_ends_iteration_and_tells_the_server() -> None:
    server = FakeServer()
    async with open_client(server) as client:
        async with await client.subscribe("room") as sub:
            pass
        assert server.frames[-1] == {"type": "unsubscribe", "id": 3, "channel": "room"}
        assert [e async for e in sub] == []
        await sub.unsubscribe()  # twice: nothing
        # The channel can be subscribed again.
        await client.subscribe("room")


async def test_a_subscription_that_is_not_read_holds_the_socket_and_loses_nothing() -> None:
    server = FakeServer()
    client_app = AsyncTestClient(server)
    slow = lc.connect("/ws", test_client=client_app, token="good", max_buffer=2)
    fast = lc.connect("/ws", test_client=client_app, token="good")
    async with slow, fast:
        sub = await slow.subscribe("room")
        for i in range(6):
            await fast.publish("room", i)
        assert len(sub._buffer) == 2
        assert [e.data for e in await take(sub, 6)] == list(range(6))  # type: ignore[union-attr]


async def test_closing_the_client_ends_every_subscription_quietly() -> None:
    server = FakeServer()
    async with open_client(server) as client:
        sub = await client.subscribe("room")
    assert [e async for e in sub] == []
    with pytest.raises(lc.ClientClosed) as info:
        await client.publish("room", 1)
    assert info.value.code == 1000
    with pytest.raises(lc.ClientClosed):
        await client.subscribe("other")
    await client.aclose()  # twice: nothing


# -- tokens and close codes ----------------------------------------------------------


async def test_an_expired_token_closes_4001_and_the_client_stops_without_get_token() -> None:
    server = FakeServer(tokens={"short": time.time() + 0.2})
    async with open_client(server, token="short") as client:
        sub = await client.subscribe("room")
        with pytest.raises(lc.ClientClosed) as info:
            await take(sub, 1)
        assert info.value.code == 4001
        assert "token expired" in info.value.reason
        assert "no get_token" in info.value.reason
        assert client.state is lc.State.CLOSED
        with pytest.raises(lc.ClientClosed):
            await client.call("echo")


async def test_after_4001_the_client_fetches_a_new_token_and_resumes() -> None:
    expiry = time.time() + 0.2
    server = FakeServer(tokens={"short": expiry, "long": None})
    # "short" twice: at connect and at refresh (the server does not extend it).
    tokens = iter(["short", "short", "long"])
    async with open_client(server, token=None, get_token=lambda: next(tokens)) as client:
        sub = await client.subscribe("room")
        server.store("room", "while away")
        await until(lambda: client.connections == 2 and client.state is lc.State.CONNECTED)
        assert [e.data for e in await take(sub, 1)] == ["while away"]  # type: ignore[union-attr]
        assert client.user == "long"
        assert [f["token"] for f in server.frames if f["type"] in ("connect", "refresh")] == [
            "short",
            "short",
            "long",
        ]


async def test_an_expiring_token_is_refreshed_before_it_expires() -> None:
    server = FakeServer(tokens={"short": time.time() + 0.3, "long": None})
    tokens = iter(["short", "long"])

    async def get_token() -> str:
        return next(tokens)

    async with open_client(server, token=None, get_token=get_token) as client:
        await until(lambda: any(f["type"] == "refresh" for f in server.frames))
        await anyio.sleep(0.3)
        assert client.connections == 1
        assert client.expires_at is None
        assert await client.call("echo", 1) == 1


async def test_a_bad_token_stops_the_client_at_once() -> None:
    server = FakeServer()
    with pytest.raises(lc.ClientClosed) as info:
        async with open_client(server, token="bad"):
            pass  # pragma: no cover
    assert info.value.code == 4003
    assert "unauthorized" in info.value.reason


async def test_get_token_returning_none_stops_the_client() -> None:
    with pytest.raises(lc.ClientClosed, match="get_token\\(\\) returned None"):
        async with open_client(FakeServer(), token=None, get_token=lambda: None):
            pass  # pragma: no cover


@pytest.mark.parametrize("code", [1000, 1002, 1008, 1009, 4003])
async def test_close_codes_that_say_stop_stop_the_client(code: int) -> None:
    server = FakeServer()
    async with open_client(server) as client:
        sub = await client.subscribe("room")
        server.close_all(code)
        with pytest.raises(lc.ClientClosed) as info:
            await take(sub, 1)
        assert info.value.code == code
        assert client.connections == 1


@pytest.mark.parametrize("code", [1001, 1011, 1012, 1013, 4999])
async def test_close_codes_that_say_reconnect_reconnect(code: int) -> None:
    server = FakeServer()
    async with open_client(server) as client:
        server.close_all(code)
        await until(lambda: client.connections == 2 and client.state is lc.State.CONNECTED)


async def test_the_close_policy_table_is_the_protocol_documents() -> None:
    assert {code for code, policy in lc.CLOSE_POLICY.items() if policy == "reconnect"} == {
        1001,
        1006,
        1011,
        1012,
        1013,
    }
    assert lc.CLOSE_POLICY[4001] == "refresh"


# -- heartbeat -----------------------------------------------------------------------


async def test_the_servers_pings_are_answered_with_pongs() -> None:
    server = FakeServer(ping_every=0.02)
    async with open_client(server):
        await until(lambda: server.pongs >= 2)


async def test_a_server_that_stops_answering_is_dropped_and_dialed_again() -> None:
    server = FakeServer(silent={"ping"})
    async with open_client(server, ping_interval=0.05, ping_timeout=0.05) as client:
        await until(lambda: client.connections >= 2)
        server.silent.clear()
        assert await client.call("echo", "alive") == "alive"


# -- hostile servers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "complaint"),
    [
        ("garbage", "not JSON"),
        ("[1, 2]", "a JSON list, not an object"),
        ('{"id": 999, "ok": {}}', "request id 999, which this client never sent"),
        ('{"id": true, "ok": {}}', "'id' is not an integer"),
        ('{"id": 1, "ok": []}', "'ok' is list, expected an object"),
        ('{"id": 1}', "'ok' is missing"),
        ('{"id": 1, "error": {"code": 5}}', "'code' is int, expected a string"),
        ('{"type": "message", "channel": "room", "epoch": "e1", "offset": "7"}', "'offset' is str"),
        ('{"type": "message", "channel": "room", "epoch": "e1", "offset": true}', "a boolean"),
        ('{"type": "wat"}', "'type' is unknown"),
        ('{"data": 1}', "'type' is missing"),
        ('{"type": "disconnect", "code": 4001, "reason": "x", "reconnect": 1}', "'reconnect'"),
    ],
)
async def test_a_frame_that_breaks_the_protocol_drops_the_socket_with_a_named_error(
    frame: str, complaint: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = FakeServer()
    async with open_client(server) as client:
        sub = await client.subscribe("room")
        await server.inject(frame)
        await until(lambda: client.connections == 2 and client.state is lc.State.CONNECTED)
        assert complaint in caplog.text
        await client.publish("room", "after")
        assert offsets(await take(sub, 1)) == [1]


@pytest.mark.parametrize(
    ("reply", "complaint"),
    [
        ({"user": "u"}, "no string 'client'"),
        ({"client": "c", "user": 5}, "non-string 'user'"),
        ({"client": "c", "expires_at": "soon"}, "non-number 'expires_at'"),
    ],
)
async def test_a_connect_answer_of_the_wrong_shape_is_a_protocol_error(
    reply: dict[str, object], complaint: str
) -> None:
    server = BadReplies({"connect": reply})
    with pytest.raises(TimeoutError, match="Could not connect"):
        async with open_client(server, connect_timeout=0.3):
            pass  # pragma: no cover
    assert server.connects >= 2  # it kept trying, with backoff


@pytest.mark.parametrize(
    ("kind", "reply", "complaint"),
    [
        ("publish", {"epoch": "e1"}, "no integer 'offset'"),
        ("presence", {"members": []}, "no object 'members'"),
        ("history", {"epoch": "e1", "offset": 0, "messages": {}}, "no list 'messages'"),
        ("history", {"epoch": "e1", "offset": 0, "messages": [1]}, "non-object message"),
        ("subscribe", {"epoch": "e1", "offset": 0}, "no boolean 'recovered'"),
    ],
)
async def test_an_answer_of_the_wrong_shape_raises_protocol_error(
    kind: str, reply: dict[str, object], complaint: str
) -> None:
    server = BadReplies({kind: reply})
    async with open_client(server) as client:
        with pytest.raises((lc.ProtocolError, TimeoutError)) as info:
            if kind == "publish":
                await client.publish("room", 1)
            elif kind == "presence":
                await client.presence("room")
            elif kind == "history":
                await client.history("room")
            else:
                await client.subscribe("room", timeout=0.3)
        if kind != "subscribe":
            assert complaint in str(info.value)
        else:
            assert client.connections >= 2  # the socket was dropped, the subscribe retried


class BadReplies(FakeServer):
    """A fake that answers some request types with a given (wrong) ``ok``."""

    def __init__(self, replies: dict[str, dict[str, object]]) -> None:
        super().__init__()
        self.replies = replies

    async def _handle(self, sock, group, kind, frame):  # type: ignore[no-untyped-def]
        if kind in self.replies:
            if kind == "connect":
                self.connects += 1
            return {"ok": self.replies[kind]}
        return await super()._handle(sock, group, kind, frame)


# -- staged corners ------------------------------------------------------------------


class Scripted:
    """A transport the test scripts: answers ``connect``, fails sends of some types."""

    def __init__(self, fail_on: frozenset[str] = frozenset(), answer_connect: bool = True) -> None:
        self.fail_on = fail_on
        self.answer_connect = answer_connect
        self.sent: list[dict[str, Any]] = []
        self.inbox: list[str] = []
        self.ended: lc.TransportClosed | None = None
        self.wake = anyio.Event()

    def end(self, code: int = 1006) -> None:
        self.ended = lc.TransportClosed(code, "scripted")
        self.wake.set()

    async def send(self, text: str) -> None:
        frame = json.loads(text)
        self.sent.append(frame)
        if self.ended is not None or frame.get("type") in self.fail_on:
            self.end()
            raise lc.TransportClosed(1006, "scripted")
        if frame.get("type") == "connect" and self.answer_connect:
            self.inbox.append(json.dumps({"id": frame["id"], "ok": {"client": "c"}}))
            self.wake.set()

    async def receive(self) -> str:
        while not self.inbox:
            if self.ended is not None:
                raise self.ended
            self.wake = anyio.Event()
            await self.wake.wait()
        return self.inbox.pop(0)

    async def close(self, code: int, reason: str) -> None:
        if self.ended is None:
            self.end(code)


class ScriptedDialer:
    """Opens the transports *make(n)* returns, n counting dials from 0."""

    def __init__(self, make: Callable[[int], Scripted]) -> None:
        self.make = make
        self.opened: list[Scripted] = []

    @contextlib.asynccontextmanager
    async def open(self, url: str, subprotocols: Sequence[str]) -> AsyncIterator[lc.Transport]:
        transport = self.make(len(self.opened))
        self.opened.append(transport)
        yield transport


def scripted(make: Callable[[int], Scripted], **options: Any) -> lc.Client:
    return lc.connect(
        "scripted://", dialer=ScriptedDialer(make), reconnect_delay=(0.01, 0.02), **options
    )


async def test_a_send_that_fails_counts_as_a_lost_socket_for_every_kind_of_request() -> None:
    dialer_first = {"connect", "subscribe", "rpc", "publish"}

    def make(n: int) -> Scripted:
        # The first dial fails the send of connect; later ones each fail one more kind.
        return Scripted(fail_on=frozenset(sorted(dialer_first)[:1] if n == 0 else ()))

    async with scripted(make) as client:
        dialer = client._dialer
        assert isinstance(dialer, ScriptedDialer)
        transport = dialer.opened[-1]
        transport.fail_on = frozenset({"rpc"})
        with pytest.raises(lc.ConnectionLost):
            await client.call("x", timeout=1)
        await client.wait_connected(timeout=1)
        dialer.opened[-1].fail_on = frozenset({"subscribe"})
        with pytest.raises(TimeoutError):
            await client.subscribe("room", timeout=0.05)
        assert len(dialer.opened) >= 3


async def test_a_socket_that_ends_before_connect_is_answered_is_dialed_again() -> None:
    async with scripted(lambda n: Scripted(answer_connect=n > 0), open_timeout=0.05) as client:
        dialer = client._dialer
        assert isinstance(dialer, ScriptedDialer)
        assert len(dialer.opened) == 2
    # The second case: the first socket ends with connect still out.
    first = Scripted(answer_connect=False)
    client = scripted(lambda n: first if n == 0 else Scripted(), connect_timeout=None)
    async with client:
        await until(lambda: bool(first.sent))
        first.end(1012)
        await client.wait_connected(timeout=2)
        assert client.connections == 2


async def test_closing_the_client_while_connect_is_out_closes_the_new_socket() -> None:
    gate = anyio.Event()
    server = FakeServer(connect_gate=gate)
    client = open_client(server, connect_timeout=None)
    async with client:
        await until(lambda: bool(server.frames))
        async with anyio.create_task_group() as group:
            group.start_soon(client.aclose)
            await until(lambda: client.state is lc.State.CLOSED)
            gate.set()
    assert client.connections == 1
    await until(lambda: not server.sockets)


async def test_a_request_waits_for_the_connection_and_times_out_without_one() -> None:
    server = FakeServer(connect_gate=anyio.Event())
    async with open_client(server, connect_timeout=None) as client:
        assert client.state is lc.State.CONNECTING
        with pytest.raises(TimeoutError, match="the client is connecting"):
            await client.publish("room", 1, timeout=0.05)
        with pytest.raises(TimeoutError, match=r"Not connected within 0\.05 s"):
            await client.wait_connected(timeout=0.05)
        task_done = anyio.Event()
        subs: list[lc.Subscription] = []

        async def subscribe() -> None:
            subs.append(await client.subscribe("room"))
            task_done.set()

        async with anyio.create_task_group() as group:
            group.start_soon(subscribe)
            await anyio.sleep(0.02)
            assert server.connect_gate is not None
            server.connect_gate.set()
            with anyio.fail_after(5):
                await task_done.wait()
        assert subs[0].position == lc.Position("e1", 0)


async def test_a_subscribe_nobody_answers_drops_the_socket_and_times_out() -> None:
    server = FakeServer(silent={"subscribe"})
    async with open_client(server, request_timeout=0.05) as client:
        with pytest.raises(TimeoutError, match="No answer to subscribe 'room'"):
            await client.subscribe("room", timeout=0.3)
        assert client.connections >= 2
        server.silent.clear()
        await client.subscribe("room")


async def test_a_subscribe_that_timed_out_is_undone_when_the_server_reads_it_late() -> None:
    server = FakeServer()
    late = server.gates["subscribe"] = anyio.Event()
    async with open_client(server, request_timeout=5) as client:
        with pytest.raises(TimeoutError, match="No answer to subscribe 'room'"):
            await client.subscribe("room", timeout=0.2)
        late.set()  # the busy server reads the subscribe now, then the undo behind it

        def kinds() -> list[str]:
            return [f["type"] for f in server.frames if f.get("channel") == "room"]

        await until(lambda: kinds() == ["subscribe", "unsubscribe"])
        sub = await client.subscribe("room")
        assert sub.channel == "room"
        assert kinds() == ["subscribe", "unsubscribe", "subscribe"]


async def test_closing_the_client_during_a_subscribe_raises_client_closed() -> None:
    server = FakeServer(silent={"subscribe"})
    async with open_client(server) as client:
        errors: list[BaseException] = []

        async def subscribe() -> None:
            try:
                await client.subscribe("room")
            except lc.ClientClosed as exc:
                errors.append(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(subscribe)
            await until(lambda: any(f["type"] == "subscribe" for f in server.frames))
            await client.aclose()
        assert [type(e) for e in errors] == [lc.ClientClosed]


async def test_a_request_out_when_the_server_breaks_the_protocol_raises_protocol_error() -> None:
    server = FakeServer(silent={"rpc"})
    async with open_client(server) as client:
        async with anyio.create_task_group() as group:
            errors: list[BaseException] = []

            async def call() -> None:
                try:
                    await client.call("echo", 1)
                except lc.ProtocolError as exc:
                    errors.append(exc)

            group.start_soon(call)
            await until(lambda: any(f["type"] == "rpc" for f in server.frames))
            await server.inject("garbage")
        assert len(errors) == 1 and errors[0].frame == "garbage"  # type: ignore[attr-defined]


async def test_a_publish_out_when_the_policy_stops_the_client_raises_client_closed() -> None:
    server = FakeServer(silent={"publish", "rpc"})
    async with open_client(server) as client:
        async with anyio.create_task_group() as group:
            errors: list[BaseException] = []

            async def publish() -> None:
                try:
                    await client.publish("room", 1)
                except lc.ClientClosed as exc:
                    errors.append(exc)

            async def call() -> None:
                try:
                    await client.call("echo", 1)
                except lc.ConnectionLost as exc:
                    errors.append(exc)

            group.start_soon(publish)
            group.start_soon(call)
            await until(lambda: {"publish", "rpc"} <= {f["type"] for f in server.frames})
            server.close_all(1008)
        assert sorted(type(e).__name__ for e in errors) == ["ClientClosed", "ConnectionLost"]


async def test_unsubscribe_while_disconnected_sends_nothing() -> None:
    server = FakeServer(connect_gate=anyio.Event())
    async with open_client(server, connect_timeout=None) as client:
        sub = subscription_for(client)
        await sub.unsubscribe()
        await until(lambda: bool(server.frames))
        assert [f["type"] for f in server.frames] == ["connect"]
        assert server.connect_gate is not None
        server.connect_gate.set()


def subscription_for(client: lc.Client) -> lc.Subscription:
    """A subscription registered but never sent (the client is not connected)."""
    sub = lc.Subscription(client, "room", None, False, 10)
    client._subs["room"] = sub
    return sub


async def test_the_pinger_stays_quiet_while_frames_arrive() -> None:
    server = FakeServer(ping_every=0.01)
    async with open_client(server, ping_interval=0.25, ping_timeout=0.05) as client:
        await anyio.sleep(0.6)
        assert not any(f["type"] == "ping" for f in server.frames)
        assert client.connections == 1


async def test_a_refused_refresh_leaves_the_socket_until_the_server_closes_4001(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = FakeServer(tokens={"short": time.time() + 0.3})
    tokens = iter(["short", "unknown", None])
    async with open_client(server, token=None, get_token=lambda: next(tokens)) as client:
        await until(lambda: client.state is lc.State.CLOSED)
    assert "refused 'refresh': unauthorized" in caplog.text
    assert client.closed is not None and "returned None" in client.closed.reason


async def test_a_refresh_that_extends_the_expiry_is_kept_and_none_ends_refreshing() -> None:
    now = time.time()
    server = FakeServer(tokens={"short": now + 0.2, "longer": now + 60})
    tokens = iter(["short", "longer"])
    async with open_client(server, token=None, get_token=lambda: next(tokens)) as client:
        await until(lambda: client.expires_at == now + 60)
    server = FakeServer(tokens={"short": now + 0.2})
    then_none: Iterator[str | None] = iter(["short", None])
    async with open_client(server, token=None, get_token=lambda: next(then_none)) as client:
        await until(lambda: client.closed is not None, 3)
    assert client.closed is not None and client.closed.code == 4001


async def test_get_token_that_raises_or_returns_a_non_string_stops_the_client() -> None:
    def broken() -> str:
        raise OSError("vault down")

    with pytest.raises(lc.ClientClosed, match="vault down"):
        async with open_client(FakeServer(), token=None, get_token=broken):
            pass  # pragma: no cover
    with pytest.raises(lc.ClientClosed, match="must return a str or None, not int"):
        async with open_client(FakeServer(), token=None, get_token=lambda: 7):
            pass  # pragma: no cover


async def test_an_app_that_raises_in_process_stops_the_client_with_its_error() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.receive_text()
        raise RuntimeError("endpoint bug")

    client = lc.connect("/ws", test_client=AsyncTestClient(app))
    with pytest.raises(lc.ClientClosed) as info:
        async with client:
            pass  # pragma: no cover
    assert info.value.code == 1011
    assert isinstance(info.value.__cause__, RuntimeError)


async def test_a_client_is_entered_once_and_used_only_inside_its_block() -> None:
    server = FakeServer()
    client = open_client(server)
    with pytest.raises(RuntimeError, match="not running"):
        await client.publish("room", 1)
    assert repr(client) == "<Client '/ws' connecting>"
    async with client:
        with pytest.raises(RuntimeError, match="running already"):
            await client.__aenter__()


async def test_the_network_transport_refuses_trio(anyio_backend: str) -> None:
    client = lc.connect("ws://127.0.0.1:9/ws")
    if anyio_backend == "trio":
        with pytest.raises(ImproperlyConfigured, match="asyncio only"):
            await client.__aenter__()
    else:
        with pytest.raises(TimeoutError):
            client.connect_timeout = 0.05
            await client.__aenter__()


# -- sans-I/O pieces -----------------------------------------------------------------


def test_backoff_doubles_up_to_the_maximum_with_equal_jitter() -> None:
    assert [lc.backoff_delay(n, 0.5, 4.0, rand=lambda: 1.0) for n in range(6)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        4.0,
        4.0,
    ]
    assert lc.backoff_delay(3, 0.5, 4.0, rand=lambda: 0.0) == 2.0
    assert lc.backoff_delay(10_000, 0.5, 4.0, rand=lambda: 0.5) == 3.0


async def test_a_connection_refuses_requests_once_ended_and_ignores_late_abandons() -> None:
    conn = _Connection(Scripted(), 1)
    request_id, pending = conn.start("rpc")
    conn.abandon(request_id)
    conn.abandon(request_id)  # twice: nothing
    conn.finish(lc.TransportClosed(1006))
    _, late = conn.start("rpc")
    assert late.done.is_set() and isinstance(late.lost, lc.TransportClosed)
    assert not pending.done.is_set()


async def test_a_subscription_ended_while_its_buffer_is_full_drops_the_waiting_event() -> None:
    server = FakeServer()
    client = open_client(server)
    sub = lc.Subscription(client, "room", None, False, 1)
    await sub._deliver(lc.Message("room", "e1", 1, "a"))
    async with anyio.create_task_group() as group:
        group.start_soon(sub._deliver, lc.Message("room", "e1", 2, "b"))
        await anyio.sleep(0.01)
        sub._end(lc.ClientClosed(1008, "first"))
        sub._end(lc.ClientClosed(1011, "second"))
    assert [e async for e in _until_error(sub)] == [lc.Message("room", "e1", 1, "a")]


async def _until_error(sub: lc.Subscription) -> AsyncIterator[lc.Event]:
    with pytest.raises(lc.ClientClosed, match="first"):
        async for event in sub:
            yield event


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"token": "a", "get_token": lambda: "b"}, ValueError, "not both"),
        ({"token": 5}, TypeError, "token must be a str, not int"),
        ({"get_token": "abc"}, TypeError, "get_token must be a callable"),
        ({"name": 1}, TypeError, "name must be a str"),
        ({"request_timeout": 0}, ValueError, "request_timeout must be a positive"),
        ({"open_timeout": float("inf")}, ValueError, "open_timeout must be a positive, finite"),
        ({"ping_timeout": "1"}, TypeError, "ping_timeout must be a number of seconds, not str"),
        ({"connect_timeout": True}, TypeError, "connect_timeout must be a number"),
        ({"ping_interval": -1}, ValueError, "ping_interval"),
        ({"reconnect_delay": (2, 1)}, ValueError, "reconnect_delay is"),
        ({"reconnect_delay": (0, 1)}, ValueError, "reconnect_delay minimum"),
        ({"max_buffer": 0}, ValueError, "max_buffer must be a positive int"),
        ({"max_buffer": True}, ValueError, "max_buffer"),
        (
            {"dialer": ScriptedDialer(lambda n: Scripted()), "test_client": 1},
            ValueError,
            "not both",
        ),
    ],
)
def test_wrong_arguments_are_named(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        lc.connect("ws://h/ws", **options)


def test_a_url_that_is_not_a_websocket_url_is_refused() -> None:
    with pytest.raises(ValueError, match="ws:// or wss://"):
        lc.connect("http://h/ws")
    with pytest.raises(TypeError, match="url must be a str"):
        lc.connect(b"ws://h")  # type: ignore[arg-type]


async def test_wrong_request_arguments_are_named() -> None:
    async with open_client(FakeServer()) as client:
        with pytest.raises(TypeError, match="since must be a Position, not dict"):
            await client.subscribe("room", since={"epoch": "e1", "offset": 1})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="channel must be a str"):
            await client.publish(1, "x")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="message_id must be a str"):
            await client.publish("room", "x", message_id=5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="limit must be a non-negative int"):
            await client.history("room", limit=-1)
        with pytest.raises(ValueError, match="timeout must be a positive"):
            await client.call("echo", timeout=0)
        with pytest.raises(TypeError, match="method must be a str"):
            await client.call(None)  # type: ignore[arg-type]


async def test_the_in_process_transport_reports_every_way_the_app_ends() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        websocket = WebSocket(scope, receive, send)
        if websocket.query_params.get("deny"):
            await websocket.send_denial_response(PlainText("no", status_code=401))
            return
        if websocket.query_params.get("close"):
            await websocket.close(4003, "go away")
            return
        await websocket.accept()
        await websocket.send_bytes(b"bytes")
        # returns without closing: the client sees 1006

    dialer = lc.TestClientDialer(AsyncTestClient(app))
    with pytest.raises(lc.HandshakeRefused) as refused:
        async with dialer.open("/ws?deny=1", []):
            pass  # pragma: no cover
    assert refused.value.status == 401 and refused.value.body == "no"
    with pytest.raises(lc.TransportClosed) as closed:
        async with dialer.open("/ws?close=1", []):
            pass  # pragma: no cover
    assert closed.value.code == 4003
    async with dialer.open("/ws", ["x"]) as transport:
        assert await transport.receive() == "bytes"
        with pytest.raises(lc.TransportClosed) as ended:
            await transport.receive()
        assert ended.value.code == 1006
        with pytest.raises(lc.TransportClosed):
            await transport.receive()
        with pytest.raises(lc.TransportClosed):
            await transport.send("{}")


async def test_a_handshake_refused_in_process_follows_the_status() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        websocket = WebSocket(scope, receive, send)
        status = int(websocket.query_params["status"])
        await websocket.send_denial_response(PlainText("no", status_code=status))

    test_client = AsyncTestClient(app)
    with pytest.raises(lc.ClientClosed) as info:
        async with lc.connect("/ws?status=403", test_client=test_client):
            pass  # pragma: no cover
    assert info.value.code == 4003 and "HTTP 403" in info.value.reason
    with pytest.raises(TimeoutError):
        async with lc.connect(
            "/ws?status=503",
            test_client=test_client,
            connect_timeout=0.1,
            reconnect_delay=(0.01, 0.02),
        ):
            pass  # pragma: no cover


async def test_leaving_twice_and_subscribing_twice_on_one_socket_do_nothing_more() -> None:
    server = FakeServer()
    client = open_client(server)
    async with client:
        sub = await client.subscribe("room")
        conn = client._conn
        assert conn is not None
        await client._subscribe_on(conn, sub)  # this socket holds it already
        assert [f["type"] for f in server.frames].count("subscribe") == 1
    await client.__aexit__(None, None, None)


async def test_a_disconnect_push_saying_do_not_reconnect_is_obeyed() -> None:
    server = FakeServer()
    async with open_client(server) as client:
        sub = await client.subscribe("room")
        told = {"type": "disconnect", "code": 1013, "reason": "", "reconnect": False}
        await server.inject({**told, "reason": "overloaded: come back tomorrow"})
        server.close_all(1013)
        with pytest.raises(lc.ClientClosed) as info:
            await take(sub, 1)
        assert info.value.code == 1013
        assert client.connections == 1


async def test_a_disconnect_push_saying_reconnect_keeps_the_policy() -> None:
    server = FakeServer()
    async with open_client(server) as client:
        await server.inject({"type": "disconnect", "code": 1012, "reason": "", "reconnect": True})
        server.close_all(1012)
        await until(lambda: client.connections == 2 and client.state is lc.State.CONNECTED)


async def test_a_get_token_handing_out_expired_tokens_backs_off_instead_of_spinning() -> None:
    server = FakeServer(tokens={"stale": time.time() - 10})
    async with open_client(
        server, token=None, get_token=lambda: "stale", reconnect_delay=(0.05, 0.2)
    ) as client:
        await anyio.sleep(0.5)
        # At once, then 25-50 ms, 50-100 ms, then 100-200 ms: a handful, not hundreds.
        assert 2 <= client.connections <= 10
        assert client.closed is None


async def test_a_socket_that_lived_before_its_4001_reconnects_at_once_every_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "lilya.client")
    now = time.time()
    server = FakeServer(tokens={"a": now + 0.1, "b": now + 0.2, "c": None})
    tokens = iter(["a", "a", "b", "b", "c"])  # each one twice: at connect and at refresh
    async with open_client(
        server, token=None, get_token=lambda: next(tokens), reconnect_delay=(0.01, 0.02)
    ) as client:
        await until(lambda: client.user == "c")
    assert caplog.text.count("(4001 token expired); reconnecting in 0.00 s") == 2
