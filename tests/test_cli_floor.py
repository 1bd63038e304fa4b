"""``lilya run`` at the lowest uvicorn and wsproto that ``pyproject.toml`` allows.

The floor is where the default setup (``--ws wsproto``) first holds: uvicorn
0.46 is the first release whose wsproto implementation honours
``--ws-max-size`` and sends keepalive pings (measured with
``benchmarks/server_setups.py``; ``docs/servers.md``). This test builds a
virtualenv with exactly those versions (in ``.venv-floor/``, kept between runs
until ``pyproject.toml`` changes),
installs lilya into it, and runs a real server from it against a real client.
"""

from __future__ import annotations

import hashlib
import re
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.servers import ROOT, serve, tracebacks

pytestmark = [pytest.mark.server, pytest.mark.slow]


def floor(package: str) -> str:
    """The lower bound ``pyproject.toml`` declares for *package* (``"uvicorn>=0.46"``)."""
    found = re.search(rf'"{package}>=([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert found is not None, f"pyproject.toml declares no {package}>= floor"
    return found.group(1)


def version_of(python: Path, package: str) -> str:
    """The version of *package* that *python* imports ("" when it has none)."""
    if not python.exists():
        return ""
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def floor_python() -> Path:
    """A virtualenv's python with lilya and the floor uvicorn and wsproto installed."""
    pins = {package: floor(package) for package in ("uvicorn", "wsproto")}
    venv = ROOT / ".venv-floor"
    python = venv / "bin" / "python"
    # Rebuilt whenever pyproject.toml changes (a new dependency must be installed too).
    stamp = venv / "pyproject.sha256"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True, timeout=120)
        install = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        install += [str(ROOT), *(f"{name}=={pin}" for name, pin in pins.items())]
        subprocess.run(install, check=True, timeout=600)
        stamp.write_text(digest)
    for name, pin in pins.items():
        assert version_of(python, name) in (pin, pin + ".0")
    return python


def test_lilya_run_holds_at_the_uvicorn_floor(floor_python: Path) -> None:
    command = [str(floor_python), "-m", "lilya", "run", "tests.support.cli_apps:app"]
    command += ["--port", "{port}", "--ws-max-size", "1024"]
    command += ["--ws-ping-interval", "0.5", "--ws-ping-timeout", "0.5"]
    with serve("", "lilya-floor", command=command) as server:
        with server.connect("/echo") as ws:
            ws.send("hello")
            assert ws.recv(timeout=5) == "hello"
            ws.send(b"x" * 1025)  # over --ws-max-size
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009

        # A browser page of another site is refused, and the log has no false ERROR.
        with pytest.raises(InvalidStatus) as refused:
            server.connect("/echo", origin="http://evil.example")
        assert refused.value.response.status_code == 403

        # A client that never answers pings is closed by the server.
        with socket.create_connection(("127.0.0.1", server.port), 5) as sock:
            sock.sendall(
                b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            data = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                data += chunk
        frames = data.split(b"\r\n\r\n", 1)[1]
        assert frames[:1] == b"\x89"  # a ping came first
        assert struct.pack("!H", 1011) + b"keepalive ping timeout" in frames
        log = server.log()
    assert "on uvicorn with --ws wsproto" in log
    assert "ERROR" not in log, log
    assert tracebacks(log) == [], log
