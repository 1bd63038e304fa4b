"""What the operations of exact per-message counting cost in CPython, in instructions.

Run by hand (it needs ``valgrind``): ``python benchmarks/counting_floor.py``.

Why this exists: issue 11 asks metrics to add at most 5 % to the routed text
echo of ``benchmarks/inproc.py`` (~12,000 instructions per echo, so ~600), and
``benchmarks/metrics_callgrind.py`` measures ~2,000. This counts, under
callgrind, each operation that exact counting by direction needs per message,
in a loop of its own (1,000 against 101,000 iterations, the empty loop
subtracted), on an object with ``__slots__`` like ``Watch``: the floor any pure
Python counter pays, whatever the design around it.
"""

from __future__ import annotations

import sys

from metrics_callgrind import collected

SMALL, LARGE = 1_000, 101_000


class _Counts:
    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total = 1_000  # past the small ints CPython caches, as a live counter is


def _loop(counts: _Counts, text: str, watch: object, n: int) -> None:
    for _ in range(n):
        pass


def _guard(counts: _Counts, text: str, watch: object, n: int) -> None:
    for _ in range(n):
        if watch:
            pass


def _add_one(counts: _Counts, text: str, watch: object, n: int) -> None:
    for _ in range(n):
        counts.total += 1


def _isascii(counts: _Counts, text: str, watch: object, n: int) -> None:
    for _ in range(n):
        text.isascii()


def _len(counts: _Counts, text: str, watch: object, n: int) -> None:
    for _ in range(n):
        len(text)


OPERATIONS = {
    "loop": _loop,
    "if watch: (the guard)": _guard,
    "counts.total += 1 (an int add)": _add_one,
    "text.isascii()": _isascii,
    "len(text)": _len,
}


def _instructions(name: str, n: int) -> int:
    return collected([sys.executable, __file__, "--child", name, str(n)])


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        name, n = sys.argv[2], int(sys.argv[3])
        OPERATIONS[name](_Counts(), "x" * 150, object(), n)
        return
    per = {
        name: (_instructions(name, LARGE) - _instructions(name, SMALL)) / (LARGE - SMALL)
        for name in OPERATIONS
    }
    print("instructions per operation, the empty loop subtracted")
    for name, cost in per.items():
        if name != "loop":
            print(f"{name:<34} {cost - per['loop']:>6.0f}")
    guard = per["if watch: (the guard)"] - per["loop"]
    add = per["counts.total += 1 (an int add)"] - per["loop"]
    isascii = per["text.isascii()"] - per["loop"]
    size = per["len(text)"] - per["loop"]
    # A received message: the receive already takes len() for its size limit.
    received = guard + 2 * add + isascii
    sent = guard + 2 * add + isascii + size
    print(f"floor per echo (one receive, one send): {received + sent:.0f}")


if __name__ == "__main__":
    main()
