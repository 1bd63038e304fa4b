"""Shared fixtures: anyio is the only async plugin, over both backends."""

from __future__ import annotations

import functools

import pytest

from lilya.testclient import TestClient
from tests.support.testclient import ClientFactory


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every ``@pytest.mark.anyio`` test on asyncio and on trio."""
    return str(request.param)


@pytest.fixture(params=["asyncio", "trio"])
def test_client_factory(request: pytest.FixtureRequest) -> ClientFactory:
    """A TestClient class bound to each backend (the fixture name Starlette's suite uses)."""
    return functools.partial(TestClient, backend=request.param)
