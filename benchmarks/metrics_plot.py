"""Scrape ``/metrics`` every half second during a load run and plot it: ``docs/metrics.png``.

uvicorn serves ``benchmarks/metrics_app.py`` (an echo and a relayed room, metrics
on). The load, in phases:

1. ramp up to ``--clients`` echo clients, each sending a message every 50 ms,
   plus 20 clients in the room (every message fans out to all of them);
2. a quarter of the echo clients vanish (TCP reset, no close frame);
3. a few send a message over ``max_message_size`` (closed 1009 by lilya);
4. everyone else leaves with a normal close.

The picture is what an operator would watch on the Grafana dashboard
(``docs/grafana-dashboard.json``): open sockets, messages and bytes per second,
closes by code and side. Run by hand (needs the ``bench`` extra: matplotlib)::

    python benchmarks/metrics_plot.py [--clients 200] [--out docs/metrics.png]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402

from tests.support.metrics import parse  # noqa: E402
from tests.support.servers import serve  # noqa: E402


class Scraper(threading.Thread):
    """Scrape every *interval* seconds until stopped; keep (t, samples)."""

    def __init__(self, url: str, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.points: list[tuple[float, Any]] = []
        self.stopped = threading.Event()
        self.start_time = time.monotonic()

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stopped.is_set():
                samples = parse(client.get(self.url).text)
                self.points.append((time.monotonic() - self.start_time, samples))
                self.stopped.wait(self.interval)


async def chatter(ws: ClientConnection, stop: asyncio.Event, text: str) -> None:
    """Send *text* every 50 ms and read whatever comes back, until *stop*."""

    async def read() -> None:
        async for _ in ws:
            pass

    reader = asyncio.create_task(read())
    try:
        while not stop.is_set():
            await ws.send(text)
            await asyncio.sleep(0.05)
    except Exception:
        pass
    finally:
        reader.cancel()


def vanish(ws: ClientConnection) -> None:
    sock = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    ws.transport.abort()


async def load(url: str, clients: int) -> None:
    stops: list[asyncio.Event] = []
    tasks: list[asyncio.Task[None]] = []
    sockets: list[ClientConnection] = []

    async def join(path: str, text: str) -> None:
        ws = await connect(url + path, open_timeout=30, ping_interval=None)
        stop = asyncio.Event()
        sockets.append(ws)
        stops.append(stop)
        tasks.append(asyncio.create_task(chatter(ws, stop, text)))

    for _ in range(20):
        await join("/room", "hello room")
    for n in range(clients):  # ramp: ~20 new clients a second
        await join("/echo", "x" * (20 + n % 200))
        await asyncio.sleep(0.05)
    await asyncio.sleep(4)
    echo = list(range(20, len(sockets)))
    for i in echo[: len(echo) // 4]:  # a quarter vanish
        stops[i].set()
        vanish(sockets[i])
        await asyncio.sleep(0.02)
    await asyncio.sleep(4)
    for i in echo[len(echo) // 4 : len(echo) // 4 + 10]:  # ten send too much
        stops[i].set()
        await sockets[i].send("y" * 5000)
    await asyncio.sleep(4)
    for i, ws in enumerate(sockets):  # the rest leave, spread over a few seconds
        if not stops[i].is_set():
            stops[i].set()
            await ws.close()
            await asyncio.sleep(0.01)
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(3)


def rate(
    points: list[tuple[float, Any]], name: str, **labels: str
) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for (t0, a), (t1, b) in itertools.pairwise(points):
        xs.append(t1)
        ys.append((b.total(name, **labels) - a.total(name, **labels)) / (t1 - t0))
    return xs, ys


def plot(points: list[tuple[float, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    ts = [t for t, _ in points]
    ax = axes[0][0]
    for route in ("/echo", "/room"):
        ax.plot(
            ts,
            [s.value("lilya_websocket_connections_active", route=route) for _, s in points],
            label=route,
        )
    ax.set_title("lilya_websocket_connections_active by route")
    ax = axes[0][1]
    for direction in ("received", "sent"):
        ax.plot(
            *rate(points, "lilya_websocket_messages_total", direction=direction), label=direction
        )
    ax.set_title("messages per second (rate of lilya_websocket_messages_total)")
    ax = axes[1][0]
    for direction in ("received", "sent"):
        xs, ys = rate(points, "lilya_websocket_message_bytes_total", direction=direction)
        ax.plot(xs, [y / 1024 for y in ys], label=direction)
    ax.set_title("KiB per second (rate of lilya_websocket_message_bytes_total)")
    ax = axes[1][1]
    last = points[-1][1]
    keys = sorted(
        {
            dict(labels)["code"] + " " + dict(labels)["side"]
            for name, labels in last
            if name == "lilya_websocket_closes_total"
        }
    )
    for key in keys:
        code, side = key.split()
        ax.plot(
            ts,
            [s.value("lilya_websocket_closes_total", code=code, side=side) for _, s in points],
            label=f"{code} by {side}",
        )
    ax.set_title("lilya_websocket_closes_total by code and side")
    for row in axes:
        for ax in row:
            ax.legend(loc="upper left", fontsize=8)
            ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("seconds")
    fig.suptitle("lilya.metrics during a load run (uvicorn, one worker; scraped every 0.5 s)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "metrics.png")
    args = parser.parse_args()
    with serve("benchmarks.metrics_app:app", "uvicorn") as server:
        scraper = Scraper(server.http_url + "/metrics")
        scraper.start()
        asyncio.run(load(server.ws_url, args.clients))
        scraper.stopped.set()
        scraper.join()
    final = scraper.points[-1][1]
    print(f"{len(scraper.points)} scrapes; at the end:")
    for name in (
        "lilya_websocket_connections_active",
        "lilya_websocket_handshakes_total",
        "lilya_websocket_messages_total",
        "lilya_websocket_closes_total",
        "lilya_websocket_limit_closes_total",
        "lilya_channel_publishes_total",
    ):
        print(f"  {name}: {final.total(name):.0f}")
    plot(scraper.points, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
