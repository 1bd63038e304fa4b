"""lilya.client next to a bare ``websockets`` socket speaking the protocol by hand, in one run.

Against one real uvicorn serving ``ChannelsEndpoint`` (``memory://``):

* publish round trips: N ``publish`` requests one after the other, each
  awaiting its answer (the raw peer builds the frame and matches the reply id);
* receive: N messages pushed to one subscriber (published, pipelined, by a raw
  peer), counted as they arrive: raw (``json.loads`` of each frame) against a
  ``lilya.client`` subscription (parsing, position tracking, dedupe, buffer).

It prints operations/s (best of three, interleaved) and the ratio of
lilya.client to the raw peer measured in the same run. Run by hand, never from the tests::

    python benchmarks/client.py --messages 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402

import lilya.client  # noqa: E402
from tests.support.servers import serve  # noqa: E402


async def raw_peer(url: str) -> ClientConnection:
    ws = await connect(url, ping_interval=None)
    await ws.send(json.dumps({"type": "connect", "id": 0, "token": "good"}))
    json.loads(await ws.recv())
    return ws


async def raw_round_trips(url: str, n: int) -> float:
    ws = await raw_peer(url)
    start = time.perf_counter()
    for i in range(1, n + 1):
        await ws.send(json.dumps({"type": "publish", "id": i, "channel": "rt", "data": i}))
        while json.loads(await ws.recv()).get("id") != i:
            pass
    elapsed = time.perf_counter() - start
    await ws.close()
    return n / elapsed


async def client_round_trips(url: str, n: int) -> float:
    async with lilya.client.connect(url, token="good", ping_interval=None) as client:
        start = time.perf_counter()
        for i in range(n):
            await client.publish("rt", i)
        return n / (time.perf_counter() - start)


async def pipelined_publish(url: str, channel: str, n: int) -> None:
    ws = await raw_peer(url)
    for i in range(1, n + 1):
        await ws.send(json.dumps({"type": "publish", "id": i, "channel": channel, "data": i}))
    acks = 0
    while acks < n:
        if "id" in json.loads(await ws.recv()):
            acks += 1
    await ws.close()


async def raw_receive(url: str, n: int, channel: str) -> float:
    ws = await raw_peer(url)
    await ws.send(json.dumps({"type": "subscribe", "id": 1, "channel": channel}))
    json.loads(await ws.recv())
    start = time.perf_counter()
    publisher = asyncio.create_task(pipelined_publish(url, channel, n))
    seen = 0
    while seen < n:
        if json.loads(await ws.recv()).get("type") == "message":
            seen += 1
    elapsed = time.perf_counter() - start
    await publisher
    await ws.close()
    return n / elapsed


async def client_receive(url: str, n: int, channel: str) -> float:
    async with lilya.client.connect(url, token="good", ping_interval=None) as client:
        sub = await client.subscribe(channel)
        start = time.perf_counter()
        publisher = asyncio.create_task(pipelined_publish(url, channel, n))
        seen = 0
        async for _ in sub:
            seen += 1
            if seen == n:
                break
        elapsed = time.perf_counter() - start
        await publisher
        return n / elapsed


async def main(n: int) -> None:
    with serve("tests.support.client_apps:unlimited", "uvicorn-websockets") as server:
        url = server.ws_url + "/ws"
        # Interleaved, best of three each: the order and the machine's load
        # would otherwise decide the ratio.
        trips = {"raw": 0.0, "client": 0.0}
        received = {"raw": 0.0, "client": 0.0}
        for round_ in range(3):
            trips["raw"] = max(trips["raw"], await raw_round_trips(url, n))
            trips["client"] = max(trips["client"], await client_round_trips(url, n))
            received["raw"] = max(received["raw"], await raw_receive(url, n, f"raw{round_}"))
            received["client"] = max(
                received["client"], await client_receive(url, n, f"client{round_}")
            )
        rows = [
            ("publish round trips", trips["raw"], trips["client"]),
            ("messages received", received["raw"], received["client"]),
        ]
    print(f"{'':22} {'raw /s':>10} {'client /s':>10} {'ratio':>6}")
    for name, raw, client in rows:
        print(f"{name:22} {raw:10.0f} {client:10.0f} {client / raw:6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    asyncio.run(main(parser.parse_args().messages))
