"""One set of WebSocket scenarios, run against six real ASGI server setups.

Each server runs ``tests.interop.app:app`` once for the whole module (a
module-scoped fixture over :data:`SERVERS`) and a real client (``websockets``)
drives it over loopback. What each server is expected to do is in ONE table,
:data:`EXPECTED`: scenario → server → :class:`Expect`. Where servers differ, the
table says so and why; it agrees with ``docs/servers.md`` (the measured
matrix of the raw servers) and shows where lilya papers over the differences.
``docs/servers.md`` publishes the same table.

After every test the server's log is read: each traceback in it must be one the
table expects for that scenario, by its exception line, and at the end of the
module the log holds no more than the table expected.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import re
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection

from lilya.idle import idle_reason
from lilya.limits import too_big_reason
from tests.interop.app import HEARTBEAT, IDLE_TIMEOUT, LIMITED, RATED
from tests.support.servers import ROOT, SERVERS, RunningServer, raised, serve

pytestmark = pytest.mark.server

APP = "tests.interop.app:app"
MiB = 1024 * 1024
#: Close code the ``websockets`` client reports when the TCP connection ended
#: without a close frame (RFC 6455 §7.1.5).
NO_CLOSE_FRAME = 1006
LIMITED_REASON = too_big_reason(LIMITED + 1, LIMITED)


@dataclass(frozen=True)
class Expect:
    """What one server does in one scenario.

    Attributes:
        client: what the client sees (shape depends on the scenario).
        app: what the handler logs it saw (``EVENT`` lines); a tuple of
            alternatives when a race decides between them.
        raised: the exception line of each traceback the server log must show,
            in order (e.g. the error a raising handler logs).
        note: why this server differs from the others.
        bug: a lilya bug this cell shows; the test is a strict xfail until fixed.
    """

    client: object = None
    app: object = None
    raised: tuple[str, ...] = ()
    note: str = ""
    bug: str = ""


def every(expect: Expect, **only: Expect) -> dict[str, Expect]:
    """*expect* on every server, except those named in *only* (``uvicorn_wsproto=…``)."""
    table = dict.fromkeys(SERVERS, expect)
    for name, different in only.items():
        server = name.replace("_", "-")
        assert server in table, f"unknown server {server!r}"
        table[server] = different
    return table


UVICORN = ("uvicorn-websockets", "uvicorn-websockets-sansio", "uvicorn-wsproto")
HELLO = b'{"message":"Hello, world!"}'
BOOM_AFTER = "RuntimeError: boom after accept"
BOOM_BEFORE = "RuntimeError: boom before accept"
RERAISED = "lilya answers and re-raises; the server logs the traceback, once (lilya logs none)"
RACE = (
    "the server rejects the message from its header and closes with 1009; the client "
    "reads that close frame only if it has finished writing, else it sees the connection "
    "drop (1006)"
)
DAPHNE_CODES = (
    "daphne (autobahn) refuses to send close codes other than 1000 and 3000-4999: "
    "its send raises Exception('invalid close code …')"
)

NO_DENIAL_CAPS = (
    "no Denial Response extension: lilya closes before accept (1013 / 1008), so the client "
    "sees 403 without Retry-After"
)

# ---------------------------------------------------------------------------
# THE table. Keys are scenarios; docs/servers.md shows the same matrix.
# ---------------------------------------------------------------------------
EXPECTED: dict[str, dict[str, Expect]] = {
    # The seed's examples, verbatim (tests/support/seed_apps.py).
    "seed hello example": every(Expect(client=(HELLO, 1000))),
    "seed iter_json example": every(
        Expect(client=["Message text was: {'n': 1}", "Message text was: [1, 2]"])
    ),
    # client: (subprotocol the client got, the x-lilya header it got)
    "accept with subprotocol and headers": every(
        Expect(client=("chat.v2", "accepted")),
        granian=Expect(client=("chat.v2", None), note="granian ignores accept headers"),
        daphne=Expect(client=("chat.v2", None), note="daphne ignores accept headers"),
    ),
    # client: the frame echoed back, or "dropped"
    "frame: text": every(Expect(client="héllo")),
    "frame: bytes": every(Expect(client=b"\x00\xffbin")),
    "frame: empty text": every(
        Expect(client=""),
        daphne=Expect(client="dropped", note="daphne silently drops an empty message we send"),
    ),
    "frame: empty bytes": every(
        Expect(client=b""),
        daphne=Expect(client="dropped", note="daphne silently drops an empty message we send"),
    ),
    "frame: JSON text": every(Expect(client='{"got":{"a":"é"}}')),
    "frame: JSON binary": every(Expect(client=b'{"got":{"a":[1,2.5]}}')),
    # client: (close code, reason)
    "close code and reason": every(
        Expect(client=(4001, "bye")),
        daphne=Expect(client=(4001, ""), note="daphne drops the close reason"),
    ),
    "close with a standard code after accept": every(
        Expect(client=(1008, "policy")),
        daphne=Expect(
            client=(4008, ""),
            note=DAPHNE_CODES + "; lilya retries the close as 4000 + code % 1000 (1008 -> "
            "4008) and daphne drops the reason",
        ),
    ),
    # client: HTTP status of the refused handshake
    "close before accept": every(Expect(client=403)),
    "no route matches": every(Expect(client=403)),
    # client: (status, x-why header, body)
    "denial response": every(
        Expect(client=(401, "token", b"no token")),
        daphne=Expect(
            client=(403, None, b""),
            app="no denial extension: The server doesn't support the Websocket Denial "
            "Response extension.",
            note="daphne has no Denial Response extension: the app catches the "
            "RuntimeError and closes, so the client gets 403",
        ),
    ),
    # app: the WebSocketDisconnect the handler got
    "client closes normally": every(
        Expect(app="disconnect code=1000 reason=''"),
        hypercorn=Expect(
            app="disconnect code=1006 reason=''", note="hypercorn reports 1006 for every close"
        ),
    ),
    "client closes with code and reason": every(
        Expect(app="disconnect code=4000 reason='client-bye'"),
        hypercorn=Expect(
            app="disconnect code=1006 reason=''", note="hypercorn reports 1006 for every close"
        ),
        granian=Expect(
            app="disconnect code=4000 reason=''", note="granian does not pass the reason on"
        ),
        daphne=Expect(
            app="disconnect code=4000 reason=''", note="daphne does not pass the reason on"
        ),
    ),
    # app: what a handler that only sends learns after the client vanished (RST)
    "client vanishes, app only sends": every(
        Expect(
            app="send raised WebSocketDisconnect(1006)",
            note="uvicorn's send raises ClientDisconnected (an OSError, ASGI 2.4)",
        ),
        hypercorn=Expect(
            app="sends still succeed after 3 s", note="sends to a gone client are ignored"
        ),
        granian=Expect(
            app="sends still succeed after 3 s", note="sends to a gone client are ignored"
        ),
        daphne=Expect(
            app="sends still succeed after 3 s", note="sends to a gone client are ignored"
        ),
    ),
    # client: (close code, closed within interval + timeout + 1 s); app: the send-only handler
    "heartbeat: a client that never pongs": every(
        Expect(client=(1011, True), app="send raised WebSocketDisconnect(1011)"),
        daphne=Expect(
            client=(4011, True),
            app="send raised WebSocketDisconnect(1011)",
            note="autobahn refuses to send 1011: lilya sends 4011 (same last digits)",
        ),
    ),
    # client: (close code, reason names idle_timeout, closed within idle_timeout + 1 s); app: told
    "idle: a client that sends nothing, route's idle_timeout": every(
        Expect(client=(1001, True, True), app="receive raised WebSocketDisconnect(1001)"),
        daphne=Expect(
            client=(4001, False, True),
            app="receive raised WebSocketDisconnect(1001)",
            note="autobahn refuses to send 1001: lilya sends 4001 (same last digits), "
            "and daphne drops the reason",
        ),
    ),
    # app: the same with a reader task: the disconnect makes the next send raise
    "client vanishes, app also reads": every(
        Expect(app="send raised WebSocketDisconnect(1006)"),
        uvicorn_websockets_sansio=Expect(
            app=(
                "send raised WebSocketDisconnect(1005)",
                "send raised WebSocketDisconnect(1006)",
            ),
            note="the reader's disconnect says 1005; a send that fails first says 1006",
        ),
        uvicorn_wsproto=Expect(
            app=(
                "send raised WebSocketDisconnect(1005)",
                "send raised WebSocketDisconnect(1006)",
            ),
            note="the reader's disconnect says 1005; a send that fails first says 1006",
        ),
        granian=Expect(
            app="send raised WebSocketDisconnect(1005)", note="granian reports 1005 for a drop"
        ),
    ),
    # client: (first frame, close code) — lilya closes for the handler
    "handler returns without closing": every(Expect(client=("hi", 1000))),
    "handler raises after accept": every(
        Expect(client=("hi", 1011), raised=(BOOM_AFTER,), note=RERAISED),
        daphne=Expect(
            client=("hi", 4011),
            raised=(BOOM_AFTER,),
            note=DAPHNE_CODES + "; lilya retries routing's close(1011) as 4011; " + RERAISED,
        ),
    ),
    # client: HTTP status
    "handler raises before accept": every(
        Expect(client=500, raised=(BOOM_BEFORE,), note=RERAISED),
        daphne=Expect(
            client=403,
            raised=(BOOM_BEFORE,),
            note="no Denial Response extension: closed before accept, so 403; " + RERAISED,
        ),
    ),
    # client: the reply to a message of exactly the limit
    "message at the size limit": every(
        Expect(client=16 * MiB, note="16 MiB default"),
        daphne=Expect(client=1 * MiB, note="daphne's default is 1 MiB"),
    ),
    # client: close code(s) it may see; app: the WebSocketDisconnect it got
    "message over the size limit": every(
        Expect(client=(1009, NO_CLOSE_FRAME), app="disconnect code=1006 reason=''", note=RACE),
        uvicorn_websockets=Expect(
            client=(1009, NO_CLOSE_FRAME),
            app="disconnect code=1006 reason=''",
            note=RACE + "; without it the drop comes ~10 s later",
        ),
        uvicorn_websockets_sansio=Expect(
            client=(1009, NO_CLOSE_FRAME),
            app="disconnect code=1009 reason='frame with 16777217 bytes exceeds limit of "
            "16777216 bytes'",
            note=RACE,
        ),
        uvicorn_wsproto=Expect(
            client=(1009, NO_CLOSE_FRAME),
            app="disconnect code=1009 reason='Message exceeds the maximum size (16777216 bytes)'",
            note=RACE,
        ),
        granian=Expect(
            client=(1005, NO_CLOSE_FRAME),
            app="disconnect code=1005 reason=''",
            note="an empty close frame (1005), or none if the client is still writing",
        ),
        daphne=Expect(
            client=(NO_CLOSE_FRAME,),
            app="disconnect code=1006 reason=''",
            note="daphne drops the TCP connection with no close frame",
        ),
    ),
    # lilya's own limit (a route's max_message_size, 64 KiB here), the same everywhere.
    # client: the reply to a message of the limit, then the close (code, reason) one byte
    # over it brings; app: the WebSocketDisconnect the handler got
    "message over a route's max_message_size": every(
        Expect(
            client=("len=65536", (1009, LIMITED_REASON)),
            app=f"disconnect code=1009 reason={LIMITED_REASON!r}",
        ),
        daphne=Expect(
            client=("len=65536", (4009, "")),
            app=f"disconnect code=1009 reason={LIMITED_REASON!r}",
            note=DAPHNE_CODES + "; lilya resends 1009 as 4009, and daphne drops the reason",
        ),
    ),
    # client: the echoes of a burst of 3, then the close (code, reason) a fourth brings;
    # app: the WebSocketDisconnect the handler got
    "message over the route's rate_limit": every(
        Expect(
            client=(3, (1008, RATED.reason())),
            app=f"disconnect code=1008 reason={RATED.reason()!r}",
        ),
        daphne=Expect(
            client=(3, (4008, "")),
            app=f"disconnect code=1008 reason={RATED.reason()!r}",
            note=DAPHNE_CODES + "; lilya resends 1008 as 4008, and daphne drops the reason",
        ),
    ),
    # client: what it gets for a burst of 3 and 2 more, then for its own close
    "message over the route's rate_limit, on_exceed='drop'": every(
        Expect(
            client=(("1", "2", "3", "dropped", "dropped"), "disconnect code=1000 reason=''"),
        ),
        hypercorn=Expect(
            client=(("1", "2", "3", "dropped", "dropped"), "disconnect code=1006 reason=''"),
            note="hypercorn reports 1006 for every close",
        ),
    ),
    # lilya's connection caps, refused before accept; client: (HTTP status, Retry-After)
    "handshake over the route's per_process cap": every(
        Expect(client=(503, 7)),
        daphne=Expect(client=(403, None), note=NO_DENIAL_CAPS),
    ),
    "handshake over the route's per_address cap": every(
        Expect(client=(429, 7)),
        daphne=Expect(client=(403, None), note=NO_DENIAL_CAPS),
    ),
    # client: whether the TCP connection of a client that reads nothing goes away;
    # app: what the handler sending 64 KiB messages to it learns
    "client stops reading, route's send_timeout": every(
        Expect(client="TCP closed", app="send raised WebSocketDisconnect(1013)"),
        daphne=Expect(
            client="TCP closed",
            app="64 MiB, no send waited",
            note="daphne (Twisted) buffers every send without bound: no send ever waits, so "
            "send_timeout cannot fire; the process holds what the app sent (64 MiB here) "
            "until the handler ends",
        ),
    ),
    # client: the HTTP status of a handshake the handler answers after handshake_timeout;
    # app: what the handler learns
    "handshake not answered within handshake_timeout": every(
        Expect(client=503, app="cancelled"),
        daphne=Expect(
            client=403,
            app="cancelled",
            note="no Denial Response extension: lilya closes before accept, so 403",
        ),
    ),
}

# Expect.client is typed `object`; this row holds ints (the limits in bytes).
SIZE_LIMIT: dict[str, int] = {
    server: int(EXPECTED["message at the size limit"][server].client)  # type: ignore[call-overload]
    for server in SERVERS
}


# ---------------------------------------------------------------------------
# Harness
# ---------------------------------------------------------------------------
@dataclass
class Server:
    """A running server plus the bookkeeping of what its log may contain."""

    running: RunningServer
    expected_raised: list[str] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=itertools.count)

    @property
    def name(self) -> str:
        return self.running.name

    def connect(self, path: str, **kwargs: object) -> ClientConnection:
        return self.running.connect(path, **kwargs)

    def events(self, event_id: str, timeout: float = 10.0) -> list[str]:
        """Wait for the handler of *event_id* to finish; return what it logged."""
        log = self.running.wait_for_log(f"EVENT {event_id} handler done", timeout)
        found = re.findall(rf"EVENT {re.escape(event_id)} (.*)", log)
        return [line for line in found if line != "handler done"]


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """Each server, started once for all the scenarios of this module."""
    with serve(APP, request.param) as running:
        harness = Server(running)
        yield harness
        # daphne reports an app's error up to ~1 s late: give stragglers time.
        time.sleep(1.2)
        log = running.log()
        assert matches(raised(log), harness.expected_raised), (
            f"{running.name} logged tracebacks the table does not expect:\n{log}"
        )


def matches(actual: Sequence[str], expected: Sequence[str]) -> bool:
    """Each exception line in *actual* starts with the one in *expected*, one for one."""
    return len(actual) == len(expected) and all(
        line.startswith(prefix) for line, prefix in zip(actual, expected, strict=True)
    )


@dataclass
class Scenario:
    """One scenario on one server: its table entry and its slice of the log."""

    server: Server
    name: str
    expect: Expect
    log_start: int
    id: str

    def app_saw(self) -> list[str]:
        return self.server.events(self.id)

    def path(self, route: str) -> str:
        return f"{route}?id={self.id}"


@pytest.fixture
def scenario(request: pytest.FixtureRequest, server: Server) -> Iterator[Scenario]:
    """The scenario named by the test's ``scenario`` marker, checked against the log after."""
    marker = request.node.get_closest_marker("scenario")
    assert marker is not None, "mark the test with @pytest.mark.scenario(name)"
    name = marker.args[0]
    expect = EXPECTED[name][server.name]
    if expect.bug:
        request.applymarker(pytest.mark.xfail(reason=expect.bug, strict=True))
    slug = re.sub(r"\W+", "-", name).strip("-")
    current = Scenario(
        server, name, expect, len(server.running.log()), f"{slug}-{next(server.ids)}"
    )
    yield current
    server.expected_raised.extend(expect.raised)
    _check_log(current)


def _check_log(current: Scenario) -> None:
    """The tracebacks logged since the scenario began are exactly the expected ones."""
    deadline = time.monotonic() + 5
    while True:
        log = current.server.running.log()[current.log_start :]
        actual = raised(log)
        if len(actual) >= len(current.expect.raised) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert matches(actual, current.expect.raised), (
        f"expected tracebacks {current.expect.raised}, got {actual} in:\n{log}"
    )


def close_seen(ws: ClientConnection, timeout: float = 15) -> tuple[int, str]:
    """Read until the connection closes; return the close (code, reason) the client got."""
    try:
        while True:
            ws.recv(timeout=timeout)
    except ConnectionClosed as exc:
        if exc.rcvd is None:
            return NO_CLOSE_FRAME, ""
        return exc.rcvd.code, exc.rcvd.reason


def refused(server: Server, path: str) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        server.connect(path)
    return info.value


def drop(ws: ClientConnection) -> None:
    """Vanish like a crashed browser: reset the TCP connection, no close frame."""
    ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.socket.close()


def one_of(seen: list[str], expected: object) -> bool:
    options = expected if isinstance(expected, tuple) else (expected,)
    return any(option in seen for option in options)


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------
def test_the_table_covers_every_server_in_every_scenario() -> None:
    for name, row in EXPECTED.items():
        assert set(row) == set(SERVERS), name


@pytest.mark.scenario("seed hello example")
def test_seed_hello_example_sends_binary_json_and_closes(scenario: Scenario) -> None:
    with scenario.server.connect("/seed/hello") as ws:
        frame = ws.recv(timeout=5)
        assert (frame, close_seen(ws)[0]) == scenario.expect.client


@pytest.mark.scenario("seed iter_json example")
def test_seed_iter_json_example_echoes_until_the_client_leaves(scenario: Scenario) -> None:
    with scenario.server.connect("/seed/echo") as ws:
        ws.send(json.dumps({"n": 1}))
        first = ws.recv(timeout=5)
        ws.send(json.dumps([1, 2]))
        second = ws.recv(timeout=5)
    assert [json.loads(first)["message"], json.loads(second)["message"]] == scenario.expect.client
    # The example closes after the client has left: a silent no-op, no traceback.
    time.sleep(0.3)


@pytest.mark.scenario("accept with subprotocol and headers")
def test_accept_sends_the_subprotocol_and_maybe_the_headers(scenario: Scenario) -> None:
    path = scenario.path("/echo")
    with scenario.server.connect(path, subprotocols=["chat.v2", "chat.v1"]) as ws:
        assert ws.response is not None
        seen = (ws.subprotocol, ws.response.headers.get("x-lilya"))
    assert seen == scenario.expect.client
    scenario.app_saw()


FRAMES: dict[str, tuple[str, str | bytes]] = {
    "frame: text": ("text", "héllo"),
    "frame: bytes": ("bytes", b"\x00\xffbin"),
    "frame: empty text": ("text", ""),
    "frame: empty bytes": ("bytes", b""),
    "frame: JSON text": ("json-text", '{"a":"é"}'),
    "frame: JSON binary": ("json-binary", b'{"a":[1,2.5]}'),
}


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.scenario(name), id=name) for name in FRAMES]
)
def test_every_frame_kind_travels_both_ways(scenario: Scenario, name: str) -> None:
    kind, payload = FRAMES[name]
    with scenario.server.connect(scenario.path("/echo")) as ws:
        ws.send(kind)
        ws.send(payload)
        # A marker after it shows whether the echo was dropped rather than slow.
        ws.send("text")
        ws.send("marker")
        first = ws.recv(timeout=5)
        if first != "marker":
            assert ws.recv(timeout=5) == "marker"
    assert ("dropped" if first == "marker" else first) == scenario.expect.client
    scenario.app_saw()


@pytest.mark.scenario("close code and reason")
def test_close_code_and_reason_reach_the_client(scenario: Scenario) -> None:
    with scenario.server.connect(scenario.path("/echo")) as ws:
        ws.send("close")
        assert close_seen(ws) == scenario.expect.client
    scenario.app_saw()


@pytest.mark.scenario("close with a standard code after accept")
def test_close_with_policy_violation_reaches_the_client(scenario: Scenario) -> None:
    with scenario.server.connect(scenario.path("/close-1008")) as ws:
        assert ws.recv(timeout=5) == "hi"
        assert close_seen(ws, timeout=3) == scenario.expect.client


@pytest.mark.scenario("close before accept")
def test_close_before_accept_gives_http_403(scenario: Scenario) -> None:
    error = refused(scenario.server, scenario.path("/reject"))
    assert error.response.status_code == scenario.expect.client
    scenario.app_saw()


@pytest.mark.scenario("no route matches")
def test_a_path_no_route_matches_gives_http_403(scenario: Scenario) -> None:
    error = refused(scenario.server, "/no-such-route")
    assert error.response.status_code == scenario.expect.client


@pytest.mark.scenario("denial response")
def test_denial_response_or_its_fallback_reaches_the_client(scenario: Scenario) -> None:
    response = refused(scenario.server, scenario.path("/deny")).response
    seen = (response.status_code, response.headers.get("x-why"), bytes(response.body or b""))
    assert seen == scenario.expect.client
    assert scenario.app_saw() == ([scenario.expect.app] if scenario.expect.app else [])


@pytest.mark.scenario("client closes normally")
def test_a_client_close_reaches_the_handler_as_websocket_disconnect(scenario: Scenario) -> None:
    with scenario.server.connect(scenario.path("/echo")) as ws:
        ws.close()
    assert scenario.app_saw() == [scenario.expect.app]


@pytest.mark.scenario("client closes with code and reason")
def test_a_client_close_code_and_reason_reach_the_handler(scenario: Scenario) -> None:
    with scenario.server.connect(scenario.path("/echo")) as ws:
        ws.close(4000, "client-bye")
    assert scenario.app_saw() == [scenario.expect.app]


@pytest.mark.scenario("client vanishes, app only sends")
def test_a_vanished_client_is_noticed_by_sending_only_where_the_server_says_so(
    scenario: Scenario,
) -> None:
    with scenario.server.connect(scenario.path("/vanish-send")) as ws:
        assert ws.recv(timeout=5) == "ready"
        drop(ws)
    assert one_of(scenario.app_saw(), scenario.expect.app)


@pytest.mark.scenario("heartbeat: a client that never pongs")
def test_a_client_that_never_pongs_is_closed_1011_in_time_and_the_sender_told(
    scenario: Scenario,
) -> None:
    interval, timeout = HEARTBEAT
    with scenario.server.connect(scenario.path("/heartbeat-send")) as ws:
        assert ws.recv(timeout=5) == "ready"
        started = time.monotonic()
        code, _ = close_seen(ws)  # it reads the ticks and the pings, and never answers
        in_time = time.monotonic() - started <= interval + timeout + 1
    assert (code, in_time) == scenario.expect.client
    assert one_of(scenario.app_saw(), scenario.expect.app)


@pytest.mark.scenario("idle: a client that sends nothing, route's idle_timeout")
def test_a_client_that_sends_nothing_is_closed_1001_in_time_and_the_handler_told(
    scenario: Scenario,
) -> None:
    with scenario.server.connect(scenario.path("/idle")) as ws:
        assert ws.recv(timeout=5) == "ready"
        started = time.monotonic()
        code, reason = close_seen(ws)
        in_time = time.monotonic() - started <= IDLE_TIMEOUT + 1
    assert (code, reason == idle_reason(IDLE_TIMEOUT), in_time) == scenario.expect.client
    assert one_of(scenario.app_saw(), scenario.expect.app)


@pytest.mark.scenario("client vanishes, app also reads")
def test_a_vanished_client_makes_the_next_send_raise_websocket_disconnect(
    scenario: Scenario,
) -> None:
    with scenario.server.connect(scenario.path("/vanish-read")) as ws:
        assert ws.recv(timeout=5) == "ready"
        drop(ws)
    assert one_of(scenario.app_saw(), scenario.expect.app)


@pytest.mark.scenario("handler returns without closing")
def test_a_handler_that_returns_is_closed_with_1000(scenario: Scenario) -> None:
    with scenario.server.connect(scenario.path("/return")) as ws:
        assert (ws.recv(timeout=5), close_seen(ws)[0]) == scenario.expect.client
    scenario.app_saw()


@pytest.mark.scenario("handler raises after accept")
def test_a_handler_that_raises_after_accept_is_closed_with_1011(scenario: Scenario) -> None:
    with scenario.server.connect(scenario.path("/raise-after")) as ws:
        assert (ws.recv(timeout=5), close_seen(ws)[0]) == scenario.expect.client
    scenario.app_saw()


@pytest.mark.scenario("handler raises before accept")
def test_a_handler_that_raises_before_accept_is_refused_with_500(scenario: Scenario) -> None:
    error = refused(scenario.server, scenario.path("/raise-before"))
    assert error.response.status_code == scenario.expect.client
    scenario.app_saw()


@pytest.mark.scenario("message at the size limit")
def test_a_message_of_exactly_the_size_limit_arrives_whole(scenario: Scenario) -> None:
    limit = SIZE_LIMIT[scenario.server.name]
    with scenario.server.connect(scenario.path("/echo"), compression=None) as ws:
        ws.send("size")
        ws.send(bytes(limit))
        assert ws.recv(timeout=10) == f"len={scenario.expect.client}"


@pytest.mark.scenario("message over the size limit")
def test_a_message_one_byte_over_the_size_limit_closes_the_connection(
    scenario: Scenario, caplog: pytest.LogCaptureFixture
) -> None:
    limit = SIZE_LIMIT[scenario.server.name]
    # The client library logs the broken pipe of an interrupted send; that is expected.
    caplog.set_level(logging.CRITICAL, logger="websockets")
    with scenario.server.connect(scenario.path("/echo"), compression=None) as ws:
        code = None
        with contextlib.suppress(ConnectionClosed):
            ws.send("size")
            ws.send(bytes(limit + 1))
        code = close_seen(ws)[0]
    assert code in scenario.expect.client  # type: ignore[operator]  # this row holds tuples
    assert scenario.app_saw() == [scenario.expect.app]


@pytest.mark.scenario("message over a route's max_message_size")
def test_a_message_over_the_routes_max_message_size_closes_1009_with_a_reason(
    scenario: Scenario,
) -> None:
    with scenario.server.connect(scenario.path("/limited"), compression=None) as ws:
        ws.send(bytes(LIMITED))
        reply = ws.recv(timeout=10)
        ws.send(bytes(LIMITED + 1))
        assert (reply, close_seen(ws)) == scenario.expect.client
    assert scenario.app_saw() == [scenario.expect.app]


@pytest.mark.scenario("message over the route's rate_limit")
def test_a_burst_over_the_routes_rate_limit_closes_1008_with_a_reason(scenario: Scenario) -> None:
    with scenario.server.connect(scenario.path("/rated")) as ws:
        for n in range(4):
            ws.send(str(n))
        echoes = [ws.recv(timeout=10) for _ in range(3)]
        assert (len(echoes), close_seen(ws)) == scenario.expect.client
    assert scenario.app_saw() == [scenario.expect.app]


@pytest.mark.scenario("message over the route's rate_limit, on_exceed='drop'")
def test_a_burst_over_a_dropping_rate_limit_gets_error_frames_and_stays_open(
    scenario: Scenario,
) -> None:
    with scenario.server.connect(scenario.path("/rated-drop")) as ws:
        for n in range(1, 6):
            ws.send(str(n))
        got = tuple(ws.recv(timeout=10) for _ in range(5))
        ws.close()
    assert (got, scenario.app_saw()[0]) == scenario.expect.client


CAP_SETTING = {
    "handshake over the route's per_process cap": ("/full", "ConnectionCaps(per_process=...)"),
    "handshake over the route's per_address cap": ("/crowded", "ConnectionCaps(per_address=...)"),
}


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.scenario(name), id=name) for name in CAP_SETTING]
)
def test_a_handshake_over_a_connection_cap_is_refused_before_accept(
    scenario: Scenario, name: str
) -> None:
    route, setting = CAP_SETTING[name]
    # The held socket puts the process and the address at 1, the routes' caps.
    with scenario.server.connect("/echo?id=holder"):
        response = refused(scenario.server, scenario.path(route)).response
    retry_after = response.headers.get("retry-after")
    seen = (response.status_code, None if retry_after is None else int(retry_after))
    assert seen == scenario.expect.client
    if response.status_code != 403:
        assert setting in bytes(response.body or b"").decode()
    # The handler never ran: the refusal came before it.
    time.sleep(0.2)
    assert f"EVENT {scenario.id} " not in scenario.server.running.log()


def reads_nothing(server: Server, path: str) -> socket.socket:
    """Open a WebSocket by hand and then read nothing: a client that stopped reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: fills at once
    sock.settimeout(10)
    sock.connect(("127.0.0.1", server.running.port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def tcp_outcome(sock: socket.socket, within: float = 5.0) -> str:
    """Read what is left: "TCP closed" if the server ends the connection *within* seconds."""
    deadline = time.monotonic() + within
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return "TCP closed"
        except (ConnectionResetError, BrokenPipeError):
            return "TCP closed"
        except TimeoutError:
            continue
    return f"TCP still open after {within:g} s"


@pytest.mark.scenario("client stops reading, route's send_timeout")
def test_a_client_that_stops_reading_is_closed_1013_and_its_tcp_connection_goes(
    scenario: Scenario,
) -> None:
    sock = reads_nothing(scenario.server, scenario.path("/stalled"))
    with contextlib.closing(sock):
        seen = scenario.app_saw()  # the handler ended (bounded: 10 s)
        assert (tcp_outcome(sock), seen) == (scenario.expect.client, [scenario.expect.app])


@pytest.mark.scenario("handshake not answered within handshake_timeout")
def test_a_handshake_the_app_does_not_answer_in_time_is_refused(scenario: Scenario) -> None:
    error = refused(scenario.server, scenario.path("/slow-accept"))
    assert (error.response.status_code, scenario.app_saw()) == (
        scenario.expect.client,
        [scenario.expect.app],
    )


def test_docs_servers_md_shows_the_table() -> None:
    from tests.interop.matrix import render_matrix

    docs = (ROOT / "docs" / "servers.md").read_text(encoding="utf-8")
    assert render_matrix() in docs, "regenerate it: python -m tests.interop.matrix"
