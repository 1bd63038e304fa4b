"""The Redis backend's pub/sub reader, driven by a scripted connection: no Redis needed.

What a real Redis does is in ``test_redis.py`` (kills and restarts); here the
reader's own rules run deterministically: messages that arrive while
subscriptions are being confirmed wait for the catch-up, a failure of any kind
becomes a reconnect, and using the backend before ``connect()`` says so.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from lilya.channels.events import Event
from lilya.channels.exceptions import BackendUnavailableError
from lilya.channels.redis import RedisBackend

pytestmark = pytest.mark.anyio


class Stop(Exception):
    """Ends a scripted read."""


class Reader:
    """A pub/sub connection that replays *responses*, then raises *end*."""

    def __init__(self, *responses: Any, end: BaseException | None = None) -> None:
        self.responses = list(responses)
        self.end = end or Stop()

    async def read_response(self, timeout: float) -> Any:
        if self.responses:
            return self.responses.pop(0)
        raise self.end


class Sink:
    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.events: list[Event] = []
        self.resynced_with: list[list[Event]] = []

    def deliver(self, event: Event) -> None:
        self.events.append(event)

    async def ready(self, channel: str) -> None:
        """Always room: these tests read what was delivered afterwards."""

    async def resync(self) -> None:
        # Live messages are held until this returns: none may be delivered yet.
        self.resynced_with.append(list(self.events))


def backend() -> RedisBackend:
    return RedisBackend(
        "redis://127.0.0.1:1/0",
        history_size=10,
        history_ttl=None,
        key_prefix="p",
        reconnect_delay=(0.01, 0.02),
    )


def message(channel: str, offset: int, text: str) -> list[bytes]:
    return [b"message", f"p:live:{channel}".encode(), b"e1\n%d\nms%s" % (offset, text.encode())]


def confirm(channel: str) -> list[Any]:
    return [b"subscribe", f"p:live:{channel}".encode(), 1]


async def test_live_messages_during_a_resync_wait_until_every_channel_caught_up() -> None:
    redis = backend()
    sink = Sink(redis)
    redis._sink = sink
    redis._wanted = {"a", "b"}
    reader = Reader(confirm("a"), message("a", 5, "early"), confirm("b"), message("a", 6, "late"))
    with pytest.raises(Stop):
        await redis._pump(reader, resync=True)  # type: ignore[arg-type]  # a scripted reader
    assert sink.resynced_with == [[]]  # nothing was delivered before the catch-up
    assert [(event.offset, event.data) for event in sink.events] == [(5, "early"), (6, "late")]


async def test_a_message_for_a_backend_that_has_disconnected_is_dropped() -> None:
    redis = backend()
    redis._on_message(b"p:live:a", b"e1\n1\nmsx")  # no sink: nothing to deliver to
    redis._handle([b"unsubscribe", b"p:live:a", 0], None)
    assert redis._confirmed == set()


async def test_an_unexpected_reader_failure_is_logged_and_becomes_a_reconnect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis = backend()
    opened: list[Reader] = []
    reconnected = anyio.Event()

    async def open_reader() -> Reader:
        if opened:
            reconnected.set()
            await anyio.sleep_forever()
        reader = Reader(end=ValueError("a bug in a reply"))
        opened.append(reader)
        return reader

    redis._open_reader = open_reader  # type: ignore[method-assign, assignment]  # scripted
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(redis._read_forever, None)
            await reconnected.wait()
            group.cancel_scope.cancel()
    assert [record.levelno for record in caplog.records] == [logging.ERROR]
    assert "reader failed" in caplog.records[0].getMessage()
    assert reconnected.is_set()  # and it opened a new reader after the backoff


async def test_dropping_the_reader_wakes_everyone_waiting_for_a_confirmation() -> None:
    redis = backend()
    waiter = redis._confirm_waiters["a"] = anyio.Event()
    await redis._drop_reader()
    assert waiter.is_set()
    assert redis._confirm_waiters == {}


async def test_the_backend_used_before_connect_says_so() -> None:
    redis = backend()
    with pytest.raises(RuntimeError, match="before connect"):
        redis._require_client()
    with pytest.raises(RuntimeError, match="before connect"):
        await redis._open_reader()
    with pytest.raises(RuntimeError, match="before connect"):
        redis._lock()
    await redis._close_client()  # nothing to close: fine


async def test_a_subscription_redis_never_confirms_is_reported_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Silent(Reader):
        async def send_command(self, *args: Any) -> None:
            """Redis takes the SUBSCRIBE and never answers it."""

    redis = backend()
    redis._reader = Silent()  # type: ignore[assignment]  # a scripted reader
    redis._write_lock = anyio.Lock()
    monkeypatch.setattr("lilya.channels.redis._CONFIRM_WITHIN", 0.01)
    with pytest.raises(BackendUnavailableError) as info:
        await redis.listen("a")
    assert info.value.operation == "subscribe"


async def test_replies_of_other_kinds_are_ignored() -> None:
    redis = backend()
    redis._handle([b"pong", b""], None)
    assert (redis._confirmed, redis._confirm_waiters) == (set(), {})


async def test_a_resync_after_the_channels_went_away_still_delivers_nothing() -> None:
    redis = backend()
    redis._wanted = {"a"}
    reader = Reader(message("a", 1, "held"), confirm("a"))
    with pytest.raises(Stop):
        await redis._pump(reader, resync=True)  # type: ignore[arg-type]  # a scripted reader
    assert redis._confirmed == {"a"}
