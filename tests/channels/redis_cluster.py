"""Run a private Redis Cluster (and a Sentinel group) on loopback for a test.

A cluster is six ``redis-server --cluster-enabled yes`` processes on free
ports (three masters, three replicas) joined by ``redis-cli --cluster
create``; a Sentinel group is one master, one replica and three
``redis-server --sentinel`` processes. Node timeouts are short (one second)
so a failover after ``kill -9`` takes seconds, not the default fifteen. Every
wait is bounded, and everything is killed and its files removed at the end.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

__all__ = [
    "Node",
    "RedisCluster",
    "RedisSentinels",
    "command",
    "delete_cluster_keys",
    "delete_sentinel_keys",
    "redis_cluster",
    "redis_sentinels",
]


def command(client: redis.Redis, *args: Any) -> Any:
    """Run one raw command (redis-py's ``execute_command`` is untyped)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def cluster_port() -> int:
    """A free port at most 55535 whose cluster bus port (+10000) is free too.

    Redis refuses cluster ports above 55535, and the kernel's ephemeral range
    (what binding port 0 gives) reaches past it.
    """
    for _ in range(1000):
        port = random.randint(20000, 55535)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class Node:
    """One ``redis-server`` process (cluster node, master, replica or sentinel)."""

    def __init__(self, root: Path, argv: list[str], *, sentinel: bool = False) -> None:
        self.port = cluster_port()
        self.dir = root / str(self.port)
        self.dir.mkdir()
        self.extra = argv
        self.sentinel = sentinel
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.sentinel:
            config = self.dir / "sentinel.conf"
            config.write_text(
                f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n" + "\n".join(self.extra) + "\n"
            )
            argv = ["redis-server", str(config), "--sentinel"]
        else:
            argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                    "--dir", str(self.dir), "--save", "", "--appendonly", "no",
                    "--daemonize", "no", *self.extra]  # fmt: skip
        argv += ["--logfile", str(self.dir / "redis.log")]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5)

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"redis-server on {self.port} exited early; see {self.dir}")
            client = self.client()
            try:
                if client.ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                time.sleep(0.05)
            finally:
                client.close()
        raise RuntimeError(f"redis-server on {self.port} did not start in time")

    def kill(self) -> None:
        """SIGKILL it, as a crash would, and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None


def _wait(what: str, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not happen within {timeout}s")


class RedisCluster:
    """Three masters and three replicas on loopback; ``url`` is the ``redis+cluster://`` URL."""

    def __init__(self, root: Path) -> None:
        # Validity factor 0: a replica takes over however stale it thinks it
        # is (the tests kill a master seconds after the cluster formed).
        args = ["--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
                "--cluster-replica-validity-factor", "0"]  # fmt: skip
        self.nodes = [Node(root, args) for _ in range(6)]
        for node in self.nodes:
            node.extra = [*args, "--cluster-config-file", str(node.dir / "nodes.conf")]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready(deadline)
        subprocess.run(
            ["redis-cli", "--cluster", "create",
             *(f"127.0.0.1:{node.port}" for node in self.nodes),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=max(1.0, deadline - time.monotonic()),
        )  # fmt: skip
        _wait("the cluster reaching state ok", self.healthy, max(1.0, deadline - time.monotonic()))
        _wait("the replicas syncing", self._replicas_synced, max(1.0, deadline - time.monotonic()))

    def _replicas_synced(self) -> bool:
        synced = 0
        for node in self.nodes:
            client = node.client()
            try:
                info = client.info("replication")
                synced += info.get("role") == "slave" and info.get("master_link_status") == "up"
            finally:
                client.close()
        return synced == 3

    def healthy(self) -> bool:
        """Every live node says cluster_state:ok and sees three masters with slots."""
        for node in self.nodes:
            if node.process is None:
                continue
            client = node.client()
            try:
                info = command(client, "CLUSTER", "INFO")
                if b"cluster_state:ok" not in info:
                    return False
                shards = command(client, "CLUSTER", "SLOTS")
                if len(shards) < 3:
                    return False
            finally:
                client.close()
        return True

    def master_of(self, key: str) -> Node:
        """The node that serves *key*'s slot right now."""
        for node in self.nodes:
            if node.process is None:
                continue
            client = node.client()
            try:
                slot = command(client, "CLUSTER", "KEYSLOT", key)
                for start, end, master, *_ in command(client, "CLUSTER", "SLOTS"):
                    if start <= slot <= end:
                        port = int(master[1])
                        return next(n for n in self.nodes if n.port == port)
            finally:
                client.close()
        raise RuntimeError("no live cluster node answered")

    def wait_failover(self, dead: Node, key: str, timeout: float = 60.0) -> Node:
        """Wait until a replica took over *key*'s slot from *dead*; return the new master."""
        new: list[Node] = []

        def promoted() -> bool:
            master = self.master_of(key)
            if master is dead or not self.healthy():
                return False
            new.append(master)
            return True

        _wait("a replica taking over", promoted, timeout)
        return new[-1]

    def move_slot_of(self, key: str) -> Node:
        """Migrate *key*'s slot, with its keys, to another master; return that master.

        The steps ``redis-cli --cluster reshard`` takes for one slot:
        IMPORTING/MIGRATING, ``MIGRATE`` the keys, then ``SETSLOT … NODE``
        on every master.
        """
        source = self.master_of(key)
        masters = [n for n in self.nodes if n.process is not None and self._role(n) == "master"]
        target = next(n for n in masters if n is not source)
        src, dst = source.client(), target.client()
        try:
            slot = int(command(src, "CLUSTER", "KEYSLOT", key))
            src_id = command(src, "CLUSTER", "MYID")
            dst_id = command(dst, "CLUSTER", "MYID")
            command(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            command(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            while keys := command(src, "CLUSTER", "GETKEYSINSLOT", slot, 100):
                command(src, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            for master in masters:
                client = master.client()
                try:
                    command(client, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
                finally:
                    client.close()
        finally:
            src.close()
            dst.close()
        _wait("every node seeing the move", lambda: self.master_of(key) is target, 30.0)
        return target

    def _role(self, node: Node) -> str:
        client = node.client()
        try:
            return str(client.info("replication").get("role"))
        finally:
            client.close()

    def close(self) -> None:
        for node in self.nodes:
            node.kill()


class RedisSentinels:
    """One master, one replica and three sentinels watching them as ``service``."""

    service = "lilya-test"

    def __init__(self, root: Path) -> None:
        self.master = Node(root, [])
        self.replica = Node(root, [])
        self.replica.extra = ["--replicaof", "127.0.0.1", str(self.master.port)]
        watch = [
            f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 2",
            f"sentinel down-after-milliseconds {self.service} 1000",
            f"sentinel failover-timeout {self.service} 5000",
            "sentinel resolve-hostnames no",
        ]
        self.sentinels = [Node(root, watch, sentinel=True) for _ in range(3)]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    def start(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for node in (self.master, self.replica, *self.sentinels):
            node.start()
        for node in (self.master, self.replica, *self.sentinels):
            node.wait_ready(deadline)
        _wait("the replica syncing", self._replica_synced, max(1.0, deadline - time.monotonic()))
        _wait(
            "the sentinels seeing each other and the replica",
            lambda: all(self._sentinel_peers(s) >= 2 for s in self.sentinels),
            max(1.0, deadline - time.monotonic()),
        )

    def _sentinel_peers(self, sentinel: Node) -> int:
        """Fellow sentinels *sentinel* knows, or 0 while it has not found the replica.

        Sentinels find replicas from the master's INFO, every ten seconds at
        first: a master killed before that has nobody to fail over to.
        """
        client = sentinel.client()
        try:
            if not command(client, "SENTINEL", "REPLICAS", self.service):
                return 0
            return len(command(client, "SENTINEL", "SENTINELS", self.service))
        finally:
            client.close()

    def _replica_synced(self) -> bool:
        client = self.replica.client()
        try:
            return client.info("replication").get("master_link_status") == "up"
        finally:
            client.close()

    def master_port(self) -> int:
        for sentinel in self.sentinels:
            client = sentinel.client()
            try:
                _host, port = command(client, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
                return int(port)
            except (redis.RedisError, OSError):
                continue
            finally:
                client.close()
        raise RuntimeError("no sentinel answered")

    def wait_failover(self, timeout: float = 60.0) -> None:
        """Wait until the sentinels promoted the replica and it accepts writes."""

        def promoted() -> bool:
            if self.master_port() != self.replica.port:
                return False
            client = self.replica.client()
            try:
                return client.info("replication").get("role") == "master"
            finally:
                client.close()

        _wait("the sentinels' failover", promoted, timeout)

    def close(self) -> None:
        for node in (*self.sentinels, self.replica, self.master):
            node.kill()


@contextlib.contextmanager
def redis_cluster() -> Iterator[RedisCluster]:
    """Start a private six-node cluster for the block; always stop it afterwards."""
    root = Path(tempfile.mkdtemp(prefix="lilya-cluster-"))
    cluster = RedisCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def redis_sentinels() -> Iterator[RedisSentinels]:
    """Start a private master, replica and three sentinels; always stop them afterwards."""
    root = Path(tempfile.mkdtemp(prefix="lilya-sentinel-"))
    group = RedisSentinels(root)
    try:
        group.start()
        yield group
    finally:
        group.close()
        shutil.rmtree(root, ignore_errors=True)


def _servers(url: str) -> list[tuple[str, int]]:
    hosts = url.split("//", 1)[1].split("/", 1)[0]
    return [(host, int(port)) for host, port in (h.rsplit(":", 1) for h in hosts.split(","))]


def delete_cluster_keys(url: str, prefix: str) -> None:
    """Delete every key of *prefix* (tagged ``{prefix:...}``) on every live master."""
    for host, port in _servers(url):
        client = redis.Redis(host=host, port=port, socket_connect_timeout=1, socket_timeout=5)
        try:
            if client.info("replication").get("role") != "master":
                continue
            for key in list(client.scan_iter(match=f"{{{prefix}:*", count=1000)):
                client.delete(key)
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            continue  # a node a test killed
        finally:
            client.close()


def delete_sentinel_keys(url: str, prefix: str) -> None:
    """Delete every key of *prefix* on the master the sentinels name."""
    service = url.rsplit("/", 1)[1]
    for host, port in _servers(url):
        client = redis.Redis(host=host, port=port, socket_connect_timeout=1, socket_timeout=5)
        try:
            master = command(client, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", service)
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            continue
        finally:
            client.close()
        master_client = redis.Redis(host=master[0].decode(), port=int(master[1]))
        try:
            keys = list(master_client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                master_client.delete(*keys)
        finally:
            master_client.close()
        return
