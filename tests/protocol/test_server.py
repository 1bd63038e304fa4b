"""The endpoint on a real uvicorn (and hypercorn on trio) with a real client (``websockets``)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection

from tests.channels.redis_server import private_redis
from tests.support.servers import RunningServer, raised, serve, tracebacks

pytestmark = pytest.mark.server

APP = "tests.protocol.server_app:app"

#: uvicorn on asyncio, hypercorn on trio: the endpoint on both anyio backends.
SETUPS = {
    "uvicorn": None,
    "hypercorn-trio": [
        sys.executable,
        "-m",
        "hypercorn",
        "-k",
        "trio",
        APP,
        "--bind",
        "127.0.0.1:{port}",
    ],
}


@pytest.fixture(params=list(SETUPS), scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with serve(APP, "uvicorn", command=SETUPS[request.param]) as running:
        yield running


class Peer:
    """A protocol client on a real socket: requests with ids, pushes kept in order."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.pushes: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def frame(self, timeout: float = 5.0) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.connection.recv(timeout))
        if value.get("type") == "ping":  # the heartbeat: answered, not kept
            self.connection.send('{"type":"pong"}')
            return self.frame(timeout)
        return value

    def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        request_id = next(self._ids)
        self.connection.send(json.dumps({"type": kind, "id": request_id, **fields}))
        while True:
            frame = self.frame()
            if "type" in frame:
                self.pushes.append(frame)
                continue
            assert frame["id"] == request_id, frame
            return frame

    def ok(self, kind: str, **fields: Any) -> dict[str, Any]:
        reply = self.call(kind, **fields)
        assert "ok" in reply, reply
        ok: dict[str, Any] = reply["ok"]
        return ok

    def push(self, timeout: float = 5.0) -> dict[str, Any]:
        if self.pushes:
            return self.pushes.pop(0)
        frame = self.frame(timeout)
        assert "type" in frame, frame
        return frame

    def messages(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The next *count* message pushes (presence pushes are skipped)."""
        got: list[dict[str, Any]] = []
        while len(got) < count:
            frame = self.push(timeout)
            if frame["type"] == "message":
                got.append(frame)
        return got

    def close_code(self, timeout: float = 5.0) -> int:
        """Read until the server closes; keep the pushes; return its close code."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.pushes.append(self.frame(deadline - time.monotonic()))
        except ConnectionClosed as closed:
            if closed.rcvd is None:
                raise AssertionError(f"no close frame came: {closed}") from None
            return closed.rcvd.code
        raise AssertionError("the server did not close")


def peer(server: RunningServer, token: str = "ann", **kwargs: Any) -> Peer:
    connection = server.connect(f"/ws?token={token}", **kwargs)
    return Peer(connection)


def assert_quiet(server: RunningServer) -> None:
    log = server.log()
    assert tracebacks(log) == [], raised(log)


def test_a_hundred_channels_over_one_socket_each_get_their_message_at_their_position(
    server: RunningServer,
) -> None:
    reader, writer = peer(server), peer(server)
    with reader.connection, writer.connection:
        starts = {}
        for n in range(100):
            starts[n] = reader.ok("subscribe", channel=f"hundred:{server.port}:{n}")["offset"]
        for n in range(100):
            writer.ok("publish", channel=f"hundred:{server.port}:{n}", data={"n": n})
        got = {frame["channel"]: frame for frame in reader.messages(100)}
        for n in range(100):
            frame = got[f"hundred:{server.port}:{n}"]
            assert (frame["offset"], frame["data"]) == (starts[n] + 1, {"n": n})
    assert_quiet(server)


def test_a_retried_publish_is_delivered_once(server: RunningServer) -> None:
    channel = f"retry:{time.monotonic_ns()}"
    with peer(server).connection as connection:
        client = Peer(connection)
        client.ok("subscribe", channel=channel)
        first = client.ok("publish", channel=channel, data="x", message_id="only-once")
        assert client.ok("publish", channel=channel, data="x", message_id="only-once") == first
        client.ok("publish", channel=channel, data="y")
        assert [m["data"] for m in client.messages(2)] == ["x", "y"]


def test_the_bearer_subprotocol_is_echoed_and_a_bad_token_is_a_401(server: RunningServer) -> None:
    with server.connect("/ws", subprotocols=["bearer", "bob"]) as connection:
        assert connection.subprotocol == "bearer"
        assert Peer(connection).ok("connect", name="py")["user"] == "bob"
    with pytest.raises(InvalidStatus) as caught:
        server.connect("/ws?token=mallory").close()
    assert caught.value.response.status_code == 401


def test_an_expired_token_closes_4001_and_refresh_extends(server: RunningServer) -> None:
    with server.connect("/ws") as connection:
        client = Peer(connection)
        client.ok("connect", token="ann:0.3")
        assert client.close_code() == 4001
        assert client.pushes[-1] == {
            "type": "disconnect", "code": 4001, "reason": "token expired", "reconnect": False
        }  # fmt: skip
    with server.connect("/ws") as connection:
        client = Peer(connection)
        client.ok("connect", token="ann:0.3")
        client.ok("refresh", token="ann:60")
        time.sleep(0.6)
        assert client.ok("ping") == {}


def test_recovery_with_since_after_a_reconnect(server: RunningServer) -> None:
    channel = f"recover:{time.monotonic_ns()}"
    with peer(server).connection as connection:
        client = Peer(connection)
        client.ok("subscribe", channel=channel)
        client.ok("publish", channel=channel, data=1)
        last = client.messages(1)[0]
    with peer(server).connection as connection:
        other = Peer(connection)
        for n in (2, 3):
            other.ok("publish", channel=channel, data=n)
    with peer(server).connection as connection:
        client = Peer(connection)
        since = {"epoch": last["epoch"], "offset": last["offset"]}
        assert client.ok("subscribe", channel=channel, since=since)["recovered"] is True
        client.ok("publish", channel=channel, data=4)
        assert [(m["offset"], m["data"]) for m in client.messages(3)] == [(2, 2), (3, 3), (4, 4)]
        gone = {"epoch": "not-this-one", "offset": 1}
        reply = client.ok("subscribe", channel=channel + ":b", since=gone)
        assert reply["recovered"] is False
        assert client.push()["type"] == "reset"


def test_hostile_frames_get_errors_and_a_flood_closes_1008_without_a_traceback(
    server: RunningServer,
) -> None:
    with peer(server).connection as connection:
        client = Peer(connection)
        for bad in ("{", "[]", '{"type":"x","id":1}', '{"type":"subscribe","id":2,"channel":3}'):
            connection.send(bad)
            assert client.frame()["error"]["code"] == "bad_request"
        assert client.ok("ping") == {}
    # A flood while the server is writing to this socket: the app's rate limit
    # closes it from the reader while the writer sends (the lost version's bug).
    channel = f"flood:{time.monotonic_ns()}"
    with peer(server).connection as connection:
        client = Peer(connection)
        client.ok("subscribe", channel=channel)
        # Past the burst (400) and small enough for the socket buffers, sent
        # without reading: the server's writer is busy (and soon blocked) with
        # replies and pushes when its reader hits the limit.
        for n in range(700):
            frame = {"type": "publish", "id": n, "channel": channel, "data": n}
            connection.send(json.dumps(frame))
        # The app closes and returns within a fraction of a second everywhere;
        # hypercorn's trio worker then takes about 20 s to end the TCP
        # connection after the close handshake (the frames the client sent
        # past the limit are still in its buffers), and websockets reports
        # the close only then.
        assert client.close_code(timeout=40) == 1008
    with peer(server).connection as connection:
        connection.send("x" * 5000)
        assert Peer(connection).close_code() == 1009
    assert_quiet(server)


def test_a_client_that_stops_reading_is_closed_by_the_heartbeat_and_others_go_on(
    server: RunningServer,
) -> None:
    channel = f"slow:{time.monotonic_ns()}"
    with peer(server).connection as stalled, peer(server).connection as healthy:
        Peer(stalled).ok("subscribe", channel=channel)
        writer = Peer(healthy)
        for n in range(300):
            writer.ok("publish", channel=channel, data="x" * 1000 + str(n))
        for _ in range(15):  # 3 s: the stalled client answers no ping, the healthy one does
            time.sleep(0.2)
            assert writer.ok("ping") == {}
        # It never read; what the server did meanwhile is in its buffers, then the close.
        with pytest.raises(ConnectionClosed) as caught:
            while True:
                stalled.recv(5)
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1011
    assert_quiet(server)


#: A subscriber in a process of its own that never reads after its reply: killed
#: -9 mid-burst, its socket vanishes with unread frames in both directions.
_DOOMED = """
import json, sys, time
from websockets.sync.client import connect
with connect(sys.argv[1], open_timeout=10) as connection:
    connection.send(json.dumps({"type": "subscribe", "id": 1, "channel": sys.argv[2]}))
    assert "ok" in json.loads(connection.recv(10))
    print("ready", flush=True)
    time.sleep(60)
"""


def test_a_subscriber_killed_9_mid_burst_leaves_and_the_others_get_every_message(
    server: RunningServer,
) -> None:
    channel = f"burst:{time.monotonic_ns()}"
    url = f"{server.ws_url}/ws?token=ann"
    command = [sys.executable, "-c", _DOOMED, url, channel]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as doomed:
        try:
            assert doomed.stdout is not None and doomed.stdout.readline().strip() == "ready"
            reader, writer = peer(server), peer(server)
            with reader.connection, writer.connection:
                reader.ok("subscribe", channel=channel)
                for n in range(300):
                    writer.ok("publish", channel=channel, data="x" * 1000 + str(n))
                    if n == 100:
                        doomed.kill()  # SIGKILL: no close frame, no FIN before the kernel's
                assert [frame["data"][1000:] for frame in reader.messages(300)] == [
                    str(n) for n in range(300)
                ]
                deadline = time.monotonic() + 10
                while len(writer.ok("presence", channel=channel)["members"]) != 1:
                    assert time.monotonic() < deadline, "the killed subscriber never left"
                    time.sleep(0.1)
        finally:
            doomed.kill()  # however the test ends, it does not outlive it
    assert_quiet(server)


@pytest.mark.redis
@pytest.mark.slow
def test_kill_9_of_redis_mid_stream_gives_unavailable_then_a_reset_never_a_traceback() -> None:
    with private_redis() as redis:
        env = {"LILYA_PROTOCOL_CHANNELS": redis.url}
        with serve(APP, "uvicorn", env=env) as server:
            with peer(server).connection as connection:
                client = Peer(connection)
                client.ok("subscribe", channel="live")
                client.ok("publish", channel="live", data="before")
                assert client.messages(1)[0]["data"] == "before"
                redis.kill()
                codes = set()
                for n in range(3):
                    reply = client.call("publish", channel="live", data=n, message_id=f"m{n}")
                    codes.add(reply["error"]["code"])
                assert codes <= {"unavailable", "unknown_outcome"} and "unavailable" in codes
                redis.start()
                reset = client.push(timeout=15)
                while reset["type"] != "reset":
                    reset = client.push(timeout=15)
                assert reset["channel"] == "live"
                client.ok("publish", channel="live", data="after")
                assert client.messages(1)[0]["data"] == "after"
            assert_quiet(server)


def test_lilya_run_shows_a_query_token_as_stars_in_its_log() -> None:
    command = [sys.executable, "-m", "lilya", "run", APP, "--port", "{port}"]
    with serve(APP, command=command) as server:
        with server.connect("/ws?token=ann&room=1") as connection:
            assert Peer(connection).ok("ping") == {}
        with pytest.raises(InvalidStatus):
            server.connect("/ws?token=not-a-user-secret").close()
        with pytest.raises(urllib.error.HTTPError) as caught:  # an HTTP request: the access log
            urllib.request.urlopen(server.http_url + "/ws?token=http-secret", timeout=5)
        caught.value.close()
        assert caught.value.code == 404  # WebSocketPath routes only WebSockets
        log = server.wait_for_log("token=***&room=1")
        server.wait_for_log('"GET /ws?token=*** HTTP/1.1" 404')
        log = server.log()
        assert "not-a-user-secret" not in log and "token=ann" not in log
        assert "http-secret" not in log
