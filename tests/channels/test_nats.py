"""nats:// on a real NATS JetStream: the contract kit, a killed server, hostile input.

These run on asyncio only: nats-py is built on asyncio. The shared server
(127.0.0.1:4222, ``.ci/run`` starts it) runs the contract; tests that kill,
pause or reconfigure a server start a private ``nats-server -js`` of their own.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
from nats.aio.msg import Msg

from lilya.channels import (
    BackendError,
    BackendUnavailableError,
    Channels,
    Event,
    PublishOutcomeUnknownError,
    Subscription,
)
from lilya.channels.nats import NatsBackend
from lilya.channels.testing import BackendContract, nothing_more, offsets, take, take_join
from lilya.exceptions import ImproperlyConfigured
from tests.channels.conftest import MakeChannels
from tests.channels.nats_server import NATS_URL, NatsProcess, delete_stream, nats_available
from tests.channels.test_docs import assert_chat_works, serve_example
from tests.support.servers import tracebacks

pytestmark = [pytest.mark.anyio, pytest.mark.nats]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # nats-py runs on asyncio only


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The machine's NATS with JetStream; skips if it is not there."""
    if not nats_available(NATS_URL):
        pytest.skip(f"no NATS with JetStream at {NATS_URL} (.ci/run starts it)")
    return NATS_URL


@pytest.fixture
def private_nats() -> Iterator[NatsProcess]:
    server = NatsProcess()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
async def make(
    channels_factory: MakeChannels, nats_url: str, prefix: str
) -> AsyncIterator[MakeChannels]:
    async def make(**options: Any) -> Channels:
        return await channels_factory(nats_url, **{"key_prefix": prefix, **options})

    yield make
    delete_stream(nats_url, prefix)


def backend_of(channels: Channels) -> NatsBackend:
    backend = channels._backend
    assert isinstance(backend, NatsBackend)
    return backend


class TestNatsBackend(BackendContract):
    """The whole contract kit on nats://."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def channels_url(self, nats_url: str) -> str:
        return nats_url

    def cleanup(self, url: str, key_prefix: str) -> None:
        delete_stream(url, key_prefix)


# -- a server killed mid-stream ----------------------------------------------------------


async def publish_numbers(
    publisher: Channels, numbers: range, *, within: float = 60.0
) -> tuple[list[int], int]:
    """Publish each number, retrying by message id until NATS takes it.

    Returns the numbers published and how many attempts were refused.
    """
    done: list[int] = []
    refused = 0
    deadline = time.monotonic() + within
    for number in numbers:
        while True:
            try:
                await publisher.publish("c", number, message_id=str(number))
            except (BackendUnavailableError, PublishOutcomeUnknownError):
                refused += 1
                assert time.monotonic() < deadline, f"publish {number} never went through"
                await anyio.sleep(0.05)
                continue
            done.append(number)
            break
        await anyio.sleep(0.005)
    return done, refused


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


@pytest.mark.slow
async def test_a_server_killed_mid_stream_ends_in_an_explicit_reset_never_a_silent_gap(
    channels_factory: MakeChannels, private_nats: NatsProcess
) -> None:
    server = private_nats
    options = {"history_size": 1000, "reconnect_delay": (0.05, 0.3), "presence_ttl": 0.9}
    publisher = await channels_factory(server.url + "?timeout=1", **options)
    reader = await channels_factory(server.url + "?timeout=1", **options)
    observer = await channels_factory(server.url + "?timeout=1", **options)
    async with (
        reader.subscribe("c") as sub,
        observer.subscribe("room") as room,
        publisher.subscribe("room", presence={"user": "ann"}) as ann,
    ):
        assert await take_join(room) == (ann.member, {"user": "ann"})
        published, _ = await publish_numbers(publisher, range(1, 31))
        await anyio.to_thread.run_sync(server.kill)
        with pytest.raises((BackendUnavailableError, PublishOutcomeUnknownError)):
            await publisher.publish("c", "while down")
        async with anyio.create_task_group() as group:

            async def restart_soon() -> None:
                await anyio.sleep(0.5)
                await anyio.to_thread.run_sync(server.start)

            group.start_soon(restart_soon)
            more, refused = await publish_numbers(publisher, range(31, 61))
        published += more
        assert refused > 0, "publishing while NATS is down must raise"
        published += (await publish_numbers(publisher, range(61, 71)))[0]
        events = await read_until(sub, 70)
        # The server kept its streams in memory: everything before the kill
        # is gone, and the subscriber is told so instead of missing it.
        assert [event.type for event in events].count("reset") >= 1
        assert sub.recovered is False
        assert_no_silent_gap(events, published)
        assert events[-1].data == 70
        # The heartbeat put the member back into the new server's bucket.
        with anyio.fail_after(10):
            while await observer.presence("room") != {ann.member: {"user": "ann"}}:
                await anyio.sleep(0.1)


async def test_a_paused_server_makes_a_publish_unknown_and_a_retry_by_id_lands_once(
    channels_factory: MakeChannels, private_nats: NatsProcess
) -> None:
    channels = await channels_factory(private_nats.url + "?timeout=0.3")
    await channels.publish("c", "first")
    private_nats.pause()
    try:
        with pytest.raises(PublishOutcomeUnknownError, match="retry with the same message_id"):
            await channels.publish("c", "maybe", message_id="m-1")
    finally:
        private_nats.resume()
    # The server read the publish when it woke up: the retry finds it.
    with anyio.fail_after(10):
        while True:
            try:
                event = await channels.publish("c", "maybe", message_id="m-1")
                break
            except (BackendUnavailableError, PublishOutcomeUnknownError):
                await anyio.sleep(0.05)
    assert event.offset == 2
    assert [e.data for e in await channels.history("c")] == ["first", "maybe"]


async def test_an_unreachable_server_fails_connect_with_a_clear_error(
    private_nats: NatsProcess,
) -> None:
    url = private_nats.url
    private_nats.kill()
    channels = Channels(url + "?timeout=1")
    with anyio.fail_after(10), pytest.raises(BackendUnavailableError, match="Cannot connect"):
        await channels.connect()


async def test_a_stream_made_with_other_settings_is_refused_at_connect_saying_what_to_do(
    make: MakeChannels,
) -> None:
    await make(history_size=5)
    with pytest.raises(BackendError, match="another key_prefix, the same settings"):
        await make(history_size=6)


# -- the URL and the extra -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nats://127.0.0.1", "must be host:port"),
        ("nats://127.0.0.1:0", "must be host:port"),
        ("nats://127.0.0.1:²", "must be host:port"),
        ("nats://127.0.0.1:4222,:4223", "must be host:port"),
        ("nats://127.0.0.1:4222?tls=1", "Unknown option(s) tls"),
        ("nats://127.0.0.1:4222?timeout=soon", "must be a number of seconds > 0, got 'soon'"),
        ("nats://127.0.0.1:4222?timeout=0", "must be a number of seconds > 0"),
        ("nats://127.0.0.1:4222?timeout=inf", "must be a number of seconds > 0"),
        ("nats://127.0.0.1:4222?timeout=-1", "must be a number of seconds > 0"),
    ],
)
def test_a_malformed_url_is_refused_when_built(url: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        Channels(url)
    assert message in str(caught.value)


def test_a_password_in_the_url_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = backend_of(Channels("nats://ann:s3cret@127.0.0.1:4222"))
    assert backend.safe_url == "nats://ann:***@127.0.0.1:4222"
    token = backend_of(Channels("nats://t0ken@127.0.0.1:4222"))
    assert token.safe_url == "nats://***@127.0.0.1:4222"
    with pytest.raises(ImproperlyConfigured) as caught:
        Channels("nats://ann:s3cret@127.0.0.1")
    assert "s3cret" not in str(caught.value)


def test_without_nats_py_the_url_names_the_pip_install_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(sys.modules):
        if name == "nats" or name.startswith("nats.") or name == "lilya.channels.nats":
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "nats", None)
    with pytest.raises(ImproperlyConfigured) as caught:
        Channels("nats://127.0.0.1:4222")
    assert str(caught.value).endswith('pip install "lilya[nats]"')


# -- hostile peers and inputs ----------------------------------------------------------------


async def test_messages_lilya_did_not_write_on_a_live_subject_are_ignored_and_delivery_goes_on(
    make: MakeChannels, nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    channels = await make()
    subject = backend_of(channels)._live_subject("c")
    client = await nats.connect(nats_url)
    try:
        async with channels.subscribe("c") as sub:
            await channels.publish("c", "one")
            assert [e.data for e in await take(sub, 1)] == ["one"]
            for headers, payload in [
                (None, b"no headers"),
                ({"Lilya-Kind": "x"}, b""),
                ({"Lilya-Kind": "m", "Lilya-Epoch": "e", "Lilya-Offset": "two"}, b""),
                ({"Lilya-Kind": "m", "Lilya-Epoch": "e", "Lilya-Offset": "-3"}, b""),
                (
                    {"Lilya-Kind": "m", "Lilya-Epoch": "e", "Lilya-Offset": "9", "Lilya-Tag": "?"},
                    b"",
                ),
                ({"Lilya-Kind": "j"}, b"not json"),
                ({"Lilya-Kind": "l"}, b'{"member": 5}'),
            ]:
                await client.publish(subject, payload, headers=headers)
            await client.flush()
            await channels.publish("c", "two")
            assert [e.data for e in await take(sub, 1)] == ["two"]
            await nothing_more(sub)
    finally:
        await client.close()
    assert caplog.text.count("Ignored a live message lilya did not write") == 7
    assert "Traceback" not in caplog.text


async def test_a_payload_beyond_the_servers_max_payload_is_refused_clearly(
    make: MakeChannels,
) -> None:
    channels = await make()
    with pytest.raises(BackendError, match="exceed the server's max_payload"):
        await channels.publish("c", b"x" * (2 * 1024 * 1024))
    assert (await channels.position("c")).offset == 0


async def test_publishers_racing_for_an_offset_each_get_their_own(make: MakeChannels) -> None:
    first, second = await make(), await make()
    assert (await first.publish("c", "a")).offset == 1
    assert (await second.publish("c", "b")).offset == 2
    # first's idea of the newest message is stale now: the server refuses its
    # compare-and-set and it reads again.
    assert (await first.publish("c", "c")).offset == 3
    assert [e.data for e in await first.history("c")] == ["a", "b", "c"]


async def test_publishers_at_once_never_share_an_offset(make: MakeChannels) -> None:
    publishers = [await make() for _ in range(3)]
    results: list[int] = []

    async def publish_many(channels: Channels) -> None:
        for i in range(30):
            results.append((await channels.publish("c", i)).offset)

    async with anyio.create_task_group() as group:
        for channels in publishers:
            group.start_soon(publish_many, channels)
    assert sorted(results) == list(range(1, 91))


async def test_a_message_id_retried_again_after_leaving_the_window_is_deduplicated_again(
    make: MakeChannels,
) -> None:
    channels = await make(history_size=2)
    assert (await channels.publish("c", "x", message_id="a")).offset == 1
    await channels.publish("c", 1)
    await channels.publish("c", 2)
    assert (await channels.publish("c", "x", message_id="a")).offset == 4  # a new message
    assert (await channels.publish("c", "x", message_id="a")).offset == 4  # its retry
    assert offsets(await channels.history("c")) == [3, 4]


async def test_a_deleted_stream_is_made_again_with_a_new_epoch(
    make: MakeChannels, nats_url: str, prefix: str
) -> None:
    channels = await make(presence_ttl=30.0)
    old = await channels.publish("c", "before")
    async with channels.subscribe("room", presence={"n": 1}) as member:
        delete_stream(nats_url, prefix)
        new = await channels.publish("c", "after")
        assert (new.offset, new.epoch != old.epoch) == (1, True)
        delete_stream(nats_url, prefix)
        page = await channels.history("fresh")
        assert page == []
        client = await nats.connect(nats_url)
        try:
            await client.jetstream().delete_stream(f"KV_{backend_of(channels).bucket}")
        finally:
            await client.close()
        async with channels.subscribe("room", presence={"n": 2}) as other:
            assert set(await channels.presence("room")) == {other.member}
        # The member of before the deletion went with the bucket, until the
        # next heartbeat puts it back.
        assert member.member not in await channels.presence("room")


async def test_listening_twice_to_a_channel_subscribes_once(make: MakeChannels) -> None:
    channels = await make()
    backend = backend_of(channels)
    await backend.listen("c")
    subscription = backend._subs["c"]
    await backend.listen("c")
    assert backend._subs["c"] is subscription
    await backend.unlisten("c")
    await backend.unlisten("c")
    assert "c" not in backend._subs


async def test_a_slow_consumer_that_the_client_dropped_messages_of_is_caught_up_from_history(
    make: MakeChannels, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import lilya.channels.nats as module

    monkeypatch.setattr(module, "_PENDING_MSGS", 2)
    monkeypatch.setattr(module, "_LIVE_BUFFER", 1)
    publisher, reader = await make(), await make()
    blocked = anyio.Event()
    real_ready = reader.ready

    async def ready_blocked(channel: str) -> None:
        await blocked.wait()
        await real_ready(channel)

    monkeypatch.setattr(reader, "ready", ready_blocked)
    caplog.set_level(logging.WARNING, "lilya.channels.nats")
    async with reader.subscribe("c") as sub:
        for i in range(40):
            await publisher.publish("c", i)
        with anyio.fail_after(10):
            while "slow consumer" not in caplog.text:
                await anyio.sleep(0.02)
        blocked.set()
        events = await take(sub, 40)
        assert [e.data for e in events] == list(range(40))
        assert offsets(events) == list(range(1, 41))
        await nothing_more(sub)


async def test_a_failure_inside_the_reader_becomes_a_resync_that_loses_nothing(
    make: MakeChannels, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    publisher, reader = (
        await make(reconnect_delay=(0.05, 0.1)),
        await make(reconnect_delay=(0.05, 0.1)),
    )
    real_deliver, real_resync = reader.deliver, reader.resync
    failures = {"deliver": 1, "resync": 1}

    def deliver_failing_once(event: Event) -> None:
        if failures["deliver"]:
            failures["deliver"] -= 1
            raise RuntimeError("a bug in a sink")
        real_deliver(event)

    async def resync_failing_once() -> None:
        if failures["resync"]:
            failures["resync"] -= 1
            raise BackendUnavailableError("nats://x", "read history")
        await real_resync()

    async with reader.subscribe("c") as sub:
        await publisher.publish("c", 0)
        assert [e.data for e in await take(sub, 1)] == [0]
        monkeypatch.setattr(reader, "deliver", deliver_failing_once)
        monkeypatch.setattr(reader, "resync", resync_failing_once)
        for i in range(1, 4):
            await publisher.publish("c", i)
        events = await take(sub, 3)
        assert [e.data for e in events] == [1, 2, 3]
    assert "NATS live reader failed on one message; resyncing" in caplog.text
    assert "Resync from NATS failed" in caplog.text


# -- the documentation's example -------------------------------------------------------------


def docs_example() -> str:
    page = (Path(__file__).resolve().parents[2] / "docs" / "channels.md").read_text()
    section = page.split("## NATS JetStream: `nats://`", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "docs/channels.md lost its nats:// example"
    return match.group(1)


async def test_the_nats_example_of_the_docs_runs_as_written(nats_url: str) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(docs_example(), "docs/channels.md", "exec"), namespace)
    try:
        await namespace["place_order"](7)
    finally:
        delete_stream(nats_url, "shop")


# -- corners, each staged on purpose ---------------------------------------------------------


async def test_a_server_without_jetstream_is_refused_at_connect_saying_how_to_enable_it() -> None:
    server = NatsProcess(jetstream=False)
    try:
        server.start()
        with pytest.raises(BackendError, match=r"no JetStream .* nats-server -js"):
            await Channels(server.url + "?timeout=1").connect()
    finally:
        server.close()


async def test_a_backend_used_before_connect_says_so() -> None:
    backend = backend_of(Channels("nats://127.0.0.1:4222"))
    with pytest.raises(RuntimeError, match="before connect"):
        await backend.publish("c", "s", b"x", "x", None)
    with pytest.raises(RuntimeError, match="before connect"):
        await backend.presence_join("c", "m", None, 1.0)
    with pytest.raises(RuntimeError, match="before connect"):
        await backend.presence("c")
    await backend.disconnect()  # nothing to close, and no error


async def test_disconnecting_right_after_the_server_died_is_quiet(
    channels_factory: MakeChannels, private_nats: NatsProcess
) -> None:
    channels = await channels_factory(private_nats.url + "?timeout=1")
    async with channels.subscribe("c"):
        await channels.publish("c", "x")
    private_nats.kill()
    await channels.disconnect()  # at once, while the client may be noticing


async def test_a_live_message_after_unlisten_is_not_delivered(make: MakeChannels) -> None:
    channels = await make()
    backend = backend_of(channels)
    msg = Msg(None, subject="x", data=b"x", headers={"Lilya-Kind": "m"})  # type: ignore[arg-type]
    await backend._take("never-listened", msg)  # returns without looking at it


async def test_a_live_message_that_skips_an_offset_resyncs_before_it_is_delivered(
    make: MakeChannels, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher, reader = await make(), await make()
    backend = backend_of(reader)
    real_take = backend._take
    lost: list[int] = []

    async def take_losing_offset_2(channel: str, msg: Any) -> None:
        if msg.headers.get("Lilya-Offset") == "2" and not lost:
            lost.append(2)  # as if the client had dropped it
            return
        await real_take(channel, msg)

    monkeypatch.setattr(backend, "_take", take_losing_offset_2)
    async with reader.subscribe("c") as sub:
        for i in range(1, 5):
            await publisher.publish("c", i)
        events = await take(sub, 4)
        assert offsets(events) == [1, 2, 3, 4]
        await nothing_more(sub)
    assert lost == [2]


async def test_an_epoch_made_by_someone_else_first_is_taken_as_it_is(make: MakeChannels) -> None:
    channels = await make()
    event = await channels.publish("c", "x")
    last, duplicate = await backend_of(channels)._append("c", "e", "", b"", None, None)
    assert (last.epoch, last.offset, duplicate) == (event.epoch, 1, False)


async def test_a_channel_whose_epoch_was_made_by_a_read_keeps_it_and_hides_the_marker(
    make: MakeChannels,
) -> None:
    channels = await make()
    empty = await channels.position("c")
    first = await channels.publish("c", "x")
    assert (first.epoch, first.offset) == (empty.epoch, 1)
    assert [e.data for e in await channels.history("c")] == ["x"]
    page = await backend_of(channels).history("c", after=0, limit=1)
    assert (page.top, page.first, [e.data for e in page.events]) == (1, 1, ["x"])


async def test_history_after_an_offset_honours_the_limit(make: MakeChannels) -> None:
    channels = await make()
    for i in range(5):
        await channels.publish("c", i)
    page = await backend_of(channels).history("c", after=1, limit=2)
    assert [e.data for e in page.events] == [1, 2]


async def test_a_publish_that_keeps_losing_the_race_gives_up_with_a_clear_error(
    make: MakeChannels, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lilya.channels.nats as module

    first, second = await make(), await make()
    await first.publish("c", "a")
    await second.publish("c", "b")
    monkeypatch.setattr(module, "_MAX_ATTEMPTS", 1)
    with pytest.raises(BackendError, match="lost the race for the next offset of 'c' 1 times"):
        await first.publish("c", "c")  # its newest message is stale: one try, refused


async def test_a_sealed_stream_refuses_publishes_and_presence_as_backend_errors(
    make: MakeChannels, nats_url: str
) -> None:
    channels = await make()
    backend = backend_of(channels)
    await channels.publish("c", "before")
    client = await nats.connect(nats_url)
    try:
        manager = client.jetstream()
        for name in (backend.stream, f"KV_{backend.bucket}"):
            info = await manager.stream_info(name)
            info.config.sealed = True
            await manager.update_stream(info.config)
    finally:
        await client.close()
    with pytest.raises(BackendError, match=r"Cannot publish: .* refused it"):
        await channels.publish("c", "after")
    with pytest.raises(BackendError, match="refused it"):
        await backend.presence_join("c", "m", None, 5.0)


async def test_a_lost_answer_to_an_epoch_marker_makes_the_read_unavailable(
    make: MakeChannels, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels = await make()
    _, js = backend_of(channels)._client()

    async def publish_timing_out(*args: Any, **kwargs: Any) -> Any:
        raise nats.errors.TimeoutError

    monkeypatch.setattr(js, "publish", publish_timing_out)
    with pytest.raises(BackendUnavailableError, match="Cannot read history"):
        await channels.history("fresh")


async def test_a_server_that_stops_answering_mid_read_makes_history_unavailable(
    channels_factory: MakeChannels, private_nats: NatsProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels = await channels_factory(private_nats.url + "?timeout=0.5")
    await channels.publish("c", "x")
    _, js = backend_of(channels)._client()
    real_add_consumer = js.add_consumer

    async def add_consumer_then_pause(*args: Any, **kwargs: Any) -> Any:
        info = await real_add_consumer(*args, **kwargs)
        private_nats.pause()
        return info

    monkeypatch.setattr(js, "add_consumer", add_consumer_then_pause)
    try:
        with pytest.raises(BackendUnavailableError, match="Cannot read history"):
            await channels.history("c")
    finally:
        private_nats.resume()


async def test_a_leave_that_loses_to_a_newer_write_announces_nothing(
    make: MakeChannels, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lilya.channels.nats as module

    channels = await make()
    backend = backend_of(channels)
    await backend.presence_join("room", "m", {"v": 1}, 30.0)
    stale = await backend._bucket().get(backend._member_key("room", "m"))
    await backend.presence_refresh("room", {"m": {"v": 2}}, 30.0)  # a newer revision

    async def stale_entry(awaitable: Any) -> Any:
        await awaitable
        return stale

    monkeypatch.setattr(module, "_found", stale_entry)
    await backend.presence_leave("room", "m")  # its compare-and-set delete is refused
    monkeypatch.undo()
    assert await backend.presence("room") == {"m": {"v": 2}}


async def test_two_sweepers_of_one_dead_member_announce_its_leave_once(
    make: MakeChannels, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_side, second_side, doomed = await make(), await make(), await make(presence_ttl=0.3)
    first, second = backend_of(first_side), backend_of(second_side)
    async with first_side.subscribe("room") as observer:
        await backend_of(doomed).presence_join("room", "zed", None, 0.3)
        assert await take_join(observer) == ("zed", None)
        await anyio.sleep(0.5)
        real_delete = first._delete

        async def delete_after_the_other_swept(key: str, revision: int | None) -> bool:
            assert await second._sweep("room") == {}  # it deletes zed, and announces
            return await real_delete(key, revision)

        monkeypatch.setattr(first, "_delete", delete_after_the_other_swept)
        assert await first._sweep("room") == {}
        leaves = 0
        with anyio.move_on_after(0.5):
            while True:
                event = await observer.receive()
                leaves += event.type == "presence" and "zed" in event.data["left"]
        assert leaves == 1


async def test_a_server_that_stops_answering_while_the_stream_is_made_is_unavailable(
    channels_factory: MakeChannels, private_nats: NatsProcess
) -> None:
    channels = await channels_factory(private_nats.url + "?timeout=0.3")
    private_nats.pause()
    try:
        with pytest.raises(BackendUnavailableError, match="Cannot create the stream"):
            await backend_of(channels)._ensure_stream()
    finally:
        private_nats.resume()


async def test_a_publish_while_the_client_reconnects_is_refused_as_not_sent(
    channels_factory: MakeChannels, private_nats: NatsProcess
) -> None:
    channels = await channels_factory(private_nats.url + "?timeout=1")
    await channels.publish("c", "x")  # the newest message is known: no read first
    private_nats.kill()
    client, _ = backend_of(channels)._client()
    with anyio.fail_after(10):
        while client.is_connected:
            await anyio.sleep(0.01)
    with pytest.raises(BackendUnavailableError, match=r"Cannot publish: .* unavailable"):
        await channels.publish("c", "y")


async def test_history_reads_the_newest_offset_from_the_server_not_from_its_own_publishes(
    make: MakeChannels,
) -> None:
    first, second = await make(history_size=0), await make(history_size=0)
    await first.publish("c", "mine")  # first remembers offset 1 as its newest
    await second.publish("c", "theirs")
    assert (await first.position("c")).offset == 2


async def test_a_purged_stream_gives_live_subscribers_a_reset_and_a_new_epoch(
    make: MakeChannels, nats_url: str
) -> None:
    publisher, reader = await make(), await make()
    async with reader.subscribe("c") as sub:
        old = await publisher.publish("c", "before")
        assert [e.data for e in await take(sub, 1)] == ["before"]
        client = await nats.connect(nats_url)
        try:
            await client.jetstream().purge_stream(backend_of(publisher).stream)
        finally:
            await client.close()
        new = await publisher.publish("c", "after the purge")
        assert (new.offset, new.epoch != old.epoch) == (1, True)
        [reset] = await take(sub, 1)
        assert (reset.type, reset.epoch, reset.offset) == ("reset", new.epoch, 1)
        assert sub.recovered is False
        # The reset covers offset 1 (reload your state); what follows is live.
        await publisher.publish("c", "next")
        assert [(e.type, e.data) for e in await take(sub, 1)] == [("message", "next")]


async def test_presence_info_beyond_the_servers_max_payload_is_refused_clearly(
    make: MakeChannels,
) -> None:
    channels = await make()
    with pytest.raises(BackendError, match=r"presence info of .* exceeds the server's max_payload"):
        async with channels.subscribe("room", presence={"x": "y" * (2 * 1024 * 1024)}):
            pass  # pragma: no cover - refused on the way in
    assert await channels.presence("room") == {}


@pytest.mark.server
async def test_the_chat_room_works_across_two_uvicorn_processes_on_nats(
    tmp_path: Path, private_nats: NatsProcess
) -> None:
    with ExitStack() as stack:
        first = stack.enter_context(serve_example(tmp_path, private_nats.url))
        second = stack.enter_context(serve_example(tmp_path, private_nats.url))
        assert first.port != second.port
        await assert_chat_works(first.ws_url, second.ws_url)
        logs = first.log() + second.log()
    assert tracebacks(logs) == []


async def stored_by_someone_else(url: str, subject: str, headers: dict[str, str] | None) -> None:
    client = await nats.connect(url)
    try:
        await client.jetstream().publish(subject, b"\xff not lilya's", headers=headers)
    finally:
        await client.close()


async def test_a_message_lilya_did_not_write_newest_in_a_channel_is_refused_clearly(
    make: MakeChannels, nats_url: str
) -> None:
    channels = await make()
    await channels.publish("c", "mine")
    subject = backend_of(channels)._subject("c")
    await stored_by_someone_else(nats_url, subject, {"Lilya-Offset": "²"})
    for attempt in (channels.publish("c", "more"), channels.history("c")):
        with pytest.raises(BackendError, match=r"was not written by lilya .* purge the stream"):
            await attempt


async def test_messages_lilya_did_not_write_amid_a_channels_history_are_skipped(
    make: MakeChannels, nats_url: str
) -> None:
    channels = await make()
    first = await channels.publish("c", "one")
    subject = backend_of(channels)._subject("c")
    await stored_by_someone_else(
        nats_url,
        subject,
        {"Lilya-Kind": "m", "Lilya-Epoch": first.epoch, "Lilya-Offset": "2", "Lilya-Tag": "?"},
    )
    await stored_by_someone_else(
        nats_url, subject, {"Lilya-Kind": "m", "Lilya-Epoch": "other", "Lilya-Offset": "3"}
    )
    await stored_by_someone_else(
        nats_url,
        subject,
        {"Lilya-Kind": "m", "Lilya-Epoch": first.epoch, "Lilya-Offset": "3", "Lilya-Tag": "s"},
    )
    await channels.publish("c", "four")
    # A bad tag, another epoch, bytes that are not the UTF-8 text they claim:
    # none of it is a message lilya accepted, and none of it is delivered.
    assert [(e.offset, e.data) for e in await channels.history("c")] == [(1, "one"), (4, "four")]


@pytest.mark.parametrize("garbage", [b"", b"not json", b"[1]", b'{"m": 5, "t": 1}', b'{"m": "x"}'])
async def test_presence_entries_lilya_did_not_write_are_ignored_and_leave_still_works(
    make: MakeChannels, caplog: pytest.LogCaptureFixture, garbage: bytes
) -> None:
    channels = await make()
    backend = backend_of(channels)
    kv = backend._bucket()
    await kv.put(f"{backend._channel_token('room')}.intruder", garbage)
    async with channels.subscribe("room", presence={"user": "ann"}) as ann:
        assert await channels.presence("room") == {ann.member: {"user": "ann"}}
        assert ann.member is not None
        await kv.put(backend._member_key("room", ann.member), garbage)  # overwritten
    assert await channels.presence("room") == {}  # its leave went through all the same
    assert "Ignored a presence entry lilya did not write" in caplog.text
    assert "Traceback" not in caplog.text


async def test_a_process_remembers_the_newest_message_of_a_bounded_number_of_channels(
    make: MakeChannels, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lilya.channels.nats as module

    monkeypatch.setattr(module, "_REMEMBERED", 2)
    channels = await make()
    for name in ("a", "b", "a", "c"):
        await channels.publish(name, name)
    assert list(backend_of(channels)._last) == ["a", "c"]  # b, least recent, forgotten
    assert (await channels.publish("b", "again")).offset == 2  # read from the server
