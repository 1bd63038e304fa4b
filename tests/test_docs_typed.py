"""docs/typed.md: its examples run and do what the page says."""

from __future__ import annotations

import textwrap
from typing import Any, Literal

import pytest

from lilya.channels import Channels
from lilya.testclient import TestClient
from tests.support.asyncapi_schema import validate_asyncapi
from tests.support.docs import python_blocks


def _first_example() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(python_blocks("typed.md")[0], "docs/typed.md", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_pages_chat_answers_say_and_reports_invalid_input(
    backend: Literal["asyncio", "trio"],
) -> None:
    app = _first_example()["app"]
    with TestClient(app, backend=backend) as client:
        with client.websocket_connect("/ws/ann") as ws:
            ws.send_json({"type": "say", "text": "hi"})
            assert ws.receive_json() == {"type": "said", "nick": "ann", "text": "hi"}
            ws.send_json({"type": "say", "text": 5})
            assert ws.receive_json() == {
                "type": "invalid_message",
                "path": "$.text",
                "problem": "Expected `str`, got `int`",
            }
        document = client.get("/asyncapi.json").json()
    validate_asyncapi(document)
    assert document["info"]["title"] == "chat"
    assert document["channels"]["chat"]["address"] == "/ws/{nick}"


@pytest.mark.anyio
async def test_the_typed_channel_example_publishes_and_decodes() -> None:
    namespace = _first_example()
    body = textwrap.indent(python_blocks("typed.md")[1], "    ")
    source = "async def run(channels):\n" + body + "    return said\n"
    exec(compile(source, "docs/typed.md", "exec"), namespace)
    async with Channels("memory://") as channels:
        said = await namespace["run"](channels)
    assert said == namespace["Said"](nick="ann", text="hi")
