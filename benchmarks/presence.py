"""Presence benchmark: what 1,000 people joining one room cost its subscribers.

In one process (``memory://``), N subscriptions join one channel with
``presence=``, one after the other as fast as they can; every subscription
reads everything it is sent, as ``relay()`` would, and turns each presence
event into the JSON frame a client would get (before coalescing, a joiner also
needed ``presence()`` for the list so far: one frame more each). When every subscriber's member
list is exact (all N present), it prints how many presence frames and bytes
were sent in all, per subscriber, and against N (O(n) or O(n²)).

Run by hand, never from the tests::

    python benchmarks/presence.py                        # 1,000 joins
    python benchmarks/presence.py --lilya /tmp/old-lilya # another checkout ("before")
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=1000)
    parser.add_argument("--lilya", help="measure another lilya checkout (e.g. main, for 'before')")
    args = parser.parse_args()
    sys.path.insert(0, args.lilya or str(ROOT))
    import anyio

    import lilya
    from lilya.channels import Channels

    counts = {"frames": 0, "bytes": 0}
    coalesced = "presence_interval" in inspect.signature(Channels).parameters

    def frame(event: Any) -> None:
        # The frame relay() would send with an encoder forwarding presence.
        text = json.dumps({"type": event.type, **event.data}, separators=(",", ":"))
        counts["frames"] += 1
        counts["bytes"] += len(text.encode())

    async def run() -> tuple[float, list[int]]:
        async with Channels("memory://") as channels:
            views: list[set[str]] = []
            everyone: set[str] = set()

            async def read(sub: Any, view: set[str], ready: anyio.Event) -> None:
                ready.set()
                async for event in sub:
                    if event.type == "message":
                        continue
                    frame(event)
                    if event.type == "join":  # the old protocol: one event per change
                        view.add(event.data["member"])
                    elif event.type == "leave":
                        view.discard(event.data["member"])
                    elif event.type == "presence":
                        if event.data["snapshot"]:
                            view.clear()
                        view.update(event.data["joined"])
                        view.difference_update(event.data["left"])

            started = time.perf_counter()
            async with anyio.create_task_group() as group:
                subs = []
                for i in range(args.joins):
                    sub = channels.subscribe("room", presence={"nick": f"user{i}"}, max_queue=10**6)
                    await sub.__aenter__()
                    subs.append(sub)
                    everyone.add(sub.member)
                    view: set[str] = set()
                    if not coalesced:
                        # Before: no snapshot; a client asks for the list
                        # (the chat's welcome frame) and then follows the events.
                        members = await channels.presence("room")
                        view.update(members)
                        counts["frames"] += 1
                        counts["bytes"] += len(json.dumps(members, separators=(",", ":")))
                    views.append(view)
                    ready = anyio.Event()
                    group.start_soon(read, sub, view, ready)
                    await ready.wait()
                with anyio.fail_after(120):
                    while not all(view == everyone for view in views):
                        await anyio.sleep(0.05)
                took = time.perf_counter() - started
                sizes = sorted(len(view) for view in views)
                for sub in subs:
                    sub._close()
                group.cancel_scope.cancel()
            return took, sizes

    took, sizes = anyio.run(run)
    n = args.joins
    print(f"lilya from {Path(lilya.__file__).parent.parent}")
    print(f"{n:,} joins in {took:.2f} s; every member list exact: {sizes[0] == sizes[-1] == n}")
    print(
        f"presence frames: {counts['frames']:,} ({counts['frames'] / n:.1f} per subscriber, "
        f"{counts['frames'] / n:.2f} x n); bytes: {counts['bytes'] / 1e6:.1f} MB "
        f"({counts['bytes'] / n / 1000:.1f} KB per subscriber)"
    )


if __name__ == "__main__":
    main()
