"""Run a private ``redis-server`` for a test, on a free loopback port.

Tests that kill Redis need their own server (killing the shared one would
break every other test); they start it here, bounded in time, and always stop
it. Nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.support.servers import free_port

__all__ = ["RedisProcess", "private_redis", "redis_available"]


def redis_available(url: str) -> bool:
    """Whether a Redis answers PING at *url* within a second."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


class RedisProcess:
    """A ``redis-server`` subprocess that a test can kill and restart on the same port.

    Args:
        persistent: keep data across a kill (append-only file, fsync always),
            so a restart comes back with history; otherwise a restart is empty.
        password: require this password.
    """

    def __init__(self, *, persistent: bool = False, password: str | None = None) -> None:
        if shutil.which("redis-server") is None:  # pragma: no cover - the machine has it
            raise RuntimeError("redis-server is not on PATH")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lilya-redis-"))
        self.persistent = persistent
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        argv = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        if self.persistent:
            argv += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            argv += ["--appendonly", "no"]
        if self.password:
            argv += ["--requirepass", self.password]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                if redis_available(self.url):
                    return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on {self.port} within {timeout}s")

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        """Stop the server and remove its files."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def private_redis(*, persistent: bool = False, password: str | None = None) -> Iterator[RedisProcess]:
    """Start a private Redis for the block, always stopping it afterwards."""
    server = RedisProcess(persistent=persistent, password=password)
    try:
        server.start()
        yield server
    finally:
        server.close()
