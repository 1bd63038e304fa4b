"""Connection-caps benchmark: what counting costs a handshake, and what a flood costs the server.

1. **In process**: handshakes (connect, accept, close) straight into the ASGI
   app, no network, so the cost of lilya's own layers shows. The same app
   three ways, taking turns ``--rounds`` times: caps off (the baseline of this
   run), the default caps counted in process, and counted in Redis
   (``--redis``, skipped if it does not answer). It prints handshakes/s and
   each one's ratio to the baseline.
2. **On uvicorn** (``lilya run``): ``--flood`` handshakes at once from one
   address against the default caps; how many got in, how many got 429, how
   long the flood took, and the round trip of a client connected in the
   same address (its own thread) during the flood against its round trip idle.

Run by hand, never from the tests::

    python benchmarks/caps.py [--handshakes 10000] [--rounds 3] [--flood 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import InvalidStatus  # noqa: E402
from websockets.sync.client import connect as sync_connect  # noqa: E402

from lilya.apps import Lilya  # noqa: E402
from lilya.caps import RedisCounter  # noqa: E402
from lilya.routing import WebSocketPath  # noqa: E402
from lilya.types import Message  # noqa: E402
from lilya.websockets import WebSocket  # noqa: E402
from tests.support.servers import RunningServer, serve  # noqa: E402


async def accept_and_close(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close()


def scope(n: int) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "scheme": "ws",
        "server": ("127.0.0.1", 8000),
        "client": (f"10.0.{n % 250}.{n % 200}", 40000),  # many addresses, as a real server sees
        "root_path": "",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
        "state": {},
    }


async def handshakes(app: Lilya, count: int) -> float:
    """Handshakes per second of *app*, *count* in a row."""

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        pass

    started = time.perf_counter()
    for n in range(count):
        await app(scope(n), receive, send)
    return count / (time.perf_counter() - started)


async def in_process(count: int, rounds: int, redis_url: str) -> None:
    routes = [WebSocketPath("/ws", accept_and_close)]
    apps: dict[str, Lilya] = {
        "caps off (baseline)": Lilya(routes, connection_caps=None),
        "default caps, in process": Lilya(routes),
    }
    counter = RedisCounter(redis_url, key_prefix=f"lilya:bench-caps:{uuid.uuid4().hex}:")
    probe = await counter.acquire([("probe", None)])
    if probe is not None and not isinstance(probe, int):
        await counter.release(probe)
        apps["default caps, in Redis"] = Lilya(routes, connection_counter=counter)
    else:
        print(f"(no Redis at {redis_url}: its row is skipped)")
    await counter.aclose()
    best: dict[str, float] = dict.fromkeys(apps, 0.0)
    for _ in range(rounds):
        for name, app in apps.items():
            best[name] = max(best[name], await handshakes(app, count))
    base = best["caps off (baseline)"]
    print(f"\nIn process, {count} handshakes, best of {rounds} rounds:")
    for name, rate in best.items():
        print(f"  {name:28} {rate:10,.0f}/s   x{rate / base:.2f}")
        counted = apps[name].connection_counter.counts
        assert counted == {}, f"{name} left slots taken: {counted}"
    await counter.aclose()


def round_trips(url: str, samples: int, stop: threading.Event | None = None) -> list[float]:
    """Round trips (ms) of one calm client in its own thread and event loop.

    Its own thread, so the flooding client's event loop does not delay it:
    what it measures is the server. With *stop*, it samples until *stop* is set.
    """
    times: list[float] = []
    with sync_connect(url, open_timeout=30) as ws:
        while len(times) < samples or (stop is not None and not stop.is_set()):
            started = time.perf_counter()
            ws.send("ping")
            ws.recv(timeout=30)
            times.append((time.perf_counter() - started) * 1000)
            time.sleep(0.002)
    return sorted(times)


async def flood(server: RunningServer, count: int) -> None:
    url = server.ws_url + "/"
    idle = round_trips(url, 200)
    opened: list[ClientConnection] = []
    refused: list[int] = []

    async def one() -> None:
        try:
            opened.append(await connect(url, ping_interval=None, open_timeout=60))
        except InvalidStatus as exc:
            refused.append(exc.response.status_code)

    stop = threading.Event()
    calm = asyncio.ensure_future(asyncio.to_thread(round_trips, url, 20, stop))
    await asyncio.sleep(0.05)  # the calm client is connected and sampling
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    took = time.perf_counter() - started
    stop.set()
    during = await calm
    print(f"\nOn uvicorn (lilya run), {count} handshakes at once from one address:")
    print(
        f"  got in: {len(opened)} (+ the calm client: {len(opened) + 1}), refused: {len(refused)}"
    )
    print(f"  refusals' statuses: {sorted(set(refused))}; the flood took {took:.2f} s")
    for name, times in (("idle", idle), ("during the flood", during)):
        p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
        print(f"  calm client's round trip {name:17} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    await asyncio.gather(*(ws.close() for ws in opened))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--handshakes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/6")
    parser.add_argument("--flood", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(in_process(args.handshakes, args.rounds, args.redis))
    command = [sys.executable, "-m", "lilya", "run", "tests.support.caps_apps:default_app"]
    with serve("", command=[*command, "--port", "{port}"]) as server:
        asyncio.run(flood(server, args.flood))


if __name__ == "__main__":
    main()
