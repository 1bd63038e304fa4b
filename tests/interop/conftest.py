"""The interop suite's marker: which row of the expectation table a test checks."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "scenario(name): the row of tests/interop/test_servers.py:EXPECTED it checks"
    )
