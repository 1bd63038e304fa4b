"""send_timeout benchmark: 100 stalled clients beside 900 healthy ones on a real uvicorn.

``lilya run`` (uvicorn, its default WebSocket implementation) serves
``tests/support/timeout_apps.py`` with ``send_timeout`` set by ``--timeout``
(lilya's default is 10 s). In one run, two phases of ``--seconds`` each:

* **baseline**: ``--healthy`` clients on ``/echo`` each send a message, wait
  for its echo and pause ``--interval`` seconds, over and over;
* **stalled**: the same, plus ``--stalled`` clients that open ``/feed`` (the
  server sends ``--feed-size`` bytes every ``--feed-interval`` seconds, 4 KiB
  every 10 ms by default: a busy market-data feed) and read nothing;
  each reconnects as soon as the server has dropped it, so the attack lasts
  the whole phase.

It prints the healthy clients' round trip p50/p99/max in both phases and
their ratio, the server's RSS (median and max, sampled every 0.25 s) in both
phases and their ratio, and how many stalled connections the server dropped.

Run by hand, never from the tests (the machine's load changes every figure;
only the ratios of one run mean something)::

    python benchmarks/send_timeout.py [--timeout 10] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import socket
import statistics
import struct
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect  # noqa: E402

from benchmarks.flood import percentile  # noqa: E402
from tests.support.servers import RunningServer, serve  # noqa: E402

APP = "tests.support.timeout_apps:app"
HANDSHAKE = (
    b"GET /feed HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
TCP_ESTABLISHED = 1


def rss_mib(pid: int) -> float:
    """The resident set size of process *pid*, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0  # pragma: no cover


def established(sock: socket.socket) -> bool:
    """Whether *sock*'s TCP connection is still up (read from TCP_INFO, without reading data)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return struct.unpack("B", info[:1])[0] == TCP_ESTABLISHED


async def stall(port: int, stop: asyncio.Event, dropped: list[float]) -> None:
    """Open /feed, read nothing; when the server drops it, do it again."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", port))
            await loop.sock_sendall(sock, HANDSHAKE)
            response = b""
            while b"\r\n\r\n" not in response:
                response += await loop.sock_recv(sock, 1)
            opened = time.monotonic()
            while not stop.is_set() and established(sock):
                await asyncio.sleep(0.1)
            if not stop.is_set():
                dropped.append(time.monotonic() - opened)
        except OSError:
            await asyncio.sleep(0.1)
        finally:
            sock.close()


async def healthy(url: str, interval: float, stop: asyncio.Event, rtts: list[float]) -> None:
    async with connect(url + "/echo", open_timeout=60, ping_interval=None) as ws:
        n = 0
        while not stop.is_set():
            n += 1
            sent = time.perf_counter()
            await ws.send(str(n))
            await ws.recv()
            rtts.append(time.perf_counter() - sent)
            await asyncio.sleep(interval)


async def phase(server: RunningServer, args: argparse.Namespace, stalled: int) -> dict[str, Any]:
    stop = asyncio.Event()
    rtts: list[float] = []
    dropped: list[float] = []
    rss: list[float] = []
    tasks = [
        asyncio.create_task(healthy(server.ws_url, args.interval, stop, rtts))
        for _ in range(args.healthy)
    ]
    tasks += [asyncio.create_task(stall(server.port, stop, dropped)) for _ in range(stalled)]
    await asyncio.sleep(2)  # everyone connected and going
    rtts.clear()
    ends = time.monotonic() + args.seconds
    while time.monotonic() < ends:
        rss.append(rss_mib(server.process.pid))
        await asyncio.sleep(0.25)
    stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    return {
        "rtt_p50": percentile(rtts, 0.5),
        "rtt_p99": percentile(rtts, 0.99),
        "rtt_max": percentile(rtts, 1.0),
        "round_trips": len(rtts),
        "rss_median": statistics.median(rss),
        "rss_max": max(rss),
        "dropped": len(dropped),
        "dropped_after": statistics.median(dropped) if dropped else None,
    }


async def run(args: argparse.Namespace) -> None:
    command = [sys.executable, "-m", "lilya", "run", APP, "--port", "{port}"]
    env = {
        "LILYA_SEND_TIMEOUT": str(args.timeout),
        "LILYA_FEED_CHUNK": str(args.feed_size),
        "LILYA_FEED_INTERVAL": str(args.feed_interval),
    }
    with serve(APP, command=command, env=env) as server:
        base = await phase(server, args, 0)
        attacked = await phase(server, args, args.stalled)
        if args.log:
            print(server.log()[-3000:])
    print(
        f"send_timeout {args.timeout:g} s, {args.healthy} healthy clients (one round trip "
        f"every {args.interval:g} s each), {args.stalled} stalled, {args.seconds:g} s a phase"
    )
    for name, result in (("baseline", base), ("stalled", attacked)):
        print(
            f"{name:9} round trip p50 {result['rtt_p50']:.1f} ms  p99 {result['rtt_p99']:.1f} ms"
            f"  max {result['rtt_max']:.1f} ms  ({result['round_trips']} round trips);"
            f"  RSS median {result['rss_median']:.1f} MiB  max {result['rss_max']:.1f} MiB"
        )
    after = attacked["dropped_after"]
    print(
        f"stalled connections dropped by the server: {attacked['dropped']}"
        + (f" (median {after:.2f} s after they opened)" if after is not None else "")
    )
    print(
        f"ratios stalled/baseline: p99 {attacked['rtt_p99'] / base['rtt_p99']:.2f}, "
        f"RSS median {attacked['rss_median'] / base['rss_median']:.2f}, "
        f"RSS max {attacked['rss_max'] / base['rss_max']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=10.0, help="the app's send_timeout")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--healthy", type=int, default=900)
    parser.add_argument("--stalled", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.5, help="pause between round trips")
    parser.add_argument("--feed-size", type=int, default=4096, help="bytes per /feed message")
    parser.add_argument(
        "--feed-interval", type=float, default=0.01, help="pause between /feed messages (0: none)"
    )
    parser.add_argument("--log", action="store_true", help="print the end of the server's log")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
