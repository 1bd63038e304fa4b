"""Pipelined publications on redis://: concurrent publishes share one round trip.

Each caller must still be told its own outcome (offset, refusal, "not sent",
"unknown"), in call order, whatever the others' outcome was; a caller cancelled
before its batch went out is not published.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import anyio
import pytest
import redis

from lilya.channels import (
    BackendError,
    BackendUnavailableError,
    Channels,
    PublishOutcomeUnknownError,
)
from lilya.channels.redis import RedisBackend
from tests.channels.conftest import MakeChannels
from tests.channels.helpers import take
from tests.channels.redis_server import delete_keys, private_redis

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis-py's async client only runs on asyncio


def backend_of(channels: Channels) -> RedisBackend:
    backend = channels._backend
    assert isinstance(backend, RedisBackend)
    return backend


async def publish_all(channels: Channels, items: list[Any], **options: Any) -> list[Any]:
    """Publish *items* from one task each, started in order; each task's event or error."""
    outcomes: list[Any] = [None] * len(items)

    async def one(index: int) -> None:
        try:
            outcomes[index] = await channels.publish(
                "c", items[index], message_id=f"id-{index}", **options
            )
        except Exception as exc:
            outcomes[index] = exc

    async with anyio.create_task_group() as group:
        for index in range(len(items)):
            group.start_soon(one, index)
    return outcomes


async def test_concurrent_publishes_take_few_round_trips_and_keep_call_order(
    channels_factory: MakeChannels, redis_url: str, prefix: str
) -> None:
    publisher = await channels_factory(redis_url, key_prefix=prefix)
    reader = await channels_factory(redis_url, key_prefix=prefix)
    async with reader.subscribe("c", max_queue=1000) as sub:
        events = await publish_all(publisher, list(range(300)))
        # Offsets in the order the publishes were called, each caller its own.
        assert [event.offset for event in events] == list(range(1, 301))
        assert [event.data for event in events] == list(range(300))
        received = await take(sub, 300, within=10)
        assert [event.data for event in received] == list(range(300))
    # The first went alone, the rest waited for it and went in batches of at
    # most 256: one pooled connection was enough.
    pool = backend_of(publisher)._pool
    assert pool is not None
    assert len(pool._available_connections) + len(pool._in_use_connections) <= 2
    delete_keys(redis_url, prefix)


async def test_a_refused_publish_in_a_batch_fails_alone(
    channels_factory: MakeChannels, redis_url: str, prefix: str
) -> None:
    redis.Redis.from_url(redis_url).set(f"{prefix}:meta:clash", "a string, not a hash")
    channels = await channels_factory(redis_url, key_prefix=prefix)
    outcomes: dict[str, Any] = {}

    async def one(channel: str) -> None:
        try:
            outcomes[channel] = (await channels.publish(channel, "x")).offset
        except BackendError as exc:
            outcomes[channel] = exc

    async with anyio.create_task_group() as group:
        for channel in ("a", "b", "clash", "d"):
            group.start_soon(one, channel)
    assert outcomes["a"] == outcomes["b"] == outcomes["d"] == 1
    assert isinstance(outcomes["clash"], BackendError)
    assert "refused it" in str(outcomes["clash"])
    delete_keys(redis_url, prefix)


async def test_in_a_stall_the_publish_on_the_wire_is_unknown_and_those_behind_it_not_sent(
    channels_factory: MakeChannels,
) -> None:
    with private_redis() as server:
        publisher = await channels_factory(server.url + "?socket_timeout=0.5")
        reader = await channels_factory(server.url)
        async with reader.subscribe("c") as sub:
            await publisher.publish("c", "warm-up", message_id="w")
            assert server.process is not None
            server.process.send_signal(signal.SIGSTOP)  # Redis stalls, the command unread
            try:
                outcomes = await publish_all(publisher, ["a", "b", "c"])
            finally:
                server.process.send_signal(signal.SIGCONT)
            # "a" went out alone and its reply never came: unknown. "b" and "c"
            # waited behind it, then found no connection that would answer.
            unknown, *refused = outcomes
            assert isinstance(unknown, PublishOutcomeUnknownError)
            assert (unknown.channel, unknown.message_id) == ("c", "id-0")
            for outcome in refused:
                assert isinstance(outcome, BackendUnavailableError)
                assert not isinstance(outcome, PublishOutcomeUnknownError)
            # "a" was published after all, when Redis woke up; the others never.
            assert [event.data for event in await take(sub, 2)] == ["warm-up", "a"]
            retried = await publish_all(publisher, ["a", "b", "c"])
            assert [event.offset for event in retried] == [2, 3, 4]
            assert [event.data for event in await take(sub, 2)] == ["b", "c"]
            with anyio.move_on_after(0.3):
                extra = await sub.receive()
                raise AssertionError(f"a retry was delivered again: {extra!r}")


async def test_publishes_while_redis_is_down_are_each_plainly_not_sent(
    channels_factory: MakeChannels,
) -> None:
    with private_redis() as server:
        channels = await channels_factory(server.url)
        await channels.publish("c", "warm-up")
        server.kill()
        await anyio.sleep(0.3)  # the pooled connection's EOF has arrived
        outcomes = await publish_all(channels, ["a", "b", "c"])
        assert all(isinstance(outcome, BackendUnavailableError) for outcome in outcomes)
        assert not any(isinstance(outcome, PublishOutcomeUnknownError) for outcome in outcomes)


async def test_a_batch_after_redis_forgot_the_script_loads_it_and_publishes_every_one(
    channels_factory: MakeChannels, redis_url: str, prefix: str
) -> None:
    channels = await channels_factory(redis_url, key_prefix=prefix)
    await channels.publish("c", "before")
    redis.Redis.from_url(redis_url).script_flush()
    events = await publish_all(channels, ["a", "b", "c"])
    assert sorted(event.offset for event in events) == [2, 3, 4]
    assert {event.data for event in await channels.history("c")} == {"before", "a", "b", "c"}
    delete_keys(redis_url, prefix)


async def test_a_script_redis_keeps_forgetting_is_a_channels_error(
    channels_factory: MakeChannels, redis_url: str, prefix: str
) -> None:
    channels = await channels_factory(redis_url, key_prefix=prefix)
    backend = backend_of(channels)
    # A hash no script has: every EVALSHA answers NOSCRIPT, even after the reload.
    backend._publish_sha = "0" * 40
    with pytest.raises(BackendError, match="No matching script"):
        await channels.publish("c", "x")
    delete_keys(redis_url, prefix)


async def test_a_publish_cancelled_while_waiting_for_its_batch_is_not_sent(
    channels_factory: MakeChannels,
) -> None:
    with private_redis() as server:
        channels = await channels_factory(server.url)
        await channels.publish("c", "warm-up")
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)  # the first publish's batch hangs
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(channels.publish, "c", "first")
                await anyio.sleep(0.05)
                with anyio.move_on_after(0.1):
                    await channels.publish("c", "cancelled")  # waits behind "first"
                server.process.send_signal(signal.SIGCONT)
        finally:
            server.process.send_signal(signal.SIGCONT)
        await channels.publish("c", "last")
        assert [event.data for event in await channels.history("c")] == [
            "warm-up",
            "first",
            "last",
        ]


async def test_a_publish_cancelled_just_as_its_turn_came_passes_the_turn_on(
    channels_factory: MakeChannels, redis_url: str, prefix: str
) -> None:
    channels = await channels_factory(redis_url, key_prefix=prefix)
    await channels.publish("c", "warm-up")
    results: list[str] = []

    async def second() -> None:
        await channels.publish("c", "second")

    async def first() -> None:
        await channels.publish("c", "first")
        # The turn was handed to "second" on return; cancel it before it runs.
        second_task.cancel()

    first_task = asyncio.ensure_future(first())
    second_task = asyncio.ensure_future(second())
    third_task = asyncio.ensure_future(channels.publish("c", "third"))
    await first_task
    with pytest.raises(asyncio.CancelledError):
        await second_task
    results.append((await third_task).data)
    assert results == ["third"]
    assert [event.data for event in await channels.history("c")] == ["warm-up", "first", "third"]
    delete_keys(redis_url, prefix)


async def test_a_batch_that_breaks_unexpectedly_tells_the_others_their_outcome_is_unknown(
    channels_factory: MakeChannels, redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels = await channels_factory(redis_url, key_prefix=prefix)
    backend = backend_of(channels)
    real = backend._run_batch
    gate = anyio.Event()

    async def broken(pool: Any, batch: list[Any]) -> None:
        if len(batch) == 1:
            await gate.wait()  # the first batch: let the others queue behind it
            await real(pool, batch)
            return
        raise RuntimeError("a bug in the batch")

    monkeypatch.setattr(backend, "_run_batch", broken)
    outcomes: list[Any] = []

    async def one(item: str) -> None:
        try:
            outcomes.append((await channels.publish("c", item)).data)
        except Exception as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as group:
        for item in ("a", "b", "c"):
            group.start_soon(one, item)
        await anyio.sleep(0.05)
        gate.set()
    assert outcomes[0] == "a"
    errors = outcomes[1:]
    # The one that led the broken batch sees the bug; the other is not told
    # it was published (it may have been).
    assert sorted(type(error).__name__ for error in errors) == [
        "PublishOutcomeUnknownError",
        "RuntimeError",
    ]
    delete_keys(redis_url, prefix)


async def test_a_publish_cancelled_after_its_batch_went_out_is_published_all_the_same(
    channels_factory: MakeChannels, redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels = await channels_factory(redis_url, key_prefix=prefix)
    backend = backend_of(channels)
    real = backend._run_batch
    on_the_wire = anyio.Event()
    gate = anyio.Event()

    async def slow(pool: Any, batch: list[Any]) -> None:
        if len(batch) > 1:
            on_the_wire.set()
            await gate.wait()  # the batch of "b" and "c" is out, its replies not read
        await real(pool, batch)

    monkeypatch.setattr(backend, "_run_batch", slow)
    c_scope = anyio.CancelScope()
    answered: list[str] = []

    async def publish(data: str, scope: anyio.CancelScope | None = None) -> None:
        with scope or anyio.CancelScope():
            answered.append((await channels.publish("c", data)).data)

    async with anyio.create_task_group() as group:
        group.start_soon(publish, "a")  # leads alone
        group.start_soon(publish, "b")  # then leads the batch of "b" and "c"
        group.start_soon(publish, "c", c_scope)
        await on_the_wire.wait()
        c_scope.cancel()
        await anyio.sleep(0.05)
        gate.set()
    assert answered == ["a", "b"]  # the cancelled caller is told nothing
    assert [event.data for event in await channels.history("c")] == ["a", "b", "c"]
    delete_keys(redis_url, prefix)


async def test_a_refusal_while_taking_a_connection_is_a_channels_error_not_unavailable(
    channels_factory: MakeChannels, redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lilya.channels import redis as redis_backend

    channels = await channels_factory(redis_url, key_prefix=prefix)

    async def refuse(pool: Any) -> Any:
        raise redis.exceptions.ResponseError("ERR DB index is out of range")

    monkeypatch.setattr(redis_backend, "_get_connection", refuse)
    with pytest.raises(BackendError, match="out of range") as info:
        await channels.publish("c", "x")
    assert not isinstance(info.value, BackendUnavailableError)


async def test_concurrent_publishers_through_a_kill_9_lose_nothing_and_keep_offset_order(
    channels_factory: MakeChannels,
) -> None:
    with private_redis(persistent=True) as server:
        options = {"history_size": 10_000, "reconnect_delay": (0.05, 0.2), "max_queue": 10_000}
        publisher = await channels_factory(server.url, **options)
        reader = await channels_factory(server.url, **options)
        published: list[str] = []
        refused = 0
        running = True

        async def producer(name: str) -> None:
            nonlocal refused
            number = 0
            while running:
                number += 1
                data = f"{name}-{number}"
                unknown = False
                while True:
                    try:
                        await publisher.publish("c", data, message_id=data)
                    except PublishOutcomeUnknownError:
                        unknown = True  # it may have been published: retry it, by id
                        continue
                    except BackendUnavailableError:
                        refused += 1
                        await anyio.sleep(0.02)
                        if unknown:
                            continue  # not sent this time, but maybe the time before
                    else:
                        published.append(data)
                    break
                await anyio.sleep(0)

        async with reader.subscribe("c") as sub:
            async with anyio.create_task_group() as group:
                for name in "abcdefgh":
                    group.start_soon(producer, name)
                await anyio.sleep(0.3)
                server.kill()  # SIGKILL, batches on the wire
                await anyio.sleep(0.3)
                await anyio.to_thread.run_sync(server.start)
                await anyio.sleep(0.3)
                running = False
            assert refused > 0, "publishing while Redis is down must raise"
            events = await take(sub, len(published), within=20)
            received = [event.data for event in events]
            assert sorted(received) == sorted(published)  # none lost, none twice
            offsets = [event.offset for event in events]
            assert offsets == sorted(offsets) == list(range(offsets[0], offsets[0] + len(events)))
            for name in "abcdefgh":  # each producer's own order survives
                own = [int(data.split("-")[1]) for data in received if data[0] == name]
                assert own == sorted(own)
            assert sub.recovered is True
