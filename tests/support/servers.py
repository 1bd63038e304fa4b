"""Run a real ASGI server in a subprocess for a test, on a free loopback port.

Every wait is bounded and the process is always stopped, so a broken server
fails the test instead of hanging the suite. The server's output goes to a log
file the test can read, e.g. to prove that no traceback was printed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[2]

#: Server setups by name: uvicorn with each WebSocket implementation, then the others.
SERVERS = (
    "uvicorn-websockets",
    "uvicorn-websockets-sansio",
    "uvicorn-wsproto",
    "hypercorn",
    "granian",
    "daphne",
)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(server: str, app: str, port: int) -> list[str]:
    """Return the command line that serves *app* (``module:attr``) with *server*."""
    py = sys.executable
    if server.startswith("uvicorn"):
        ws = server.removeprefix("uvicorn-") if server != "uvicorn" else "auto"
        return [
            py,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ws",
            ws,
            "--log-level",
            "info",
            "--no-access-log",
        ]
    if server == "hypercorn":
        return [py, "-m", "hypercorn", app, "--bind", f"127.0.0.1:{port}"]
    if server == "granian":
        return [
            py,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            app,
        ]
    if server == "daphne":
        return [py, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]
    raise ValueError(f"unknown server {server!r}; expected one of {', '.join(SERVERS)}")


@dataclass
class RunningServer:
    """A server subprocess: where it listens and what it printed."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self, path: str, **kwargs: object) -> ClientConnection:
        """Open a real WebSocket client (``websockets``, sync) to *path*, bounded in time."""
        # **kwargs are connect()'s keyword options, which mypy cannot match to `object`.
        return connect(  # type: ignore[call-overload, no-any-return]
            self.ws_url + path, open_timeout=10, close_timeout=5, **kwargs
        )

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 5.0) -> str:
        """Wait until *text* appears in the log; return the log. Fails after *timeout*."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log:
                return log
            time.sleep(0.02)
        raise AssertionError(f"{text!r} did not appear in the {self.name} log:\n{self.log()}")


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop *process* (SIGINT, then SIGKILL after *timeout*) and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


@contextlib.contextmanager
def serve(
    app: str,
    server: str = "uvicorn",
    *,
    command: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[RunningServer]:
    """Serve *app* (``module:attr``, importable from the repo root) on a free port.

    Pass *command* to run something else (``{port}`` in it is replaced).
    """
    port = port or free_port()
    if command is None:
        argv = server_command(server, app, port)
    else:
        argv = [part.replace("{port}", str(port)) for part in command]
    fd, name = tempfile.mkstemp(prefix=f"lilya-{server}-", suffix=".log")
    log_path = Path(name)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p
    )
    with os.fdopen(fd, "wb") as log_file:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_listening(port, process, log_path, startup_timeout)
        yield RunningServer(server, port, process, log_path)
    finally:
        stop(process)
        log_path.unlink(missing_ok=True)


def tracebacks(log: str) -> list[str]:
    """Return the tracebacks printed in a server *log* (empty when there are none)."""
    return log.split("Traceback (most recent call last)")[1:]


def raised(log: str) -> list[str]:
    """Return the exception line (``"RuntimeError: boom"``) of each traceback in *log*.

    A chained traceback ("During handling of the above exception…") counts as
    one per ``Traceback`` header, as Python prints it.
    """
    lines: list[str] = []
    for chunk in tracebacks(log):
        # Frames are indented; the first unindented line after them is the exception.
        body = chunk.splitlines()[1:]
        lines.append(next((line for line in body if line and not line[0].isspace()), ""))
    return lines
