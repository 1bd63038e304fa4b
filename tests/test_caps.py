"""Connection caps in process: 429 / 503 before accept, the settings, one slot per connection."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from lilya import caps
from lilya.apps import Lilya
from lilya.caps import (
    DEFAULT_CONNECTION_CAPS,
    LOG_INTERVAL,
    ConnectionCaps,
    ConnectionCounter,
    RedisCounter,
    Refusal,
    address_key,
    make_counter,
    user_key,
)
from lilya.channels import Channels
from lilya.exceptions import ImproperlyConfigured
from lilya.middleware import DefineMiddleware
from lilya.middleware.authentication import AuthenticationMiddleware
from lilya.routing import Router, WebSocketPath
from lilya.testclient import AsyncTestClient, WebSocketDenialResponse
from lilya.types import Message
from lilya.websockets import WebSocket, WebSocketDisconnect
from tests.support.asgi import CONNECT, call_websocket, websocket_scope

pytestmark = pytest.mark.anyio


async def hold(websocket: WebSocket) -> None:
    """Accept, then echo until the client leaves."""
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


def capped_app(**options: Any) -> Lilya:
    return Lilya(routes=[WebSocketPath("/", hold)], **options)


async def refusal(client: AsyncTestClient, path: str = "/") -> WebSocketDenialResponse:
    with pytest.raises(WebSocketDenialResponse) as info:
        async with client.websocket_connect(path):
            pass  # pragma: no cover  # the handshake is refused
    return info.value


@contextlib.asynccontextmanager
async def sessions(client: AsyncTestClient, count: int, path: str = "/") -> AsyncIterator[None]:
    """Hold *count* open (accepted and answering) connections of *client*."""
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(count):
            session = await stack.enter_async_context(client.websocket_connect(path))
            await session.send_text("ping")
            assert await session.receive_text() == "ping"
        yield


# -- the defaults and the settings ---------------------------------------------------


def test_the_documented_defaults() -> None:
    documented = ConnectionCaps(per_process=10_000, per_address=100, per_user=50, retry_after=5)
    assert documented == DEFAULT_CONNECTION_CAPS
    app = Lilya()
    assert app.connection_caps is DEFAULT_CONNECTION_CAPS
    assert isinstance(app.connection_counter, ConnectionCounter)
    assert app.connection_counter.shared is None
    assert app.connection_counter.counts == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"per_process": 0}, "per_process must be a whole number of connections >= 1"),
        ({"per_address": 2.5}, "per_address must be a whole number"),
        ({"per_user": True}, "per_user must be a whole number"),
        ({"retry_after": -1}, "retry_after must be a whole number of seconds >= 0"),
        ({"retry_after": 1.5}, "retry_after must be a whole number"),
    ],
)
def test_a_cap_that_is_not_a_whole_number_is_refused_at_construction(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        ConnectionCaps(**options)


def test_connection_caps_of_the_wrong_type_are_refused_by_the_app_and_the_route() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"Lilya: connection_caps must be"):
        Lilya(connection_caps=100)  # type: ignore[arg-type]  # the mistake under test
    with pytest.raises(ImproperlyConfigured, match=r"WebSocketPath\('/'\): connection_caps"):
        WebSocketPath("/", hold, connection_caps={"per_address": 1})  # type: ignore[arg-type]  # the mistake under test


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (42, "connection_counter must be None"),
        ("memory://", "RedisCounter needs a redis://"),
    ],
)
def test_a_counter_that_is_not_a_redis_url_is_refused(value: Any, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        Lilya(connection_counter=value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttl": 0}, "ttl must be a positive number of seconds"),
        ({"ttl": float("inf")}, "ttl must be a positive"),
        ({"timeout": True}, "timeout must be a positive"),
        ({"on_error": "maybe"}, 'on_error must be "open" or "closed"'),
    ],
)
def test_redis_counter_settings_out_of_range_are_refused(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        RedisCounter("redis://127.0.0.1:6379/0", **options)


def test_the_apps_channels_count_where_they_live() -> None:
    assert Lilya(connection_counter=Channels("memory://")).connection_counter.shared is None
    shared = Lilya(connection_counter=Channels("redis://127.0.0.1:6379/2")).connection_counter
    assert shared.shared is not None
    assert shared.shared.url == "redis://127.0.0.1:6379/2"


@pytest.mark.parametrize(
    "url",
    [
        "postgres://user:secret@db/app",
        "redis+cluster://127.0.0.1:7000",
        "redis+sentinel://127.0.0.1:26379/m",
    ],
)
def test_channels_elsewhere_than_one_plain_redis_cannot_hold_the_counts(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="cannot hold the connection counts") as info:
        Lilya(connection_counter=Channels(url))
    assert "secret" not in str(info.value)


def test_a_redis_url_or_counter_makes_a_shared_counter() -> None:
    shared = RedisCounter("redis://127.0.0.1:6379/0", ttl=9, on_error="closed")
    assert make_counter(shared).shared is shared
    from_url = make_counter("redis://127.0.0.1:6379/1").shared
    assert from_url is not None
    assert (from_url.url, from_url.ttl, from_url.on_error) == (
        "redis://127.0.0.1:6379/1",
        30,
        "open",
    )


# -- refusals ------------------------------------------------------------------------


async def test_an_address_over_per_address_gets_429_with_retry_after_naming_the_setting() -> None:
    app = capped_app(connection_caps=ConnectionCaps(per_address=2, retry_after=9))
    client = AsyncTestClient(app, client=("203.0.113.7", 4000))
    async with sessions(client, 2):
        denied = await refusal(client)
        # Another address is not affected.
        async with sessions(AsyncTestClient(app, client=("203.0.113.8", 4000)), 1):
            pass
    assert denied.status_code == 429
    assert denied.headers["retry-after"] == "9"
    assert "ConnectionCaps(per_address=...)" in denied.text
    assert "your address already holds 2 WebSockets" in denied.text
    assert "Connect again in 9 s" in denied.text
    # The slots came back: the same address connects again.
    async with sessions(client, 2):
        pass
    assert app.connection_counter.counts == {}


async def test_a_full_process_gets_503_with_retry_after() -> None:
    app = capped_app(connection_caps=ConnectionCaps(per_process=3, per_address=None))
    async with (
        sessions(AsyncTestClient(app, client=("10.0.0.1", 1)), 2),
        sessions(AsyncTestClient(app, client=("10.0.0.2", 1)), 1),
    ):
        denied = await refusal(AsyncTestClient(app, client=("10.0.0.3", 1)))
        assert app.connection_counter.counts["process"] == 3
    assert denied.status_code == 503
    assert denied.headers["retry-after"] == "5"
    assert "this server already serves 3 WebSockets" in denied.text
    assert "ConnectionCaps(per_process=...)" in denied.text
    assert app.connection_counter.counts == {}


class TokenUser:
    def __init__(self, name: str) -> None:
        self.display_name = name
        self.is_authenticated = True


async def authenticate(connection: Any) -> tuple[Any, Any] | None:
    token = connection.query_params.get("token")
    return None if token is None else (["authenticated"], TokenUser(token))


async def test_a_user_over_per_user_gets_429_from_any_address() -> None:
    app = capped_app(
        connection_caps=ConnectionCaps(per_user=2),
        middleware=[DefineMiddleware(AuthenticationMiddleware, backend=authenticate)],
    )
    first = AsyncTestClient(app, client=("198.51.100.1", 1))
    second = AsyncTestClient(app, client=("198.51.100.2", 1))
    async with sessions(first, 1, "/?token=alice"), sessions(second, 1, "/?token=alice"):
        denied = await refusal(AsyncTestClient(app, client=("198.51.100.3", 1)), "/?token=alice")
        # bob, and anonymous clients, are not alice.
        async with sessions(first, 1, "/?token=bob"), sessions(first, 3):
            assert app.connection_counter.counts["user:alice"] == 2
    assert denied.status_code == 429
    assert "your user already holds 2 WebSockets" in denied.text
    assert "ConnectionCaps(per_user=...)" in denied.text
    assert app.connection_counter.counts == {}


async def test_a_route_sets_its_own_caps_against_the_apps_counts() -> None:
    app = Lilya(
        routes=[
            WebSocketPath("/", hold),
            WebSocketPath("/strict", hold, connection_caps=ConnectionCaps(per_address=1)),
            WebSocketPath("/open", hold, connection_caps=ConnectionCaps(None, None, None)),
        ],
        connection_caps=ConnectionCaps(per_address=2),
    )
    client = AsyncTestClient(app)
    async with sessions(client, 1):
        # The address holds 1 already: /strict refuses it, / takes one more.
        assert (await refusal(client, "/strict")).status_code == 429
        async with sessions(client, 1):
            assert (await refusal(client)).status_code == 429
            async with sessions(client, 5, "/open"):  # no caps there, and still counted
                assert app.connection_counter.counts["address:testclient"] == 7
    assert app.connection_counter.counts == {}


async def test_connection_caps_none_turns_them_off_on_the_app() -> None:
    app = capped_app(connection_caps=None)
    async with sessions(AsyncTestClient(app), 3):
        assert app.connection_counter.counts == {}


async def test_a_route_with_caps_on_an_app_without_them_applies_its_own() -> None:
    app = Lilya(
        routes=[WebSocketPath("/", hold, connection_caps=ConnectionCaps(per_address=1))],
        connection_caps=None,
    )
    client = AsyncTestClient(app)
    async with sessions(client, 1):
        assert (await refusal(client)).status_code == 429


async def test_a_bare_router_counts_nothing() -> None:
    router = Router([WebSocketPath("/", hold, connection_caps=ConnectionCaps(per_address=1))])
    client = AsyncTestClient(router)
    async with sessions(client, 3):
        pass


async def test_a_scope_without_a_client_address_is_capped_per_process_only() -> None:
    app = capped_app(connection_caps=ConnectionCaps(per_process=1, per_address=1))
    scope = websocket_scope()
    del scope["client"]
    outcome = await call_websocket(app, messages=[CONNECT], scope=scope)
    assert outcome.types[0] == "websocket.accept"
    assert app.connection_counter.counts == {}


async def test_without_the_denial_extension_a_refusal_closes_before_accept() -> None:
    # daphne: no denial response, so a close; the client sees 403.
    app = capped_app(connection_caps=ConnectionCaps(per_process=1))
    app.connection_counter.counts["process"] = 1  # the process is full
    full = await call_websocket(app, messages=[CONNECT], extensions=False)
    assert full.types == ["websocket.close"]
    assert full.close == (1013, "")
    app.connection_counter.counts.clear()
    app.connection_counter.counts["address:127.0.0.1"] = 100
    over = await call_websocket(app, messages=[CONNECT], extensions=False)
    assert over.close == (1008, "")


# -- one slot per connection, given back once ----------------------------------------


async def ends_every_way(websocket: WebSocket) -> None:
    """End the way the query string says: the hostile cycles below."""
    how = websocket.query_params["how"]
    if how == "raise-before":
        raise RuntimeError("before accept")
    if how == "refuse":
        await websocket.close(4003)
        return
    await websocket.accept()
    if how == "raise-after":
        raise RuntimeError("after accept")
    if how == "return":
        return
    if how == "close":
        await websocket.close()
        return
    await websocket.receive_text()  # "client-closes", "client-drops": the client ends it


async def test_the_count_returns_to_zero_after_many_cycles_of_every_ending(
    anyio_backend: str,
) -> None:
    app = Lilya(
        routes=[WebSocketPath("/", ends_every_way)],
        connection_caps=ConnectionCaps(per_process=5, per_address=3),
    )
    client = AsyncTestClient(app, raise_server_exceptions=False)
    hows = ["raise-before", "refuse", "raise-after", "return", "close", "client-closes"]
    hows.append("client-drops")
    for _ in range(30):
        for how in hows:
            with contextlib.suppress(WebSocketDisconnect):
                async with client.websocket_connect(f"/?how={how}") as session:
                    if how == "client-closes":
                        await session.close()
                    elif how == "client-drops":
                        await session.drop()
                    else:
                        await session.receive_text()
            await anyio.sleep(0)
        assert app.connection_counter.counts == {}
    # Each slot was counted once: three at once still fit the cap of three.
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(3):
            session = await stack.enter_async_context(client.websocket_connect("/?how=wait"))
        assert app.connection_counter.counts["address:testclient"] == 3
        await session.close()


async def test_a_cancelled_handler_gives_its_slot_back() -> None:
    started = anyio.Event()

    async def forever(websocket: WebSocket) -> None:
        await websocket.accept()
        started.set()
        await anyio.sleep_forever()

    app = Lilya(routes=[WebSocketPath("/", forever)])

    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    messages = iter([CONNECT])

    async def first_receive() -> Message:
        return next(messages, None) or await receive()

    async def send(message: Message) -> None:
        pass

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(app, websocket_scope(), first_receive, send)
        await started.wait()
        assert app.connection_counter.counts == {"process": 1, "address:127.0.0.1": 1}
        tasks.cancel_scope.cancel()
    assert app.connection_counter.counts == {}


async def test_a_slot_released_twice_is_given_back_once() -> None:
    counter = ConnectionCounter()
    slot = await counter.acquire(websocket_scope(), ConnectionCaps())
    other = await counter.acquire(websocket_scope(), ConnectionCaps())
    assert not isinstance(slot, Refusal)
    assert counter.counts == {"process": 2, "address:127.0.0.1": 2}
    await slot.release()
    await slot.release()
    assert counter.counts == {"process": 1, "address:127.0.0.1": 1}
    assert not isinstance(other, Refusal)
    await other.release()
    assert counter.counts == {}


# -- the log ------------------------------------------------------------------------


async def test_a_flood_of_refusals_logs_one_line_per_interval(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(caps, "_clock", lambda: now[0])
    app = capped_app(connection_caps=ConnectionCaps(per_address=1))
    client = AsyncTestClient(app, client=("192.0.2.66", 1))
    caplog.set_level(logging.WARNING, logger="lilya")
    async with sessions(client, 1):
        for _ in range(50):
            await refusal(client)
        lines = [r.getMessage() for r in caplog.records if r.name == "lilya"]
        assert len(lines) == 1
        assert "Refused a WebSocket handshake to / with 429" in lines[0]
        assert "its address already holds 1 WebSockets here" in lines[0]
        assert "ConnectionCaps(per_address=...), 192.0.2.66" in lines[0]
        assert "0 more refused" in lines[0]
        now[0] += LOG_INTERVAL
        await refusal(client)
    lines = [r.getMessage() for r in caplog.records if r.name == "lilya"]
    assert len(lines) == 2
    assert "49 more refused since the last line" in lines[1]


# -- whose connection it is -------------------------------------------------------------


class Identified:
    is_authenticated = True
    identity = "user-42"
    display_name = "Ann"


class AbstractIdentity:
    """Starlette's BaseUser: identity is abstract."""

    is_authenticated = True
    display_name = "Bo"

    @property
    def identity(self) -> str:
        raise NotImplementedError


class Nameless:
    is_authenticated = True
    display_name = ""


class Anonymous:
    is_authenticated = False
    display_name = "guest"


@pytest.mark.parametrize(
    ("user", "key"),
    [
        (Identified(), "user-42"),
        (AbstractIdentity(), "Bo"),
        (Nameless(), None),
        (Anonymous(), None),
        (None, None),
    ],
)
def test_the_per_user_key_is_the_identity_else_the_display_name(
    user: object, key: str | None
) -> None:
    scope = websocket_scope()
    if user is not None:
        scope["user"] = user
    assert user_key(scope) == key


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("testclient", "testclient"),
        ("x" * 500, "x" * 200),
    ],
)
def test_an_ipv6_client_counts_as_its_slash_64_network(host: str, key: str) -> None:
    assert address_key(host) == key


async def test_one_ipv6_subscriber_rotating_addresses_is_still_one_address() -> None:
    app = capped_app(connection_caps=ConnectionCaps(per_address=2))
    async with (
        sessions(AsyncTestClient(app, client=("2001:db8::1", 1)), 1),
        sessions(AsyncTestClient(app, client=("2001:db8::2", 1)), 1),
    ):
        denied = await refusal(AsyncTestClient(app, client=("2001:db8::3", 1)))
        async with sessions(AsyncTestClient(app, client=("2001:db8:0:1::1", 1)), 1):
            pass  # another /64
    assert denied.status_code == 429


def test_a_refusal_names_status_close_code_and_setting() -> None:
    counter = Refusal("counter", 0, 3)
    assert (counter.status_code, counter.close_code) == (503, 1013)
    assert 'RedisCounter(..., on_error="open")' in counter.body()
    assert "the connection counter (Redis) does not answer" in counter.body()
    response = counter.response()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"
