"""Which server setup holds against a hostile client? Probes each one over loopback.

Run it as ``python benchmarks/server_setups.py`` (all six setups) or with
``--setups uvicorn-wsproto,uvicorn-websockets-sansio`` and ``--python
/tmp/uv046/bin/python`` to probe the uvicorn installed in another virtualenv
(that is how the uvicorn floor in ``pyproject.toml`` was found). It prints
one row per setup, and ``--markdown`` prints the table of ``docs/servers.md``.

Every probe talks raw bytes over a socket, so what it records is what the
server did, not what a client library made of it:

- ``long line`` / ``long header`` / ``many headers``: 50 handshakes with a
  16 KB request line, a 16 KB header, or 300 headers; passes when every one is
  answered (an HTTP 4xx) and closed by the server within 5 s, and the server
  holds no more file descriptors afterwards than before.
- ``denial log``: 20 handshakes refused with a denial response and 20 closed
  before accept; passes when the server logs no ERROR for them (the app did
  nothing wrong).
- ``invalid UTF-8``: a text frame that is not UTF-8; passes on a 1007 close
  and no traceback in the log.
- ``keepalive``: with a 1 s ping interval and timeout, a client that never
  answers; passes when the server pings and then closes within 6 s.
- ``max size``: with a 64 KiB limit, a 100 KiB message; passes on a 1009
  close before the app sees it.
- ``echo``: round trips per second of a 64-byte text message with the
  ``websockets`` client (the setups take turns, ``--rounds`` times, so a busy
  machine weighs on all of them alike; the figure is each one's best turn).

The ASGI app below has no dependency but the standard library, so the
throwaway virtualenvs need only the server.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SETUPS = (
    "uvicorn-websockets",
    "uvicorn-websockets-sansio",
    "uvicorn-wsproto",
    "hypercorn",
    "granian",
    "daphne",
)
PROBES = (
    "long line",
    "long header",
    "many headers",
    "denial log",
    "invalid UTF-8",
    "keepalive",
    "max size",
)
MAX_SIZE = 65536


# -- the app -------------------------------------------------------------------
async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echo on ``/echo``; refuse with a denial on ``/deny``, with a close on ``/close``."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    message = await receive()
    if scope["path"] == "/deny":
        body = b"denied"
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"6")]
        await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    if scope["path"] == "/close":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes") if message.get("text") is None else message["text"]
        size = len(data or "")
        if size > MAX_SIZE:
            print(f"PROBE-APP got a message of {size} bytes", flush=True)
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


# -- servers -------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command(setup: str, python: str, port: int, knobs: str, tmp: Path) -> list[str] | None:
    """The command line for *setup* with *knobs* (``""``, ``"ping"``, ``"size"``); None: no knob."""
    target = "server_setups:app"
    if setup.startswith("uvicorn"):
        argv = [python, "-m", "uvicorn", target, "--port", str(port), "--app-dir", str(HERE)]
        argv += ["--ws", setup.removeprefix("uvicorn-"), "--no-access-log"]
        if knobs == "ping":
            argv += ["--ws-ping-interval", "1", "--ws-ping-timeout", "1"]
        if knobs == "size":
            argv += ["--ws-max-size", str(MAX_SIZE)]
        return argv
    if setup == "hypercorn":
        argv = [python, "-m", "hypercorn", target, "--bind", f"127.0.0.1:{port}"]
        if knobs == "ping":
            argv += ["--websocket-ping-interval", "1"]
        if knobs == "size":
            config = tmp / "hypercorn.toml"
            config.write_text(f"websocket_max_message_size = {MAX_SIZE}\n")
            argv += ["--config", str(config)]
        return argv
    if setup == "granian":
        if knobs:
            return None
        return [python, "-m", "granian", "--interface", "asgi", "--port", str(port), target]
    if setup == "daphne":
        argv = [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), target]
        if knobs == "ping":
            argv[3:3] = ["--ping-interval", "1", "--ping-timeout", "1"]
        if knobs == "size":
            argv[3:3] = ["--websocket-max-message-size", str(MAX_SIZE)]
        return argv
    raise ValueError(setup)


HERE = Path(__file__).resolve().parent


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))


@contextlib.contextmanager
def running(argv: list[str], port: int, tmp: Path) -> Iterator[Server]:
    log_path = tmp / f"server-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(HERE)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=HERE
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{argv} exited:\n{log_path.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        time.sleep(0.3)  # let the connect probe's own socket be closed
        yield Server(process, port, log_path)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- a raw client ----------------------------------------------------------------
def handshake_bytes(path: str = "/echo", extra: str = "", port: int = 0) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    ).encode("latin-1")


def frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def read_frames(sock: socket.socket, timeout: float) -> tuple[list[tuple[int, bytes]], bool]:
    """Read frames for up to *timeout* seconds or until EOF; return them and whether EOF came."""
    buffer = b""
    deadline = time.monotonic() + timeout
    eof = False
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:
            eof = True
            break
        if not chunk:
            eof = True
            break
        buffer += chunk
        if any(op == 8 for op, _ in parse(buffer)):
            # Give the server a moment to drop the TCP connection after its close.
            continue
    return parse(buffer), eof


def parse(buffer: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while len(buffer) >= 2:
        opcode, size = buffer[0] & 0x0F, buffer[1] & 0x7F
        offset = 2
        if size == 126:
            if len(buffer) < 4:
                break
            (size,) = struct.unpack("!H", buffer[2:4])
            offset = 4
        elif size == 127:
            if len(buffer) < 10:
                break
            (size,) = struct.unpack("!Q", buffer[2:10])
            offset = 10
        if len(buffer) < offset + size:
            break
        frames.append((opcode, buffer[offset : offset + size]))
        buffer = buffer[offset + size :]
    return frames


def open_socket(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), 5)
    sock.sendall(handshake_bytes(port=port))
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        response += chunk
    if not response.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(response[:80].decode("latin-1"))
    return sock


def close_code(frames: list[tuple[int, bytes]]) -> int | None:
    for opcode, payload in frames:
        if opcode == 8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    return None


# -- probes ----------------------------------------------------------------------
def oversized(server: Server, request: bytes, count: int = 50) -> str:
    """Send *request* on *count* connections: each must be answered, and a refusal closed."""
    before = server.fds()
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", server.port), 5)
        sock.sendall(request)
        sockets.append(sock)
    refused = accepted = silent = 0
    deadline = time.monotonic() + 5
    for sock in sockets:
        data = b""
        closed = False
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
            if data.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in data:
                break  # an open WebSocket: the app's to keep
        if data.startswith(b"HTTP/1.1 101"):
            accepted += 1
        elif data.startswith(b"HTTP/") and closed:
            refused += 1
        else:
            silent += 1
    held = server.fds() - before
    for sock in sockets:
        sock.close()
    time.sleep(1)
    left = server.fds() - before
    ok = silent == 0 and left <= 2
    parts = []
    if refused:
        parts.append(f"{refused} refused and closed")
    if accepted:
        parts.append(f"{accepted} accepted")
    if silent:
        parts.append(f"{silent} not answered and closed in 5 s ({held} fds held)")
    if left > 2:
        parts.append(f"{left} fds left after the clients closed")
    return f"{'✓' if ok else '✗'} " + ", ".join(parts)


def probe_long_line(server: Server) -> str:
    return oversized(server, handshake_bytes("/echo?q=" + "a" * 16000, port=server.port))


def probe_long_header(server: Server) -> str:
    return oversized(server, handshake_bytes(extra="X-Big: " + "b" * 16000 + "\r\n"))


def probe_many_headers(server: Server) -> str:
    extra = "".join(f"X-H{i}: {'c' * 50}\r\n" for i in range(300))
    return oversized(server, handshake_bytes(extra=extra, port=server.port))


def probe_denial_log(server: Server) -> str:
    before = server.log().count("ERROR")
    for path in ("/deny", "/close") * 20:
        with socket.create_connection(("127.0.0.1", server.port), 5) as sock:
            sock.sendall(handshake_bytes(path, port=server.port))
            sock.settimeout(2)
            answer = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in answer:  # the status and headers are enough
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
    time.sleep(0.5)
    errors = server.log().count("ERROR") - before
    return f"{'✓' if errors == 0 else '✗'} {errors} ERROR lines for 40 refusals"


def probe_invalid_utf8(server: Server) -> str:
    sock = open_socket(server.port)
    sock.sendall(frame(0x1, b"ok \xff\xfe not utf-8"))
    frames, eof = read_frames(sock, 3)
    sock.close()
    time.sleep(0.3)
    code = close_code(frames)
    traceback = "Traceback" in server.log()
    ok = not traceback  # the close code is shown: 1007 is right, a drop is rude but safe
    shown = code if code is not None else ("drop" if eof else "nothing")
    return f"{'✓' if ok else '✗'} close {shown}{', traceback' if traceback else ''}"


def probe_keepalive(server: Server | None) -> str:
    if server is None:
        return "✗ no knob"
    sock = open_socket(server.port)
    start = time.monotonic()
    frames, eof = read_frames(sock, 6)
    took = time.monotonic() - start
    sock.close()
    pinged = any(op == 9 for op, _ in frames)
    code = close_code(frames)
    ok = pinged and (eof or code is not None)
    end = f"closed {code or 'by drop'} after {took:.1f} s" if eof or code else "not closed in 6 s"
    return f"{'✓' if ok else '✗'} {'pinged' if pinged else 'no ping'}, {end}"


def probe_max_size(server: Server | None) -> str:
    if server is None:
        return "✗ no knob"
    sock = open_socket(server.port)
    with contextlib.suppress(OSError):
        sock.sendall(frame(0x2, b"x" * 100_000))
    frames, eof = read_frames(sock, 3)
    sock.close()
    time.sleep(0.3)
    code = close_code(frames)
    seen = "PROBE-APP got" in server.log()
    ok = code == 1009 and not seen
    shown = code if code is not None else ("drop" if eof else "nothing")
    return f"{'✓' if ok else '✗'} close {shown}{', app got it' if seen else ''}"


def echo_rate(port: int, seconds: float = 2.0) -> float:
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{port}/echo", compression=None) as client:
        payload = "x" * 64
        count = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            client.send(payload)
            client.recv()
            count += 1
    return count / seconds


@dataclass
class Row:
    setup: str
    results: dict[str, str] = field(default_factory=dict)
    rates: list[float] = field(default_factory=list)


def measure(setup: str, python: str, tmp: Path) -> Row:
    row = Row(setup)
    print(f"probing {setup}…", file=sys.stderr, flush=True)
    port = free_port()
    argv = command(setup, python, port, "", tmp)
    assert argv is not None
    with running(argv, port, tmp) as server:
        row.results["long line"] = probe_long_line(server)
        row.results["long header"] = probe_long_header(server)
        row.results["many headers"] = probe_many_headers(server)
        row.results["denial log"] = probe_denial_log(server)
        row.results["invalid UTF-8"] = probe_invalid_utf8(server)
    for knobs, name, probe in (
        ("ping", "keepalive", probe_keepalive),
        ("size", "max size", probe_max_size),
    ):
        port = free_port()
        argv = command(setup, python, port, knobs, tmp)
        if argv is None:
            row.results[name] = probe(None)
            continue
        with running(argv, port, tmp) as server:
            row.results[name] = probe(server)
    return row


def measure_rates(rows: list[Row], python: str, tmp: Path, rounds: int = 2) -> None:
    for _ in range(rounds):
        for row in rows:
            port = free_port()
            argv = command(row.setup, python, port, "", tmp)
            assert argv is not None
            with running(argv, port, tmp):
                row.rates.append(echo_rate(port))


def version(python: str, setup: str) -> str:
    package = setup.split("-")[0]
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter whose server runs"
    )
    parser.add_argument("--no-echo", action="store_true", help="skip the throughput figure")
    parser.add_argument("--echo-only", action="store_true", help="only the throughput figure")
    parser.add_argument("--rounds", type=int, default=2, help="turns each setup takes at echo")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    setups = [s for s in args.setups.split(",") if s]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if args.echo_only:
            rows = [Row(setup) for setup in setups]
        else:
            rows = [measure(setup, args.python, tmp) for setup in setups]
        if not args.no_echo:
            measure_rates(rows, args.python, tmp, args.rounds)
    if args.json:
        print(json.dumps([{"setup": r.setup, **r.results, "echo": r.rates} for r in rows]))
        return
    if args.markdown:
        print("| probe | " + " | ".join(f"`{r.setup}`" for r in rows) + " |")
        print("|---|" + "---|" * len(rows))
        for probe in PROBES if not args.echo_only else ():
            print(f"| {probe} | " + " | ".join(r.results[probe] for r in rows) + " |")
        if not args.no_echo:
            best = max(max(r.rates) for r in rows)
            cells = [f"{max(r.rates):,.0f}/s ({max(r.rates) / best:.2f})" for r in rows]
            print("| echo round trips | " + " | ".join(cells) + " |")
        return
    for row in rows:
        print(f"{row.setup} ({version(args.python, row.setup)})")
        for probe in PROBES if not args.echo_only else ():
            print(f"  {probe:14} {row.results[probe]}")
        if row.rates:
            rates = ", ".join(f"{rate:,.0f}" for rate in row.rates)
            print(f"  {'echo':14} {max(row.rates):,.0f} round trips/s (each round: {rates})")


if __name__ == "__main__":
    main()
