"""Shared fixtures: anyio is the only async plugin, over both backends."""

from __future__ import annotations

import pytest

# The contract kit asserts in lilya/channels/testing.py: let pytest explain its failures.
pytest.register_assert_rewrite("lilya.channels.testing")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every ``@pytest.mark.anyio`` test on asyncio and on trio."""
    return str(request.param)
