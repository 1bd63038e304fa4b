"""Instructions per routed text echo, metrics on and off, counted by callgrind.

Run by hand (never in the test suite; it needs ``valgrind``):

    python benchmarks/metrics_callgrind.py [--tree PATH] [--seed 0]

The same echo as ``benchmarks/inproc.py --metrics-only`` (one ``WebSocketPath``,
the default stack, rate limit off), run twice under ``valgrind --tool=callgrind``
per variant, with 1,000 and 6,000 messages: the difference divided by 5,000 is
the cost of one echo (a receive and a send), with Python's start-up and the
imports cancelled out. Instruction counts do not depend on what else the machine
runs, so two checkouts can be compared on a busy machine: ``--tree`` measures the
lilya found at *PATH* (say a ``git worktree`` of ``main``) instead of this one.
The per-echo count moves by a few percent with the string-hash seed (dict layouts),
so compare two trees with the same ``--seed``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SMALL, LARGE = 1_000, 6_000


def echo(loop: str, metrics: bool, count: int) -> None:
    """The child: one warm-up connection, then one of *count* messages."""
    sys.path.insert(0, str(HERE))
    import inproc

    from lilya.metrics import Metrics

    app = inproc.routed(loop, Metrics(path=None) if metrics else False)
    runner = asyncio.new_event_loop()
    for messages in (200, count):
        receive, send, sent = inproc.wire(inproc.frames("text", messages))
        runner.run_until_complete(app(dict(inproc.SCOPE), receive, send))
        if sent[0] != messages + 1:
            raise AssertionError(f"echoed {sent[0] - 1} of {messages} messages")


def instructions(tree: Path, seed: int, loop: str, metrics: bool, count: int) -> int:
    """Instructions callgrind counted for one child run."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED=str(seed))
    child = [sys.executable, __file__, "--child", loop, "on" if metrics else "off", str(count)]
    return collected(child, env)


def collected(child: list[str], env: dict[str, str] | None = None) -> int:
    """Instructions callgrind counts for the whole *child* command (also used by
    ``counting_floor.py``)."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *child],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", type=Path, default=HERE.parent, help="the lilya checkout")
    parser.add_argument("--seed", type=int, default=0, help="PYTHONHASHSEED of the runs")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        loop, on, count = args.child
        echo(loop, on == "on", int(count))
        return
    print(f"instructions per routed text echo, {args.tree}, PYTHONHASHSEED={args.seed}")
    print(f"{'loop':<5} {'off':>7} {'on':>7} {'on/off':>7}")
    for loop in ("recv", "iter"):
        per_echo = {}
        for metrics in (False, True):
            small, large = (
                instructions(args.tree, args.seed, loop, metrics, count) for count in (SMALL, LARGE)
            )
            per_echo[metrics] = (large - small) / (LARGE - SMALL)
        off, on = per_echo[False], per_echo[True]
        print(f"{loop:<5} {off:>7.0f} {on:>7.0f} {on / off:>7.3f}")


if __name__ == "__main__":
    main()
