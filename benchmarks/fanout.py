"""Fan-out benchmark: lilya.channels next to the broadcaster library, in one run.

Two measurements, each for lilya and broadcaster:

1. In-process fan-out (``memory://``): one publisher, N subscribers (1,000 and
   10,000) in one event loop; deliveries per second = N x messages / time until
   every subscriber has read every message. The publisher yields to the loop
   after every batch of messages, as a real publisher handling requests would.
2. Across processes through Redis: a subscriber process and a publisher process
   (this one) at a fixed rate of 1,000 messages/s; latency = receive time minus
   the publish time carried in the message (one machine, one clock).

Run by hand, never from the tests::

    python benchmarks/fanout.py                     # Redis at redis://127.0.0.1:6379/0
    python benchmarks/fanout.py --redis redis://127.0.0.1:6379/5 --seconds 5

Targets (issue 4): in-process >= 1,000,000 deliveries/s and >= 2x broadcaster;
Redis p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from broadcaster import Broadcast  # noqa: E402

from lilya.channels import Channels  # noqa: E402

BATCH = 100  # messages published between two yields to the event loop


# -- 1. in-process fan-out -------------------------------------------------------


async def fanout(
    subscribe: Callable[[], AbstractAsyncContextManager[Any]],
    publish: Callable[[str], Awaitable[Any]],
    subscribers: int,
    messages: int,
) -> float:
    """Return deliveries/s of one publisher to *subscribers* readers.

    The same loop for every library, so the libraries are all that differs:
    *subscribe* opens one subscription (an async iterator of events), *publish*
    sends one message to the channel.
    """
    done = 0
    all_done = asyncio.Event()
    ready = asyncio.Event()
    entered = 0

    async def reader() -> None:
        nonlocal done, entered
        async with subscribe() as sub:
            entered += 1
            if entered == subscribers:
                ready.set()
            count = 0
            async for _event in sub:
                count += 1
                if count == messages:
                    break
            done += 1
            if done == subscribers:
                all_done.set()

    tasks = [asyncio.create_task(reader()) for _ in range(subscribers)]
    await ready.wait()
    started = time.perf_counter()
    for i in range(messages):
        await publish("x")
        if i % BATCH == BATCH - 1:
            await asyncio.sleep(0)
    await all_done.wait()
    elapsed = time.perf_counter() - started
    await asyncio.gather(*tasks)
    return subscribers * messages / elapsed


async def fanout_lilya(subscribers: int, messages: int) -> float:
    """Return deliveries/s of lilya's memory:// with *subscribers* readers."""
    async with Channels("memory://", max_queue=max(BATCH * 2, 1000)) as channels:
        return await fanout(
            lambda: channels.subscribe("bench"),
            lambda data: channels.publish("bench", data),
            subscribers,
            messages,
        )


async def fanout_broadcaster(subscribers: int, messages: int) -> float:
    """Return deliveries/s of broadcaster's memory:// with *subscribers* readers."""
    async with Broadcast("memory://") as broadcast:
        return await fanout(
            lambda: broadcast.subscribe("bench"),
            lambda data: broadcast.publish("bench", data),
            subscribers,
            messages,
        )


# -- 2. latency across processes through Redis --------------------------------------


async def subscriber_process(lib: str, url: str, channel: str, count: int) -> None:
    """Child process: subscribe, say ready, record latencies of *count* messages.

    It stops after *count* messages or 3 s without one (a lost message must
    not hang the benchmark), and reports what it got.
    """
    latencies: list[float] = []

    async def drain(iterator: Any, data: Callable[[Any], str]) -> None:
        while len(latencies) < count:
            try:
                event = await asyncio.wait_for(iterator.__anext__(), 3.0)
            except (asyncio.TimeoutError, StopAsyncIteration):
                return
            latencies.append(time.time() - float(data(event)))

    if lib == "lilya":
        channels = Channels(url, key_prefix=channel)
        async with channels, channels.subscribe(channel) as sub:
            print("ready", flush=True)
            await drain(sub, lambda event: event.data)
    else:
        async with Broadcast(url) as broadcast, broadcast.subscribe(channel) as sub:
            # broadcaster 0.3.1 with redis-py >= 6 starts pubsub.listen()
            # before its SUBSCRIBE is sent; listen() then returns at once
            # and its listener never wakes again. Waking it once the
            # subscription exists works around that race.
            await asyncio.sleep(0.1)
            broadcast._backend._ready.set()  # type: ignore[attr-defined]
            print("ready", flush=True)
            await drain(sub.__aiter__(), lambda event: event.message)  # type: ignore[union-attr]
    print(json.dumps(latencies), flush=True)


async def redis_latency(lib: str, url: str, seconds: float, rate: int) -> dict[str, float]:
    """Publish at *rate*/s for *seconds* to a subscriber process; return latency percentiles."""
    channel = f"bench-{uuid.uuid4().hex[:8]}"
    count = int(seconds * rate)
    child = subprocess.Popen(
        [sys.executable, __file__, "--role", "sub", "--lib", lib, "--redis", url,
         "--channel", channel, "--count", str(count)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert child.stdout is not None
    line = await asyncio.to_thread(child.stdout.readline)
    if line.strip() != "ready":
        child.kill()
        raise RuntimeError(f"subscriber failed to start: {line!r}")
    publish: Callable[[str], Awaitable[Any]]
    if lib == "lilya":
        owner: Any = Channels(url, key_prefix=channel)
        publish = lambda data: owner.publish(channel, data)  # noqa: E731
    else:
        owner = Broadcast(url)
        publish = lambda data: owner.publish(channel, data)  # noqa: E731
    await owner.connect()
    await asyncio.sleep(0.5)  # let the subscription settle (broadcaster does not wait for it)
    try:
        interval = 1 / rate
        start = time.perf_counter()
        for i in range(count):
            # An absolute schedule, so a slow publish does not lower the rate.
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await publish(repr(time.time()))
    finally:
        await owner.disconnect()
    output = await asyncio.to_thread(child.communicate, None, 60)
    latencies = sorted(json.loads(output[0].strip().splitlines()[-1]))
    if not latencies:
        raise RuntimeError(f"{lib}: the subscriber process received nothing")
    ms = [latency * 1000 for latency in latencies]
    return {
        "count": len(ms),
        "p50": statistics.median(ms),
        "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "max": ms[-1],
    }


# -- main ------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    print(f"fan-out in one process (asyncio, publisher yields every {BATCH} messages)")
    print(f"{'subscribers':>12} {'lilya/s':>14} {'broadcaster/s':>14} {'ratio':>7}")
    for subscribers, messages in () if args.no_fanout else ((1_000, 1_000), (10_000, 200)):
        lilya_rates, broadcaster_rates = [], []
        for _ in range(args.repeat):
            lilya_rates.append(await fanout_lilya(subscribers, messages))
            broadcaster_rates.append(await fanout_broadcaster(subscribers, messages))
        lilya, other = max(lilya_rates), max(broadcaster_rates)
        print(f"{subscribers:>12,} {lilya:>14,.0f} {other:>14,.0f} {lilya / other:>6.2f}x")

    if args.no_redis:
        return
    print(f"\npublish->receive across two processes via {args.redis}, {args.rate} msg/s")
    print(f"{'library':>12} {'count':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    results = {}
    for lib in ("lilya", "broadcaster"):
        result = results[lib] = await redis_latency(lib, args.redis, args.seconds, args.rate)
        print(
            f"{lib:>12} {result['count']:>7} {result['p50']:>8.3f} "
            f"{result['p99']:>8.3f} {result['max']:>8.3f}"
        )
    ratio = results["broadcaster"]["p99"] / results["lilya"]["p99"]
    print(f"p99 ratio broadcaster/lilya: {ratio:.2f}x (above 1: lilya is faster)")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--no-fanout", action="store_true")
    parser.add_argument("--role", default="main", choices=["main", "sub"])
    parser.add_argument("--lib", default="lilya")
    parser.add_argument("--channel", default="bench")
    parser.add_argument("--count", type=int, default=0)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.role == "sub":
        asyncio.run(
            subscriber_process(arguments.lib, arguments.redis, arguments.channel, arguments.count)
        )
    else:
        asyncio.run(main(arguments))
