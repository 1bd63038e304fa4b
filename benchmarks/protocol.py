"""Protocol benchmark: ChannelsEndpoint next to relay() and a raw ASGI loop, in one run.

N sockets (default 1,000) in one event loop, each driven by a minimal
in-memory ASGI server (no test client, no network), all subscribed to one
``memory://`` channel. Three stacks deliver the same publications:

* ``raw``: the floor, a bare ASGI loop over a set of ``send`` callables (what
  ``benchmarks/e2e_apps.py`` calls ``raw``);
* ``relay``: ``Channels`` + ``relay()`` (the raw data, no positions);
* ``protocol``: ``lilya.protocol.ChannelsEndpoint``, each push a ``message``
  frame with its channel, epoch and offset.

Two loads, as in issue 16:

* max rate: M publications, the publisher yielding every 100 (a burst);
* one publication per wake-up: publish one, wait until every socket has it,
  then the next (a live chat's common case).

The figure is CPU time (``time.process_time_ns``) per delivered frame, from
the first publication until the last socket has the last frame: wall-clock
is not trusted on a shared machine, CPU time of this one process is. Each
stack is measured ``--repeat`` times, interleaved, and the best kept; the
ratios are to ``raw`` measured in the same run. Run by hand, never from the
tests::

    python benchmarks/protocol.py --sockets 1000 --messages 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lilya.channels import Channels, relay  # noqa: E402
from lilya.protocol import ChannelsEndpoint  # noqa: E402
from lilya.websockets import WebSocket  # noqa: E402

BATCH = 100  # publications between two yields at max rate


class Counter:
    """Every socket's delivered frames, and a wake-up when a target is reached."""

    def __init__(self) -> None:
        self.count = 0
        self.target = -1
        self.reached = asyncio.Event()

    def expect(self, target: int) -> None:
        self.target = target
        self.reached = asyncio.Event()
        if self.count >= target:
            self.reached.set()

    def add(self) -> None:
        self.count += 1
        if self.count == self.target:
            self.reached.set()


class Wire:
    """The server side of one socket: frames to the app from a queue, frames from it counted."""

    def __init__(self, counter: Counter) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming.put_nowait({"type": "websocket.connect"})
        self.counter = counter
        self.replies = 0
        self.replied = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] != "websocket.send":
            return
        text = message.get("text") or ""
        if text.startswith('{"id"'):
            self.replies += 1
            self.replied.set()
            return
        self.counter.add()

    def request(self, frame: dict[str, Any]) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": json.dumps(frame)})

    def leave(self) -> None:
        self.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})


def scope() -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": "/ws",
        "headers": [],
        "subprotocols": [],
        "query_string": b"",
    }


Publish = Callable[[str], Awaitable[Any]]


async def measure(
    publish: Publish, counter: Counter, sockets: int, messages: int, per_wakeup: bool
) -> float:
    """Publish *messages*; return CPU µs per delivered frame once every socket has them all."""
    base = counter.count
    await asyncio.sleep(0.05)  # let every socket settle into its wait
    started = time.process_time_ns()
    if per_wakeup:
        for n in range(messages):
            counter.expect(base + sockets * (n + 1))
            await publish(f"{n} payload")
            await counter.reached.wait()
    else:
        counter.expect(base + sockets * messages)
        for n in range(messages):
            await publish(f"{n} payload")
            if n % BATCH == BATCH - 1:
                await asyncio.sleep(0)
        await counter.reached.wait()
    elapsed = time.process_time_ns() - started
    return elapsed / 1000 / (sockets * messages)


async def run_raw(sockets: int, messages: int, per_wakeup: bool) -> float:
    counter = Counter()
    sends: set[Callable[[dict[str, Any]], Awaitable[None]]] = set()

    async def publish(text: str) -> None:
        message = {"type": "websocket.send", "text": text}
        for send in list(sends):
            await send(message)

    async def app(wire: Wire) -> None:
        await wire.receive()
        sends.add(wire.send)
        await wire.send({"type": "websocket.accept"})
        try:
            while (await wire.receive())["type"] != "websocket.disconnect":
                pass
        finally:
            sends.discard(wire.send)

    wires = [Wire(counter) for _ in range(sockets)]
    tasks = [asyncio.create_task(app(wire)) for wire in wires]
    while len(sends) < sockets:
        await asyncio.sleep(0.01)
    try:
        return await measure(publish, counter, sockets, messages, per_wakeup)
    finally:
        for wire in wires:
            wire.leave()
        await asyncio.gather(*tasks)


async def run_relay(sockets: int, messages: int, per_wakeup: bool) -> float:
    counter = Counter()
    async with Channels("memory://", history_size=0, max_queue=1000) as hub:
        entered = 0
        all_in = asyncio.Event()

        async def app(wire: Wire) -> None:
            nonlocal entered
            websocket = WebSocket(scope(), wire.receive, wire.send)
            async with hub.subscribe("c") as sub:
                entered += 1
                if entered == sockets:
                    all_in.set()
                await relay(websocket, sub)

        wires = [Wire(counter) for _ in range(sockets)]
        tasks = [asyncio.create_task(app(wire)) for wire in wires]
        await all_in.wait()  # a socket subscribed late would miss the first publications
        try:
            return await measure(
                lambda text: hub.publish("c", text), counter, sockets, messages, per_wakeup
            )
        finally:
            for wire in wires:
                wire.leave()
            await asyncio.gather(*tasks)


async def run_protocol(sockets: int, messages: int, per_wakeup: bool) -> float:
    counter = Counter()
    async with Channels("memory://", history_size=0, max_queue=1000) as hub:
        endpoint = ChannelsEndpoint(hub, heartbeat=None)
        wires = [Wire(counter) for _ in range(sockets)]
        tasks = [asyncio.create_task(endpoint(scope(), wire.receive, wire.send)) for wire in wires]
        for wire in wires:
            wire.request({"type": "subscribe", "id": 1, "channel": "c"})
        for wire in wires:
            await wire.replied.wait()
        try:
            return await measure(
                lambda text: hub.publish("c", text), counter, sockets, messages, per_wakeup
            )
        finally:
            for wire in wires:
                wire.leave()
            await asyncio.gather(*tasks)


STACKS = {"raw": run_raw, "relay": run_relay, "protocol": run_protocol}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=1_000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.sockets:,} sockets, CPU µs per delivered frame (best of {args.repeat})")
    print(f"{'load':<24} {'stack':<9} {'µs/frame':>9} {'x raw':>7}")
    for label, per_wakeup, messages in (
        ("max rate", False, args.messages),
        ("one per wake-up", True, max(1, args.messages // 4)),
    ):
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            for name, run in STACKS.items():
                cost = await run(args.sockets, messages, per_wakeup)
                best[name] = min(best.get(name, cost), cost)
        for name, cost in best.items():
            print(f"{label:<24} {name:<9} {cost:>9.2f} {cost / best['raw']:>6.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
