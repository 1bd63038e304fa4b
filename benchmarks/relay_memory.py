"""What an idle subscribed socket costs lilya, in one process, without the noise of a network.

Why this exists beside ``benchmarks/e2e.py``: on a shared two-core machine the
wall-clock rates and the RSS of a real server swing with everyone else's load,
while Python's own allocations and a process's CPU time do not. This runs the
``/sub`` route of ``benchmarks/e2e_apps.py`` (the ``lilya`` stack: a ``Lilya``
app, ``Channels("memory://")`` connected lazily by the first handler, and
``relay()``; the ``raw`` stack: a bare ASGI loop) under a minimal in-process
ASGI "server" on asyncio, and reports, per stack, median of ``--rounds``
interleaved rounds:

- ``bytes/socket``: ``tracemalloc``'s traced memory after opening ``--sizes``
  idle subscribed sockets (after a warm-up and ``gc.collect()``), per socket;
- ``CPU µs/handshake``: ``time.process_time_ns()`` spent opening them (with
  tracemalloc off), per socket: handshake, subscribe, and the relay parked;

and lilya's figures against raw's of the same round (bytes above raw, and
raw's CPU per handshake over lilya's, the "rate ratio" on a CPU-bound server).
``--top K`` prints the K source lines whose allocations grew the most in the
last lilya round, per socket (what to shrink next). At the end every socket is
disconnected and its handler awaited, so an error on the way out is reported.

Run: ``python benchmarks/relay_memory.py [--sizes 1000] [--rounds 3] [--top 15]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import e2e_apps  # a sibling module, found through the path above

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class Socket:
    """One client of the in-process server: it connects, then sits idle until told to leave."""

    def __init__(self, app: App, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.answer: asyncio.Future[str] = loop.create_future()
        self.leave = asyncio.Event()
        self._connected = False
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "scheme": "ws",
            "http_version": "1.1",
            "path": "/sub",
            "raw_path": b"/sub",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1:8000"), (b"sec-websocket-version", b"13")],
            "client": ("127.0.0.1", port),
            "server": ("127.0.0.1", 8000),
            "subprotocols": [],
            "extensions": {"websocket.http.response": {}},
            "state": {},
        }
        self.task = loop.create_task(app(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        await self.leave.wait()
        return {"type": "websocket.disconnect", "code": 1000, "reason": ""}

    async def _send(self, message: dict[str, Any]) -> None:
        if not self.answer.done():
            self.answer.set_result(message["type"])


async def open_sockets(app: App, count: int, first_port: int) -> list[Socket]:
    sockets = []
    for i in range(count):
        socket = Socket(app, first_port + i)
        answer = await socket.answer
        if answer != "websocket.accept":
            raise RuntimeError(f"the app answered the handshake with {answer!r}")
        sockets.append(socket)
    return sockets


async def close_sockets(sockets: list[Socket]) -> list[BaseException]:
    for socket in sockets:
        socket.leave.set()
    results = await asyncio.gather(*(s.task for s in sockets), return_exceptions=True)
    return [r for r in results if isinstance(r, BaseException)]


async def measure(stack: str, size: int, warmup: int, *, top: int) -> dict[str, float]:
    app: App = e2e_apps.STACKS[stack]()
    errors: list[BaseException] = []
    # Warm-up: the first socket connects the channels and builds the caches.
    warm = await open_sockets(app, warmup, 10_000)

    gc.collect()
    started = time.process_time_ns()
    timed = await open_sockets(app, size, 20_000)
    cpu = (time.process_time_ns() - started) / size / 1000

    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot() if top else None
    base, _ = tracemalloc.get_traced_memory()
    traced = await open_sockets(app, size, 40_000)
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    grown = tracemalloc.take_snapshot() if top else None
    tracemalloc.stop()
    if before is not None and grown is not None:
        print(f"  top lines of {stack} (bytes per socket):")
        for stat in grown.compare_to(before, "lineno")[:top]:
            frame = stat.traceback[0]
            print(f"    {stat.size_diff / size:8.0f}  {frame.filename}:{frame.lineno}")
    errors += await close_sockets([*warm, *timed, *traced])
    for error in errors[:3]:
        print(f"  {stack}: a handler ended with {error!r}")
    return {"bytes": (after - base) / size, "cpu": cpu, "errors": len(errors)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--top", type=int, default=0)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"raw": [], "lilya": []}
    for round_ in range(args.rounds):
        for stack in results:
            last = round_ == args.rounds - 1
            top = args.top if last and stack == "lilya" else 0
            results[stack].append(await measure(stack, args.sizes, args.warmup, top=top))
    raw, lilya = results["raw"], results["lilya"]
    above = statistics.median(b["bytes"] - a["bytes"] for a, b in zip(raw, lilya, strict=True))
    ratio = statistics.median(a["cpu"] / b["cpu"] for a, b in zip(raw, lilya, strict=True))
    print(f"N={args.sizes}, {args.rounds} rounds (median)")
    for stack, rows in results.items():
        print(
            f"  {stack:6} {statistics.median(r['bytes'] for r in rows):8.0f} bytes/socket"
            f"  {statistics.median(r['cpu'] for r in rows):7.1f} CPU µs/handshake"
            f"  handler errors at exit: {sum(r['errors'] for r in rows):.0f}"
        )
    print(f"  lilya above raw: {above:.0f} bytes/socket; raw CPU ÷ lilya CPU: {ratio:.2f}×")


if __name__ == "__main__":
    asyncio.run(main())
