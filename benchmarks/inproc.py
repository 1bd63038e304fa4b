"""Per-message cost of echo loops through ``WebSocket``, against baselines in the same run.

Run by hand (never in the test suite; machines are shared and noisy):

    python benchmarks/inproc.py [--messages 200000] [--repeat 7]

Every variant runs the same echo loop over the same in-memory ``receive``/``send``
(a list iterator and a list append), so the differences are the framework's own
cost per message. We report the best of ``--repeat`` runs (the least disturbed by
other load) in nanoseconds per message, then ratios:

* against the raw-ASGI loop (the floor: no framework at all);
* against Starlette's ``WebSocket`` running the identical loop;
* for JSON, also against raw loops using the stdlib ``json`` and ``orjson``;
* "routed": the text echo as a function handler behind a ``Lilya`` app (one
  ``WebSocketPath``, the default middleware stack), against raw and against the
  bare ``WebSocket`` loop: what the application layer adds per message.

* "metrics": the routed text echo with ``Lilya(metrics=Metrics())`` against the
  same app without, measured alternately in the same run: what watching every
  message for Prometheus costs (``--metrics-only`` runs just this;
  ``benchmarks/metrics_callgrind.py`` counts the same in instructions).

Targets (issue 2): text echo <= 1.6x raw; JSON echo <= 0.25x Starlette.
Routed text echo <= bare + 0.15x raw. Issue 11: metrics on <= 1.05x metrics off.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from lilya.apps import Lilya
from lilya.routing import WebSocketPath
from lilya.websockets import WebSocket as LilyaWebSocket
from lilya.websockets import WebSocketDisconnect as LilyaDisconnect

try:
    from starlette.websockets import WebSocket as StarletteWebSocket
    from starlette.websockets import WebSocketDisconnect as StarletteDisconnect
except ImportError:  # pragma: no cover - the bench extra is missing
    StarletteWebSocket = None  # type: ignore[assignment, misc]

SCOPE: dict[str, Any] = {
    "type": "websocket",
    "path": "/ws",
    "headers": [],
    "query_string": b"",
    "subprotocols": [],
}
PAYLOAD = {"message": "Hello, world!", "count": 12, "tags": ["a", "b"], "ok": True}
TEXT = json.dumps(PAYLOAD, separators=(",", ":"))

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def wire(frames: list[dict[str, Any]]) -> tuple[Any, Any, list[Any]]:
    """An in-memory server: scripted frames in; sent messages counted, then dropped.

    Like a real server, ``send`` lets go of each message once "written": keeping
    200,000 of them alive would measure the allocator instead (orjson's bytes
    are over-allocated, and holding them defeats reuse).
    """
    messages = [
        {"type": "websocket.connect"},
        *frames,
        {"type": "websocket.disconnect", "code": 1000},
    ]
    next_message = iter(messages).__next__
    last: list[Any] = [None]
    tick = itertools.count(1).__next__
    sent = [0]

    async def receive() -> dict[str, Any]:
        return next_message()

    async def send(message: dict[str, Any]) -> None:
        last[0] = message
        sent[0] = tick()

    return receive, send, sent


# -- raw ASGI loops: the floor -------------------------------------------------------


async def raw_text(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            break
        await send({"type": "websocket.send", "text": message["text"]})


async def raw_bytes(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            break
        await send({"type": "websocket.send", "bytes": message["bytes"]})


def raw_json(loads: Any, dumps: Any, binary: bool) -> App:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                break
            data = loads(message["bytes"] if binary else message["text"])
            if binary:
                await send({"type": "websocket.send", "bytes": dumps(data).encode()})
            else:
                await send({"type": "websocket.send", "text": dumps(data)})

    return app


def _stdlib_dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _orjson_dumps(data: Any) -> str:
    return orjson.dumps(data).decode()


# -- the same loop through a framework's WebSocket ----------------------------------


def framework(cls: Any, disconnect: type[Exception], kind: str) -> App:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        websocket = cls(scope, receive, send)
        await websocket.accept()
        if kind == "text":
            while True:
                try:
                    data = await websocket.receive_text()
                except disconnect:
                    break
                await websocket.send_text(data)
        elif kind == "bytes":
            while True:
                try:
                    data = await websocket.receive_bytes()
                except disconnect:
                    break
                await websocket.send_bytes(data)
        else:
            mode = "binary" if kind == "json-binary" else "text"
            while True:
                try:
                    data = await websocket.receive_json(mode=mode)
                except disconnect:
                    break
                await websocket.send_json(data, mode=mode)

    return app


def framework_iter(cls: Any, kind: str) -> App:
    """The seed's idiom: ``async for`` over ``iter_*``, echoing each message."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        websocket = cls(scope, receive, send)
        await websocket.accept()
        if kind == "text":
            async for data in websocket.iter_text():
                await websocket.send_text(data)
        elif kind == "bytes":
            async for data in websocket.iter_bytes():
                await websocket.send_bytes(data)
        else:
            mode = "binary" if kind == "json-binary" else "text"
            # Starlette's iter_json() has no mode: it reads text frames only.
            frames = websocket.iter_json(mode=mode) if mode == "binary" else websocket.iter_json()
            async for data in frames:
                await websocket.send_json(data, mode=mode)

    return app


class TwoFrameFloor:
    """The least any wrapper can cost: one coroutine per receive and per send, no checks.

    It is not a usable WebSocket; it measures what Python charges for the two
    extra ``await`` levels a class-based API needs, so ratios can be read
    against what is achievable at all.
    """

    def __init__(self, scope: Any, receive: Any, send: Any) -> None:
        self._receive = receive
        self._send = send

    async def accept(self) -> None:
        await self._receive()
        await self._send({"type": "websocket.accept"})

    async def receive_text(self) -> str:
        message = await self._receive()
        if message["type"] != "websocket.receive":
            raise LilyaDisconnect(1000)
        return message["text"]  # type: ignore[no-any-return]

    async def send_text(self, data: str) -> None:
        await self._send({"type": "websocket.send", "text": data})


def routed(loop: str, metrics: Any = False) -> App:
    """The text echo as a function handler behind a whole app: server-error layer,
    exception-handler layer, router and route guard (``SCOPE["path"]`` is ``/ws``)."""

    async def recv(websocket: LilyaWebSocket) -> None:
        await websocket.accept()
        while True:
            try:
                data = await websocket.receive_text()
            except LilyaDisconnect:
                break
            await websocket.send_text(data)

    async def iterate(websocket: LilyaWebSocket) -> None:
        await websocket.accept()
        async for data in websocket.iter_text():
            await websocket.send_text(data)

    return Lilya(
        routes=[WebSocketPath("/ws", recv if loop == "recv" else iterate)],
        rate_limit=None,  # 200,000 messages at once is a flood by the default limit
        metrics=metrics,
    )


def frames(kind: str, count: int) -> list[dict[str, Any]]:
    if kind in ("text", "json-text"):
        return [{"type": "websocket.receive", "text": TEXT}] * count
    return [{"type": "websocket.receive", "bytes": TEXT.encode()}] * count


def measure(
    app: App, kind: str, count: int, repeat: int, clock: Callable[[], int] = time.perf_counter_ns
) -> float:
    """Best ns per message over *repeat* runs (wall time by default; see *clock*)."""
    best = float("inf")
    loop = asyncio.new_event_loop()
    try:
        for _ in range(repeat):
            receive, send, sent = wire(frames(kind, count))
            gc.collect()
            start = clock()
            loop.run_until_complete(app(dict(SCOPE), receive, send))
            elapsed = clock() - start
            if sent[0] != count + 1:
                raise AssertionError(f"{app} echoed {sent[0] - 1} of {count} messages")
            best = min(best, elapsed / count)
    finally:
        loop.close()
    return best


def metrics_overhead(n: int, r: int) -> None:
    """Routed text echo with metrics on and off, alternating so both share the load.

    Timed in CPU time of this process (``time.process_time_ns``): on a shared
    machine the wall clock also counts the time the other processes were given.
    """
    from lilya.metrics import Metrics

    metrics = Metrics(path=None)
    print("metrics: routed text echo, Lilya(metrics=Metrics()) against Lilya(), CPU ns")
    print(f"{'loop':<5} {'off':>7} {'on':>7} {'on/off':>7}")
    verdicts = []
    for loop in ("recv", "iter"):
        off_ns = on_ns = float("inf")
        cpu = time.process_time_ns
        for _ in range(3):  # interleaved rounds: a burst of load hits both alike
            off_ns = min(off_ns, measure(routed(loop), "text", n, r, cpu))
            on_ns = min(on_ns, measure(routed(loop, metrics), "text", n, r, cpu))
        ratio = on_ns / off_ns
        verdicts.append((loop, ratio))
        print(f"{loop:<5} {off_ns:>7.0f} {on_ns:>7.0f} {ratio:>7.3f}")
    for loop, ratio in verdicts:
        verdict = "MET" if ratio <= 1.05 else "MISSED"
        print(f"target metrics on ({loop}) <= 1.05x off: {ratio:.3f}x -> {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--metrics-only", action="store_true")
    args = parser.parse_args()
    n, r = args.messages, args.repeat
    if args.metrics_only:
        metrics_overhead(n, r)
        return

    print(f"{n} messages per run, best of {r}; ns per message (lower is better)")
    print("loop 'recv' = receive_*/send_* in a while loop; 'iter' = async for over iter_*\n")
    print(
        f"{'workload':<12} {'loop':<5} {'raw':>7} {'lilya':>7} {'starlette':>9} "
        f"{'lilya/raw':>9} {'starlette/raw':>13} {'lilya/starlette':>15}"
    )
    results: dict[tuple[str, str], dict[str, float]] = {}
    for kind in ("text", "bytes", "json-text", "json-binary"):
        binary = kind == "json-binary"
        if kind == "text":
            raw = raw_text
        elif kind == "bytes":
            raw = raw_bytes
        else:
            raw = raw_json(json.loads, _stdlib_dumps, binary)
        raw_ns = measure(raw, kind, n, r)
        extra = {}
        if kind.startswith("json"):
            extra["raw-orjson"] = measure(raw_json(orjson.loads, _orjson_dumps, binary), kind, n, r)
        if kind == "text":
            extra["floor"] = measure(framework(TwoFrameFloor, LilyaDisconnect, kind), kind, n, r)
        for loop in ("recv", "iter"):
            if loop == "recv":
                lilya_app = framework(LilyaWebSocket, LilyaDisconnect, kind)
            else:
                lilya_app = framework_iter(LilyaWebSocket, kind)
            row = {"raw": raw_ns, "lilya": measure(lilya_app, kind, n, r), **extra}
            star = float("nan")
            if StarletteWebSocket is not None and (loop, kind) != ("iter", "json-binary"):
                if loop == "recv":
                    star_app = framework(StarletteWebSocket, StarletteDisconnect, kind)
                else:
                    star_app = framework_iter(StarletteWebSocket, kind)
                star = row["starlette"] = measure(star_app, kind, n, r)
            results[kind, loop] = row
            print(
                f"{kind:<12} {loop:<5} {raw_ns:>7.0f} {row['lilya']:>7.0f} {star:>9.0f} "
                f"{row['lilya'] / raw_ns:>9.2f} {star / raw_ns:>13.2f} "
                f"{row['lilya'] / star:>15.2f}"
            )
    print()
    floor = results["text", "recv"]["floor"] / results["text", "recv"]["raw"]
    print(f"two-frame floor (no checks at all) for the text recv loop: {floor:.2f}x raw")
    for kind in ("json-text", "json-binary"):
        row = results[kind, "recv"]
        print(
            f"{kind}: raw-orjson = {row['raw-orjson'] / row['raw']:.2f}x raw-stdlib; "
            f"lilya recv = {row['lilya'] / row['raw-orjson']:.2f}x raw-orjson"
        )
    print()
    # Measured again side by side, so the three figures share the same load.
    routed_ratios: dict[str, tuple[float, float]] = {}
    print("routed: Lilya(routes=[WebSocketPath('/ws', echo)]), default middleware, text echo")
    print(f"{'loop':<5} {'raw':>7} {'bare':>7} {'routed':>7} {'bare/raw':>9} {'routed/raw':>10}")
    for loop in ("recv", "iter"):
        if loop == "recv":
            bare_app = framework(LilyaWebSocket, LilyaDisconnect, "text")
        else:
            bare_app = framework_iter(LilyaWebSocket, "text")
        raw_ns = measure(raw_text, "text", n, r)
        bare_ns = measure(bare_app, "text", n, r)
        routed_ns = measure(routed(loop), "text", n, r)
        routed_ratios[loop] = (bare_ns / raw_ns, routed_ns / raw_ns)
        print(
            f"{loop:<5} {raw_ns:>7.0f} {bare_ns:>7.0f} {routed_ns:>7.0f} "
            f"{bare_ns / raw_ns:>9.2f} {routed_ns / raw_ns:>10.2f}"
        )
    print()
    for loop in ("recv", "iter"):
        ratio = results["text", loop]["lilya"] / results["text", loop]["raw"]
        verdict = "MET" if ratio <= 1.6 else "MISSED"
        print(f"target text echo ({loop}) <= 1.60x raw: {ratio:.2f}x -> {verdict}")
    if StarletteWebSocket is not None:
        for kind in ("json-text", "json-binary"):
            for loop in ("recv", "iter"):
                if "starlette" not in results[kind, loop]:
                    continue  # Starlette cannot iterate binary JSON
                ratio = results[kind, loop]["lilya"] / results[kind, loop]["starlette"]
                verdict = "MET" if ratio <= 0.25 else "MISSED"
                print(f"target {kind} echo ({loop}) <= 0.25x starlette: {ratio:.2f}x -> {verdict}")
    for loop, (bare, routed_ratio) in routed_ratios.items():
        verdict = "MET" if routed_ratio <= bare + 0.15 else "MISSED"
        print(
            f"target routed text echo ({loop}) <= bare + 0.15x raw: {routed_ratio:.2f}x vs "
            f"bare {bare:.2f}x -> {verdict}"
        )
    print()
    metrics_overhead(n, r)


if __name__ == "__main__":
    main()
