"""Fixtures of the chat demo's tests: an app per test, a Redis URL with a private prefix."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from examples.chat.app import create_app
from lilya.apps import Lilya
from lilya.testclient import TestClient
from tests.channels.redis_server import private_redis, redis_available
from tests.examples.chat_helpers import delete_keys, redis_prefix

#: The machine's Redis (as ``.ci/run`` starts it); a private one is started if it is absent.
SHARED_REDIS = os.environ.get("LILYA_TEST_REDIS_URL", "redis://127.0.0.1:6379/4")


@pytest.fixture
def app() -> Lilya:
    """The chat app on ``memory://``: every test gets a fresh, private store."""
    return create_app("memory://")


@pytest.fixture(params=["asyncio", "trio"])
def client(app: Lilya, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """A test client running the app (and its ``memory://`` channels) on each event loop."""
    with TestClient(app, backend=request.param) as client:
        yield client


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if redis_available(SHARED_REDIS):
        yield SHARED_REDIS
        return
    with private_redis() as server:  # pragma: no cover - only where no Redis runs
        yield server.url


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix of this test alone; its keys are deleted afterwards."""
    prefix = redis_prefix()
    yield prefix
    delete_keys(redis_url, prefix)
