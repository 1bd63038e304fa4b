"""What typed messages cost per message, against untyped JSON in the same run.

Run by hand (never in the test suite; machines are shared and noisy):

    python benchmarks/typed.py [--messages 100000] [--repeat 7]

Every variant reads the same ~200-byte JSON message from the same in-memory
``receive`` (a list iterator), or sends the same message to an in-memory
``send`` (a list append), through a real ``WebSocket`` / ``TypedWebSocket``;
the best of ``--repeat`` runs, in microseconds per message.

* receive: ``receive_json()`` (parse only) against ``receive_message()``
  (parse + validate into a msgspec Struct, or a pydantic model).
  Target (issue 14): typed adds at most 10 µs.
* send: ``send_json(dict)`` against ``send_message(obj)`` (check + encode).
  Target: typed costs no more than ``send_json`` of the equivalent dict.
  Also a nested message (~1.7 kB: twenty items of three fields), which
  pydantic sends through a validation of the encoded frame (a nested model
  may have been built by ``model_construct()``, which the serializer does not
  see).

Times are CPU time of this process (``time.process_time``), which other
processes on a busy machine disturb less than wall time. On a machine too
busy even for that, count instructions instead (valgrind's callgrind, which
the load does not change), optionally against another checkout of lilya in
the same run:

    python benchmarks/typed.py --instructions [--baseline /path/to/other/checkout]

Each send variant then runs in a process of its own under callgrind, 1,000
and 3,000 messages after 50 to warm up, with the garbage collector off, hash
seed and address layout fixed; the difference of the two totals over 2,000 is
the variant's instructions per message, and the empty loop's is subtracted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import msgspec
import pydantic

from lilya.typed import TypedWebSocket
from lilya.websockets import WebSocket


class Say(msgspec.Struct, tag="say"):
    room: str
    nick: str
    text: str
    id: str
    ts: float
    tags: list[str]


class Leave(msgspec.Struct, tag="leave"):
    room: str


class PSay(pydantic.BaseModel):
    type: Literal["say"]
    room: str
    nick: str
    text: str
    id: str
    ts: float
    tags: list[str]


class PLeave(pydantic.BaseModel):
    type: Literal["leave"]
    room: str


class Item(msgspec.Struct):
    nick: str
    text: str
    ts: float


class Batch(msgspec.Struct, tag="batch"):
    room: str
    items: list[Item]


class PItem(pydantic.BaseModel):
    nick: str
    text: str
    ts: float


class PBatch(pydantic.BaseModel):
    type: Literal["batch"]
    room: str
    items: list[PItem]


FIELDS: dict[str, Any] = {
    "room": "lobby",
    "nick": "ann",
    "text": "Hello everyone, this is a message of typical chat length!",
    "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "ts": 1764614400.125,
    "tags": ["greeting", "en"],
}
DICT = {"type": "say", **FIELDS}
ITEMS = [{"nick": f"user{i}", "text": FIELDS["text"], "ts": 1764614400.125 + i} for i in range(20)]
BATCH = {"type": "batch", "room": "lobby", "items": ITEMS}
FRAME = msgspec.json.encode(DICT).decode()
SCOPE = {"type": "websocket", "path": "/", "headers": [], "query_string": b""}


def _socket(cls: Any, n: int, **options: Any) -> tuple[Any, list[Any]]:
    messages = iter(
        [{"type": "websocket.connect"}] + [{"type": "websocket.receive", "text": FRAME}] * n
    )
    sent: list[Any] = []

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    socket = cls(dict(SCOPE), receive, send, **options)
    return socket, sent


async def _time(n: int, body: Callable[[Any], Awaitable[None]], socket: Any) -> float:
    await socket.accept()
    gc.collect()
    start = time.process_time()
    for _ in range(n):
        await body(socket)
    return (time.process_time() - start) / n * 1e6


def _send_variants() -> dict[str, tuple[Callable[[Any], Awaitable[None]], Any, dict[str, Any]]]:
    say, psay = Say(**FIELDS), PSay(type="say", **FIELDS)
    batch = Batch(room="lobby", items=[Item(**item) for item in ITEMS])
    pbatch = PBatch(type="batch", room="lobby", items=[PItem(**item) for item in ITEMS])

    async def loop(ws: Any) -> None:
        pass

    async def sjson(ws: Any) -> None:
        await ws.send_json(DICT)

    async def smsgspec(ws: Any) -> None:
        await ws.send_message(say)

    async def spydantic(ws: Any) -> None:
        await ws.send_message(psay)

    async def sjson_nested(ws: Any) -> None:
        await ws.send_json(BATCH)

    async def smsgspec_nested(ws: Any) -> None:
        await ws.send_message(batch)

    async def spydantic_nested(ws: Any) -> None:
        await ws.send_message(pbatch)

    return {
        "loop": (loop, WebSocket, {}),
        "send_json(dict)": (sjson, WebSocket, {}),
        "send_message() msgspec": (smsgspec, TypedWebSocket, {"sends": Say | Leave}),
        "send_message() pydantic": (spydantic, TypedWebSocket, {"sends": PSay | PLeave}),
        "nested send_json(dict)": (sjson_nested, WebSocket, {}),
        "nested send_message() msgspec": (smsgspec_nested, TypedWebSocket, {"sends": Batch}),
        "nested send_message() pydantic": (spydantic_nested, TypedWebSocket, {"sends": PBatch}),
    }


def _run_one(name: str, n: int) -> None:
    # The body of one callgrind process: 50 messages to warm up, then n.
    body, cls, options = _send_variants()[name]

    async def run() -> None:
        socket, sent = _socket(cls, 0, **options)
        await socket.accept()
        gc.collect()
        gc.disable()
        for _ in range(50 + n):
            await body(socket)
        if name != "loop" and len(sent) != 51 + n:
            raise SystemExit(f"{name}: sent {len(sent)} frames, not {51 + n}")

    asyncio.run(run())


def _instructions(name: str, n: int, source: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        environment = {**os.environ, "PYTHONPATH": str(source), "PYTHONHASHSEED": "0"}
        command = ["setarch", "-R", "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        command += [sys.executable, __file__, "--run-one", name, "--messages", str(n)]
        subprocess.run(command, env=environment, check=True, capture_output=True)
        totals = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        if totals is None:
            raise SystemExit(f"no totals in callgrind's output for {name}")
        return int(totals.group(1))


def _count(source: Path) -> dict[str, float]:
    counts: dict[str, float] = {}
    for name in _send_variants():
        few, many = _instructions(name, 1_000, source), _instructions(name, 3_000, source)
        counts[name] = (many - few) / 2_000
    loop = counts.pop("loop")
    return {name: count - loop for name, count in counts.items()}


def _instructions_main(baseline: Path | None) -> None:
    sources = {"this checkout": Path(__file__).resolve().parent.parent}
    if baseline is not None:
        sources["baseline"] = baseline.resolve()
    print("instructions per message (callgrind), the empty loop subtracted")
    for label, source in sources.items():
        counts = _count(source)
        print(f"-- {label}: {source}")
        for name, count in counts.items():
            print(f"{name:30} {count:9,.0f}")
        for engine in ("msgspec", "pydantic"):
            flat = counts[f"send_message() {engine}"] / counts["send_json(dict)"]
            nested = counts[f"nested send_message() {engine}"] / counts["nested send_json(dict)"]
            print(f"{engine:9} send: {flat:4.2f}x send_json(dict), nested {nested:4.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--instructions", action="store_true", help="count with callgrind")
    parser.add_argument("--baseline", type=Path, help="another checkout, counted in the same run")
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        _run_one(args.run_one, args.messages)
        return
    if args.instructions:
        _instructions_main(args.baseline)
        return
    n = args.messages
    nested_size = len(msgspec.json.encode(BATCH))
    print(
        f"message: {len(FRAME)} bytes of JSON (nested: {nested_size}); "
        f"best of {args.repeat} x {n} messages"
    )

    async def rjson(ws: Any) -> None:
        await ws.receive_json()

    async def rtyped(ws: Any) -> None:
        await ws.receive_message()

    async def sjson(ws: Any) -> None:
        await ws.send_json(DICT)

    say, psay = Say(**FIELDS), PSay(type="say", **FIELDS)

    async def styped(ws: Any) -> None:
        await ws.send_message(say)

    async def sptyped(ws: Any) -> None:
        await ws.send_message(psay)

    batch = Batch(room="lobby", items=[Item(**item) for item in ITEMS])
    pbatch = PBatch(type="batch", room="lobby", items=[PItem(**item) for item in ITEMS])

    async def sjson_nested(ws: Any) -> None:
        await ws.send_json(BATCH)

    async def styped_nested(ws: Any) -> None:
        await ws.send_message(batch)

    async def sptyped_nested(ws: Any) -> None:
        await ws.send_message(pbatch)

    variants: list[tuple[str, Callable[[Any], Awaitable[None]], Any, dict[str, Any]]] = [
        ("receive_json()", rjson, WebSocket, {}),
        ("receive_message() msgspec", rtyped, TypedWebSocket, {"receives": Say | Leave}),
        ("receive_message() pydantic", rtyped, TypedWebSocket, {"receives": PSay | PLeave}),
        ("send_json(dict)", sjson, WebSocket, {}),
        ("send_message() msgspec", styped, TypedWebSocket, {"sends": Say | Leave}),
        ("send_message() pydantic", sptyped, TypedWebSocket, {"sends": PSay | PLeave}),
        ("nested send_json(dict)", sjson_nested, WebSocket, {}),
        ("nested send_message() msgspec", styped_nested, TypedWebSocket, {"sends": Batch}),
        ("nested send_message() pydantic", sptyped_nested, TypedWebSocket, {"sends": PBatch}),
    ]
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, body, cls, options in variants:
            socket, _sent = _socket(cls, n, **options)
            took = asyncio.run(_time(n, body, socket))
            best[name] = min(best.get(name, took), took)
    for name, *_ in variants:
        print(f"{name:30} {best[name]:6.2f} µs")
    for engine in ("msgspec", "pydantic"):
        added = best[f"receive_message() {engine}"] - best["receive_json()"]
        ratio = best[f"send_message() {engine}"] / best["send_json(dict)"]
        nested = best[f"nested send_message() {engine}"] / best["nested send_json(dict)"]
        print(
            f"{engine:9} receive: {added:+5.2f} µs over receive_json() (target <= +10)   "
            f"send: {ratio:4.2f}x send_json(dict) (target <= 1.00), nested {nested:4.2f}x"
        )


if __name__ == "__main__":
    main()
