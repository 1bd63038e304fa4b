"""Fixtures of the channels tests: backends, private Redis servers, helpers.

The contract suite runs on ``memory://`` under asyncio and trio, and on
``redis://`` under asyncio only: redis-py's async client is built on asyncio,
so a trio run of it is impossible, not merely untested.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from lilya.channels import Channels
from tests.channels.redis_cluster import redis_cluster, redis_sentinels
from tests.channels.redis_server import redis_url_for_tests

MakeChannels = Callable[..., Awaitable[Channels]]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis to use: the machine's shared one, or a private one for the session."""
    with redis_url_for_tests(3) as url:
        yield url


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """A private Redis Cluster (three masters, three replicas) for the session."""
    with redis_cluster() as cluster:
        yield cluster.url


@pytest.fixture(scope="session")
def redis_sentinel_url() -> Iterator[str]:
    """A private master, replica and three sentinels for the session."""
    with redis_sentinels() as group:
        yield group.url


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses, so tests sharing one Redis never meet."""
    return f"lilya-test:{uuid.uuid4().hex}"


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


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The machine's PostgreSQL (trust auth, database ``test``); skips if it is not there."""
    from tests.channels.postgres_server import POSTGRES_URL, postgres_available

    if not postgres_available(POSTGRES_URL):
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL} (.ci/run starts it)")
    return POSTGRES_URL
