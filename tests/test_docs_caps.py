"""docs/caps.md: its example apps do what their comments say."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from lilya.caps import ConnectionCaps, RedisCounter
from lilya.testclient import AsyncTestClient, WebSocketDenialResponse
from tests.support.docs import python_blocks

pytestmark = pytest.mark.anyio


def example() -> dict[str, Any]:
    [block] = python_blocks("caps.md")
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/caps.md", "exec"), namespace)
    return namespace


async def opened(app: Any, count: int, path: str = "/ws") -> int | None:
    """Open *count* sockets from one address; the status of the first refusal, if any."""
    client = AsyncTestClient(app, client=("203.0.113.7", 1))
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(count):
            try:
                session = await stack.enter_async_context(client.websocket_connect(path))
            except WebSocketDenialResponse as denial:
                return denial.status_code
            await session.send_text("hi")
            assert await session.receive_text() == "hi"
    return None


async def test_the_default_app_refuses_the_101st_socket_of_one_address() -> None:
    app = example()["app"]
    assert app.connection_caps == ConnectionCaps(10_000, 100, 50, 5)
    assert await opened(app, 101) == 429
    assert app.connection_counter.counts == {}


async def test_the_office_takes_more_per_address_and_the_admin_route_its_own_caps() -> None:
    office = example()["office"]
    assert await opened(office, 101) is None
    admin = office.routes[1]
    assert admin.connection_caps == ConnectionCaps(per_address=1000, per_user=2)


def test_the_shared_app_counts_in_redis_and_the_uncapped_one_not_at_all() -> None:
    namespace = example()
    shared = namespace["shared"].connection_counter.shared
    assert isinstance(shared, RedisCounter)
    assert (shared.url, shared.ttl, shared.on_error) == ("redis://127.0.0.1:6379/0", 30, "open")
    assert namespace["uncapped"].connection_caps is None
