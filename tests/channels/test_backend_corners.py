"""Corners of the built-in backends and the contract kit's helpers, driven directly.

Which arm of these runs in the real-server suites depends on the scheduler
(a notification landing before or after the listener waits, a backend
delivering another event first); here each is staged on purpose.
"""

from __future__ import annotations

from typing import Any, cast

import anyio
import pytest

from lilya.channels import Event, Subscription
from lilya.channels.backend import BackendSettings
from lilya.channels.postgres import PostgresBackend
from lilya.channels.redis_sentinel import RedisSentinelBackend
from lilya.channels.testing import take_join, take_leave, take_type

pytestmark = pytest.mark.anyio

SETTINGS = BackendSettings(10, None, "corners", (0.01, 0.02))


class Scripted:
    """A subscription that hands out a fixed list of events."""

    def __init__(self, *events: Event) -> None:
        self.events = list(events)

    async def receive(self) -> Event:
        return self.events.pop(0)


def scripted(*events: Event) -> Subscription:
    return cast(Subscription, Scripted(*events))


def presence(joined: dict[str, Any], left: dict[str, Any], snapshot: bool = False) -> Event:
    data = {"snapshot": snapshot, "joined": joined, "left": left}
    return Event("c", 0, "e", data, "presence")


MESSAGE = Event("c", 1, "e", "hello")


async def test_take_type_skips_events_of_other_kinds() -> None:
    wanted = Event("c", 1, "e", None, "reset")
    assert await take_type(scripted(MESSAGE, wanted), "reset") is wanted


async def test_take_join_skips_messages_snapshots_and_leaves() -> None:
    sub = scripted(
        MESSAGE,
        presence({"ann": 1}, {}, snapshot=True),
        presence({}, {"bob": 2}),
        presence({"cid": {"n": 3}}, {}),
    )
    assert await take_join(sub) == ("cid", {"n": 3})


async def test_take_leave_skips_messages_and_joins() -> None:
    sub = scripted(MESSAGE, presence({"ann": 1}, {}), presence({}, {"bob": 2}))
    assert await take_leave(sub) == "bob"


def postgres() -> PostgresBackend:
    return PostgresBackend("postgres://127.0.0.1:1/test", SETTINGS)


async def test_postgres_notifications_before_the_listener_waits_are_kept() -> None:
    backend = postgres()
    backend._on_notify(None, 0, "chan", "payload")  # nobody waiting yet: no wake-up to set
    assert list(backend._inbox) == [("chan", "payload")]


async def test_postgres_losing_the_listener_before_it_waits_is_noted() -> None:
    backend = postgres()
    backend._on_terminated(None)
    assert backend._lost is True


async def test_postgres_disconnect_before_connect_is_harmless() -> None:
    backend = postgres()
    await backend.disconnect()
    await backend.disconnect()


async def test_sentinel_disconnect_before_connect_is_harmless() -> None:
    backend = RedisSentinelBackend("redis+sentinel://127.0.0.1:1/mymaster", SETTINGS)
    with anyio.fail_after(5):
        await backend._close_client()


class Listener:
    """A LISTEN connection stand-in: it only has to be dropped."""

    def __init__(self) -> None:
        self.terminated = False

    def terminate(self) -> None:
        self.terminated = True


async def test_postgres_listener_reconnects_after_a_ping_nobody_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = postgres()
    listeners: list[Listener] = []
    pumped = anyio.Event()
    calls = 0

    async def open_listener() -> Any:
        listeners.append(Listener())
        return listeners[-1]

    async def pump() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TimeoutError  # what _ping's fail_after raises on a silent network
        pumped.set()
        await anyio.sleep_forever()

    backend._open_listener = open_listener  # type: ignore[method-assign]
    backend._pump = pump  # type: ignore[method-assign]
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(backend._listen_forever)
            await pumped.wait()
            group.cancel_scope.cancel()
    assert len(listeners) == 2 and listeners[0].terminated
    assert "Postgres LISTEN lost" in caplog.text


class PubSubConnection:
    """A pub/sub connection whose SUBSCRIBE finds the server gone."""

    def __init__(self) -> None:
        self.disconnected = False

    async def send_command(self, *args: Any) -> None:
        raise ConnectionError("the server went away")

    async def disconnect(self) -> None:
        self.disconnected = True


async def test_redis_reader_drops_its_connection_when_the_first_subscribe_fails() -> None:
    from lilya.channels.exceptions import BackendUnavailableError
    from lilya.channels.redis import RedisBackend

    backend = RedisBackend("redis://127.0.0.1:1/0", SETTINGS)
    connection = PubSubConnection()

    async def pubsub_connection(pool: Any) -> Any:
        return connection

    backend._pool = cast(Any, object())  # connected, as far as the reader can tell
    backend._pubsub_connection = pubsub_connection  # type: ignore[method-assign]
    backend._wanted.add("room")
    with pytest.raises(BackendUnavailableError):
        await backend._open_reader()
    assert connection.disconnected
    assert backend._reader is None
