"""Fixtures of the channels tests: backends, private Redis servers, helpers.

The contract suite runs on ``memory://`` under asyncio and trio, and on
``redis://`` under asyncio only: redis-py's async client is built on asyncio,
so a trio run of it is impossible, not merely untested.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis

from lilya.channels import Channels
from tests.channels.redis_server import private_redis, redis_available

#: The shared Redis of this machine; a private server is started if it is absent.
SHARED_REDIS = os.environ.get("LILYA_TEST_REDIS_URL", "redis://127.0.0.1:6379/3")

MakeChannels = Callable[..., Awaitable[Channels]]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis to use: the machine's shared one, or a private one for the session."""
    if redis_available(SHARED_REDIS):
        yield SHARED_REDIS
        return
    with private_redis() as server:  # pragma: no cover - only where no Redis runs
        yield server.url


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses, so tests sharing one Redis never meet."""
    return f"lilya-test:{uuid.uuid4().hex}"


def delete_keys(url: str, prefix: str) -> None:
    """Delete every key under *prefix* (tests leave Redis as they found it)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def channels_factory() -> AsyncIterator[Callable[..., Awaitable[Channels]]]:
    """Connect ``Channels(url, **options)`` objects; disconnect them all at teardown."""
    opened: list[Channels] = []

    async def make(url: str, **options: Any) -> Channels:
        channels = Channels(url, **options)
        await channels.connect()
        opened.append(channels)
        return channels

    yield make
    for channels in reversed(opened):
        await channels.disconnect()
