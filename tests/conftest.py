"""Shared fixtures: anyio is the only async plugin, over both backends."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import pytest

from lilya.testclient import AsyncTestClient, TestClient
from tests.support.testclient import ClientFactory


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every ``@pytest.mark.anyio`` test on asyncio and on trio."""
    return str(request.param)


@pytest.fixture(params=["asyncio", "trio"])
def test_client_factory(request: pytest.FixtureRequest) -> ClientFactory:
    """A TestClient class bound to each backend (the fixture name Starlette's suite uses)."""
    return functools.partial(TestClient, backend=request.param)


@pytest.fixture(params=["TestClient", "AsyncTestClient"])
def any_client(request: pytest.FixtureRequest, anyio_backend: str) -> Callable[..., Any]:
    """Either client class, so one async test body checks both (the twins share it).

    The sync client runs the app on the test's backend too, so both clients
    meet asyncio and trio. Drive it with ``settled()`` and ``entered()``
    (``tests/support/testclient.py``).
    """
    if request.param == "TestClient":
        backend: Literal["asyncio", "trio"] = "trio" if anyio_backend == "trio" else "asyncio"
        return functools.partial(TestClient, backend=backend)
    return AsyncTestClient
