"""PostgreSQL for tests: the machine's shared server, or a private cluster to kill.

Tests that restart Postgres need their own cluster (stopping the shared one
would break every other test): ``PostgresProcess`` makes one with ``initdb``
in a temporary directory, on a free loopback port, run as the ``postgres``
user when the tests run as root (Postgres refuses to run as root).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from tests.support.servers import free_port

__all__ = ["POSTGRES_URL", "PostgresProcess", "delete_rows", "postgres_available"]

POSTGRES_URL = os.environ.get("LILYA_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")


def postgres_available(url: str) -> bool:
    """Whether PostgreSQL answers at *url* within two seconds."""

    async def ping() -> bool:
        try:
            connection = await asyncpg.connect(url, timeout=2.0)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await connection.close()
        return True

    return asyncio.run(ping())


def delete_rows(url: str, key_prefix: str) -> None:
    """Delete every row a test wrote under *key_prefix* (tables exist once lilya ran)."""

    async def delete() -> None:
        connection = await asyncpg.connect(url, timeout=5.0)
        try:
            for table in ("lilya_channel", "lilya_channel_message", "lilya_channel_member"):
                with contextlib.suppress(asyncpg.UndefinedTableError):
                    await connection.execute(f"DELETE FROM {table} WHERE ns = $1", key_prefix)
        finally:
            await connection.close()

    # Called from inside a running event loop (a fixture's teardown), so on a thread of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        executor.submit(asyncio.run, delete()).result(timeout=30)


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:  # pragma: no cover - the machine has PostgreSQL
        raise RuntimeError(f"{name} not found under /usr/lib/postgresql/*/bin")
    return found[-1]


class PostgresProcess:
    """A private PostgreSQL cluster a test can kill -9 and start again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lilya-pg-"))
        self.data = self.dir / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        if self._as_postgres:
            command = ("runuser", "-u", "postgres", "--", *command)
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-w", "-t", "30", "-l", str(self.dir / "log"),
            "-o", f"-p {self.port} -h 127.0.0.1 -k {self.dir} -F", "start",
        )  # fmt: skip

    def kill(self) -> None:
        """kill -9 the postmaster and its children: a crash, not a shutdown."""
        pid_file = self.data / "postmaster.pid"
        pid = int(pid_file.read_text().split()[0])
        subprocess.run(["pkill", "-9", "-P", str(pid)], check=False)
        os.kill(pid, 9)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            subprocess.run(["sleep", "0.05"], check=False)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
