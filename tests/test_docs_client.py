"""docs/client.md: its examples run (in process on asyncio and trio, and over a real server).

Its tables are the code's: the close-code policy and the settings' defaults.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from typing import Any

import anyio
import pytest

from lilya import client as lc
from tests.support.docs import DOCS, python_blocks
from tests.support.servers import serve

BLOCKS = python_blocks("client.md")
PAGE = (DOCS / "client.md").read_text()


def load(*indexes: int) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    for index in indexes:
        exec(compile(BLOCKS[index], f"docs/client.md[{index}]", "exec"), namespace)
    return namespace


def test_the_page_has_four_examples() -> None:
    # The fourth, the RoundRobin dialer, is run by the rolling-restart test in
    # tests/test_client_server.py against two real workers.
    assert len(BLOCKS) == 4


@pytest.mark.anyio
async def test_the_in_process_example_passes() -> None:
    await load(0, 2)["test_the_greeter_says_hello_then_stops_at_bye"]()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_the_network_example_runs_against_a_real_server(anyio_backend: str) -> None:
    namespace = load(0, 1)
    with contextlib.ExitStack() as stack:
        server = await anyio.to_thread.run_sync(
            lambda: stack.enter_context(serve("tests.support.client_apps:app", "uvicorn"))
        )
        url = server.ws_url + "/ws"
        said: list[str] = []

        async def run_main() -> None:
            said.extend(await namespace["main"](url))

        async with lc.connect(url, token="good") as other, anyio.create_task_group() as group:
            watch = await other.subscribe("lobby")
            group.start_soon(run_main)
            with anyio.fail_after(10):
                async for event in watch:
                    if isinstance(event, lc.Message) and event.data == {"text": "hello"}:
                        break
            await other.publish("lobby", {"text": "bye"})
    assert said == ["hello", "bye"]


def table(heading: str) -> list[list[str]]:
    section = PAGE.split(heading)[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_the_close_code_table_is_the_clients_policy() -> None:
    documented = {
        int(code): ("refresh" if text.startswith("refreshes") else text.removesuffix("s"))
        for code, text in table("## Reconnecting: the close-code policy")
    }
    assert documented == {
        code: {"stop": "stop", "reconnect": "reconnect", "refresh": "refresh"}[policy]
        for code, policy in lc.CLOSE_POLICY.items()
    }


def test_the_settings_table_gives_connects_defaults() -> None:
    rows = table("## Connecting")
    documented = {re.sub("`", "", name): re.sub("`", "", default) for name, default, _ in rows}
    parameters = inspect.signature(lc.connect).parameters
    for name, default in documented.items():
        assert repr(parameters[name].default) == default, name
    assert set(parameters) - set(documented) == {"url", "rand"}
