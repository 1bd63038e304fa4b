"""Fixtures of the chat demo's tests: an app per test, a Redis URL with a private prefix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from examples.chat.app import create_app
from lilya.apps import Lilya
from lilya.testclient import TestClient
from tests.channels.redis_server import delete_keys, redis_url_for_tests
from tests.examples.chat_helpers import redis_prefix


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
    """The machine's Redis (as ``.ci/run`` starts it), else a private one."""
    with redis_url_for_tests(4) as url:
        yield url


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix of this test alone; its keys are deleted afterwards."""
    prefix = redis_prefix()
    yield prefix
    delete_keys(redis_url, prefix)
