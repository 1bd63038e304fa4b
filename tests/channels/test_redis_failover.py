"""Failovers: a Redis Cluster master or a Sentinel-watched master killed mid-stream.

Each test starts its own servers (a kill would break the shared ones), with
node timeouts of one second so the failover takes seconds. What a subscriber
sees must end in exact recovery (every published message, offsets without a
hole) or an explicit ``reset``: never a silent gap.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import anyio
import pytest
import redis

from lilya.channels import (
    BackendUnavailableError,
    Channels,
    Event,
    PublishOutcomeUnknownError,
    Subscription,
)
from lilya.exceptions import ImproperlyConfigured
from tests.channels.conftest import MakeChannels
from tests.channels.redis_cluster import command, redis_cluster, redis_sentinels

pytestmark = [pytest.mark.anyio, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis-py's async client only runs on asyncio


async def publish_numbers(
    publisher: Channels, numbers: range, *, pause: float = 0.01, within: float = 60.0
) -> list[int]:
    """Publish each number, retrying by message id until Redis takes it; return them."""
    done: list[int] = []
    deadline = time.monotonic() + within
    for number in numbers:
        while True:
            try:
                await publisher.publish("c", number, message_id=str(number))
            except (BackendUnavailableError, PublishOutcomeUnknownError):
                assert time.monotonic() < deadline, f"publish {number} never went through"
                await anyio.sleep(0.05)
                continue
            done.append(number)
            break
        await anyio.sleep(pause)
    return done


async def read_until(sub: Subscription, last: int, *, within: float = 60.0) -> list[Event]:
    """Every message and reset of *sub* until the message carrying *last* arrived."""
    events: list[Event] = []
    with anyio.fail_after(within):
        while True:
            event = await sub.receive()
            if event.type in ("message", "reset"):
                events.append(event)
            if event.type == "message" and event.data == last:
                return events


def assert_no_silent_gap(events: list[Event], published: list[int]) -> None:
    """Offsets follow each other without a hole except right after a reset; with no
    reset, every published number arrived."""
    previous: Event | None = None
    for event in events:
        if event.type == "reset":
            previous = event
            continue
        if previous is not None:
            assert event.epoch == previous.epoch, f"epoch changed without a reset at {event}"
            assert event.offset == previous.offset + 1, f"a silent gap before {event}"
        previous = event
    if not any(event.type == "reset" for event in events):
        assert {event.data for event in events} >= set(published)


async def stream_through(
    make: Callable[[], object], kill: Callable[[], None], wait_failover: Callable[[], object]
) -> tuple[list[Event], list[int]]:
    publisher: Channels = await make()  # type: ignore[misc]
    reader: Channels = await make()  # type: ignore[misc]
    async with reader.subscribe("c") as sub:
        published = await publish_numbers(publisher, range(1, 31))
        kill()
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, wait_failover)
            published += await publish_numbers(publisher, range(31, 61))
        published += await publish_numbers(publisher, range(61, 71))
        events = await read_until(sub, 70)
    return events, published


async def test_killing_a_cluster_master_mid_stream_ends_in_recovery_or_a_reset(
    channels_factory: MakeChannels,
) -> None:
    prefix = f"lilya-failover:{uuid.uuid4().hex}"
    with redis_cluster() as cluster:
        master = cluster.master_of(f"{{{prefix}:c}}")

        async def make() -> Channels:
            return await channels_factory(
                cluster.url, key_prefix=prefix, history_size=1000, reconnect_delay=(0.05, 0.5)
            )

        events, published = await stream_through(
            make, master.kill, lambda: cluster.wait_failover(master, f"{{{prefix}:c}}")
        )
        assert cluster.master_of(f"{{{prefix}:c}}") is not master
    assert_no_silent_gap(events, published)
    assert events[-1].data == 70


async def test_a_subscription_follows_its_channels_slot_to_another_master(
    channels_factory: MakeChannels,
) -> None:
    prefix = f"lilya-reshard:{uuid.uuid4().hex}"
    tag = f"{{{prefix}:c}}"
    with redis_cluster() as cluster:
        options = {"key_prefix": prefix, "history_size": 1000, "reconnect_delay": (0.05, 0.5)}
        publisher = await channels_factory(cluster.url, **options)
        reader = await channels_factory(cluster.url, **options)
        bystander = await channels_factory(cluster.url, **options)
        async with reader.subscribe("c") as sub:
            published = await publish_numbers(publisher, range(1, 21), pause=0)
            assert len(await bystander.history("c")) == 20
            old = cluster.master_of(tag)
            new = await anyio.to_thread.run_sync(cluster.move_slot_of, tag)
            assert new is not old
            # The publisher's slot map is stale: MOVED, which it follows at once.
            await publisher.publish("c", 21)
            assert len(await bystander.history("c")) == 21
            published += [21, *await publish_numbers(publisher, range(22, 41), pause=0)]
            events = await read_until(sub, 40)
        # History moved with the keys, so this is exact recovery: no reset.
        assert [event.type for event in events] == ["message"] * 40
        assert [event.data for event in events] == published
        assert [event.offset for event in events] == list(range(1, 41))
        assert [event.data for event in await reader.history("c")] == published


async def test_killing_the_sentinels_master_mid_stream_ends_in_recovery_or_a_reset(
    channels_factory: MakeChannels,
) -> None:
    prefix = f"lilya-failover:{uuid.uuid4().hex}"
    with redis_sentinels() as group:

        async def make() -> Channels:
            return await channels_factory(
                group.url, key_prefix=prefix, history_size=1000, reconnect_delay=(0.05, 0.5)
            )

        events, published = await stream_through(make, group.master.kill, group.wait_failover)
        assert group.master_port() == group.replica.port
    assert_no_silent_gap(events, published)
    assert events[-1].data == 70


async def test_a_cluster_publish_is_not_broadcast_to_other_shards(
    channels_factory: MakeChannels, redis_cluster_url: str
) -> None:
    # SPUBLISH travels within the owning shard: a node of another shard
    # counts no pub/sub traffic for the channel.
    import redis

    prefix = f"lilya-shard:{uuid.uuid4().hex}"
    channels = await channels_factory(redis_cluster_url, key_prefix=prefix)
    async with channels.subscribe("c"):
        await channels.publish("c", "hello")
    hosts = redis_cluster_url.split("//", 1)[1].split(",")
    owner = None
    for host in hosts:
        client = redis.Redis(port=int(host.rsplit(":", 1)[1]))
        try:
            if command(client, "CLUSTER", "COUNTKEYSINSLOT", _slot(client, prefix)):
                owner = host
                if client.info("replication")["role"] == "master":
                    break
        finally:
            client.close()
    assert owner is not None
    for host in hosts:
        client = redis.Redis(port=int(host.rsplit(":", 1)[1]))
        try:
            stats = client.info("stats")
            if host != owner and client.info("replication")["role"] == "master":
                # A plain PUBLISH in a cluster reaches every node; ours did not.
                assert stats.get("pubsubshard_channels", 0) == 0
        finally:
            client.close()


def _slot(client: redis.Redis, prefix: str) -> int:
    return int(command(client, "CLUSTER", "KEYSLOT", f"{{{prefix}:c}}"))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://127.0.0.1", "must be host:port"),
        ("redis+cluster://127.0.0.1:7000,:7001", "must be host:port"),
        ("redis+cluster://127.0.0.1:99999", "must be host:port"),
        ("redis+cluster://127.0.0.1:7000/3", "only database 0"),
        ("redis+sentinel://127.0.0.1:26379", "must name the service"),
        ("redis+sentinel://127.0.0.1:26379/svc/x", "must name the service"),
        ("redis+sentinel://:secret@127.0.0.1:26379", "must name the service"),
        ("redis+cluster://:secret@127.0.0.1:7000?socket_timeout=soon", "socket_timeout"),
        ("redis+cluster://", "must be host:port"),
    ],
)
def test_a_malformed_cluster_or_sentinel_url_is_refused_when_built(url: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message) as caught:
        Channels(url)
    assert "secret" not in str(caught.value)


async def test_an_unreachable_cluster_fails_connect_with_a_clear_error() -> None:
    channels = Channels("redis+cluster://127.0.0.1:1,127.0.0.1:2")
    with pytest.raises(BackendUnavailableError, match="slot map"):
        await channels.connect()
