"""Redis Cluster specifics the contract suite cannot stage: a shard without a
master, readers not up yet, unsubscribes crossing, a subscribe never confirmed."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import pytest

from lilya.channels import BackendUnavailableError, Channels
from tests.channels.conftest import MakeChannels
from tests.channels.helpers import take, take_messages

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis-py's async client only runs on asyncio


async def connected(make: MakeChannels, url: str) -> tuple[Channels, Any]:
    channels = await make(url, key_prefix=f"lilya-cluster:{uuid.uuid4().hex}")
    return channels, channels._backend


async def test_a_slot_no_master_serves_is_unavailable_not_a_crash(
    channels_factory: MakeChannels, redis_cluster_url: str
) -> None:
    channels, backend = await connected(channels_factory, redis_cluster_url)
    backend._slots = []  # as if the shard of every slot were down
    with pytest.raises(BackendUnavailableError, match="find the master of slot"):
        await channels.publish("c", 1)
    # The next call re-reads the slot map and works again.
    assert (await channels.publish("c", 2)).offset == 1


async def test_concurrent_callers_read_a_stale_slot_map_once(
    channels_factory: MakeChannels, redis_cluster_url: str
) -> None:
    _channels, backend = await connected(channels_factory, redis_cluster_url)
    reads = 0
    learn = backend._learn

    def counting(reply: Any) -> None:
        nonlocal reads
        reads += 1
        learn(reply)

    backend._learn = counting
    backend._stale = True
    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(backend._refresh)
    assert reads == 1


async def test_subscribing_while_the_readers_are_being_rebuilt_is_unavailable(
    channels_factory: MakeChannels, redis_cluster_url: str
) -> None:
    channels, backend = await connected(channels_factory, redis_cluster_url)
    pumps, backend._pumps = backend._pumps, None
    with pytest.raises(BackendUnavailableError, match="subscribe"):
        async with channels.subscribe("c"):
            pass
    backend._pumps = pumps
    async with channels.subscribe("c") as sub:
        await channels.publish("c", "after")
        assert [event.data for event in await take(sub, 1)] == ["after"]


async def test_a_subscribe_redis_never_confirms_is_unavailable_and_dropping_readers_wakes_it(
    channels_factory: MakeChannels, redis_cluster_url: str
) -> None:
    channels, backend = await connected(channels_factory, redis_cluster_url)
    backend.subscribe_kind = b"never"  # confirmations go unrecognised

    async def drop_soon() -> None:
        await anyio.sleep(0.2)
        await backend._drop_reader()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(drop_soon)
            with pytest.raises(BackendUnavailableError, match="subscribe"):
                async with channels.subscribe("c"):
                    pass


async def test_answers_to_our_own_unsubscribes_are_counted_not_taken_for_slot_moves(
    channels_factory: MakeChannels, redis_cluster_url: str
) -> None:
    _channels, backend = await connected(channels_factory, redis_cluster_url)
    backend._wanted.add("c")
    backend._unsubscribing["c"] = 2
    backend._unsubscribed("c")
    assert backend._unsubscribing == {"c": 1}
    backend._unsubscribed("c")
    assert backend._unsubscribing == {}
    assert not backend._restart.is_set()


@pytest.mark.parametrize("name", ["a}b", "{x}", "}", "{", "ü{}}{", "a" * 1024])
async def test_channel_names_with_braces_keep_all_their_keys_in_one_slot(
    channels_factory: MakeChannels, redis_cluster_url: str, name: str
) -> None:
    # A hash tag ends at the first "}": the names' own braces must not split
    # a channel's keys (and its shard channel) over several slots.
    channels, _backend = await connected(channels_factory, redis_cluster_url)
    async with channels.subscribe(name, presence={"n": 1}) as sub:
        await channels.publish(name, "x", message_id="m")
        await channels.publish(name, "x", message_id="m")
        await channels.publish(name, "y")
        events = await take_messages(sub, 2)
        assert [(event.channel, event.data) for event in events] == [(name, "x"), (name, "y")]
        assert [event.data for event in await channels.history(name)] == ["x", "y"]
        assert len(await channels.presence(name)) == 1


async def test_a_master_that_cannot_be_reached_makes_every_operation_unavailable(
    channels_factory: MakeChannels, redis_cluster_url: str
) -> None:
    channels, backend = await connected(channels_factory, redis_cluster_url)
    dead_master = [[0, 16383, [b"127.0.0.1", 1, b"gone"]]]
    for operation in (
        lambda: channels.publish("c", 1),
        lambda: channels.history("c"),
        lambda: channels.presence("c"),
    ):
        backend._learn(dead_master)
        with pytest.raises(BackendUnavailableError, match="unavailable"):
            await operation()
    backend._learn(dead_master)
    with pytest.raises(BackendUnavailableError, match="subscribe"):
        async with channels.subscribe("c"):
            pass


async def test_bookkeeping_without_readers_or_subscriptions_changes_nothing(
    channels_factory: MakeChannels, redis_cluster_url: str
) -> None:
    from lilya.channels.backend import BackendSettings
    from lilya.channels.redis import RedisBackend
    from lilya.channels.redis_cluster import RedisClusterBackend

    _channels, backend = await connected(channels_factory, redis_cluster_url)
    await backend.unlisten("never-listened")  # no reader carries it: nothing to send
    backend._unsubscribed("never-wanted")  # not wanted: no slot move to follow
    assert not backend._restart.is_set()
    idle = RedisClusterBackend(redis_cluster_url, BackendSettings(10, None, "p", (0.05, 1.0)))
    idle._ask_restart()  # before connect(): only marks the slot map stale
    assert idle._stale
    single = RedisBackend("redis://127.0.0.1:1/0", BackendSettings(10, None, "p", (0.05, 1.0)))
    with pytest.raises(RuntimeError, match="before connect"):
        single._pool_for("c")
