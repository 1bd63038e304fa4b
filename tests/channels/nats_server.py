"""NATS with JetStream for tests: the machine's server, or a private one to kill.

Tests that kill NATS start their own ``nats-server -js`` (killing the shared
one would break every other test) on a free loopback port with a store
directory of its own, and always stop it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import nats
import nats.errors
import nats.js.errors

from tests.support.servers import free_port

__all__ = ["NATS_URL", "NatsProcess", "delete_stream", "nats_available"]

NATS_URL = os.environ.get("LILYA_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _run(coroutine: object) -> object:
    """Run *coroutine* on an event loop of its own (callers may be inside one)."""
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        return executor.submit(asyncio.run, coroutine).result(timeout=30)  # type: ignore[arg-type]


def nats_available(url: str) -> bool:
    """Whether a NATS server with JetStream answers at *url* within two seconds."""

    async def ping() -> bool:
        try:
            client = await nats.connect(url, connect_timeout=1, allow_reconnect=False)
        except (OSError, nats.errors.Error):
            return False
        try:
            await client.jetstream().account_info()
        except (OSError, nats.errors.Error):
            return False
        finally:
            await client.close()
        return True

    return bool(_run(ping()))


def delete_stream(url: str, key_prefix: str) -> None:
    """Delete the stream and presence bucket lilya made for *key_prefix*, if any."""
    from lilya.channels.backend import BackendSettings
    from lilya.channels.nats import NatsBackend

    backend = NatsBackend(url, BackendSettings(0, None, key_prefix, (0.1, 0.1)))

    async def delete() -> None:
        client = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
        try:
            manager = client.jetstream()
            for name in (backend.stream, f"KV_{backend.bucket}"):
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await manager.delete_stream(name)
        finally:
            await client.close()

    _run(delete())


class NatsProcess:
    """A ``nats-server -js`` subprocess that a test can kill, pause and restart on one port."""

    def __init__(self, *, jetstream: bool = True) -> None:
        self.jetstream = jetstream
        if shutil.which("nats-server") is None:  # pragma: no cover - .ci/run installs it
            raise RuntimeError("nats-server is not on PATH")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lilya-nats-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart) the server and wait until JetStream answers."""
        argv = ["nats-server", "-a", "127.0.0.1", "-p", str(self.port),
                "-sd", str(self.dir / "store"), "-l", str(self.dir / "nats.log")]  # fmt: skip
        if self.jetstream:
            argv.append("-js")
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:  # pragma: no cover - a broken install
                raise RuntimeError(f"nats-server exited with {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                if not self.jetstream or nats_available(self.url):
                    return
            time.sleep(0.02)
        raise RuntimeError(
            f"nats-server did not start on {self.port} within {timeout}s"
        )  # pragma: no cover

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open, nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        # The signal lands asynchronously: wait until the kernel says stopped,
        # or a request sent right after could still be answered.
        stat = Path(f"/proc/{self.process.pid}/stat")
        deadline = time.monotonic() + 5
        while stat.read_text().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
            assert time.monotonic() < deadline, "nats-server did not stop"
            time.sleep(0.001)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop the server and remove its files."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
