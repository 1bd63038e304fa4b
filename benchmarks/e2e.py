"""End-to-end benchmark over real sockets: echo, fan-out, memory and handshakes, with plots.

Every figure comes from real server processes and a load client in another
process, over loopback, with every frame checked (order, loss, duplicates):

- the server (one of the six setups of the interop matrix) runs the app of
  ``benchmarks/e2e_apps.py`` for one stack — ``raw`` (a bare ASGI loop over a
  set of sockets: the floor), ``starlette`` (Starlette + broadcaster: what
  users hand-roll), ``lilya`` (``Channels`` + ``relay()``), ``protocol``
  (lilya's channels protocol endpoint) — pinned to CPU 0;
- the load client (this file, ``client`` sub-command) runs on picows, a
  WebSocket client written in Cython, pinned to CPU 1, so that the client is
  not the bottleneck: it spends about a microsecond per frame.

What one run measures, side by side, as ratios against ``raw`` in the same run:

1. **echo and setups**, on each of the six server setups, one ``raw`` and
   one ``lilya`` server each: echo round trips per second (text, JSON, 50
   connections), then fan-out at the first size (1,000): which server setup
   is fastest for ``relay()`` fan-out;
2. **fan-out** at N subscribers (1,000, 5,000 and 10,000 by default) for
   ``raw``, ``starlette``, ``lilya`` and ``protocol`` on ``memory://`` and
   (not Starlette: see ``fanout_section``) ``redis://``, one server process
   per stack for every size: it grows to each size in turn (handshakes/s of
   the batch, server RSS growth per socket: memory per idle subscribed
   connection), then is measured from the largest size down, closing
   sockets between sizes:
   - *offered load*: 50,000 frames/s offered (one publication every N/50,000
     s; at N=1,000 one every 20 ms: one publication per wake-up): server CPU
     µs per delivered frame, publish-to-receive p50 / p99, delivered frames/s;
   - *max rate*: publications back to back: frames/s delivered;
3. **workers**: ``lilya`` on ``redis://`` at the second size with one and with
   two uvicorn workers, neither pinned (server and client share both cores
   then: there are only two).

Bounded by construction: ``--budget`` (500 s) is the deadline of the whole
run (525 s with the last client's and server's stop: under 9 minutes). Every
phase waits at most its cap (``START_CAP`` and the others below), cut to what
is left of the budget and of its section's share of it (``SECTION_WEIGHTS``),
and no phase starts once that is spent (it is listed as skipped). A phase cut
at its cap keeps the rate of what arrived, is marked, and its tail is drained
before the next one; frames published in an earlier phase are told apart by
their sequence numbers (each phase has its own range) and ignored.

Run by hand on an otherwise idle machine::

    python benchmarks/e2e.py --write-docs    # everything: JSON, plots and docs/benchmarks.md
    python benchmarks/e2e.py --quick         # tiny sizes, a minute (the smoke test)
    python benchmarks/e2e.py --sizes 1000 --sections fanout --no-plots
    python benchmarks/e2e.py --from-json benchmarks/e2e.json --write-docs   # no run

It prints one row per measurement, the ratios, the document's tables and the
time of each section; writes ``--json`` (default ``benchmarks/e2e.json``) with
every figure and the plots ``docs/e2e-*.png``; and with ``--write-docs``
replaces what lies between ``<!-- e2e:start -->`` and ``<!-- e2e:end -->`` in
``docs/benchmarks.md`` with this run's tables, goal table and date, machine,
commit and load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
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
    def channel(self) -> str:
        # Unique to this server: another run publishing on the same Redis
        # database would otherwise count as this run's losses and duplicates.
        return f"e2e-{os.getpid()}-{self.port}"

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://{self.base}{path}", timeout=10) as response:
            return json.loads(response.read() or b"null")

    def __enter__(self) -> Server:
        env = {**os.environ, "E2E_STACK": self.stack, "E2E_BACKEND": self.backend}
        env["E2E_CHANNEL"] = self.channel
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
        deadline = time.monotonic() + START_CAP
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
            self.process.wait(STOP_CAP)
        except subprocess.TimeoutExpired:
            for member in reversed(_tree(self.process.pid)):
                with contextlib.suppress(OSError):
                    os.kill(member, signal.SIGKILL)
            self.process.wait()

    def publish(self, count: int, interval: float, base: int = 0, window: int = 1) -> None:
        self.get(f"/publish?count={count}&interval={interval}&base={base}&window={window}")

    def status(self, deadline: float) -> dict[str, Any] | None:
        """``/status``, or None if the server (busy delivering) did not answer by *deadline*."""
        try:
            with urllib.request.urlopen(
                f"http://{self.base}/status", timeout=max(0.1, deadline - time.monotonic())
            ) as response:
                result: dict[str, Any] = json.loads(response.read())
                return result
        except OSError:
            return None

    def wait_published(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(deadline)
            if status is None:
                return None
            if status["error"]:
                raise RuntimeError(
                    f"{self.setup}/{self.stack}: publishing failed: {status['error']}"
                )
            if not status["publishing"] or time.monotonic() > deadline:
                return status
            time.sleep(0.05)


class Client:
    """The load client process: ``python e2e.py client URL [CHANNEL]``, driven by JSON lines.

    With a *channel*, each socket speaks the channels protocol and subscribes to it.
    """

    def __init__(self, url: str, pinned: bool = True, channel: str = "") -> None:
        argv = [sys.executable, __file__, "client", url, channel]
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=_pinned(CLIENT_CPU if pinned else None),
        )
        # {"ready": true} (picows imported) is read before the first command,
        # so the client starts while its server does.
        self.started = False

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the load client died (exit {self.process.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def ask(self, **command: Any) -> dict[str, Any]:
        if not self.started:
            self._read()
            self.started = True
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        """Close every socket and end the process (again: a no-op)."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            self.ask(command="close")
        try:
            self.process.wait(STOP_CAP)
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
PONG = b'{"type":"pong"}'
DATA = b'"data":"'


async def client_main(url: str, channel: str) -> None:
    """Serve the driver's commands, one JSON line in and one out, until ``close``.

    *channel* is the channel a protocol subscriber subscribes to; ``""`` for
    the other stacks (their ``/sub`` subscribes on its own).
    """
    from picows import WSListener, WSMsgType, WSTransport, ws_connect

    protocol = bool(channel)
    subscribe = json.dumps({"type": "subscribe", "id": 2, "channel": channel}).encode()

    class Tally:
        """What all connections received during one ``expect`` command."""

        def __init__(self) -> None:
            self.seen = 0  # every data frame ever, for ``drain``
            self.seen_at_end = 0  # ``seen`` when the last ``expect`` ended
            self.reset(0, 0)

        def reset(self, expected: int, sample_every: int, base: int = 0) -> None:
            self.expected = expected
            self.sample_every = sample_every
            self.frames = 0
            self.lost = 0
            self.gapped = 0
            self.duplicated = 0
            self.stale = 0
            self.first_publish_ns = 0
            self.last_receive_ns = 0
            # Sequence numbers below base belong to an earlier phase that was
            # cut at its cap: ignored (counted as stale), not losses.
            self.base = base
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
            self.closed = asyncio.get_running_loop().create_future()
            self.transport: WSTransport | None = None
            self.echo_payload = b""
            self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.transport = transport
            if protocol:
                transport.send(WSMsgType.TEXT, CONNECT)
                transport.send(WSMsgType.TEXT, subscribe)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            if not self.closed.done():
                self.closed.set_result(None)

        def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
            if frame.msg_type is not WSMsgType.TEXT:
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
            tally.seen += 1
            space = data.index(b" ")
            seq = int(data[:space])
            if seq != self.next:
                if seq < self.next:
                    if seq < tally.base:
                        tally.stale += 1
                    else:
                        tally.duplicated += 1
                    return
                tally.lost += seq - self.next
            self.next = seq + 1
            tally.frames += 1
            tally.last_receive_ns = now
            if seq == tally.base and not tally.first_publish_ns:
                tally.first_publish_ns = int(data[space + 1 :])
            if tally.sample_every and self.index % tally.sample_every == 0:
                tally.latencies.append(now - int(data[space + 1 :]))
            if tally.frames + max(tally.lost, tally.gapped) >= tally.total:
                tally.done.set()

    tally = Tally()
    semaphore = asyncio.Semaphore(50)

    async def open_one(index: int) -> Listener | None:
        async with semaphore:
            listener = Listener(index)
            try:
                await ws_connect(lambda: listener, url, websocket_handshake_timeout=10)
                if protocol:
                    await asyncio.wait_for(listener.subscribed, 10)
            except Exception:
                return None
            return listener

    async def open_many(count: int, timeout: float) -> dict[str, Any]:
        started = time.monotonic()
        first = len(listeners)
        tasks = [asyncio.ensure_future(open_one(first + i)) for i in range(count)]
        done, pending = await asyncio.wait(tasks, timeout=max(0.1, timeout))
        for task in pending:
            task.cancel()
        elapsed = time.monotonic() - started
        opened = [task.result() for task in done if task.result() is not None]
        for listener in sorted(opened, key=lambda item: item.index):
            listener.index = len(listeners)
            listeners.append(listener)
        return {
            "connected": len(listeners),
            "failed": count - len(opened),
            "handshakes_per_s": len(opened) / elapsed if elapsed > 0 else 0.0,
            "seconds": elapsed,
        }

    async def shrink(keep: int, timeout: float) -> dict[str, Any]:
        leaving, listeners[keep:] = listeners[keep:], []
        for listener in leaving:
            if listener.transport is not None and not listener.closed.done():
                listener.transport.disconnect()
        if leaving:
            await asyncio.wait([listener.closed for listener in leaving], timeout=timeout)
        return {"connected": len(listeners)}

    async def drain(quiet: float, timeout: float) -> dict[str, Any]:
        """Wait until no frame has come for *quiet* s (at most *timeout*): a cut phase's tail."""
        # Counted from the end of the phase, not from now: frames that came
        # while /stop waited for a busy server are the tail too.
        started, before = time.monotonic(), tally.seen_at_end
        last = -1
        while tally.seen != last and time.monotonic() - started < timeout:
            last = tally.seen
            await asyncio.sleep(quiet)
        return {"late": tally.seen - before, "seconds": time.monotonic() - started}

    async def expect(command: dict[str, Any]) -> dict[str, Any]:
        base = command.get("base", 0)
        tally.reset(command["frames"], command.get("sample_every", 10), base)
        for listener in listeners:
            listener.next = base
        print(json.dumps({"armed": True}), flush=True)
        timed_out = False
        try:
            await asyncio.wait_for(tally.done.wait(), max(0.1, command["timeout"]))
        except TimeoutError:
            timed_out = True
        tally.seen_at_end = tally.seen
        seconds = (tally.last_receive_ns - tally.first_publish_ns) / 1e9
        lost_or_late = tally.total - tally.frames
        return {
            "frames": tally.frames,
            "expected": tally.total,
            # Cut at its cap, a phase has lost only what its sequence skipped.
            "lost": max(0, (tally.lost if timed_out else lost_or_late) - tally.gapped),
            "missing": max(0, tally.total - tally.frames - tally.gapped) if timed_out else 0,
            "gapped": tally.gapped,
            "timed_out": timed_out,
            "duplicated": tally.duplicated,
            "stale": tally.stale,
            "closed": sum(listener.closed.done() for listener in listeners),
            "seconds": seconds,
            "frames_per_s": tally.frames / seconds if seconds > 0 else 0.0,
            "p50_ms": percentile(tally.latencies, 0.50) / 1e6,
            "p99_ms": percentile(tally.latencies, 0.99) / 1e6,
            "cdf_ms": quantiles(tally.latencies),
        }

    async def echo(command: dict[str, Any]) -> dict[str, Any]:
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
        await asyncio.sleep(0.1)  # the replies in flight arrive and are ignored
        return {"round_trips_per_s": echoes / command["seconds"], "bad": bad}

    print(json.dumps({"ready": True}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        name = command["command"]
        if name == "close":
            await shrink(0, 5)
            print(json.dumps({"closed": True}), flush=True)
            return
        if name == "open":
            reply = await open_many(command["count"], command["timeout"])
        elif name == "shrink":
            reply = await shrink(command["keep"], command["timeout"])
        elif name == "drain":
            reply = await drain(command["quiet"], command["timeout"])
        elif name == "expect":
            reply = await expect(command)
        elif name == "echo":
            reply = await echo(command)
        else:
            reply = {"error": f"unknown command {name!r}"}
        print(json.dumps(reply), flush=True)


# -- the measurements -------------------------------------------------------------

# Caps, in seconds: no phase waits longer, and none starts once the run's budget
# is spent, so the whole run is bounded by --budget (plus one server's stop).
START_CAP = 15.0  # a server answering /status
STOP_CAP = 5.0  # SIGINT, then SIGKILL
SETTLE = 0.5  # after the handshakes, before RSS is read
BACKLOG_CAP = 4.0  # what an offered-load phase may run over its schedule
MAX_RATE_CAP = 8.0  # one max-rate phase
DRAIN_CAP = 5.0  # the tail of a phase that was cut at its cap
SHRINK_CAP = 10.0  # closing sockets down to the next size
# After the budget: the last client's close (its sockets, then its process),
# the last server's stop and one HTTP request's timeout.
TAIL = 3 * STOP_CAP + 10
SEQ_RANGE = 10_000_000  # sequence numbers per phase (publications are far fewer)
MAX_RATE_FRAMES = 250_000  # frames per max-rate phase (publications = this / N, at most 200)


class Budget:
    """The run's deadline: every phase's cap is cut to what is left of it.

    Each section gets its share of what is left when it begins (and what an
    earlier section did not use): a machine too slow for one section loses
    that section's later figures, not the sections after it.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.section_deadline = self.deadline
        self.skipped: list[str] = []

    def begin(self, share: float) -> float:
        """Start a section that may use *share* (0-1] of what is left; return its seconds."""
        now = time.monotonic()
        self.section_deadline = now + max(0.0, self.deadline - now) * share
        return self.section_deadline - now

    def left(self) -> float:
        return min(self.deadline, self.section_deadline) - time.monotonic()

    def cap(self, seconds: float) -> float:
        return max(0.0, min(seconds, self.left()))

    def allows(self, what: str, needs: float) -> bool:
        """Whether *what* (which needs about *needs* s) may still start; if not, say so."""
        if self.left() >= needs:
            return True
        self.skipped.append(what)
        print(f"  skipped (budget spent): {what}", flush=True)
        return False


@dataclass
class Plan:
    sizes: list[int]
    setups: list[str]
    echo_seconds: float
    offered_seconds: float
    max_rate_publications: int
    offered_publications: int
    redis: str
    sections: set[str]
    quick: bool
    budget: Budget
    failures: list[str] = field(default_factory=list)
    stacks: set[str] | None = None
    window: int = 1


class Fanout:
    """One server's subscribers, grown and shrunk by one load client, and its two phases."""

    def __init__(self, plan: Plan, server: Server, client: Client) -> None:
        self.plan, self.server, self.client = plan, server, client
        self.pid = server.process.pid  # type: ignore[union-attr]
        self.rss_before = rss_bytes(self.pid)
        self.size = 0
        self.phases = 0

    def grow(self, size: int) -> dict[str, Any]:
        """Open sockets up to *size*: handshakes/s of this batch and RSS per socket so far."""
        timeout = self.plan.budget.cap(10 + (size - self.size) / 100)
        opened = self.client.ask(command="open", count=size - self.size, timeout=timeout)
        self.size = opened["connected"]
        self._wait_subscribers(lambda n: n >= self.size)
        time.sleep(SETTLE)
        grown = rss_bytes(self.pid) - self.rss_before
        return {
            "handshakes_per_s": opened["handshakes_per_s"],
            "connect_failed": opened["failed"],
            "connected": self.size,
            "bytes_per_connection": grown / max(1, self.size),
        }

    def shrink(self, size: int) -> None:
        kept = self.client.ask(
            command="shrink", keep=size, timeout=self.plan.budget.cap(SHRINK_CAP)
        )
        self.size = kept["connected"]
        self._wait_subscribers(lambda n: n <= self.size)

    def _wait_subscribers(self, reached: Any) -> None:
        # With several workers /status answers for one of them: the client's
        # finished handshakes are the count then (each subscribes before it
        # accepts).
        if self.server.workers > 1:
            return
        deadline = time.monotonic() + self.plan.budget.cap(10)
        while (status := self.server.status(deadline)) is not None:
            if reached(status["subscribers"]) or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def next_base(self) -> int:
        """The first sequence number of the next phase: every phase has its own range, so a
        frame of an earlier phase cut at its cap is told apart (stale), not counted as lost."""
        self.phases += 1
        return self.phases * SEQ_RANGE

    def measure(self) -> dict[str, Any]:
        """The offered-load phase, then the max-rate phase, at the current size."""
        size, plan, server = self.size, self.plan, self.server
        if not size:
            raise RuntimeError("no subscriber connected within the handshake cap")
        interval = size / OFFERED_FRAMES_PER_S
        count = min(plan.offered_publications, max(8, int(plan.offered_seconds / interval)))
        sample = max(1, size // 500)
        timeout = plan.budget.cap(count * interval + BACKLOG_CAP)
        base = self.next_base()
        self.client.ask(
            command="expect", frames=count, sample_every=sample, timeout=timeout, base=base
        )
        cpu_before = cpu_seconds(self.pid)
        server.publish(count, interval, base, plan.window)
        offered = self.client._read()
        cpu_after = cpu_seconds(self.pid)
        self._finish(offered)
        row: dict[str, Any] = {
            "offered": {
                **{k: offered[k] for k in PHASE_KEYS if k in offered},
                "cdf_ms": offered["cdf_ms"],
                "publications": count,
                "interval_s": interval,
                "delivered_per_s": offered["frames_per_s"],
                "us_per_frame": 1e6 * (cpu_after - cpu_before) / max(1, offered["frames"]),
            }
        }
        count = max(10, min(plan.max_rate_publications, MAX_RATE_FRAMES // size))
        timeout = plan.budget.cap(MAX_RATE_CAP)
        base = self.next_base()
        self.client.ask(
            command="expect", frames=count, sample_every=sample, timeout=timeout, base=base
        )
        cpu_before = cpu_seconds(self.pid)
        server.publish(count, 0, base, plan.window)
        burst = self.client._read()
        cpu_after = cpu_seconds(self.pid)
        self._finish(burst)
        row["max_rate"] = {
            **{k: burst[k] for k in PHASE_KEYS if k in burst},
            "publications": count,
            "frames_per_s": burst["frames_per_s"],
            "us_per_frame": 1e6 * (cpu_after - cpu_before) / max(1, burst["frames"]),
        }
        return row

    def _finish(self, phase: dict[str, Any]) -> None:
        """After a phase cut at its cap: stop the publisher and let the tail arrive."""
        if phase["timed_out"]:
            with contextlib.suppress(OSError):
                # A server too busy to answer in time: the drain below waits for it.
                self.server.get("/stop")
            tail = self.client.ask(
                command="drain", quiet=0.3, timeout=self.plan.budget.cap(DRAIN_CAP)
            )
            phase["tail_frames"], phase["tail_s"] = tail["late"], tail["seconds"]
        else:
            self.server.wait_published(self.plan.budget.cap(10))

    @staticmethod
    def client(server: Server, stack: str) -> Client:
        """The load client of *server*'s ``/sub``, started before the server answers."""
        return Client(
            f"ws://{server.base}/sub",
            pinned=server.pinned,
            channel=server.channel if stack == "protocol" else "",
        )


PHASE_KEYS = ("frames", "expected", "lost", "missing", "gapped", "timed_out", "duplicated")
PHASE_KEYS += ("stale", "p50_ms", "p99_ms", "seconds", "tail_frames", "tail_s")


ECHO_MODES = (
    ("text", "/echo", "x" * 64),
    (
        "json",
        "/echo-json",
        json.dumps({"type": "say", "room": "r", "text": "x" * 32}, separators=(",", ":")),
    ),
)


def echo_and_setups(plan: Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per server setup, one server per stack: the echo figures, then fan-out at the first size.

    Both sections use the same servers (``raw`` and ``lilya`` on ``memory://``),
    so each server process starts once for them.
    """
    echo_rows: list[dict[str, Any]] = []
    setup_rows: list[dict[str, Any]] = []
    for setup in plan.setups:
        echoes: dict[str, dict[str, float]] = {mode: {} for mode, _, _ in ECHO_MODES}
        for stack in ("raw", "lilya"):
            if plan.budget.allows(f"echo/setups on {setup} ({stack})", 10):
                setup_rows += guarded(
                    f"echo/setups on {setup} ({stack})",
                    plan,
                    functools.partial(echo_and_fanout, plan, setup, stack, echoes),
                )
        for mode, figures in echoes.items():
            if "raw" in figures and "lilya" in figures:
                echo_rows.append(
                    {
                        "setup": setup,
                        "mode": mode,
                        "raw": figures["raw"],
                        "lilya": figures["lilya"],
                        "ratio": figures["lilya"] / figures["raw"] if figures["raw"] else 0.0,
                    }
                )
                print_row(echo_rows[-1])
    return echo_rows, setup_rows


def echo_and_fanout(
    plan: Plan, setup: str, stack: str, echoes: dict[str, dict[str, float]]
) -> list[dict[str, Any]]:
    """One server: echo round trips into *echoes*, then the fan-out row at the first size."""
    started = time.monotonic()
    connections = 5 if plan.quick else 50
    server = Server(setup, stack, "memory://")
    echoing = "echo" in plan.sections
    clients = {path: Client(f"ws://{server.base}{path}") for _, path, _ in ECHO_MODES if echoing}
    sub = Fanout.client(server, stack) if "setups" in plan.sections else None
    try:
        with server:
            for mode, path, payload in ECHO_MODES if echoing else ():
                client = clients[path]
                client.ask(command="open", count=connections, timeout=plan.budget.cap(20))
                seconds = plan.budget.cap(plan.echo_seconds)
                result = client.ask(command="echo", payload=payload, seconds=seconds)
                client.close()
                if result["bad"]:
                    raise RuntimeError(f"{setup}/{stack} echoed {result['bad']} wrong payloads")
                echoes[mode][stack] = result["round_trips_per_s"]
            if sub is None:
                return []
            fan = Fanout(plan, server, sub)
            row = {"setup": setup, "stack": stack, "backend": "memory://", "n": plan.sizes[0]}
            row["workers"] = 1
            row |= fan.grow(plan.sizes[0])
            row |= fan.measure()
            sub.close()  # before the server stops: its sockets close cleanly
    finally:
        for client in [*clients.values(), *([sub] if sub else [])]:
            client.close()
    row["wall_s"] = time.monotonic() - started
    print_row(row)
    return [row]


def fanout_server(
    plan: Plan, setup: str, stack: str, backend: str, sizes: list[int], workers: int = 1
) -> list[dict[str, Any]]:
    """One server process for every size: grow to each size (memory, handshakes), then
    measure from the largest down, closing sockets between sizes.

    Growing first reads each size's memory on a server that has only done
    handshakes; measuring from the top down reuses the sockets instead of
    opening 16,000 of them for three sizes.
    """
    started = time.monotonic()
    rows = {
        n: {"setup": setup, "stack": stack, "backend": backend, "n": n, "workers": workers}
        | {"window": plan.window}
        for n in sizes
    }
    server = Server(setup, stack, backend, workers=workers, pinned=workers == 1)
    client = Fanout.client(server, stack)
    try:
        with server:
            time.sleep(0.3 if workers == 1 else 1.0)
            fan = Fanout(plan, server, client)
            for n in sizes:
                rows[n] |= fan.grow(n)
            for n in sorted(sizes, reverse=True):
                if n < fan.size:
                    fan.shrink(n)
                if plan.budget.allows(f"fan-out {stack} on {backend} at N={n}", 3):
                    rows[n] |= fan.measure()
            client.close()  # before the server stops: its sockets close cleanly
    finally:
        client.close()
    measured = [row for row in rows.values() if "max_rate" in row]
    for row in measured:
        row["wall_s"] = time.monotonic() - started
        print_row(row)
    return measured


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
    for stack, backend in stacks:
        if plan.budget.allows(f"fan-out {stack} on {backend}", 10):
            rows += guarded(
                f"fan-out {stack} on {backend}",
                plan,
                functools.partial(fanout_server, plan, FANOUT_SETUP, stack, backend, plan.sizes),
            )
    return rows


def guarded(
    what: str, plan: Plan, measure: Callable[..., list[dict[str, Any]]], *args: Any
) -> list[dict[str, Any]]:
    """*measure*'s rows; if it fails (a server that stopped answering), say so and go on.

    One server setup that misbehaves under load must not cost the run every
    figure after it: the failure is printed, kept in the results and the
    document, and the next server starts.
    """
    try:
        return measure(*args)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        plan.failures.append(f"{what}: {exc!r}"[:300])
        print(f"  FAILED: {what}: {exc!r}", flush=True)
        return []


def workers_size(plan: Plan) -> int:
    return plan.sizes[min(1, len(plan.sizes) - 1)]


def workers_section(plan: Plan) -> list[dict[str, Any]]:
    """``lilya`` on ``redis://`` with one and two uvicorn workers, neither pinned.

    What it measures: one publisher (the worker that took the ``/publish``
    request) and the other worker receiving through Redis; frames/s and
    latency over all sockets of both; server CPU summed over every process
    of the server (the two workers and uvicorn's supervisor). The load client
    shares the two cores with them, so this shows what a second process buys
    on one small machine, not what a second machine would.
    """
    if not plan.redis:
        return []
    rows = []
    for workers in (1, 2):
        if plan.budget.allows(f"workers={workers}", 10):
            rows += guarded(
                f"workers={workers}",
                plan,
                functools.partial(
                    fanout_server, plan, FANOUT_SETUP, "lilya", plan.redis, [workers_size(plan)]
                ),
                workers,
            )
    return rows


def check(rows: list[dict[str, Any]]) -> None:
    """Every frame offered must have arrived once, in order: a benchmark that loses is void."""
    for row in rows:
        for phase in ("offered", "max_rate"):
            if phase not in row:
                continue
            figures = row[phase]
            where = f"{row['stack']} on {row['backend']} at N={row['n']} ({row['setup']})"
            if figures["timed_out"]:
                # Too slow to finish within its cap: its rate stands, from what
                # arrived; what had not arrived yet is not a loss.
                print(
                    f"  note: {where} {phase} cut at its cap, {figures['missing']} frames "
                    f"not yet arrived ({figures.get('tail_frames', 0)} came in the tail)"
                )
            if figures["lost"] or figures["duplicated"]:
                # Kept, marked and said: the run's other figures still stand.
                row["void"] = True
                print(
                    f"  VOID: {where} lost or duplicated frames in {phase}: "
                    f"{figures['lost']} / {figures['duplicated']}"
                )


# -- reporting ----------------------------------------------------------------------


def _index(rows: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {(r["stack"], r["backend"].split(":")[0], r["n"]): r for r in rows}


def ratios(results: dict[str, Any]) -> list[str]:
    """Every fan-out figure as a ratio against ``raw`` at the same size, same run."""
    lines = []
    by = _index(results.get("fanout", []))
    for (stack, backend, n), row in sorted(by.items(), key=lambda item: item[0][2]):
        raw = by.get(("raw", "memory", n))
        if raw is None or stack == "raw":
            continue
        lines.append(
            f"N={n:>6} {stack:>9} {backend:<7} max rate "
            f"{_ratio(row['max_rate']['frames_per_s'], raw['max_rate']['frames_per_s']):.2f}x raw, "
            "µs/frame "
            f"{_ratio(row['offered']['us_per_frame'], raw['offered']['us_per_frame']):.2f}x, "
            f"p99 {_ratio(row['offered']['p99_ms'], raw['offered']['p99_ms']):.2f}x, "
            f"memory +{(row['bytes_per_connection'] - raw['bytes_per_connection']) / 1024:.1f}"
            " KB/socket, handshakes "
            f"{_ratio(row['handshakes_per_s'], raw['handshakes_per_s']):.2f}x"
        )
    return lines


def _ratio(value: float, base: float) -> float:
    return value / base if base else float("nan")


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 16's goals, each as the run's ratio and whether it is met.

    For ``relay()`` (``lilya``) and the protocol endpoint (``protocol``), each
    against ``raw`` at the same size (or against itself on ``memory://``).
    """
    by = _index(results.get("fanout", []))
    sizes = sorted({n for (_, _, n) in by})
    out: list[dict[str, Any]] = []

    def add(
        goal: str, stack: str, value: float | None, target: float, higher: bool, text: str
    ) -> None:
        if value is None or value != value:  # missing, or NaN
            return
        met = value >= target if higher else value <= target
        sign = ">=" if higher else "<="
        out.append(
            {
                "goal": goal,
                "stack": stack,
                "value": value,
                "target": f"{sign} {target:g}",
                "met": met,
                "figures": text,
            }
        )

    def pair(stack: str, backend: str, n: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
        row, raw = by.get((stack, backend, n)), by.get(("raw", "memory", n))
        return (row, raw) if row is not None and raw is not None else None

    for stack in ("lilya", "protocol"):
        for n in (1000, 5000):
            if found := pair(stack, "memory", n):
                row, raw = found
                a, b = row["max_rate"]["frames_per_s"], raw["max_rate"]["frames_per_s"]
                add(
                    f"max rate frames/s at N={n:,}, x raw",
                    stack,
                    _ratio(a, b),
                    0.9,
                    True,
                    f"{a:,.0f} vs {b:,.0f}",
                )
        if found := pair(stack, "memory", 1000):
            row, raw = found
            a, b = row["offered"]["us_per_frame"], raw["offered"]["us_per_frame"]
            add(
                "server µs/frame, one publication per wake-up (N=1,000), x raw",
                stack,
                _ratio(a, b),
                1.3,
                False,
                f"{a:.1f} vs {b:.1f} µs",
            )
        for n in (1000, 5000):
            row, mem = by.get((stack, "redis", n)), by.get((stack, "memory", n))
            if row is not None and mem is not None:
                a, b = row["max_rate"]["frames_per_s"], mem["max_rate"]["frames_per_s"]
                add(
                    f"redis:// max rate at N={n:,}, x memory://",
                    stack,
                    _ratio(a, b),
                    0.8,
                    True,
                    f"{a:,.0f} vs {b:,.0f}",
                )
        if (row := by.get((stack, "redis", 5000))) is not None:
            offered = row["offered"]
            sustained = offered["delivered_per_s"] if not offered["timed_out"] else 0.0
            add(
                "redis:// at N=5,000: 50k frames/s offered, delivered without backlog, x 50k",
                stack,
                sustained / OFFERED_FRAMES_PER_S,
                0.95,
                True,
                f"{offered['delivered_per_s']:,.0f}/s delivered"
                + (", cut with a backlog" if offered["timed_out"] else ""),
            )
        n = 5000 if 5000 in sizes else (sizes[-1] if sizes else 0)
        if found := pair(stack, "memory", n):
            row, raw = found
            a, b = row["offered"]["p99_ms"], raw["offered"]["p99_ms"]
            add(
                f"p99 at 50k frames/s offered (N={n:,}), x raw",
                stack,
                _ratio(a, b),
                1.5,
                False,
                f"{a:.1f} vs {b:.1f} ms",
            )
        largest = sizes[-1] if sizes else 0
        if found := pair(stack, "memory", largest):
            row, raw = found
            above = (row["bytes_per_connection"] - raw["bytes_per_connection"]) / 1024
            add(
                f"KB per idle subscribed socket above raw (N={largest:,})",
                stack,
                above,
                8,
                False,
                f"{row['bytes_per_connection'] / 1024:.1f} vs "
                f"{raw['bytes_per_connection'] / 1024:.1f} KB",
            )
            a, b = row["handshakes_per_s"], raw["handshakes_per_s"]
            add(
                f"subscribed handshakes/s (batch to N={largest:,}), x raw",
                stack,
                _ratio(a, b),
                0.8,
                True,
                f"{a:,.0f} vs {b:,.0f}/s",
            )
    return out


def fastest_setup(results: dict[str, Any]) -> dict[str, Any] | None:
    """The server setup that spent the least server CPU per frame on ``relay()`` at max rate.

    CPU per frame rather than frames/s: with the server pinned to one core the
    two agree on an idle machine (the rate is one core's worth of frames), and
    CPU time is what a busy machine disturbs least.
    """
    rows = [r for r in results.get("setups", []) if r["stack"] == "lilya" and not r.get("void")]
    rows = [r for r in rows if r["max_rate"]["frames"] and r["max_rate"]["us_per_frame"] > 0]
    return min(rows, key=lambda r: r["max_rate"]["us_per_frame"], default=None)


def machine() -> dict[str, Any]:
    """Where and when: what a reader needs to weigh the figures."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": model,
        "cpus": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "commit": commit,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def markdown(results: dict[str, Any]) -> str:
    """The generated part of ``docs/benchmarks.md``, from one run's results."""
    info = results.get("machine", {})
    load = info.get("load_average", [0.0, 0.0, 0.0])
    out = [
        f"Measured {info.get('date', '?')} by `{results.get('command', 'benchmarks/e2e.py')}` on "
        f"{info.get('cpu', '?')} ({info.get('cpus', '?')} cores), Python "
        f"{info.get('python', '?')}, commit {info.get('commit', '?')}; load average at start "
        f"{' / '.join(f'{x:.2f}' for x in load)}; the run took {results.get('seconds', 0):.0f} s"
        + (
            f" (budget {results['budget_s']:.0f} s; skipped: {', '.join(results['skipped'])})"
            if results.get("skipped")
            else ""
        )
        + ".",
    ]
    for failure in results.get("failed", []):
        out.append(f"Failed in this run (its rows are missing): {failure}.")
    if load[0] >= 1.0:
        out.append(
            "The machine was busy when this ran (load average at start ≥ 1 on "
            f"{info.get('cpus', '?')} cores): read the ratios, not the absolute figures, "
            "and take none of them as final; rerun on an idle machine."
        )
    rows = goals(results)
    if rows:
        out += ["", "### Goals (issue 16), as ratios in this run", ""]
        out += ["| goal | stack | this run | ratio | target | |", "|---|---|---|---:|---|---|"]
        for goal in rows:
            out.append(
                f"| {goal['goal']} | {goal['stack']} | {goal['figures']} | {goal['value']:.2f} "
                f"| {goal['target']} | {'met' if goal['met'] else '**missed**'} |"
            )
    if results.get("echo"):
        out += ["", "### Echo, 50 connections, round trips/s", ""]
        out += ["| setup | mode | raw | lilya | lilya / raw |", "|---|---|---:|---:|---:|"]
        for row in results["echo"]:
            out.append(
                f"| {row['setup']} | {row['mode']} | {row['raw']:,.0f} | {row['lilya']:,.0f} "
                f"| {row['ratio']:.2f} |"
            )
    if results.get("fanout"):
        out += ["", f"### Fan-out on {FANOUT_SETUP}", "", _fanout_table(results["fanout"], "N")]
        out += ["", "![frames/s against subscribers](e2e-fanout.png)"]
        out += ["![latency CDFs](e2e-latency.png)", "![memory against connections](e2e-memory.png)"]
    if results.get("setups"):
        best = fastest_setup(results)
        out += ["", "### Which server setup is fastest for fan-out", ""]
        out += [_fanout_table(results["setups"], "setup")]
        if best is not None:
            out += [
                "",
                f"Fastest for `relay()` fan-out at N={best['n']:,} in this run: "
                f"**{best['setup']}**, {best['max_rate']['us_per_frame']:.1f} server CPU µs "
                f"per frame at max rate ({best['max_rate']['frames_per_s']:,.0f} frames/s); "
                "ranked by CPU per frame, which a busy machine disturbs least.",
            ]
    if results.get("workers"):
        out += ["", "### Workers on redis://", "", _fanout_table(results["workers"], "workers")]
        out += ["", workers_paragraph(results["workers"])]
    return "\n".join(out) + "\n"


def workers_paragraph(rows: list[dict[str, Any]]) -> str:
    by = {row["workers"]: row for row in rows}
    one, two = by.get(1), by.get(2)
    if one is None or two is None:
        return "(the workers section did not run both settings)"
    a, b = two["max_rate"]["frames_per_s"], one["max_rate"]["frames_per_s"]
    return (
        f"With `--workers 2` on redis:// at N={two['n']:,}, `relay()` delivered "
        f"{a:,.0f} frames/s at max rate against {b:,.0f} with one worker ({_ratio(a, b):.2f}x), "
        f"p99 {two['offered']['p99_ms']:.1f} ms against {one['offered']['p99_ms']:.1f} ms at "
        f"50k frames/s offered, and the server spent {two['offered']['us_per_frame']:.1f} CPU µs "
        f"per frame (all its processes) against {one['offered']['us_per_frame']:.1f}. Neither "
        "run is pinned: the two workers and the load client share this machine's two cores, "
        "so the figure shows what a second process costs and buys on one small machine; "
        "on a machine with a core per worker the publishing worker and the one that "
        "receives through Redis no longer compete with each other."
    )


def _fanout_table(rows: list[dict[str, Any]], first: str) -> str:
    out = [
        f"| {first} | stack | backend | max rate frames/s | µs/frame at max rate "
        "| µs/frame at 50k/s offered | p50 / p99 ms at 50k/s | lost / dup "
        "| KB per idle socket | handshakes/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        key = (
            row["setup"]
            if first == "setup"
            else row["workers"]
            if first == "workers"
            else f"{row['n']:,}"
        )
        if row.get("connected", row["n"]) < row["n"]:
            key = f"{key} ({row['connected']:,} connected)"  # handshakes cut at their cap
        offered, burst = row["offered"], row["max_rate"]
        lost = offered["lost"] + burst["lost"]
        dup = offered["duplicated"] + burst["duplicated"]
        cut = " (cut)" if burst["timed_out"] else ""
        late = " (backlog)" if offered["timed_out"] else ""
        out.append(
            f"| {key} | {row['stack']} | {row['backend'].split(':')[0]} "
            f"| {burst['frames_per_s']:,.0f}{cut} | {burst['us_per_frame']:.1f} "
            f"| {offered['us_per_frame']:.1f} "
            f"| {offered['p50_ms']:.1f} / {offered['p99_ms']:.1f}{late} | {lost} / {dup} "
            f"| {row['bytes_per_connection'] / 1024:.1f} | {row['handshakes_per_s']:,.0f} |"
        )
    return "\n".join(out)


START, END = "<!-- e2e:start -->", "<!-- e2e:end -->"


def replace_block(text: str, block: str) -> str:
    """*text* with what lies between the two markers replaced by *block*, the rest untouched."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(
            f"expected one {START} line followed by one {END} line; add them where the "
            "generated tables go"
        )
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block.strip()}\n{END}{tail}"


def write_docs(results: dict[str, Any], docs: Path) -> None:
    docs.write_text(replace_block(docs.read_text(), markdown(results)))


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
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    budget = Budget(args.budget)
    plan = Plan(
        sizes=[20, 50] if quick else [int(s) for s in args.sizes.split(",")],
        setups=args.setups.split(","),
        echo_seconds=0.3 if quick else 1.0,
        offered_seconds=0.3 if quick else 1.5,
        max_rate_publications=10 if quick else 200,
        # --quick's sizes would offer one publication every 0.4 ms: a schedule
        # no busy machine keeps, and not what the smoke test is for.
        offered_publications=40 if quick else 10_000,
        redis=args.redis,
        sections=set(args.sections.split(",")),
        quick=quick,
        budget=budget,
        stacks={s for s in args.stacks.split(",") if s} or None,
        window=args.publish_window,
    )
    unknown = plan.sections - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    results: dict[str, Any] = {"machine": machine(), "quick": quick, "budget_s": args.budget}
    results["cpus"] = results["machine"]["cpus"]
    print(
        f"bound: {args.budget:.0f} s (--budget) + {TAIL:.0f} s for the last client and server "
        "to stop: "
        "every phase is capped at what is left of it (and of its section's share), and none "
        "starts once that is spent; "
        f"load average at start {results['machine']['load_average']}",
        flush=True,
    )
    started = time.monotonic()
    elapsed: dict[str, float] = {}
    planned = [(name, weight) for name, weight in SECTION_WEIGHTS if plan.sections & SHARES[name]]
    for index, (name, weight) in enumerate(planned):
        seconds = budget.begin(weight / sum(w for _, w in planned[index:]))
        print(f"== {name} (at most {seconds:.0f} s)", flush=True)
        section_started = time.monotonic()
        if name == "echo+setups":
            echo, setups = echo_and_setups(plan)
            if "echo" in plan.sections:
                results["echo"] = echo
            if "setups" in plan.sections:
                results["setups"] = setups
                check(setups)
        else:
            results[name] = SECTION_RUNS[name](plan)
            check(results[name])
        elapsed[name] = time.monotonic() - section_started
        print(f"   {name}: {elapsed[name]:.0f} s", flush=True)
    results["seconds"] = time.monotonic() - started
    results["section_seconds"] = elapsed
    results["skipped"] = budget.skipped
    results["failed"] = plan.failures
    return results


SECTIONS = ("echo", "setups", "fanout", "workers")
#: The order the sections run in and their weights: each gets this share of
#: the budget left when it begins, over the weights of those still to run
#: (on an idle machine each takes well under its share).
SECTION_WEIGHTS = (("echo+setups", 0.3), ("fanout", 0.55), ("workers", 0.15))
SHARES = {"echo+setups": {"echo", "setups"}, "fanout": {"fanout"}, "workers": {"workers"}}
SECTION_RUNS = {"fanout": fanout_section, "workers": workers_section}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    parser.add_argument("--sizes", default="1000,5000,10000", help="subscriber counts")
    parser.add_argument("--setups", default=",".join(SETUPS), help="server setups for echo")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="which sections to run")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9", help="'' to skip redis://")
    parser.add_argument("--json", default=str(HERE / "e2e.json"), help="where to write the figures")
    parser.add_argument("--plots", default=str(ROOT / "docs"), help="folder for the PNG plots")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--budget",
        type=float,
        default=500.0,
        help="seconds the phases of the whole run may take (default 500; the bound printed "
        "at the start adds the last stop)",
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help=f"rewrite the generated block of --docs (between {START} and {END})",
    )
    parser.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks.md"))
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
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="no run: report (and --write-docs) a saved run's figures",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        results: dict[str, Any] = json.loads(Path(args.from_json).read_text())
    else:
        results = run(args)
        results["command"] = " ".join(["python benchmarks/e2e.py", *(argv or sys.argv[1:])])
        Path(args.json).write_text(json.dumps(results, indent=1))
    print("== ratios against raw, same run")
    for line in ratios(results):
        print("  " + line)
    print(markdown(results))
    if not args.no_plots and results.get("fanout"):
        for path in plots(results, Path(args.plots)):
            print(f"wrote {path}")
    if args.write_docs:
        try:
            write_docs(results, Path(args.docs))
        except ValueError as exc:
            raise SystemExit(f"{args.docs}: {exc}") from None
        print(f"wrote the generated block of {args.docs}")
    for name, seconds in results.get("section_seconds", {}).items():
        print(f"  {name}: {seconds:.0f} s")
    print(f"took {results.get('seconds', 0):.0f} s")
    return results


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        raise_fd_limit()
        asyncio.run(client_main(sys.argv[2], sys.argv[3]))
    else:
        main()
