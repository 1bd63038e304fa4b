"""Across hosts for real: workers in separate network namespaces, the backend in another.

The test builds three network namespaces on this machine (the project's own
test hosts): ``db`` runs the backend, ``a`` and ``b`` each run a lilya
channels worker (``tests/channels/netns_worker.py``), joined to ``db`` by a
veth pair each, on private addresses no other interface routes. So every byte
between the workers crosses a network stack and an interface of its own, as
between hosts, and nothing leaves the namespaces. It proves fan-out (b gets
a's 100 messages in order), presence (a sees b join; b's leave empties it; a
b killed with -9 drops out within the TTL) and recovery (b resumes from its
last position and gets exactly what a published while it was gone). It needs
root and iproute2, and skips, saying why, where namespaces cannot be made;
every namespace it made is deleted however it ends.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.channels.postgres_server import PostgresProcess

pytestmark = [pytest.mark.netns, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
WORKER_TIMEOUT = 90
PRESENCE_TTL = 1.5


class Namespaces:
    """Three namespaces, ``db`` linked to ``a`` and to ``b`` by veth pairs."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.names = {role: f"lilya-{tag}-{role}" for role in ("db", "a", "b")}
        # 10.231.<n>.0/30 per link: db is .1, the worker .2.
        base = int(tag[:2], 16) % 100 + 100
        self.subnets = {"a": f"10.231.{base}", "b": f"10.231.{base + 1}"}
        self.made: list[str] = []

    def db_address(self, worker: str) -> str:
        return f"{self.subnets[worker]}.1"

    def build(self) -> None:
        for name in self.names.values():
            _ip("netns", "add", name)
            self.made.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        db = self.names["db"]
        for worker in ("a", "b"):
            ns, subnet = self.names[worker], self.subnets[worker]
            # Both ends are created inside namespaces: nothing is added to the host's.
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name",
                f"to-{worker}", "netns", db)  # fmt: skip
            _ip("-n", ns, "addr", "add", f"{subnet}.2/30", "dev", "eth0")
            _ip("-n", db, "addr", "add", f"{subnet}.1/30", "dev", f"to-{worker}")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", db, "link", "set", f"to-{worker}", "up")

    def delete(self) -> None:
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        self.made.clear()

    def exec(self, role: str, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.names[role], *command]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _why_no_namespaces() -> str | None:
    if sys.platform != "linux":
        return "network namespaces are a Linux feature"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    if shutil.which("ip") is None:
        return "iproute2 (the ip command) is not installed"
    probe = f"lilya-probe-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@pytest.fixture(scope="module")
def namespaces() -> Iterator[Namespaces]:
    reason = _why_no_namespaces()
    if reason is not None:
        pytest.skip(f"cannot build network namespaces: {reason}")
    spaces = Namespaces()
    try:
        spaces.build()
        yield spaces
    finally:
        spaces.delete()


@pytest.fixture(params=["redis", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_in_db(request: pytest.FixtureRequest, namespaces: Namespaces) -> Iterator[str]:
    """Start the backend inside ``db``; yield its URL template (``{host}``: db's address)."""
    with ExitStack() as stack:
        if request.param == "redis":
            if shutil.which("redis-server") is None:  # pragma: no cover - the machine has it
                pytest.skip("redis-server is not installed")
            port = 6379
            process = subprocess.Popen(
                namespaces.exec("db", "redis-server", "--port", str(port), "--bind",
                                namespaces.db_address("a"), namespaces.db_address("b"),
                                "--save", "", "--appendonly", "no", "--requirepass", "netns"),
                stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            stack.callback(_stop, process)
            # Reached from other "hosts", Redis wants a password (protected mode).
            yield f"redis://:netns@{{host}}:{port}/0"
        else:
            server = PostgresProcess(netns=namespaces.names["db"], host="0.0.0.0")
            stack.callback(server.close)
            server.start()
            yield f"postgres://postgres@{{host}}:{server.port}/postgres"


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait(10)


class Worker:
    """One worker process inside a namespace, read line by line."""

    def __init__(self, namespaces: Namespaces, role: str, url: str, *args: str) -> None:
        command = namespaces.exec(
            role, sys.executable, "-m", "tests.channels.netns_worker", *args[:1], url, *args[1:]
        )
        # ``ip netns exec`` execs the command: this process is the worker itself.
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL, env={**os.environ, "LILYA_PRESENCE_TTL": str(PRESENCE_TTL)},
        )  # fmt: skip

    def line(self) -> Any:
        assert self.process.stdout is not None
        text = self.process.stdout.readline()
        if not text:
            self.process.wait(WORKER_TIMEOUT)
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"worker ended (rc {self.process.returncode}): {stderr}")
        return json.loads(text)

    def finish(self) -> None:
        assert self.process.wait(WORKER_TIMEOUT) == 0
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.process.stderr is not None:
            self.process.stderr.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def run_worker(namespaces: Namespaces, role: str, url: str, *args: str) -> list[Any]:
    worker = Worker(namespaces, role, url, *args)
    try:
        out, err = worker.process.communicate(timeout=WORKER_TIMEOUT)
        assert worker.process.returncode == 0, err
        return [json.loads(text) for text in out.splitlines() if text]
    finally:
        worker.kill()


def test_workers_in_separate_namespaces_share_channels_through_the_backend(
    namespaces: Namespaces, backend_in_db: str
) -> None:
    url_a = backend_in_db.format(host=namespaces.db_address("a"))
    url_b = backend_in_db.format(host=namespaces.db_address("b"))
    prefix = f"lilya-netns:{uuid.uuid4().hex}"
    channel = "room"

    # The namespaces are apart: a cannot reach b's link, only db's end of its own.
    isolated = subprocess.run(
        namespaces.exec("a", "ip", "route", "get", f"{namespaces.subnets['b']}.2"),
        capture_output=True, text=True,
    )  # fmt: skip
    assert isolated.returncode != 0, "a must have no route to b"

    # Fan-out and presence: b subscribes (with presence), a waits to see it, then publishes.
    b = Worker(namespaces, "b", url_b, "subscribe", prefix, channel, "host-b", "100")
    try:
        member = b.line()["ready"]
        published = run_worker(namespaces, "a", url_a, "publish", prefix, channel, "1", "100",
                               "host-b")  # fmt: skip
        assert published[0] == {"presence": {member: {"host": "host-b"}}}
        got = b.line()
        b.finish()
    finally:
        b.kill()
    assert [item["n"] for item in got["data"]] == list(range(1, 101))
    epoch, offset = got["position"]
    assert offset == 100

    # b has gone: its leave reached the backend, so a sees nobody.
    assert run_worker(namespaces, "a", url_a, "presence", prefix, channel) == [{"presence": {}}]

    # Recovery: a publishes 50 while b is away; b resumes from its position.
    run_worker(namespaces, "a", url_a, "publish", prefix, channel, "101", "50")
    resumed = run_worker(
        namespaces, "b", url_b, "subscribe", prefix, channel, "host-b", "50", epoch, str(offset)
    )
    assert resumed[1]["recovered"] is True
    assert [item["n"] for item in resumed[1]["data"]] == list(range(101, 151))
    assert resumed[1]["position"] == [epoch, 150]

    # A host that dies (kill -9: no leave announced) drops out of presence
    # within the TTL, as seen from the other host.
    doomed = Worker(namespaces, "b", url_b, "subscribe", prefix, channel, "host-b", "1000")
    try:
        doomed.line()  # ready: its member is present
        assert run_worker(namespaces, "a", url_a, "presence", prefix, channel)[0]["presence"]
        doomed.kill()
    finally:
        doomed.kill()
    empty = run_worker(namespaces, "a", url_a, "await-empty", prefix, channel)
    assert empty[0]["empty_after"] <= PRESENCE_TTL + PRESENCE_TTL / 3 + 2.0
