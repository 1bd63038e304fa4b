"""End-to-end benchmark over real sockets: echo, fan-out, memory and handshakes, with plots.

Every figure comes from real server processes and a load client in another
process, over loopback, with every frame checked (order, loss, duplicates):

- the server (one of the six setups of the interop matrix) runs the app of
  ``benchmarks/e2e_apps.py`` for one stack — ``raw`` (a bare ASGI loop over a
  set of sockets: the floor), ``starlette`` (Starlette + broadcaster: what
  users hand-roll), ``lilya`` (``Channels`` + ``relay()``) — pinned to CPU 0;
- the load client (this file, ``client`` sub-command) runs on picows, a
  WebSocket client written in Cython, pinned to CPU 1, so that the client is
  not the bottleneck: it spends about a microsecond per frame.

What one run measures, side by side, as ratios against ``raw`` in the same run:

1. **echo**: round trips per second, text and JSON, 50 connections, on each
   server setup (``raw`` and ``lilya``);
2. **fan-out** at N subscribers (1,000, 5,000 and 10,000 by default), on
   ``memory://`` and ``redis://``:
   - *offered load*: 50,000 frames/s offered (one publication every N/50,000
     s; at N=1,000 one every 20 ms): server CPU µs per delivered frame,
     publish-to-receive p50 / p99;
   - *max rate*: publications back to back: frames/s delivered;
3. **memory** per idle subscribed connection (server RSS growth / N);
4. **handshakes/s** of subscribing connections (50 at a time);
5. the same fan-out with ``--workers 2`` on ``redis://`` (server and client
   share both cores then: there are only two);
6. which server setup is fastest for ``relay()`` fan-out at N=1,000.

Run by hand on an otherwise idle machine (bounded: under 10 minutes)::

    python benchmarks/e2e.py                 # everything, plots into docs/
    python benchmarks/e2e.py --quick         # tiny sizes, seconds (the smoke test)
    python benchmarks/e2e.py --sizes 1000 --sections fanout --no-plots

It prints one table per section and writes ``--json`` (default
``benchmarks/e2e.json``) with every figure, and the plots ``docs/e2e-*.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SETUPS = (
    "uvicorn-websockets-sansio",
    "uvicorn-wsproto",
    "uvicorn-websockets",
    "hypercorn",
    "granian",
    "daphne",
)
FANOUT_SETUP = "uvicorn-websockets-sansio"
SERVER_CPU, CLIENT_CPU = 0, 1
OFFERED_FRAMES_PER_S = 50_000
FDS = 65_536


# -- processes -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_fd_limit() -> None:
    """Allow the 10,000 connections and more, as far as the hard limit lets us."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FDS if hard == resource.RLIM_INFINITY else min(FDS, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _pinned(cpu: int | None) -> Any:
    def prepare() -> None:
        raise_fd_limit()
        if cpu is not None and len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {cpu})

    return prepare


def server_command(setup: str, port: int, workers: int) -> list[str]:
    python, target = sys.executable, "e2e_apps:app"
    if setup.startswith("uvicorn"):
        argv = [python, "-m", "uvicorn", target, "--app-dir", str(HERE), "--port", str(port)]
        argv += ["--ws", setup.removeprefix("uvicorn-"), "--no-access-log", "--log-level"]
        argv += ["warning", "--ws-max-size", "65536", "--backlog", "4096"]
        return argv + (["--workers", str(workers)] if workers > 1 else [])
    if setup == "hypercorn":
        return [
            python,
            "-m",
            "hypercorn",
            target,
            "--bind",
            f"127.0.0.1:{port}",
            "--backlog",
            "4096",
        ]
    if setup == "granian":
        argv = [python, "-m", "granian", "--interface", "asgi", "--port", str(port)]
        return [*argv, "--workers", str(workers), "--log-level", "warning", target]
    if setup == "daphne":
        return [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), target]
    raise ValueError(f"unknown server setup {setup!r}; choose from {', '.join(SETUPS)}")


def _tree(pid: int) -> list[int]:
    """*pid* and its descendants (hypercorn and granian serve from child processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                todo.extend(int(child) for child in children)
    return found


def cpu_seconds(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def rss_bytes(pid: int) -> int:
    total = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


@dataclass
class Server:
    setup: str
    stack: str
    backend: str
    workers: int = 1
    pinned: bool = True
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://{self.base}{path}", timeout=10) as response:
            return json.loads(response.read() or b"null")

    def __enter__(self) -> Server:
        env = {**os.environ, "E2E_STACK": self.stack, "E2E_BACKEND": self.backend}
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
        argv = server_command(self.setup, self.port, self.workers)
        self.process = subprocess.Popen(
            argv,
            cwd=HERE,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_pinned(SERVER_CPU if self.pinned else None),
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.get("/status")
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise RuntimeError(f"{self.setup}/{self.stack} did not start:\n{err}") from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            for member in reversed(_tree(self.process.pid)):
                with contextlib.suppress(OSError):
                    os.kill(member, signal.SIGKILL)
            self.process.wait()

    def publish(self, count: int, interval: float, window: int = 1) -> None:
        self.get(f"/publish?count={count}&interval={interval}&window={window}")

    def wait_published(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status: dict[str, Any] = self.get("/status")
            if status["error"]:
                raise RuntimeError(
                    f"{self.setup}/{self.stack}: publishing failed: {status['error']}"
                )
            if not status["publishing"] or time.monotonic() > deadline:
                return status
            time.sleep(0.05)


class Client:
    """The load client process: ``python e2e.py client ...``, driven by JSON lines."""

    def __init__(
        self, url: str, connections: int, pinned: bool = True, protocol: bool = False
    ) -> None:
        argv = [sys.executable, __file__, "client", url, str(connections)]
        argv.append("protocol" if protocol else "plain")
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=_pinned(CLIENT_CPU if pinned else None),
        )
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the load client died (exit {self.process.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.ask(command="close")
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- the load client (runs in its own process) -----------------------------------


def percentile(values: list[int] | list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))])


def quantiles(values: list[int], points: int = 200) -> list[float]:
    """*points* evenly spaced quantiles, enough to draw a CDF without shipping every sample."""
    ordered = sorted(values)
    if not ordered:
        return []
    return [ordered[min(len(ordered) - 1, i * len(ordered) // points)] / 1e6 for i in range(points)]


CONNECT = b'{"type":"connect","id":1}'
SUBSCRIBE = b'{"type":"subscribe","id":2,"channel":"c"}'
PONG = b'{"type":"pong"}'
DATA = b'"data":"'


async def client_main(url: str, connections: int, protocol: bool) -> None:
    from picows import WSListener, WSMsgType, WSTransport, ws_connect

    class Tally:
        """What all connections received during one ``expect`` command."""

        def __init__(self) -> None:
            self.reset(0, 0)

        def reset(self, expected: int, sample_every: int) -> None:
            self.expected = expected
            self.sample_every = sample_every
            self.frames = 0
            self.lost = 0
            self.gapped = 0
            self.duplicated = 0
            self.first_publish_ns = 0
            self.last_receive_ns = 0
            self.latencies: list[int] = []
            self.done = asyncio.Event()
            self.total = expected * len(listeners)
            self.echoes = 0
            self.bad_echoes = 0
            self.echoing = False

    tally: Tally
    listeners: list[Listener] = []

    class Listener(WSListener):  # type: ignore[misc]
        def __init__(self, index: int) -> None:
            self.index = index
            self.next = 0
            self.closed = False
            self.transport: WSTransport | None = None
            self.echo_payload = b""
            self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.transport = transport
            if protocol:
                transport.send(WSMsgType.TEXT, CONNECT)
                transport.send(WSMsgType.TEXT, SUBSCRIBE)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            self.closed = True

        def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
            if frame.msg_type is not WSMsgType.TEXT:
                if frame.msg_type is WSMsgType.CLOSE:
                    self.closed = True
                return
            data = frame.get_payload_as_bytes()
            if self.echo_payload:
                if not tally.echoing:
                    return  # a reply still in flight when the time was up
                if data != self.echo_payload:
                    tally.bad_echoes += 1
                tally.echoes += 1
                transport.send(WSMsgType.TEXT, self.echo_payload)
                return
            now = time.monotonic_ns()
            if protocol:
                # A push or a reply of the channels protocol; the payload is
                # the "data" string of a message push.
                start = data.find(DATA)
                if start < 0:
                    if data.startswith(b'{"id":2,"ok"') and not self.subscribed.done():
                        self.subscribed.set_result(None)
                    elif data.startswith(b'{"type":"gap"'):
                        # Dropped for a slow reader, and said so: told, not lost.
                        tally.gapped += json.loads(data)["dropped"]
                        if tally.frames + max(tally.lost, tally.gapped) >= tally.total:
                            tally.done.set()
                    elif b'"ping"' in data:
                        transport.send(WSMsgType.TEXT, PONG)
                    elif b'"error"' in data:
                        print(f"protocol error: {data!r}", file=sys.stderr)
                    return
                start += len(DATA)
                data = data[start : data.index(b'"', start)]
            space = data.index(b" ")
            seq = int(data[:space])
            if seq != self.next:
                if seq < self.next:
                    tally.duplicated += 1
                    return
                tally.lost += seq - self.next
            self.next = seq + 1
            tally.frames += 1
            tally.last_receive_ns = now
            if seq == 0 and not tally.first_publish_ns:
                tally.first_publish_ns = int(data[space + 1 :])
            if tally.sample_every and self.index % tally.sample_every == 0:
                tally.latencies.append(now - int(data[space + 1 :]))
            if tally.frames + max(tally.lost, tally.gapped) >= tally.total:
                tally.done.set()

    tally = Tally()
    semaphore = asyncio.Semaphore(50)
    failed = 0

    async def open_one(index: int) -> None:
        nonlocal failed
        async with semaphore:
            listener = Listener(index)
            try:
                await ws_connect(lambda: listener, url, websocket_handshake_timeout=30)
                if protocol:
                    await asyncio.wait_for(listener.subscribed, 30)
                listeners.append(listener)
            except Exception:
                failed += 1

    started = time.monotonic()
    await asyncio.gather(*(open_one(i) for i in range(connections)))
    elapsed = time.monotonic() - started
    ready = {
        "connected": len(listeners),
        "failed": failed,
        "handshakes_per_s": connections / elapsed,
    }
    print(json.dumps(ready), flush=True)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        if command["command"] == "close":
            for listener in listeners:
                if listener.transport is not None and not listener.closed:
                    listener.transport.disconnect()
            print(json.dumps({"closed": True}), flush=True)
            return
        if command["command"] == "expect":
            tally.reset(command["frames"], command.get("sample_every", 10))
            for listener in listeners:
                listener.next = 0
            print(json.dumps({"armed": True}), flush=True)
            timed_out = False
            try:
                await asyncio.wait_for(tally.done.wait(), command["timeout"])
            except TimeoutError:
                timed_out = True
            seconds = (tally.last_receive_ns - tally.first_publish_ns) / 1e9
            result = {
                "frames": tally.frames,
                "expected": tally.total,
                "lost": max(0, tally.total - tally.frames - tally.gapped),
                "gapped": tally.gapped,
                "timed_out": timed_out,
                "duplicated": tally.duplicated,
                "closed": sum(listener.closed for listener in listeners),
                "seconds": seconds,
                "frames_per_s": tally.frames / seconds if seconds > 0 else 0.0,
                "p50_ms": percentile(tally.latencies, 0.50) / 1e6,
                "p99_ms": percentile(tally.latencies, 0.99) / 1e6,
                "cdf_ms": quantiles(tally.latencies),
            }
            print(json.dumps(result), flush=True)
        elif command["command"] == "echo":
            payload = command["payload"].encode()
            tally.reset(0, 0)
            tally.echoing = True
            for listener in listeners:
                listener.echo_payload = payload
            for listener in listeners:
                assert listener.transport is not None
                listener.transport.send(WSMsgType.TEXT, payload)
            await asyncio.sleep(command["seconds"])
            echoes, bad = tally.echoes, tally.bad_echoes
            tally.echoing = False
            await asyncio.sleep(0.2)  # the replies in flight arrive and are ignored
            out = {"round_trips_per_s": echoes / command["seconds"], "bad": bad}
            print(json.dumps(out), flush=True)


# -- the measurements -------------------------------------------------------------


@dataclass
class Plan:
    sizes: list[int]
    setups: list[str]
    echo_seconds: float
    offered_seconds: float
    max_rate_publications: int
    redis: str
    sections: set[str]
    quick: bool
    stacks: set[str] | None = None
    window: int = 1


def echo_section(plan: Plan) -> list[dict[str, Any]]:
    rows = []
    connections = 5 if plan.quick else 50
    for setup in plan.setups:
        for mode, path, payload in (
            ("text", "/echo", "x" * 64),
            (
                "json",
                "/echo-json",
                json.dumps({"type": "say", "room": "r", "text": "x" * 32}, separators=(",", ":")),
            ),
        ):
            figures: dict[str, float] = {}
            for stack in ("raw", "lilya"):
                with Server(setup, stack, "memory://") as server:
                    client = Client(f"ws://{server.base}{path}", connections)
                    try:
                        result = client.ask(
                            command="echo", payload=payload, seconds=plan.echo_seconds
                        )
                    finally:
                        client.close()
                if result["bad"]:
                    raise RuntimeError(f"{setup}/{stack} echoed {result['bad']} wrong payloads")
                figures[stack] = result["round_trips_per_s"]
            rows.append(
                {
                    "setup": setup,
                    "mode": mode,
                    "raw": figures["raw"],
                    "lilya": figures["lilya"],
                    "ratio": figures["lilya"] / figures["raw"] if figures["raw"] else 0.0,
                }
            )
            print_row(rows[-1])
    return rows


def fanout_run(
    plan: Plan,
    setup: str,
    stack: str,
    backend: str,
    size: int,
    workers: int = 1,
) -> dict[str, Any]:
    pinned = workers == 1
    row: dict[str, Any] = {"setup": setup, "stack": stack, "backend": backend, "n": size}
    row["workers"] = workers
    row["window"] = plan.window
    with Server(setup, stack, backend, workers=workers, pinned=pinned) as server:
        time.sleep(0.3)
        rss_before = rss_bytes(server.process.pid)  # type: ignore[union-attr]
        client = Client(
            f"ws://{server.base}/sub", size, pinned=pinned, protocol=stack == "protocol"
        )
        try:
            row["handshakes_per_s"] = client.ready["handshakes_per_s"]
            row["connect_failed"] = client.ready["failed"]
            deadline = time.monotonic() + 10
            while workers == 1 and server.get("/status")["subscribers"] < size:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            time.sleep(0.5 if workers == 1 else 2.0)
            rss_after = rss_bytes(server.process.pid)  # type: ignore[union-attr]
            row["bytes_per_connection"] = (rss_after - rss_before) / size

            interval = size / OFFERED_FRAMES_PER_S
            count = max(10, int(plan.offered_seconds / interval))
            sample = max(1, size // 500)
            client.ask(
                command="expect", frames=count, sample_every=sample, timeout=count * interval + 20
            )
            cpu_before = cpu_seconds(server.process.pid)  # type: ignore[union-attr]
            server.publish(count, interval, plan.window)
            offered = client._read()
            server.wait_published(30)
            cpu_after = cpu_seconds(server.process.pid)  # type: ignore[union-attr]
            row["offered"] = {
                **{
                    k: offered[k]
                    for k in (
                        "frames",
                        "lost",
                        "gapped",
                        "timed_out",
                        "duplicated",
                        "p50_ms",
                        "p99_ms",
                    )
                },
                "cdf_ms": offered["cdf_ms"],
                "publications": count,
                "interval_s": interval,
                "us_per_frame": 1e6 * (cpu_after - cpu_before) / max(1, offered["frames"]),
            }
            # About 400,000 frames at N >= 2,000: long enough to be sustained,
            # short enough that the slowest stack (redis:// at N=10,000) is done
            # well inside the timeout.
            count = max(10, min(plan.max_rate_publications, 400_000 // size))
            client.ask(command="expect", frames=count, sample_every=sample, timeout=30)
            server.publish(count, 0, plan.window)
            burst = client._read()
            row["max_rate"] = {
                k: burst[k]
                for k in (
                    "frames",
                    "lost",
                    "gapped",
                    "timed_out",
                    "duplicated",
                    "frames_per_s",
                    "p99_ms",
                )
            }
        finally:
            client.close()
    print_row(row)
    return row


def print_row(row: dict[str, Any]) -> None:
    flat = []
    for key, value in row.items():
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "cdf_ms"}
            flat.append(f"{key}=" + ",".join(f"{k}:{_fmt(v)}" for k, v in value.items()))
        else:
            flat.append(f"{key}={_fmt(value)}")
    print("  " + " ".join(flat), flush=True)


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


STACKS = (
    ("raw", "memory://"),
    ("starlette", "memory://"),
    ("lilya", "memory://"),
    ("protocol", "memory://"),
)


def fanout_section(plan: Plan) -> list[dict[str, Any]]:
    rows = []
    stacks = list(STACKS)
    if plan.redis:
        # Not Starlette + broadcaster on redis://: broadcaster 0.3.1's Redis
        # backend delivers nothing when the first subscribe races its listener
        # (the listener finds no subscription, stops, and waits for good).
        stacks += [("lilya", plan.redis), ("protocol", plan.redis)]
    if plan.stacks is not None:
        # "lilya" keeps both backends of that stack; "lilya@redis" only one.
        stacks = [
            (stack, backend)
            for stack, backend in stacks
            if stack in plan.stacks or f"{stack}@{backend.split(':')[0]}" in plan.stacks
        ]
    for size in plan.sizes:
        for stack, backend in stacks:
            rows.append(fanout_run(plan, FANOUT_SETUP, stack, backend, size))
    return rows


def workers_section(plan: Plan) -> list[dict[str, Any]]:
    if not plan.redis:
        return []
    size = plan.sizes[min(1, len(plan.sizes) - 1)]
    return [
        fanout_run(plan, "uvicorn-websockets-sansio", "lilya", plan.redis, size, workers=w)
        for w in (1, 2)
    ]


def setups_section(plan: Plan) -> list[dict[str, Any]]:
    size = plan.sizes[0]
    return [fanout_run(plan, setup, "lilya", "memory://", size) for setup in plan.setups]


def check(rows: list[dict[str, Any]]) -> None:
    """Every frame offered must have arrived once, in order: a benchmark that loses is void."""
    for row in rows:
        for phase in ("offered", "max_rate"):
            if phase not in row:
                continue
            figures = row[phase]
            if figures["timed_out"]:
                # Too slow to finish within the bound: its rate stands, from
                # what arrived; what had not arrived yet is not a loss.
                print(f"  note: {row['stack']} on {row['backend']} at N={row['n']} did not finish")
                continue
            if figures["lost"] or figures["duplicated"]:
                # Kept, marked and said: the run's other figures still stand.
                row["void"] = True
                print(
                    f"  VOID: {row['stack']} on {row['backend']} at N={row['n']} lost or "
                    f"duplicated frames in {phase}: {figures['lost']} / {figures['duplicated']}"
                )


# -- reporting ----------------------------------------------------------------------


def ratios(results: dict[str, Any]) -> list[str]:
    """The goals of issue 16 as ratios against ``raw`` in the same run."""
    lines = []
    fanout = results.get("fanout", [])
    by = {(r["stack"], r["backend"], r["n"]): r for r in fanout}
    for size in sorted({r["n"] for r in fanout}):
        raw = by.get(("raw", "memory://", size))
        if raw is None:
            continue
        for (stack, backend, n), row in by.items():
            if n != size or stack == "raw":
                continue
            lines.append(
                f"N={size:>6} {stack:>9} {backend:<28} max rate "
                f"{row['max_rate']['frames_per_s'] / raw['max_rate']['frames_per_s']:.2f}x raw, "
                f"µs/frame {row['offered']['us_per_frame'] / raw['offered']['us_per_frame']:.2f}x, "
                f"p99 {row['offered']['p99_ms'] / raw['offered']['p99_ms']:.2f}x, "
                f"memory +{(row['bytes_per_connection'] - raw['bytes_per_connection']) / 1024:.1f}"
                f" KB/socket, handshakes {row['handshakes_per_s'] / raw['handshakes_per_s']:.2f}x"
            )
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The tables of ``docs/benchmarks.md``, from one run's results."""
    out = [
        "| setup | mode | raw (round trips/s) | lilya | lilya / raw |",
        "|---|---|---:|---:|---:|",
    ]
    for row in results.get("echo", []):
        out.append(
            f"| {row['setup']} | {row['mode']} | {row['raw']:,.0f} | {row['lilya']:,.0f} "
            f"| {row['ratio']:.2f} |"
        )
    out += ["", _fanout_table(results.get("fanout", []))]
    if results.get("workers"):
        out += ["", _fanout_table(results["workers"], workers=True)]
    if results.get("setups"):
        out += ["", _fanout_table(results["setups"], setups=True)]
    return "\n".join(out) + "\n"


def _fanout_table(rows: list[dict[str, Any]], workers: bool = False, setups: bool = False) -> str:
    first = "setup" if setups else "workers" if workers else "N"
    out = [
        f"| {first} | stack | backend | max rate frames/s | µs/frame at 50k/s offered "
        "| p50 / p99 ms at 50k/s | KB per idle socket | handshakes/s |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        key = row["setup"] if setups else row["workers"] if workers else f"{row['n']:,}"
        offered, burst = row["offered"], row["max_rate"]
        out.append(
            f"| {key} | {row['stack']} | {row['backend'].split('/')[0].rstrip(':')} "
            f"| {burst['frames_per_s']:,.0f} | {offered['us_per_frame']:.1f} "
            f"| {offered['p50_ms']:.1f} / {offered['p99_ms']:.1f} "
            f"| {row['bytes_per_connection'] / 1024:.1f} | {row['handshakes_per_s']:,.0f} |"
        )
    return "\n".join(out)


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fanout = results.get("fanout", [])
    lines: dict[str, list[dict[str, Any]]] = {}
    for row in fanout:
        backend = "" if row["stack"] == "raw" else f" ({row['backend'].split(':')[0]})"
        lines.setdefault(f"{row['stack']}{backend}", []).append(row)
    written = []

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for label, rows in lines.items():
        rows.sort(key=lambda r: r["n"])
        axes.plot(
            [r["n"] for r in rows], [r["max_rate"]["frames_per_s"] for r in rows], "o-", label=label
        )
    axes.set(
        xlabel="subscribers",
        ylabel="frames/s delivered (max rate)",
        title="Fan-out over real sockets",
    )
    axes.set_xscale("log")
    axes.grid(alpha=0.3)
    axes.legend()
    written.append(_save(figure, out / "e2e-fanout.png"))

    largest = max((r["n"] for r in fanout), default=0)
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for label, rows in lines.items():
        for row in rows:
            cdf = row["offered"]["cdf_ms"]
            if row["n"] == largest and cdf:
                axes.plot(cdf, [i / len(cdf) for i in range(len(cdf))], label=label)
    axes.set(
        xlabel="publish → receive (ms)",
        ylabel="fraction of frames",
        title=f"Latency at {OFFERED_FRAMES_PER_S:,} frames/s offered, N={largest:,}",
    )
    axes.set_xscale("log")
    axes.grid(alpha=0.3)
    axes.legend()
    written.append(_save(figure, out / "e2e-latency.png"))

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for label, rows in lines.items():
        axes.plot(
            [r["n"] for r in rows],
            [r["bytes_per_connection"] / 1024 for r in rows],
            "o-",
            label=label,
        )
    axes.set(
        xlabel="idle subscribed connections", ylabel="server KB per connection", title="Memory"
    )
    axes.set_xscale("log")
    axes.grid(alpha=0.3)
    axes.legend()
    written.append(_save(figure, out / "e2e-memory.png"))
    return written


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    parser.add_argument("--sizes", default="1000,5000,10000", help="subscriber counts")
    parser.add_argument("--setups", default=",".join(SETUPS), help="server setups for echo")
    parser.add_argument("--sections", default="echo,fanout,workers,setups")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9", help="'' to skip redis://")
    parser.add_argument("--json", default=str(HERE / "e2e.json"), help="where to write the figures")
    parser.add_argument("--plots", default=str(ROOT / "docs"), help="folder for the PNG plots")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--stacks",
        default="",
        help="fan-out stacks to run (raw,starlette,lilya,protocol; lilya@redis for one "
        "backend); default all",
    )
    parser.add_argument(
        "--publish-window",
        type=int,
        default=1,
        help="publications in flight at once in fan-out (1: each awaited before the next)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    plan = Plan(
        sizes=[20, 50] if quick else [int(s) for s in args.sizes.split(",")],
        setups=args.setups.split(","),
        echo_seconds=0.5 if quick else 1.5,
        offered_seconds=0.3 if quick else 2.0,
        max_rate_publications=10 if quick else 200,
        redis=args.redis,
        sections=set(args.sections.split(",")),
        quick=quick,
        stacks={s for s in args.stacks.split(",") if s} or None,
        window=args.publish_window,
    )
    started = time.monotonic()
    results: dict[str, Any] = {"cpus": len(os.sched_getaffinity(0)), "quick": quick}
    for name, section in (
        ("echo", echo_section),
        ("fanout", fanout_section),
        ("workers", workers_section),
        ("setups", setups_section),
    ):
        if name in plan.sections:
            print(f"== {name}", flush=True)
            results[name] = section(plan)
            if name != "echo":
                check(results[name])
    results["seconds"] = time.monotonic() - started
    print("== ratios against raw, same run")
    for line in ratios(results):
        print("  " + line)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(markdown(results))
    if not args.no_plots and results.get("fanout"):
        for path in plots(results, Path(args.plots)):
            print(f"wrote {path}")
    print(f"took {results['seconds']:.0f} s")
    return results


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        raise_fd_limit()
        asyncio.run(client_main(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "protocol"))
    else:
        main()
