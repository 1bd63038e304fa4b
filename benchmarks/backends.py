"""Channel backends side by side: publish throughput and publish→deliver latency, one run.

For each backend URL given (any scheme ``Channels`` knows, built in or
registered, ``redis+cluster://`` say, joins by URL):

1. **Publish throughput**: messages/s one task publishes, awaiting each
   publish (what a request handler sees), and what 16 concurrent tasks
   publish together (what a busy process sees); no subscriber, history on.
2. **Latency across two processes**: a subscriber process and a publisher
   process (this one) at a fixed rate (1,000 msg/s by default); latency =
   receive time minus the publish time carried in the message (one machine,
   one clock); p50, p99 and max. ``memory://`` cannot cross processes, so
   its subscriber is a task in this process: the reference floor.

Ratios are against ``memory://`` measured in the same run. Run by hand, never
from the tests::

    python benchmarks/backends.py
    python benchmarks/backends.py --url memory:// --url redis://127.0.0.1:6379/5 \\
        --seconds 5 --plot docs/backends.png

The plot (matplotlib, the ``bench`` extra) goes to ``--plot``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lilya.channels import Channels  # noqa: E402

DEFAULT_URLS = [
    "memory://",
    "redis://127.0.0.1:6379/0",
    "postgres://postgres@127.0.0.1:5432/test",
    "nats://127.0.0.1:4222",
]
CONCURRENCY = 16


def percentiles(latencies: list[float]) -> dict[str, float]:
    ms = sorted(latency * 1000 for latency in latencies)
    return {
        "count": len(ms),
        "p50": statistics.median(ms),
        "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "max": ms[-1],
    }


async def cleanup(url: str, prefix: str) -> None:
    """Delete what a run wrote under *prefix* on a shared server."""
    if url.startswith(("redis:", "rediss:")):
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(url)
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    elif url.startswith(("postgres:", "postgresql:")):
        import asyncpg

        connection = await asyncpg.connect(url)
        for table in ("lilya_channel", "lilya_channel_message", "lilya_channel_member"):
            await connection.execute(f"DELETE FROM {table} WHERE ns = $1", prefix)
        await connection.close()
    elif url.startswith("nats:"):
        import nats

        from lilya.channels.backend import BackendSettings
        from lilya.channels.nats import NatsBackend

        backend = NatsBackend(url, BackendSettings(0, None, prefix, (0.1, 0.1)))
        client = await nats.connect(url)
        for stream in (backend.stream, f"KV_{backend.bucket}"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await client.jetstream().delete_stream(stream)
        await client.close()


async def throughput(url: str, messages: int) -> dict[str, float]:
    """Return publishes/s of one awaiting task and of CONCURRENCY tasks together."""
    prefix = f"lilya-bench:{uuid.uuid4().hex}"
    async with Channels(url, key_prefix=prefix, max_queue=10_000) as channels:
        for _ in range(50):  # warm up: connections, prepared statements, scripts
            await channels.publish("warm", "x")
        started = time.perf_counter()
        for i in range(messages):
            await channels.publish("one", i)
        single = messages / (time.perf_counter() - started)

        async def publisher(name: str, count: int) -> None:
            for i in range(count):
                await channels.publish(name, i)

        per_task = messages // CONCURRENCY
        started = time.perf_counter()
        await asyncio.gather(*(publisher(f"many-{t}", per_task) for t in range(CONCURRENCY)))
        concurrent = per_task * CONCURRENCY / (time.perf_counter() - started)
    await cleanup(url, prefix)
    return {"single": single, "concurrent": concurrent}


async def subscriber_process(url: str, prefix: str, channel: str, count: int) -> None:
    """Child process: subscribe, say ready, record latencies of *count* messages.

    It stops after *count* messages or 5 s without one (a lost message must
    not hang the benchmark), and reports what it got.
    """
    latencies: list[float] = []
    async with (
        Channels(url, key_prefix=prefix, max_queue=100_000) as channels,
        channels.subscribe(channel) as sub,
    ):
        print("ready", flush=True)
        while len(latencies) < count:
            try:
                event = await asyncio.wait_for(sub.receive(), 5.0)
            except asyncio.TimeoutError:
                break
            latencies.append(time.time() - float(event.data))
    print(json.dumps(latencies), flush=True)


async def publish_at_rate(channels: Channels, channel: str, count: int, rate: int) -> None:
    interval = 1 / rate
    start = time.perf_counter()
    for i in range(count):
        # An absolute schedule, so a slow publish does not lower the rate.
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await channels.publish(channel, repr(time.time()))


async def latency(url: str, seconds: float, rate: int) -> dict[str, float]:
    """Publish at *rate*/s for *seconds* to a subscriber; return latency percentiles."""
    prefix = f"lilya-bench:{uuid.uuid4().hex}"
    channel = "latency"
    count = int(seconds * rate)
    if url.startswith("memory:"):
        latencies: list[float] = []
        async with (
            Channels(url, max_queue=100_000) as channels,
            channels.subscribe(channel) as sub,
        ):

            async def read() -> None:
                while len(latencies) < count:
                    event = await sub.receive()
                    latencies.append(time.time() - float(event.data))

            reader = asyncio.create_task(read())
            await publish_at_rate(channels, channel, count, rate)
            await asyncio.wait_for(reader, 10)
        return percentiles(latencies)
    child = subprocess.Popen(
        [sys.executable, __file__, "--role", "sub", "--url", url, "--prefix", prefix,
         "--channel", channel, "--count", str(count)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert child.stdout is not None
    line = await asyncio.to_thread(child.stdout.readline)
    if line.strip() != "ready":
        child.kill()
        raise RuntimeError(f"{url}: subscriber failed to start: {line!r}")
    try:
        async with Channels(url, key_prefix=prefix) as channels:
            await publish_at_rate(channels, channel, count, rate)
    finally:
        output = await asyncio.to_thread(child.communicate, None, 60)
        await cleanup(url, prefix)
    got = json.loads(output[0].strip().splitlines()[-1])
    if len(got) != count:
        raise RuntimeError(f"{url}: the subscriber got {len(got)} of {count} messages")
    return percentiles(got)


def plot(results: dict[str, dict[str, Any]], path: Path, rate: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    xs = range(len(names))
    width = 0.38
    left.bar([x - width / 2 for x in xs], [results[n]["publish"]["single"] for n in names],
             width, label="1 task, awaiting each")  # fmt: skip
    left.bar([x + width / 2 for x in xs], [results[n]["publish"]["concurrent"] for n in names],
             width, label=f"{CONCURRENCY} tasks")  # fmt: skip
    left.set_xticks(list(xs), names)
    left.set_yscale("log")
    left.set_ylim(bottom=100)
    left.set_ylabel("publishes / s (log)")
    left.set_title("Publish throughput")
    left.legend()
    right.bar([x - width / 2 for x in xs], [results[n]["latency"]["p50"] for n in names],
              width, label="p50")  # fmt: skip
    right.bar([x + width / 2 for x in xs], [results[n]["latency"]["p99"] for n in names],
              width, label="p99")  # fmt: skip
    right.set_xticks(list(xs), names)
    right.set_ylabel("ms")
    right.set_title(f"Publish → deliver at {rate:,} msg/s, two processes")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def main(args: argparse.Namespace) -> None:
    urls = args.url or DEFAULT_URLS
    if not any(url.startswith("memory:") for url in urls):
        urls = ["memory://", *urls]  # the reference every ratio is against
    results: dict[str, dict[str, Any]] = {}
    for url in urls:
        name = url.split("://", 1)[0] + "://"
        print(f"{url} ...", flush=True)
        results[name] = {
            "publish": await throughput(url, args.messages),
            "latency": await latency(url, args.seconds, args.rate),
        }
    ref = results["memory://"]
    print()
    print("| backend | publish/s, 1 task | 16 tasks | p50 ms | p99 ms | max ms | p99 vs memory |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        pub, lat = result["publish"], result["latency"]
        print(
            f"| `{name}` | {pub['single']:,.0f} | {pub['concurrent']:,.0f} | "
            f"{lat['p50']:.3f} | {lat['p99']:.3f} | {lat['max']:.3f} | "
            f"{lat['p99'] / ref['latency']['p99']:.1f}× |"
        )
    if args.plot:
        plot(results, Path(args.plot), args.rate)
        print(f"\nplot written to {args.plot}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", help="a backend URL (repeat); default: all")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=5000, help="for the throughput run")
    parser.add_argument("--plot", default="", help="write a PNG plot here")
    parser.add_argument("--role", default="main", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    parser.add_argument("--channel", default="", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.role == "sub":
        asyncio.run(
            subscriber_process(
                arguments.url[0], arguments.prefix, arguments.channel, arguments.count
            )
        )
    else:
        asyncio.run(main(arguments))
