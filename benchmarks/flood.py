"""Flood benchmark: one client floods a room; does a healthy reader get everything?

uvicorn serves ``benchmarks/flood_app.py`` (one relayed room per path) on
``memory://`` or ``redis://``. In one run:

* a *flooder* writes N small text frames to room ``flood`` in bulk, a
  thousand per write, as fast as TCP takes them (a raw socket: a client
  library would pace it one frame per call), reading its own echoes in the
  background as a page would;
* a *reader* in room ``flood`` reads as fast as it can and checks it got every
  one of the N, in order;
* a *pinger* in room ``calm`` sends one message at a time and waits for its
  echo: the round trip of a room that has nothing to do with the flood.

It prints what the reader got (and the first hole, if any) and the calm room's
round-trip p50/p99/max, measured during the flood, next to the same round trip
measured first on the idle server (the baseline of this run).

Run by hand, never from the tests::

    python benchmarks/flood.py                          # memory://, 50,000 messages
    python benchmarks/flood.py --url redis://127.0.0.1:6379/0
    python benchmarks/flood.py --lilya /tmp/old-lilya   # another lilya checkout ("before")
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect  # noqa: E402

from tests.support.servers import serve  # noqa: E402

#: The apps it can flood: import path, and the query string a client needs.
APPS = {"relay": ("benchmarks.flood_app:app", "?who="), "chat": ("examples.chat.app:app", "?nick=")}


def text_of(frame: Any, app: str) -> str | None:
    """The chat text a frame carries (the chat wraps it in JSON), or None for other frames."""
    if app == "relay":
        return str(frame)
    data = json.loads(frame)
    return data["text"] if data.get("type") == "message" else None


async def ping(url: str, app: str, samples: list[float], stop: asyncio.Event) -> None:
    async with connect(url + "/ws/calm" + APPS[app][1] + "pinger") as ws:
        seq = 0
        while not stop.is_set():
            seq += 1
            sent = time.perf_counter()
            await ws.send(f"ping {seq}")
            while text_of(await ws.recv(), app) != f"ping {seq}":
                pass
            samples.append(time.perf_counter() - sent)
            await asyncio.sleep(0.005)


def text_frame(payload: bytes) -> bytes:
    """One masked client text frame (RFC 6455 §5.2), with an all-zero mask key."""
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


async def raw_flooder(url: str, app: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a WebSocket by hand, so that frames can be written in bulk, as fast as TCP takes them.

    A client library sends one frame per call; a hostile client writes
    thousands per packet, and the server then reads thousands per read.
    """
    host, port = url.removeprefix("ws://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET /ws/flood{APPS[app][1]}flooder HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = await reader.readuntil(b"\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 101"), response
    return reader, writer


async def flood(url: str, app: str, count: int, timeout: float) -> dict[str, Any]:
    """Run the flood once; return what the reader got and the calm room's round trips."""
    result: dict[str, Any] = {}
    flood_in, flood_out = await raw_flooder(url, app)
    async with connect(url + "/ws/flood" + APPS[app][1] + "reader") as reader:
        baseline: list[float] = []
        stop = asyncio.Event()
        pinger = asyncio.create_task(ping(url, app, baseline, stop))
        await asyncio.sleep(1.0)
        stop.set()
        await pinger

        during: list[float] = []
        stop = asyncio.Event()

        async def drain_own_echoes() -> None:
            while await flood_in.read(65536):
                pass

        seqs: list[int] = []

        async def read_all() -> None:
            while not seqs or seqs[-1] < count - 1:
                text = text_of(await reader.recv(), app)
                if text is not None:
                    seqs.append(int(text))

        started = time.perf_counter()
        echoes = asyncio.create_task(drain_own_echoes())
        reading = asyncio.create_task(read_all())
        pinger = asyncio.create_task(ping(url, app, during, stop))
        for start in range(0, count, 1000):
            stop_at = min(count, start + 1000)
            flood_out.write(b"".join(text_frame(str(i).encode()) for i in range(start, stop_at)))
            await flood_out.drain()
        sent_at = time.perf_counter() - started
        try:
            await asyncio.wait_for(reading, timeout)
        except TimeoutError:
            result["timed_out"] = True  # the last message never came
        took = time.perf_counter() - started
        stop.set()
        await pinger
        echoes.cancel()
        flood_out.close()
        got = set(seqs)
        result.update(
            got=len(got),
            in_order=seqs == list(range(count)),
            first_missing=next((i for i in range(count) if i not in got), None),
            send_s=sent_at,
            total_s=took,
            baseline=baseline,
            during=during,
        )
    return result


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="memory://", help="channels URL (memory:// or redis://)")
    parser.add_argument("--app", choices=sorted(APPS), default="relay", help="what to flood")
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--lilya", help="serve another lilya checkout (e.g. main, for 'before')")
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    parser.add_argument(
        "--server", default="uvicorn", help="uvicorn (its default ws), uvicorn-wsproto, ..."
    )
    args = parser.parse_args()
    prefix = f"lilya-bench:{uuid.uuid4().hex}"
    env = {
        "LILYA_FLOOD_URL": args.url,
        "LILYA_FLOOD_PREFIX": prefix,
        "LILYA_CHANNELS_URL": args.url,
        "LILYA_CHANNELS_PREFIX": prefix,
    }
    command = None
    if args.lilya:
        # Another checkout's lilya (and examples) first on the path, this one's
        # benchmarks after it; the server prints which lilya it runs.
        boot = (
            f"import sys; sys.path[:0] = [{args.lilya!r}, {str(ROOT)!r}]; import lilya; "
            "print('lilya from', lilya.__file__, flush=True); "
            "from uvicorn.main import main; main()"
        )
        ws = args.server.removeprefix("uvicorn-") if args.server != "uvicorn" else "auto"
        command = [sys.executable, "-c", boot, APPS[args.app][0], "--port", "{port}", "--ws", ws]
        command += ["--app-dir", args.lilya]  # uvicorn puts it first on sys.path
    with serve(APPS[args.app][0], args.server, env=env, command=command) as server:
        result = asyncio.run(flood(server.ws_url, args.app, args.messages, args.timeout))
        if args.lilya:
            print(server.log().splitlines()[0])
    base, during = result["baseline"], result["during"]
    print(
        f"{args.app} app on {args.server}, backend {args.url}, {args.messages:,} messages, "
        f"lilya from {args.lilya or ROOT}"
    )
    print(
        f"healthy reader: got {result['got']:,} / {args.messages:,}, in order: "
        f"{result['in_order']}, first missing: {result['first_missing']}"
    )
    print(f"flood sent in {result['send_s']:.2f} s, read in {result['total_s']:.2f} s")
    for name, samples in (("idle", base), ("during the flood", during)):
        print(
            f"calm room round trip, {name}: p50 {percentile(samples, 0.5):.1f} ms, "
            f"p99 {percentile(samples, 0.99):.1f} ms, max {max(samples) * 1000:.1f} ms "
            f"({len(samples)} pings)"
        )
    print(
        f"p99 during / p99 idle: {percentile(during, 0.99) / percentile(base, 0.99):.1f}x; "
        f"median during: {statistics.median(during) * 1000:.1f} ms"
    )
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k not in ("baseline", "during")}))


if __name__ == "__main__":
    main()
