"""Protocol benchmark: ChannelsEndpoint next to relay(), in one run, over the same wire.

One socket, driven by a minimal in-memory ASGI server (no test client, no
network), receives M messages published on ``memory://``:

* baseline: ``relay()`` of one subscription (the raw data, no positions);
* the protocol endpoint with the socket subscribed to 1 channel, then to 100
  channels (the messages spread over them), each push a ``message`` frame
  with its channel, epoch and offset.

It prints frames/s for each and the ratio to the baseline measured in the same
run. Run by hand, never from the tests::

    python benchmarks/protocol.py --messages 50000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lilya.channels import Channels, relay  # noqa: E402
from lilya.protocol import ChannelsEndpoint  # noqa: E402
from lilya.websockets import WebSocket  # noqa: E402


class Wire:
    """The server side: frames to the app from a queue, frames from it counted."""

    def __init__(self, expected: int) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming.put_nowait({"type": "websocket.connect"})
        self.expected = expected
        self.count = 0
        self.done = asyncio.Event()
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] != "websocket.send":
            return
        text = message.get("text") or ""
        if text.startswith('{"id"'):
            self.replies.put_nowait(json.loads(text))
            return
        self.count += 1
        if self.count == self.expected:
            self.done.set()

    def request(self, frame: dict[str, Any]) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": json.dumps(frame)})


def scope() -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": "/ws",
        "headers": [],
        "subprotocols": [],
        "query_string": b"",
    }


async def publish_all(hub: Channels, names: list[str], messages: int) -> None:
    for n in range(messages):
        await hub.publish(names[n % len(names)], {"n": n})
        if n % 100 == 99:
            await asyncio.sleep(0)


async def run_relay(messages: int) -> float:
    async with Channels("memory://", history_size=0) as hub:
        wire = Wire(messages)
        websocket = WebSocket(scope(), wire.receive, wire.send)
        async with hub.subscribe("c") as sub:
            task = asyncio.create_task(relay(websocket, sub))
            await asyncio.sleep(0.01)
            start = time.perf_counter()
            await publish_all(hub, ["c"], messages)
            await wire.done.wait()
            elapsed = time.perf_counter() - start
            wire.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
            await task
    return messages / elapsed


async def run_protocol(messages: int, channels: int) -> float:
    async with Channels("memory://", history_size=0) as hub:
        endpoint = ChannelsEndpoint(hub, heartbeat=None, max_channels=channels)
        wire = Wire(messages)
        task = asyncio.create_task(endpoint(scope(), wire.receive, wire.send))
        names = [f"c{n}" for n in range(channels)]
        for n, name in enumerate(names):
            wire.request({"type": "subscribe", "id": n, "channel": name})
        for _ in names:
            await wire.replies.get()
        start = time.perf_counter()
        await publish_all(hub, names, messages)
        await wire.done.wait()
        elapsed = time.perf_counter() - start
        wire.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await task
    return messages / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args()
    base = await run_relay(args.messages)
    one = await run_protocol(args.messages, 1)
    hundred = await run_protocol(args.messages, 100)
    print(f"relay() baseline          {base:>10,.0f} frames/s  1.00x")
    print(f"protocol, 1 channel       {one:>10,.0f} frames/s  {one / base:.2f}x")
    print(f"protocol, 100 channels    {hundred:>10,.0f} frames/s  {hundred / base:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
