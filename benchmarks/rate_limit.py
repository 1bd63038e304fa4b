"""Rate-limit benchmark: one client floods; how soon is it closed, and do the others notice?

uvicorn serves ``benchmarks/flood_app.py`` with lilya's **default** rate limit
(100 messages a second, bursts of 1,000). In one run:

* a *pinger* in room ``calm`` sends one message at a time and waits for its
  echo, first on the idle server (the baseline of this run), then during the
  flood;
* a *flooder* (a raw socket: a client library paces one frame per call) writes
  small text frames to room ``flood`` a thousand per write, as fast as TCP
  takes them, until the server closes it.

It prints how many frames the flooder wrote, how long after its first write
it received the close frame (and its code and reason), and the calm room's
round-trip p50/p99/max idle and during the flood.

Run by hand, never from the tests::

    python benchmarks/rate_limit.py [--server uvicorn-wsproto] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import struct
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.flood import percentile, ping, raw_flooder, text_frame  # noqa: E402
from tests.support.servers import serve  # noqa: E402


def close_frame(data: bytes) -> tuple[int, str] | None:
    """The (code, reason) of the first close frame in what the server sent, if there is one."""
    at = 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        header = 2
        if length == 126:
            length, header = struct.unpack("!H", data[at + 2 : at + 4])[0], 4
        elif length == 127:
            length, header = struct.unpack("!Q", data[at + 2 : at + 10])[0], 10
        payload = data[at + header : at + header + length]
        if opcode == 0x8 and len(payload) >= 2:
            return struct.unpack("!H", payload[:2])[0], payload[2:].decode(errors="replace")
        at += header + length
    return None


async def run(url: str, seconds: float) -> dict[str, Any]:
    baseline: list[float] = []
    stop = asyncio.Event()
    pinger = asyncio.create_task(ping(url, "relay", baseline, stop))
    await asyncio.sleep(1.0)
    stop.set()
    await pinger

    during: list[float] = []
    stop = asyncio.Event()
    pinger = asyncio.create_task(ping(url, "relay", during, stop))
    flood_in, flood_out = await raw_flooder(url, "relay")
    received = bytearray()
    closed_after: float | None = None
    started = time.perf_counter()

    async def read_until_close() -> None:
        nonlocal closed_after
        while chunk := await flood_in.read(65536):
            received.extend(chunk)
            if closed_after is None and close_frame(bytes(received)) is not None:
                closed_after = time.perf_counter() - started
                return

    reading = asyncio.create_task(read_until_close())
    written = 0
    try:
        while not reading.done() and time.perf_counter() - started < seconds:
            flood_out.write(b"".join(text_frame(str(i).encode()) for i in range(1000)))
            written += 1000
            await flood_out.drain()
    except (ConnectionError, OSError):
        pass  # the server closed the connection under us: what we measure
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reading, 5)
    await asyncio.sleep(1.0)  # the others' round trips just after, too
    stop.set()
    await pinger
    flood_out.close()
    return {
        "written": written,
        "closed_after": closed_after,
        "close": close_frame(bytes(received)),
        "baseline": baseline,
        "during": during,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="uvicorn-wsproto")
    parser.add_argument("--seconds", type=float, default=5.0, help="give up flooding after")
    args = parser.parse_args()
    env = {
        "LILYA_FLOOD_URL": "memory://",
        "LILYA_FLOOD_PREFIX": f"lilya-bench:{uuid.uuid4().hex}",
        "LILYA_FLOOD_RATE_LIMIT": "default",
    }
    with serve("benchmarks.flood_app:app", args.server, env=env) as server:
        result = asyncio.run(run(server.ws_url, args.seconds))
    closed = result["closed_after"]
    print(f"relay app on {args.server}, lilya's default rate limit (100/s, bursts of 1,000)")
    print(
        f"flooder wrote {result['written']:,} frames; closed "
        + (f"{closed * 1000:.0f} ms after its first write" if closed is not None else "never")
        + f" with {result['close']}"
    )
    for name in ("baseline", "during"):
        samples = result[name]
        print(
            f"calm room round trip, {'idle' if name == 'baseline' else 'during the flood'}: "
            f"p50 {percentile(samples, 0.5):.1f} ms, p99 {percentile(samples, 0.99):.1f} ms, "
            f"max {max(samples) * 1000:.1f} ms ({len(samples)} pings)"
        )


if __name__ == "__main__":
    main()
