"""Redis specifics: faults (Redis killed and restarted), URL configuration, dead processes.

These run on asyncio only: redis-py's async client is built on asyncio.
Tests that kill Redis start their own ``redis-server`` on a free port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest
import redis

from lilya.channels import BackendUnavailableError, Channels, Event, PublishOutcomeUnknownError
from lilya.channels.redis import mask_password
from tests.channels.conftest import MakeChannels
from tests.channels.helpers import take, take_join, take_leave, take_type
from tests.channels.redis_server import delete_keys, private_redis

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis-py's async client only runs on asyncio


async def publish_through_outage(
    publisher: Channels, server: object, *, before: int, during: float, after: int
) -> tuple[list[int], int]:
    """Publish numbered events, kill Redis, keep trying, restart it, publish more.

    Returns the numbers whose publish succeeded, and how many publishes raised
    BackendUnavailableError.
    """
    published: list[int] = []
    refused = 0
    number = 0

    async def attempt() -> None:
        nonlocal number, refused
        number += 1
        while True:
            try:
                await publisher.publish("c", number, message_id=str(number))
            except PublishOutcomeUnknownError:
                continue  # it may have been published: retry it, safely, by id
            except BackendUnavailableError:
                refused += 1
            else:
                published.append(number)
            return

    for _ in range(before):
        await attempt()
        await anyio.sleep(0.002)
    server.kill()  # type: ignore[attr-defined]
    deadline = time.monotonic() + during
    while time.monotonic() < deadline:
        await attempt()
        await anyio.sleep(0.02)
    await anyio.to_thread.run_sync(server.start)  # type: ignore[attr-defined]
    for _ in range(after):
        await attempt()
        await anyio.sleep(0.002)
    return published, refused


async def test_subscribers_recover_everything_history_covered_after_redis_restarts(
    channels_factory: MakeChannels,
) -> None:
    with private_redis(persistent=True) as server:
        options = {"history_size": 10_000, "reconnect_delay": (0.05, 0.2)}
        publisher = await channels_factory(server.url, **options)
        readers = [await channels_factory(server.url, **options) for _ in range(2)]
        async with readers[0].subscribe("c") as first, readers[1].subscribe("c") as second:
            published, refused = await publish_through_outage(
                publisher, server, before=100, during=0.5, after=100
            )
            assert refused > 0, "publishing while Redis is down must raise"
            assert len(published) == 200
            for sub in (first, second):
                events = await take(sub, len(published), within=10)
                assert [event.data for event in events] == published
                assert sub.recovered is True
                await assert_quiet(sub)


async def test_subscribers_get_a_reset_when_redis_restarts_empty(
    channels_factory: MakeChannels,
) -> None:
    with private_redis(persistent=False) as server:
        options = {"reconnect_delay": (0.05, 0.2)}
        publisher = await channels_factory(server.url, **options)
        reader = await channels_factory(server.url, **options)
        async with reader.subscribe("c") as sub:
            before = await publisher.publish("c", "before")
            assert (await take(sub, 1))[0].data == "before"
            server.kill()
            # Written to a connection whose server has just died, the command's
            # fate is unknown (Redis may have run it and died before replying);
            # once the connection is seen closed, it is plainly not sent.
            with pytest.raises((BackendUnavailableError, PublishOutcomeUnknownError)):
                await publisher.publish("c", "lost")
            with pytest.raises(BackendUnavailableError) as caught:
                await publisher.publish("c", "lost")
            assert caught.value.operation == "publish"
            await anyio.to_thread.run_sync(server.start)
            reset = await take_type(sub, "reset", within=10)
            assert sub.recovered is False
            assert reset.epoch != before.epoch
            after = await publisher.publish("c", "after")
            assert after.epoch == reset.epoch
            assert [event.data for event in await take(sub, 1)] == ["after"]


async def test_publish_while_redis_is_down_raises_and_connect_refuses(
    channels_factory: MakeChannels,
) -> None:
    with private_redis() as server:
        channels = await channels_factory(server.url)
        server.kill()
        with pytest.raises((BackendUnavailableError, PublishOutcomeUnknownError)):
            await channels.publish("c", "x")  # unknown on the connection it was written to
        with pytest.raises(BackendUnavailableError):
            await channels.publish("c", "x")
        with pytest.raises(BackendUnavailableError):
            await channels.history("c")
        with pytest.raises(BackendUnavailableError):
            await channels.presence("c")
        with pytest.raises(BackendUnavailableError):
            await channels_factory(server.url)


async def test_leaving_while_redis_is_down_is_left_to_the_presence_ttl(
    channels_factory: MakeChannels, caplog: pytest.LogCaptureFixture
) -> None:
    with private_redis() as server:
        channels = await channels_factory(server.url, presence_ttl=0.15)
        async with channels.subscribe("room", presence={"user": "ann"}):
            server.kill()
            await anyio.sleep(0.2)  # a heartbeat fails and is logged, not raised
        assert "Presence heartbeat" in caplog.text
        assert "cleanup step failed" in caplog.text


async def test_subscribing_while_redis_is_down_raises(channels_factory: MakeChannels) -> None:
    with private_redis() as server:
        channels = await channels_factory(server.url, reconnect_delay=(1.0, 1.0))
        server.kill()
        await anyio.sleep(0.1)
        with pytest.raises(BackendUnavailableError):
            async with channels.subscribe("c"):
                pass  # pragma: no cover


async def test_password_and_database_come_from_the_url(channels_factory: MakeChannels) -> None:
    with private_redis(password="s3cret") as server:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/4"
        channels = await channels_factory(url, key_prefix="app")
        await channels.publish("c", "x")
        client = redis.Redis(host="127.0.0.1", port=server.port, password="s3cret", db=4)
        try:
            assert client.exists("app:meta:c", "app:hist:c") == 2
        finally:
            client.close()
        assert "s3cret" not in repr(channels)
        with pytest.raises(BackendUnavailableError) as caught:
            await channels_factory(f"redis://:wrong@127.0.0.1:{server.port}/4")
        assert "wrong" not in str(caught.value)


async def test_rediss_urls_speak_tls(channels_factory: MakeChannels) -> None:
    with private_redis(tls=True) as server:
        channels = await channels_factory(server.url)
        async with channels.subscribe("c") as sub:
            await channels.publish("c", "over tls")
            assert [event.data for event in await take(sub, 1)] == ["over tls"]
        plain = server.url.replace("rediss://", "redis://").split("?")[0]
        with pytest.raises(BackendUnavailableError):
            await channels_factory(plain)


def test_passwords_are_masked_in_urls() -> None:
    assert mask_password("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert mask_password("rediss://user:pw@h/0") == "rediss://user:***@h/0"
    assert mask_password("redis://h:1/0") == "redis://h:1/0"


async def test_a_killed_process_drops_out_of_presence_within_the_ttl(
    channels_factory: MakeChannels, redis_url: str, prefix: str
) -> None:
    ttl = 1.0
    observer = await channels_factory(redis_url, key_prefix=prefix, presence_ttl=ttl)
    script = textwrap.dedent(
        f"""
        import anyio
        from lilya.channels import Channels

        async def main():
            async with Channels({redis_url!r}, key_prefix={prefix!r}, presence_ttl={ttl}) as ch:
                async with ch.subscribe("room", presence={{"pid": "child"}}):
                    print("joined", flush=True)
                    await anyio.sleep(60)

        anyio.run(main)
        """
    )
    async with observer.subscribe("room") as sub:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        child = subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, cwd=ROOT
        )
        try:
            member, info = await take_join(sub, within=15)
            assert info == {"pid": "child"}
            child.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            assert await take_leave(sub, within=ttl * 4) == member
            assert time.monotonic() - killed_at <= ttl + ttl / 3 + 0.5
            assert await observer.presence("room") == {}
        finally:
            child.kill()
            child.wait(10)
            assert child.stdout is not None
            child.stdout.close()


async def test_many_channels_share_one_pubsub_connection(
    channels_factory: MakeChannels, redis_url: str, prefix: str
) -> None:
    channels = await channels_factory(redis_url, key_prefix=prefix)
    names = [f"c{i}" for i in range(20)]
    async with anyio.create_task_group() as group:
        subs = []
        for name in names:
            sub = channels.subscribe(name)
            await sub.__aenter__()
            subs.append(sub)
        for name in names:
            group.start_soon(channels.publish, name, name)
    for sub, name in zip(subs, names, strict=True):
        assert [event.data for event in await take(sub, 1)] == [name]
        await sub.__aexit__(None, None, None)
    client = redis.Redis.from_url(redis_url)
    try:
        live = client.pubsub_channels(f"{prefix}:live:*")
    finally:
        client.close()
    assert live == []


async def assert_quiet(sub: object) -> None:
    """No duplicate arrives after the expected events."""
    with anyio.move_on_after(0.2):
        event: Event = await sub.receive()  # type: ignore[attr-defined]
        raise AssertionError(f"unexpected extra event {event!r}")


async def test_offsets_of_fifteen_digits_and_more_keep_every_digit(
    channels_factory: MakeChannels, redis_url: str, prefix: str
) -> None:
    # Lua prints such numbers as "1e+15" when it concatenates them: stream ids
    # and live messages would break. Start the channel just below 2**53.
    start = 2**53 - 10
    redis.Redis.from_url(redis_url).hset(f"{prefix}:meta:big", mapping={"e": "ep", "o": start})
    channels = await channels_factory(redis_url, key_prefix=prefix)
    async with channels.subscribe("big", since=("ep", start)) as sub:
        published = [await channels.publish("big", i) for i in range(3)]
        assert [e.offset for e in published] == [start + 1, start + 2, start + 3]
        assert [e.offset for e in await take(sub, 3)] == [start + 1, start + 2, start + 3]
    async with channels.subscribe("big", since=("ep", start + 1)) as again:
        assert again.recovered
        assert [e.data for e in await take(again, 2)] == [1, 2]
    assert [e.offset for e in await channels.history("big", limit=2)] == [start + 2, start + 3]
    delete_keys(redis_url, prefix)


async def test_a_redis_error_reply_becomes_a_channels_error_not_a_raw_response_error(
    channels_factory: MakeChannels, redis_url: str, prefix: str
) -> None:
    from lilya.channels import BackendError

    redis.Redis.from_url(redis_url).set(f"{prefix}:meta:clash", "a string, not a hash")
    channels = await channels_factory(redis_url, key_prefix=prefix)
    with pytest.raises(BackendError, match="refused it") as info:
        await channels.publish("clash", "x")
    assert info.value.operation == "publish"
    with pytest.raises(BackendError, match="refused it"):
        await channels.history("clash")
    delete_keys(redis_url, prefix)


async def test_a_stall_after_the_write_is_an_unknown_outcome_and_a_retry_by_id_delivers_once(
    channels_factory: MakeChannels,
) -> None:
    with private_redis() as server:
        url = server.url + "?socket_timeout=0.5"
        publisher = await channels_factory(url)
        reader = await channels_factory(server.url)
        async with reader.subscribe("c") as sub:
            await publisher.publish("c", "warm-up", message_id="w")
            assert server.process is not None
            server.process.send_signal(signal.SIGSTOP)  # Redis stalls with the command read
            try:
                with pytest.raises(PublishOutcomeUnknownError, match="retry with the same") as info:
                    await publisher.publish("c", "hello", message_id="m-1")
                assert (info.value.channel, info.value.message_id) == ("c", "m-1")
                assert isinstance(info.value, TimeoutError)
                assert not isinstance(info.value, BackendUnavailableError)
            finally:
                server.process.send_signal(signal.SIGCONT)
            # It was published after all, when Redis woke up.
            delivered = [event.data for event in await take(sub, 2)]
            assert delivered == ["warm-up", "hello"]
            retried = await publisher.publish("c", "hello", message_id="m-1")
            assert retried.offset == 2
            with anyio.move_on_after(0.3):
                extra = await sub.receive()
                raise AssertionError(f"the retry was delivered again: {extra!r}")
        assert [event.data for event in await publisher.history("c")] == ["warm-up", "hello"]


async def test_when_redis_cuts_the_pubsub_connection_the_reader_resyncs_from_the_stream(
    channels_factory: MakeChannels,
) -> None:
    # What Redis does to a pub/sub client whose output buffer grew past
    # client-output-buffer-limit (our reader stops reading while a local
    # subscriber is full): it closes the connection. Nothing may be lost.
    with private_redis() as server:
        publisher = await channels_factory(server.url)
        reader = await channels_factory(server.url, reconnect_delay=(0.05, 0.2))
        async with reader.subscribe("c") as sub:
            for i in range(10):
                await publisher.publish("c", i)
            admin = redis.Redis.from_url(server.url)
            assert admin.client_kill_filter(_type="pubsub") >= 1
            for i in range(10, 30):
                await publisher.publish("c", i)
            events = await take(sub, 30, within=10)
            assert [event.data for event in events] == list(range(30))
            assert sub.recovered
            admin.close()


async def test_a_publish_after_the_process_saw_redis_die_is_plainly_not_sent(
    channels_factory: MakeChannels,
) -> None:
    with private_redis() as server:
        channels = await channels_factory(server.url)
        await channels.publish("c", "warm-up")
        server.kill()
        await anyio.sleep(0.3)  # the pooled connection's EOF has arrived
        with pytest.raises(BackendUnavailableError):
            await channels.publish("c", "x")


async def test_a_pooled_connection_redis_closed_while_idle_is_replaced_before_publishing(
    channels_factory: MakeChannels,
) -> None:
    with private_redis() as server:
        channels = await channels_factory(server.url)
        await channels.publish("c", "warm-up")
        admin = redis.Redis.from_url(server.url)
        admin.client_kill_filter(_type="normal", skipme=True)
        admin.close()
        await anyio.sleep(0.3)
        assert (await channels.publish("c", "after")).offset == 2  # not "outcome unknown"


async def test_using_the_redis_backend_before_connect_is_a_clear_error() -> None:
    from lilya.channels import BackendSettings
    from lilya.channels.redis import RedisBackend

    backend = RedisBackend("redis://127.0.0.1:1/0", BackendSettings(1, None, "p", (0.1, 0.1)))
    with pytest.raises(RuntimeError, match="before connect"):
        await backend.publish("c", "s", b"x", "x", None)
