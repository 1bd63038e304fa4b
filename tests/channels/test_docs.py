"""The chat room of docs/channels.md, run as written, on memory:// and across processes.

The redis:// case is the cross-process test: two uvicorn processes of the one
app on two ports, sharing a Redis, a real websocket client on each; what one
client sends reaches the other, in order.
"""

from __future__ import annotations

import json
import re
import sys
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.channels.redis_server import private_redis
from tests.support.servers import RunningServer, serve, tracebacks

pytestmark = [pytest.mark.anyio, pytest.mark.server]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "channels.md"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the websockets client library and redis-py are asyncio-only


def chat_example() -> str:
    text = DOCS.read_text()
    section = text.split("## A chat room", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "docs/channels.md lost its chat room example"
    return match.group(1)


def test_the_chat_room_example_is_under_40_lines() -> None:
    assert len(chat_example().strip().splitlines()) < 40


def serve_example(tmp_path: Path, url: str) -> AbstractContextManager[RunningServer]:
    (tmp_path / "chat_example.py").write_text(chat_example())
    command = [
        sys.executable, "-m", "uvicorn", "chat_example:app", "--app-dir", str(tmp_path),
        "--host", "127.0.0.1", "--port", "{port}", "--no-access-log",
    ]  # fmt: skip
    return serve("chat_example:app", "uvicorn", command=command, env={"CHANNELS_URL": url})


async def wait_until_subscribed(ws: ClientConnection, name: str) -> None:
    """Send probes until our own comes back: then our subscription is live."""
    with anyio.fail_after(10):
        while True:
            await ws.send(f"probe from {name}")
            with anyio.move_on_after(0.3):
                while True:
                    message = json.loads(await ws.recv())
                    if message == {"from": name, "text": f"probe from {name}"}:
                        return


async def assert_chat_works(ann_url: str, bob_url: str) -> None:
    # max_queue=None: ann never reads her own echoes, and a full client-side
    # queue would stop the client reading the server's close frame.
    async with (
        connect(f"{ann_url}/ws/lobby?name=ann", max_queue=None) as ann,
        connect(f"{bob_url}/ws/lobby?name=bob", max_queue=None) as bob,
    ):
        await wait_until_subscribed(bob, "bob")
        await wait_until_subscribed(ann, "ann")
        for i in range(30):
            await ann.send(f"message {i}")
        received: list[str] = []
        with anyio.fail_after(10):
            while len(received) < 30:
                message = json.loads(await bob.recv())
                if message["from"] == "ann" and message["text"].startswith("message"):
                    received.append(message["text"])
        assert received == [f"message {i}" for i in range(30)]


async def test_the_chat_room_works_in_one_process_on_memory(tmp_path: Path) -> None:
    with serve_example(tmp_path, "memory://") as server:
        await assert_chat_works(server.ws_url, server.ws_url)
        log = server.log()
    assert tracebacks(log) == []


@pytest.mark.redis
async def test_the_chat_room_works_across_two_uvicorn_processes_on_redis(tmp_path: Path) -> None:
    with private_redis() as redis_server, ExitStack() as stack:
        first = stack.enter_context(serve_example(tmp_path, redis_server.url))
        second = stack.enter_context(serve_example(tmp_path, redis_server.url))
        assert first.port != second.port
        await assert_chat_works(first.ws_url, second.ws_url)
        logs = first.log() + second.log()
    assert tracebacks(logs) == []


def test_every_test_the_delivery_guarantee_cites_exists() -> None:
    page = DOCS.read_text()
    section = page[page.index("## The delivery guarantee") :]
    cited = set(re.findall(r"`(test_[a-z0-9_]+)`", section))
    assert len(cited) >= 10
    defined = {
        name
        for path in (DOCS.parents[1] / "tests").rglob("test_*.py")
        for name in re.findall(r"^(?:async )?def (test_[a-z0-9_]+)", path.read_text(), re.M)
    }
    assert cited <= defined, sorted(cited - defined)
