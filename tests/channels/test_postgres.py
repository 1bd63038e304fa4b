"""Postgres specifics: publishing inside your transaction, big payloads, a killed server.

These run on asyncio only: asyncpg is built on asyncio. The restart test
makes a private cluster (initdb on a free port) so that it can kill -9 it.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import asyncpg
import pytest

from lilya.channels import (
    BackendError,
    BackendUnavailableError,
    Channels,
    PublishOutcomeUnknownError,
)
from lilya.channels.postgres import MAX_PRESENCE_INFO_BYTES, mask_password
from lilya.exceptions import ImproperlyConfigured
from tests.channels.conftest import MakeChannels
from tests.channels.helpers import nothing_more, offsets, take, take_type
from tests.channels.postgres_server import PostgresProcess, delete_rows

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # asyncpg only runs on asyncio


@pytest.fixture
async def make(
    postgres_url: str, prefix: str, channels_factory: MakeChannels
) -> AsyncIterator[MakeChannels]:
    async def make_channels(**options: object) -> Channels:
        return await channels_factory(postgres_url, key_prefix=prefix, **options)

    yield make_channels
    delete_rows(postgres_url, prefix)


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(postgres_url)
    yield connection
    await connection.close()


async def test_a_publish_in_your_transaction_is_delivered_on_commit(
    make: MakeChannels, db: asyncpg.Connection
) -> None:
    channels = await make()
    async with channels.subscribe("orders") as sub:
        async with db.transaction():
            event = await channels.publish("orders", {"id": 1}, connection=db)
            assert event.offset == 1
            # Not yet: the notification leaves with the commit.
            await nothing_more(sub, within=0.3)
            assert await channels.history("orders") == []
        delivered = await take(sub, 1)
        assert delivered[0].data == {"id": 1}
        assert delivered[0].position == event.position
        assert [e.data for e in await channels.history("orders")] == [{"id": 1}]


async def test_a_publish_in_a_transaction_that_rolls_back_is_never_delivered(
    make: MakeChannels, db: asyncpg.Connection
) -> None:
    channels = await make()
    async with channels.subscribe("orders") as sub:
        with pytest.raises(ZeroDivisionError):
            async with db.transaction():
                await channels.publish("orders", "never", connection=db)
                1 / 0  # noqa: B018 - the app fails after publishing
        await nothing_more(sub, within=0.3)
        # The offset went back with the rollback: no hole for anyone to see.
        after = await channels.publish("orders", "next")
        assert after.offset == 1
        assert [e.data for e in await take(sub, 1)] == ["next"]
        assert offsets(await channels.history("orders")) == [1]


async def test_a_publish_in_a_transaction_joins_the_rows_you_wrote(
    make: MakeChannels, db: asyncpg.Connection, prefix: str
) -> None:
    # The point of connection=: the message and your own write commit together.
    channels = await make()
    table = "lilya_test_orders_" + prefix.rsplit(":", 1)[1]
    await db.execute(f"CREATE TABLE {table} (id int)")
    try:
        async with channels.subscribe("orders") as sub:
            async with db.transaction():
                await db.execute(f"INSERT INTO {table} VALUES (7)")
                await channels.publish("orders", {"created": 7}, connection=db)
            event = (await take(sub, 1))[0]
            # By the time the event arrives, the row is there for any reader.
            assert await db.fetchval(f"SELECT id FROM {table}") == event.data["created"]
    finally:
        await db.execute(f"DROP TABLE {table}")


async def test_a_connection_outside_a_transaction_is_refused_with_what_to_do(
    make: MakeChannels, db: asyncpg.Connection
) -> None:
    channels = await make()
    with pytest.raises(RuntimeError, match=r"async with conn\.transaction"):
        await channels.publish("orders", "x", connection=db)
    with pytest.raises(TypeError, match="must be an asyncpg connection"):
        await channels.publish("orders", "x", connection="postgres://")
    assert (await channels.position("orders")).offset == 0


async def test_only_postgres_can_publish_inside_your_transaction(
    channels_factory: MakeChannels, db: asyncpg.Connection
) -> None:
    channels = await channels_factory("memory://")
    with pytest.raises(TypeError, match="only postgres:// channels live in your database"):
        await channels.publish("c", "x", connection=db)


@pytest.mark.parametrize(
    "data",
    [
        "x" * 100_000,  # past NOTIFY's 8,000 bytes
        "é" * 4_000,  # 8,000 bytes of UTF-8 in 4,000 characters
        b"\x00\xff" * 20_000,
        "a\x00b",  # NOTIFY cannot carry a NUL at all
        {"big": ["y" * 1000] * 50},
        b"\x00small bytes",
    ],
    ids=["long-text", "multibyte", "long-bytes", "nul", "long-json", "short-bytes"],
)
async def test_payloads_notify_cannot_carry_arrive_whole_by_reference(
    make: MakeChannels, data: object
) -> None:
    publisher, reader = await make(), await make()
    async with reader.subscribe("big") as sub:
        await publisher.publish("big", "before")
        await publisher.publish("big", data)
        await publisher.publish("big", "after")
        assert [e.data for e in await take(sub, 3)] == ["before", data, "after"]
    assert (await publisher.history("big"))[1].data == data


async def test_a_big_payload_is_delivered_even_without_history(make: MakeChannels) -> None:
    publisher, reader = await make(history_size=0), await make(history_size=0)
    async with reader.subscribe("big") as sub:
        await publisher.publish("big", "z" * 50_000)
        assert (await take(sub, 1))[0].data == "z" * 50_000
    assert await publisher.history("big") == []


async def test_a_reference_gone_before_it_is_read_becomes_a_reset_not_a_hole(
    make: MakeChannels, db: asyncpg.Connection, prefix: str
) -> None:
    publisher, reader = await make(history_size=0), await make(history_size=0)
    async with reader.subscribe("big") as sub:
        await publisher.publish("big", "small")
        await take(sub, 1)
        # Stand for a listener over a minute behind: the row sent by reference
        # is gone by the time it reads it.
        async with db.transaction():
            await publisher.publish("big", "z" * 50_000, connection=db)
            await db.execute("DELETE FROM lilya_channel_message WHERE ns = $1", prefix)
        reset = await take_type(sub, "reset")
        assert sub.recovered is False
        assert reset.offset == 2
        await publisher.publish("big", "next")
        assert [e.data for e in await take(sub, 1)] == ["next"]


async def test_presence_info_too_big_for_a_notification_is_refused_clearly(
    make: MakeChannels,
) -> None:
    channels = await make()
    with pytest.raises(ValueError, match=f"at most {MAX_PRESENCE_INFO_BYTES} bytes of JSON"):
        async with channels.subscribe("room", presence={"bio": "b" * MAX_PRESENCE_INFO_BYTES}):
            pass  # pragma: no cover - refused
    assert await channels.presence("room") == {}


async def test_an_unreachable_server_fails_connect_with_backend_unavailable() -> None:
    channels = Channels("postgres://postgres@127.0.0.1:1/test")
    with pytest.raises(BackendUnavailableError) as caught:
        await channels.connect()
    assert caught.value.operation == "connect"
    assert not channels.connected


async def test_a_refused_login_is_a_backend_error_naming_the_url_without_password() -> None:
    channels = Channels("postgresql://postgres:secret@127.0.0.1:5432/no_such_database")
    with pytest.raises(BackendError) as caught:
        await channels.connect()
    assert "postgresql://postgres:***@127.0.0.1:5432/no_such_database" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_mask_password_leaves_a_url_without_one_alone() -> None:
    assert mask_password("postgres://127.0.0.1/test") == "postgres://127.0.0.1/test"
    assert mask_password("postgres://u:p@h/db") == "postgres://u:***@h/db"


async def test_using_the_postgres_backend_before_connect_is_a_clear_error() -> None:
    from lilya.channels import BackendSettings
    from lilya.channels.postgres import PostgresBackend

    backend = PostgresBackend("postgres://h/db", BackendSettings(1, None, "p", (0.1, 0.1)))
    for call in (
        backend.history("c", after=None, limit=None),
        backend.publish("c", "s", b"x", "x", None),
        backend.listen("c"),
    ):
        with pytest.raises((RuntimeError, BackendUnavailableError), match=r"before connect|listen"):
            await call


def test_postgres_urls_without_asyncpg_name_the_pip_install_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(sys.modules):
        if name == "asyncpg" or name.startswith("asyncpg.") or name == "lilya.channels.postgres":
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    for url in ("postgres://h/db", "postgresql://h/db"):
        with pytest.raises(ImproperlyConfigured, match=r'pip install "lilya\[postgres\]"$'):
            Channels(url)


# -- a server killed mid-stream ------------------------------------------------------


@pytest.fixture
def private_postgres() -> Iterator[PostgresProcess]:
    server = PostgresProcess()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.mark.slow
async def test_subscribers_recover_everything_after_postgres_is_killed_and_restarted(
    channels_factory: MakeChannels, private_postgres: PostgresProcess
) -> None:
    server = private_postgres
    options = {"history_size": 10_000, "reconnect_delay": (0.05, 0.3)}
    publisher = await channels_factory(server.url, **options)
    readers = [await channels_factory(server.url, **options) for _ in range(2)]
    published: list[int] = []
    refused = 0
    async with readers[0].subscribe("c") as first, readers[1].subscribe("c") as second:

        async def attempt(number: int) -> None:
            nonlocal refused
            while True:
                try:
                    await publisher.publish("c", number, message_id=str(number))
                except PublishOutcomeUnknownError:
                    continue  # it may have committed: retry, safely, by id
                except BackendUnavailableError:
                    refused += 1
                else:
                    published.append(number)
                return

        for number in range(1, 101):
            await attempt(number)
        await anyio.to_thread.run_sync(server.kill)
        for number in range(101, 111):
            await attempt(number)
            await anyio.sleep(0.02)
        await anyio.to_thread.run_sync(server.start)
        for number in range(111, 211):
            with anyio.fail_after(30):
                while number not in published:
                    await attempt(number)
                    if number not in published:
                        await anyio.sleep(0.1)
        assert refused > 0, "publishing while Postgres is down must raise"
        for sub in (first, second):
            events = await take(sub, len(published), within=30)
            assert [event.data for event in events] == published
            assert sub.recovered is True
            await nothing_more(sub)


# -- the listener under hostile conditions ---------------------------------------------


async def test_a_notification_lilya_did_not_write_is_ignored_and_delivery_goes_on(
    make: MakeChannels, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    channels = await make()
    name = channels._backend._notify_name("c")  # type: ignore[attr-defined]
    async with channels.subscribe("c") as sub:
        for garbage in ("garbage", "e\nnot-a-number\nmx", "e\n1\nzwhat"):
            await db.execute("SELECT pg_notify($1, $2)", name, garbage)
        await channels.publish("c", "real")
        assert [e.data for e in await take(sub, 1)] == ["real"]
        await nothing_more(sub)
    assert "Ignored a notification lilya did not write" in caplog.text


async def test_a_failure_inside_the_listener_becomes_a_reconnect_that_loses_nothing(
    make: MakeChannels, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher, reader = (
        await make(reconnect_delay=(0.05, 0.05)),
        await make(reconnect_delay=(0.05, 0.05)),
    )
    real_deliver = reader.deliver
    failed: list[bool] = []

    def deliver_failing_once(event: object) -> None:
        if not failed:
            failed.append(True)
            raise RuntimeError("a bug in a sink")
        real_deliver(event)  # type: ignore[arg-type]

    async with reader.subscribe("c") as sub:
        await publisher.publish("c", 0)
        assert [e.data for e in await take(sub, 1)] == [0]
        monkeypatch.setattr(reader, "deliver", deliver_failing_once)
        for i in range(1, 6):
            await publisher.publish("c", i)
        # The event whose delivery failed comes back from history after the reconnect.
        assert [e.data for e in await take(sub, 5, within=10)] == [1, 2, 3, 4, 5]
        await nothing_more(sub)
    assert "Postgres listener failed; reconnecting" in caplog.text


async def test_a_quiet_listener_pings_the_server_and_keeps_delivering(
    postgres_url: str, prefix: str
) -> None:
    channels = Channels(postgres_url, key_prefix=prefix)
    channels._backend._ping_every = 0.05  # type: ignore[attr-defined]
    async with channels, channels.subscribe("c") as sub:
        await anyio.sleep(0.4)  # several idle periods, each ending in a ping
        await channels.publish("c", "after the quiet")
        assert [e.data for e in await take(sub, 1)] == ["after the quiet"]
    delete_rows(postgres_url, prefix)


async def test_a_publish_whose_connection_dies_while_it_waits_has_an_unknown_outcome(
    make: MakeChannels, db: asyncpg.Connection, prefix: str
) -> None:
    channels = await make()
    await channels.publish("c", "first")
    async with db.transaction():
        # Hold the channel's row, so the publish is sent and then waits...
        await db.execute(
            "SELECT 1 FROM lilya_channel WHERE ns = $1 AND name = 'c' FOR UPDATE", prefix
        )
        async with anyio.create_task_group() as group:
            outcome: list[BaseException] = []

            async def publish() -> None:
                try:
                    await channels.publish("c", "in doubt", message_id="m-1")
                except PublishOutcomeUnknownError as exc:
                    outcome.append(exc)

            group.start_soon(publish)
            # ...then its server process is terminated: was it committed? Unknown.
            # Only a backend our transaction blocks is ours: other sessions of
            # the database (another test run) may be waiting on locks too.
            with anyio.fail_after(10):
                while not await db.fetchval(
                    "SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) "
                    "FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)) "
                    "AND query LIKE '%lilya_channel_publish%'",
                    db.get_server_pid(),
                ):
                    await anyio.sleep(0.02)
    assert len(outcome) == 1
    assert outcome[0].message_id == "m-1"  # type: ignore[attr-defined]
    # The retry by id is safe: once published, whatever happened before.
    retried = await channels.publish("c", "in doubt", message_id="m-1")
    assert retried.offset == 2
    assert (await channels.publish("c", "in doubt", message_id="m-1")).offset == 2


async def test_what_the_listener_cannot_place_or_translate_is_left_alone(
    make: MakeChannels,
) -> None:
    channels = await make()
    backend: Any = channels._backend
    await backend._handle("lilya_not_ours", "e\n1\nmsx")  # a channel nobody listens to
    error = KeyError("not a driver error")
    assert backend._translate("publish", error) is error


async def test_a_publish_blocked_past_lock_timeout_by_another_transaction_is_a_backend_error(
    postgres_url: str, prefix: str, channels_factory: MakeChannels, db: asyncpg.Connection
) -> None:
    # Server settings ride in the URL; here Postgres gives up waiting for the
    # channel's row after 200 ms (a caller's transaction holds it).
    channels = await channels_factory(f"{postgres_url}?lock_timeout=200", key_prefix=prefix)
    try:
        await channels.publish("c", "first")
        async with db.transaction():
            await db.execute(
                "SELECT 1 FROM lilya_channel WHERE ns = $1 AND name = 'c' FOR UPDATE", prefix
            )
            with pytest.raises(BackendError) as caught:
                await channels.publish("c", "blocked")
        assert caught.value.operation == "publish"
        assert "lock timeout" in str(caught.value)
        assert (await channels.publish("c", "later")).offset == 2
    finally:
        delete_rows(postgres_url, prefix)


async def test_a_failed_set_up_after_the_pool_opened_closes_it_again(
    make: MakeChannels, monkeypatch: pytest.MonkeyPatch, postgres_url: str, prefix: str
) -> None:
    from lilya.channels.postgres import PostgresBackend

    async def refuse(self: PostgresBackend) -> None:
        raise BackendUnavailableError(self.safe_url, "listen", None)

    monkeypatch.setattr(PostgresBackend, "_open_listener", refuse)
    channels = Channels(postgres_url, key_prefix=prefix)
    with pytest.raises(BackendUnavailableError, match="Cannot listen"):
        await channels.connect()
    assert channels._backend._pool is None  # type: ignore[attr-defined]


async def test_a_closed_pool_is_unavailable_not_a_driver_error(make: MakeChannels) -> None:
    channels = await make()
    pool = channels._backend._pool  # type: ignore[attr-defined]
    await pool.close()
    with pytest.raises(BackendUnavailableError, match="Cannot read presence"):
        await channels.presence("c")


async def test_every_call_on_a_dead_server_is_unavailable_and_the_listener_keeps_trying(
    channels_factory: MakeChannels, private_postgres: PostgresProcess
) -> None:
    channels = await channels_factory(private_postgres.url, reconnect_delay=(0.05, 0.1))
    sub = channels.subscribe("c", presence={"user": "ann"})
    await sub.__aenter__()
    await anyio.to_thread.run_sync(private_postgres.kill)
    with pytest.raises((BackendUnavailableError, PublishOutcomeUnknownError)):
        await channels.publish("c", "lost")
    for call in (
        channels.publish("c", "lost"),
        channels.history("c"),
        channels.presence("c"),
    ):
        with pytest.raises(BackendUnavailableError):
            await call
    with pytest.raises(BackendUnavailableError):
        async with channels.subscribe("other"):
            pass  # pragma: no cover - refused
    await anyio.sleep(0.3)  # the listener retries in the background, raising nothing
    with anyio.fail_after(10):
        await sub.__aexit__(None, None, None)  # leaving, bounded, while the server is down


async def test_a_conflicting_publish_in_a_repeatable_read_transaction_is_a_backend_error(
    make: MakeChannels, db: asyncpg.Connection
) -> None:
    channels = await make()
    await channels.publish("c", "first")
    with pytest.raises(BackendError, match="serialize"):
        async with db.transaction(isolation="repeatable_read"):
            await db.fetchval("SELECT 1")  # the snapshot is taken here
            await channels.publish("c", "committed meanwhile")
            await channels.publish("c", "mine", connection=db)
    assert [e.data for e in await channels.history("c")] == ["first", "committed meanwhile"]
