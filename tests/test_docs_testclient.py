"""docs/testclient.md: every example runs, and its tests pass."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.docs import python_blocks

BLOCKS = python_blocks("testclient.md")


def load(*indexes: int) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    for index in indexes:
        exec(compile(BLOCKS[index], f"docs/testclient.md[{index}]", "exec"), namespace)
    return namespace


def test_the_page_has_six_examples() -> None:
    assert len(BLOCKS) == 6


def test_the_greeting_example_passes() -> None:
    load(0)["test_greeting"]()


def test_the_denial_examples_pass() -> None:
    namespace = load(1)
    namespace["test_denied_without_a_token"]()
    namespace["test_welcome_then_close"]()


def test_the_receive_after_close_example_passes() -> None:
    load(2)["test_receive_after_close_reports_my_close"]()


@pytest.mark.anyio
async def test_the_async_example_passes() -> None:
    await load(0, 3)["test_greeting_async"]()


def test_the_fault_examples_pass() -> None:
    namespace = load(4)
    namespace["test_every_subscriber_gets_every_message_in_order"]()
    namespace["test_a_client_that_stops_reading_is_closed_1013"]()
    namespace["test_a_vanished_client_is_seen_as_1006"]()
    namespace["test_a_silent_client_is_closed_1011"]()
    assert namespace["left"] == [1013, 1006, 1011]


@pytest.mark.anyio
async def test_the_async_fault_example_passes() -> None:
    namespace = load(4, 5)
    await namespace["test_fanout_and_drop_async"]()
    assert namespace["left"] == [1006]
    await namespace["test_a_silent_client_is_closed_1011_async"]()
    assert namespace["left"] == [1006, 1011]
