"""Size-limit benchmark: eight clients send 16 MiB at once to a route that takes 64 KiB.

``lilya run`` serves ``benchmarks/size_limit_app.py`` (one route with
``max_message_size=64 KiB``) twice in one run:

* **lilya run's default**: no ``--ws-max-size``, so lilya gives uvicorn the
  app's largest limit (64 KiB) and the server refuses each message after
  reading at most that much of it;
* **baseline**: ``--ws-max-size 16777216`` (what uvicorn does on its own, and
  what ``lilya run`` did before): the server buffers each 16 MiB message whole
  before lilya's route check refuses it.

Each time, eight clients (raw sockets: one frame header announcing 16 MiB,
then the payload in 64 KiB writes, as fast as TCP takes it) send at once. We
print the server's resident memory before, its peak during (``VmHWM`` from
``/proc``: the kernel's high-water mark, so no sampling can miss it), the
growth, the close code each client got, and the growth of the default as a
fraction of the baseline's.

Run by hand, never from the tests (Linux only: it reads ``/proc``)::

    python benchmarks/size_limit.py [--clients 8] [--size 16777216]
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def memory_kib(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` field (``VmRSS``, ``VmHWM``) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def handshake(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed during the handshake")
        response += chunk
    if not response.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(response.split(b"\r\n")[0].decode())
    return sock


def send_big(sock: socket.socket, size: int, results: list[str]) -> None:
    """Send one binary frame of *size* bytes (masked, zero key), then read the close."""
    header = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", size) + b"\0\0\0\0"
    chunk = bytes(64 * 1024)
    sent = 0
    try:
        sock.sendall(header)
        while sent < size:
            sock.sendall(chunk[: min(len(chunk), size - sent)])
            sent += min(len(chunk), size - sent)
    except OSError:
        pass  # the server closed while we were writing: what we measure
    try:
        data = sock.recv(4096)
        code = struct.unpack("!H", data[2:4])[0] if len(data) >= 4 and data[0] == 0x88 else None
        results.append(f"close {code} after {sent // 1024} KiB sent")
    except OSError as exc:
        results.append(f"{type(exc).__name__} after {sent // 1024} KiB sent")
    finally:
        sock.close()


def run(label: str, extra: list[str], clients: int, size: int) -> int:
    port = free_port()
    command = [sys.executable, "-m", "lilya", "run", "benchmarks.size_limit_app:app"]
    command += ["--port", str(port), "--log-level", "warning", *extra]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                handshake(port).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        time.sleep(0.5)
        before = memory_kib(server.pid, "VmRSS")
        # The high-water mark so far includes start-up; reset it (Linux >= 4.0).
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")
        sockets = [handshake(port) for _ in range(clients)]
        results: list[str] = []
        threads = [
            threading.Thread(target=send_big, args=(sock, size, results)) for sock in sockets
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        time.sleep(0.5)
        peak = memory_kib(server.pid, "VmHWM")
        growth = max(0, peak - before)
        print(
            f"{label:<28} RSS before {before / 1024:7.1f} MB, peak {peak / 1024:7.1f} MB, "
            f"growth {growth / 1024:7.1f} MB; clients: {sorted(set(results))}"
        )
        return growth
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--size", type=int, default=16 * MiB)
    args = parser.parse_args()
    print(f"{args.clients} clients x {args.size / MiB:g} MiB against a 64 KiB route")
    default = run("lilya run (default)", [], args.clients, args.size)
    baseline = run(
        "--ws-max-size 16777216", ["--ws-max-size", str(16 * MiB)], args.clients, args.size
    )
    print(f"growth of the default: {default / max(1, baseline):.3f}x the baseline's")


if __name__ == "__main__":
    main()
