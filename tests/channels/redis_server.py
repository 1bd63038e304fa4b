"""Run a private ``redis-server`` for a test, on a free loopback port.

Tests that kill Redis need their own server (killing the shared one would
break every other test); they start it here, bounded in time, and always stop
it. Nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
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

__all__ = ["RedisProcess", "delete_keys", "private_redis", "redis_available", "redis_url_for_tests"]


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
        tls: speak only TLS, with a self-signed certificate made for the test.
    """

    def __init__(
        self, *, persistent: bool = False, password: str | None = None, tls: bool = False
    ) -> None:
        if shutil.which("redis-server") is None:  # pragma: no cover - the machine has it
            raise RuntimeError("redis-server is not on PATH")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lilya-redis-"))
        self.persistent = persistent
        self.password = password
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.dir / 'cert.pem'}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _make_certificate(self) -> list[str]:
        cert, key = self.dir / "cert.pem", self.dir / "key.pem"
        if not cert.exists():
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                 "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                 "-addext", "subjectAltName=IP:127.0.0.1"],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
        return ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert),
                "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                "--tls-auth-clients", "no"]  # fmt: skip

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        argv = [
            "redis-server",
            *(self._make_certificate() if self.tls else ["--port", str(self.port)]),
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
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
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
def private_redis(
    *, persistent: bool = False, password: str | None = None, tls: bool = False
) -> Iterator[RedisProcess]:
    """Start a private Redis for the block, always stopping it afterwards."""
    server = RedisProcess(persistent=persistent, password=password, tls=tls)
    try:
        server.start()
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def redis_url_for_tests(default_db: int) -> Iterator[str]:
    """Yield a Redis URL for tests: the machine's (``.ci/run`` starts it), else a private one.

    ``LILYA_TEST_REDIS_URL`` points the tests elsewhere; each test suite takes
    its own database number so their keys never meet.
    """
    url = os.environ.get("LILYA_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{default_db}")
    if redis_available(url):
        yield url
        return
    with private_redis() as server:  # pragma: no cover - only where no Redis runs
        yield server.url


def delete_keys(url: str, prefix: str) -> None:
    """Delete every key under *prefix*: tests leave Redis as they found it."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
