"""lilya.metrics in process: exact counts, however a connection ends, on asyncio and trio."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import msgspec
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from lilya._telemetry import LIMIT_REASONS, WATCH_KEY, note_limit
from lilya.apps import Lilya
from lilya.channels import Channels
from lilya.exceptions import ImproperlyConfigured
from lilya.limits import RateLimit
from lilya.metrics import METRIC_NAMES, Metrics, default_metrics
from lilya.middleware import DefineMiddleware
from lilya.requests import Request
from lilya.responses import PlainText
from lilya.routing import Include, WebSocketPath
from lilya.testclient import AsyncTestClient, WebSocketDenialResponse
from lilya.typed import TypedWebSocket
from lilya.types import Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect
from tests.support.metrics import Samples, parse

pytestmark = pytest.mark.anyio


def scrape(metrics: Metrics) -> Samples:
    """Render *metrics* as the page would, and parse it back."""
    body, _ = metrics.render()
    return parse(body.decode())


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


async def hostile(websocket: WebSocket) -> None:
    """Ends the way the query says: echo, raise, deny, close first."""
    how = websocket.query_params["how"]
    if how == "deny":
        await websocket.close()  # before accept: a 403
        return
    await websocket.accept()
    if how == "raise":
        raise RuntimeError("the handler failed")
    if how == "server-close":
        await websocket.close(4001, "bye")
        return
    async for text in websocket.iter_text():
        await websocket.send_text(text)


def app_with(metrics: Metrics, **options: Any) -> Lilya:
    return Lilya(routes=[WebSocketPath("/ws", hostile)], metrics=metrics, **options)


async def test_the_active_gauge_is_exactly_zero_after_1000_hostile_cycles(
    anyio_backend: str,
) -> None:
    metrics = Metrics()
    app = app_with(metrics)
    client = AsyncTestClient(app, raise_server_exceptions=False)
    ends = ("client-close", "drop", "raise", "deny", "server-close")
    for cycle in range(1000):
        how = ends[cycle % len(ends)]
        if how == "deny":
            with pytest.raises(WebSocketDisconnect):  # a close before accept: 403
                async with client.websocket_connect("/ws?how=deny"):
                    pass  # pragma: no cover - the handshake is denied
            continue
        async with client.websocket_connect(f"/ws?how={how}") as session:
            if how == "client-close":
                await session.send_text("hi")
                assert await session.receive_text() == "hi"
                assert scrape(metrics).value("lilya_websocket_connections_active", route="/ws") == 1
                await session.close(3000)
            elif how == "drop":
                await session.drop()
            else:
                with pytest.raises(WebSocketDisconnect):
                    await session.receive_text()
    samples = scrape(metrics)
    assert samples.value("lilya_websocket_connections_active", route="/ws") == 0
    assert (
        samples.value("lilya_websocket_handshakes_total", outcome="accepted", status="101") == 800
    )
    assert samples.value("lilya_websocket_handshakes_total", outcome="denied", status="403") == 200
    closes = {
        (code, side): samples.value("lilya_websocket_closes_total", code=code, side=side)
        for code, side in (("3000", "client"), ("1006", "client"), ("1011", "server"))
    }
    assert closes == {("3000", "client"): 200, ("1006", "client"): 200, ("1011", "server"): 200}
    assert samples.value("lilya_websocket_closes_total", code="4001", side="server") == 200
    assert samples.value("lilya_websocket_connection_duration_seconds_count", route="/ws") == 800
    assert samples.value("lilya_websocket_messages_total", route="/ws", direction="received") == 200
    assert samples.value("lilya_websocket_messages_total", route="/ws", direction="sent") == 200


async def test_messages_and_bytes_are_counted_by_direction_in_utf8_bytes(
    anyio_backend: str,
) -> None:
    metrics = Metrics(flush_every=2)
    app = Lilya(routes=[WebSocketPath("/ws", echo)], metrics=metrics)
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        await session.send_text("héllo")  # 6 bytes in UTF-8
        assert await session.receive_text() == "héllo"
        await session.send_bytes(b"\x00\x01\x02")  # echo takes text only: closes 1003
        with pytest.raises(WebSocketDisconnect):
            await session.receive_text()
    samples = scrape(metrics)
    received = {"route": "/ws", "direction": "received"}
    sent = {"route": "/ws", "direction": "sent"}
    assert samples.value("lilya_websocket_messages_total", **received) == 2
    assert samples.value("lilya_websocket_message_bytes_total", **received) == 9
    assert samples.value("lilya_websocket_messages_total", **sent) == 1
    assert samples.value("lilya_websocket_message_bytes_total", **sent) == 6
    assert samples.value("lilya_websocket_closes_total", code="1003", side="server") == 1


async def test_an_open_connection_s_counts_reach_the_page_at_each_scrape(
    anyio_backend: str,
) -> None:
    metrics = Metrics()  # flushes every 256 messages: the scrape must flush the rest
    app = Lilya(routes=[WebSocketPath("/ws", echo)], metrics=metrics)
    client = AsyncTestClient(app)
    async with client.websocket_connect("/ws") as session:
        for n in range(300):
            await session.send_text("x" * (n % 3))
            await session.receive_text()
        page = await client.get("/metrics")
        assert page.headers["content-type"].startswith("text/plain; version=")
        samples = parse(page.text)
        assert samples.value("lilya_websocket_messages_total", route="/ws", direction="sent") == 300
        assert samples.value(
            "lilya_websocket_message_bytes_total", route="/ws", direction="received"
        ) == sum(n % 3 for n in range(300))
        assert samples.value("lilya_websocket_connections_active", route="/ws") == 1
    assert scrape(metrics).value("lilya_websocket_connections_active", route="/ws") == 0


async def test_denials_are_counted_with_their_status_and_limits_with_their_reason(
    anyio_backend: str,
) -> None:
    async def refuse(websocket: WebSocket) -> None:
        await websocket.send_denial_response(PlainText("who are you?", 401))

    metrics = Metrics()
    app = Lilya(
        routes=[WebSocketPath("/private", refuse), WebSocketPath("/ws", echo)],
        metrics=metrics,
        max_message_size=10,
        rate_limit=RateLimit(per_second=0.001, burst=2),
    )
    client = AsyncTestClient(app)
    with pytest.raises(WebSocketDenialResponse) as denied:
        async with client.websocket_connect("/private"):
            pass  # pragma: no cover - denied
    assert denied.value.status_code == 401
    headers = {"origin": "https://evil.example"}
    with pytest.raises(WebSocketDenialResponse):
        async with client.websocket_connect("/ws", headers=headers):
            pass  # pragma: no cover - denied
    async with client.websocket_connect("/ws") as session:
        await session.send_text("x" * 11)
        with pytest.raises(WebSocketDisconnect) as info:
            await session.receive_text()
        assert info.value.code == 1009
    async with client.websocket_connect("/ws") as session:
        for _ in range(3):
            await session.send_text("x")
        await session.receive_text()
        await session.receive_text()
        with pytest.raises(WebSocketDisconnect) as info:
            await session.receive_text()
        assert info.value.code == 1008
    samples = scrape(metrics)
    assert samples.value("lilya_websocket_handshakes_total", outcome="denied", status="401") == 1
    assert samples.value("lilya_websocket_handshakes_total", outcome="denied", status="403") == 1
    for reason in ("origin", "message_size", "rate"):
        assert samples.value("lilya_websocket_limit_closes_total", reason=reason) == 1, reason
    assert samples.value("lilya_websocket_closes_total", code="1009", side="server") == 1
    assert samples.value("lilya_websocket_closes_total", code="1008", side="server") == 1


async def test_a_raw_handler_s_limit_closes_are_counted_too(anyio_backend: str) -> None:
    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] == "websocket.receive":
            pass  # pragma: no cover - the first message is over the limit

    metrics = Metrics()
    app = Lilya(routes=[WebSocketPath("/raw", raw)], metrics=metrics, max_message_size=4)
    async with AsyncTestClient(app).websocket_connect("/raw") as session:
        await session.send_bytes(b"12345")
        with pytest.raises(WebSocketDisconnect) as info:
            await session.receive_bytes()
        assert info.value.code == 1009
    assert scrape(metrics).value("lilya_websocket_limit_closes_total", reason="message_size") == 1


async def test_the_drain_s_closes_and_refusals_are_counted(anyio_backend: str) -> None:
    metrics = Metrics()
    app = Lilya(routes=[WebSocketPath("/ws", echo)], metrics=metrics, drain_timeout=2)
    client = AsyncTestClient(app)
    async with client.websocket_connect("/ws") as session:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(app.drain)
            with pytest.raises(WebSocketDisconnect) as info:
                await session.receive_text()
            assert info.value.code == 1012
        with pytest.raises(WebSocketDenialResponse) as refused:
            async with client.websocket_connect("/ws"):
                pass  # pragma: no cover - refused while draining
        assert refused.value.status_code == 503
    samples = scrape(metrics)
    assert samples.value("lilya_websocket_limit_closes_total", reason="drain") == 2
    assert samples.value("lilya_websocket_closes_total", code="1012", side="server") == 1
    assert samples.value("lilya_websocket_handshakes_total", outcome="denied", status="503") == 1
    assert samples.value("lilya_websocket_connections_active", route="/ws") == 0


async def test_routes_are_labelled_by_template_through_includes_and_mounts(
    anyio_backend: str,
) -> None:
    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    metrics = Metrics()
    app = Lilya(
        routes=[
            Include("/api/{org}", routes=[WebSocketPath("/ws/{room}", echo)]),
            Include("/raw", app=mounted),
        ],
        metrics=metrics,
    )
    client = AsyncTestClient(app)
    async with client.websocket_connect("/api/acme/ws/lobby") as session:
        await session.send_text("hi")
        assert await session.receive_text() == "hi"
        assert (
            scrape(metrics).value(
                "lilya_websocket_connections_active", route="/api/{org}/ws/{room}"
            )
            == 1
        )
    async with client.websocket_connect("/raw") as session:
        with pytest.raises(WebSocketDisconnect):
            await session.receive_text()
    samples = scrape(metrics)
    assert samples.value("lilya_websocket_connection_duration_seconds_count", route="/raw") == 1
    assert samples.value("lilya_websocket_connections_active", route="/api/{org}/ws/{room}") == 0


async def test_a_connection_accepted_before_routing_is_labelled_unknown(
    anyio_backend: str,
) -> None:
    class AcceptEarly:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1001})

    from lilya.middleware import DefineMiddleware

    metrics = Metrics()
    app = Lilya(middleware=[DefineMiddleware(AcceptEarly)], metrics=metrics)
    async with AsyncTestClient(app).websocket_connect("/anything") as session:
        with pytest.raises(WebSocketDisconnect):
            await session.receive_text()
    samples = scrape(metrics)
    assert samples.value("lilya_websocket_closes_total", code="1001", side="server") == 1
    assert samples.value("lilya_websocket_connection_duration_seconds_count", route="unknown") == 1


async def test_a_client_that_leaves_during_the_handshake_is_counted_abandoned(
    anyio_backend: str,
) -> None:
    async def slow(websocket: WebSocket) -> None:
        await websocket.receive()  # connect
        message = await websocket.receive()  # the client leaves before any answer
        assert message["type"] == "websocket.disconnect"

    metrics = Metrics()
    app = Lilya(routes=[WebSocketPath("/ws", slow)], metrics=metrics)
    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
    messages: Iterator[dict[str, Any]] = iter(
        [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1001}]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: Any) -> None:
        raise AssertionError(f"nothing is sent to a client that left: {message}")

    await app(scope, receive, send)
    samples = scrape(metrics)
    assert samples.value("lilya_websocket_handshakes_total", outcome="abandoned", status="") == 1
    assert samples.total("lilya_websocket_closes_total") == 0


async def test_a_send_that_fails_with_oserror_counts_as_the_client_vanishing(
    anyio_backend: str,
) -> None:
    async def pusher(websocket: WebSocket) -> None:
        await websocket.accept()
        with pytest.raises(WebSocketDisconnect):
            await websocket.send_text("anyone?")

    metrics = Metrics()
    app = Lilya(routes=[WebSocketPath("/ws", pusher)], metrics=metrics)
    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
    messages: Iterator[dict[str, Any]] = iter(
        [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1006}]
    )
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message["type"])
        if message["type"] == "websocket.send":
            raise OSError("connection reset")

    await app(scope, receive, send)
    assert sent == ["websocket.accept", "websocket.send"]
    assert scrape(metrics).value("lilya_websocket_closes_total", code="1006", side="client") == 1


async def test_a_close_the_server_fails_to_deliver_is_still_the_server_s_close(
    anyio_backend: str,
) -> None:
    async def accept_only(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})

    metrics = Metrics()
    app = Lilya(routes=[WebSocketPath("/ws", accept_only)], metrics=metrics)
    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        if message["type"] == "websocket.close":
            raise OSError("connection reset")

    await app(scope, receive, send)  # the route's closing send fails: the client is gone
    samples = scrape(metrics)
    # The server closed first (its close is noted as it is handed over); the gauge is exact.
    assert samples.value("lilya_websocket_closes_total", code="1000", side="server") == 1
    assert samples.value("lilya_websocket_connections_active", route="/ws") == 0


async def test_the_server_dropping_an_accepted_connection_without_close_is_1006_server(
    anyio_backend: str,
) -> None:
    class Swallow:
        """A middleware that swallows the closes (a broken proxy layer)."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            async def no_close(message: Any) -> None:
                if message["type"] != "websocket.close":
                    await send(message)

            await self.app(scope, receive, no_close)

    async def accept_then_return(websocket: WebSocket) -> None:
        await websocket.accept()

    from lilya.middleware import DefineMiddleware

    metrics = Metrics()
    app = Lilya(
        routes=[WebSocketPath("/ws", accept_then_return)],
        middleware=[DefineMiddleware(Swallow)],
        metrics=metrics,
    )
    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        pass

    await app(scope, receive, send)
    assert scrape(metrics).value("lilya_websocket_closes_total", code="1006", side="server") == 1


def test_the_sync_client_s_connections_are_counted_too(
    test_client_factory: Any,
) -> None:
    metrics = Metrics()
    app = Lilya(routes=[WebSocketPath("/ws", echo)], metrics=metrics)
    with test_client_factory(app) as client:
        for _ in range(20):
            with client.websocket_connect("/ws") as session:
                session.send_text("a")
                assert session.receive_text() == "a"
        samples = parse(client.get("/metrics").text)
    assert samples.value("lilya_websocket_handshakes_total", outcome="accepted", status="101") == 20
    assert samples.value("lilya_websocket_connections_active", route="/ws") == 0


def test_every_documented_metric_is_on_the_page_once_it_has_a_sample() -> None:
    metrics = Metrics()
    for reason in LIMIT_REASONS:
        metrics.limit_closes.labels(reason).inc()
    metrics.dropped_messages.labels("rate").inc()
    metrics.channel_published("memory")
    metrics.channel_dropped("drop_oldest", 2)
    metrics.channel_gap("drop_oldest")
    metrics.channel_recovery("recovered")
    metrics.backend_reconnected("redis")
    metrics.active.labels("/ws").set(0)
    metrics.handshakes.labels("accepted", "101").inc()
    metrics.messages.labels("/ws", "sent").inc()
    metrics.message_bytes.labels("/ws", "sent").inc()
    metrics.closes.labels("1000", "client").inc()
    metrics.duration.labels("/ws").observe(1)
    names = scrape(metrics).names()
    for name in METRIC_NAMES:
        found = name in names or f"{name}_count" in names
        assert found, f"{name} is documented but not exported"


async def test_channel_publishes_drops_gaps_recoveries_and_reconnects_are_counted(
    anyio_backend: str,
) -> None:
    metrics = Metrics()
    async with Channels("memory://", max_queue=2, history_size=3) as channels:
        oldest = channels.subscribe("room", policy="drop_oldest")
        newest = channels.subscribe("room", policy="drop_newest")
        closing = channels.subscribe("room", policy="close")
        async with oldest, newest, closing:
            for n in range(5):
                await channels.publish("room", n)
        # Recovered: history (3) still holds what came after offset 3; reset: it cannot.
        recovering = channels.subscribe("room", since=("memory", 3))
        async with recovering:
            pass
        first = await channels.publish("room", "x")
        async with channels.subscribe("room", since=(first.epoch, 4)):
            pass
        async with channels.subscribe("room", since=(first.epoch, 0)):
            pass
        async with channels.subscribe("room"):
            await channels.resync()
    samples = scrape(metrics)
    assert samples.value("lilya_channel_publishes_total", backend="memory") == 6
    assert samples.value("lilya_channel_backend_reconnects_total", backend="memory") == 1
    # Exactly what the subscriptions say they dropped; one gap each (later drops join it).
    for sub in (oldest, newest, closing):
        dropped = samples.value("lilya_channel_dropped_events_total", policy=sub.policy)
        assert (sub.policy, dropped) == (sub.policy, sub.dropped)
    assert (oldest.dropped, newest.dropped, closing.dropped) == (4, 3, 3)
    assert samples.value("lilya_channel_gaps_total", policy="drop_oldest") == 1
    assert samples.value("lilya_channel_gaps_total", policy="drop_newest") == 1
    assert samples.value("lilya_channel_gaps_total", policy="close") == 0
    # since= a foreign epoch and since=0 (history keeps 3): reset;
    # since=4 and the resync: recovered.
    assert samples.value("lilya_channel_recoveries_total", outcome="recovered") == 2
    assert samples.value("lilya_channel_recoveries_total", outcome="reset") == 2


def test_a_dropped_metrics_object_stops_observing_channels() -> None:
    import gc

    from lilya import _telemetry

    gc.collect()
    count = len(_telemetry.channel_observers)
    metrics = Metrics()
    assert metrics in _telemetry.channel_observers
    assert len(_telemetry.channel_observers) == count + 1
    del metrics
    gc.collect()
    assert len(_telemetry.channel_observers) == count


async def test_an_app_without_metrics_wraps_nothing_and_serves_no_page(
    anyio_backend: str,
) -> None:
    seen: list[Any] = []

    async def look(websocket: WebSocket) -> None:
        seen.append(websocket.scope.get("lilya.watch"))
        await websocket.accept()
        await websocket.close()

    app = Lilya(routes=[WebSocketPath("/ws", look)])
    client = AsyncTestClient(app)
    async with client.websocket_connect("/ws") as session:
        with pytest.raises(WebSocketDisconnect):
            await session.receive_text()
    assert seen == [None]
    assert (await client.get("/metrics")).status_code == 404
    assert app.metrics is None
    assert app.tracing is None
    note_limit({}, "rate")  # nothing watches: nothing happens


async def test_metrics_true_uses_the_process_default_served_at_slash_metrics(
    anyio_backend: str,
) -> None:
    app = Lilya(routes=[WebSocketPath("/ws", echo)], metrics=True)
    assert app.metrics is default_metrics()
    assert Lilya(metrics=True).metrics is app.metrics
    page = await AsyncTestClient(app).get("/metrics")
    assert "lilya_websocket_connections_active" in page.text


async def test_path_none_serves_no_page_and_a_custom_path_is_served(anyio_backend: str) -> None:
    hidden = Lilya(metrics=Metrics(path=None))
    assert (await AsyncTestClient(hidden).get("/metrics")).status_code == 404
    shown = Lilya(metrics=Metrics(path="/internal/metrics"))
    page = await AsyncTestClient(shown).get("/internal/metrics")
    assert page.status_code == 200
    assert shown.path_for("metrics") == "/internal/metrics"


async def test_the_endpoint_can_be_mounted_on_another_app(anyio_backend: str) -> None:
    metrics = Metrics(path=None)
    public = Lilya(routes=[WebSocketPath("/ws", echo)], metrics=metrics)
    private = Lilya()
    private.add_route("/metrics", metrics.endpoint)
    async with AsyncTestClient(public).websocket_connect("/ws") as session:
        await session.send_text("a")
        await session.receive_text()
        page = await AsyncTestClient(private).get("/metrics")
    assert parse(page.text).value("lilya_websocket_connections_active", route="/ws") == 1


def test_a_shared_registry_holds_lilya_s_collectors_beside_yours() -> None:
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    mine = Counter("my_jobs", "Jobs done.", registry=registry)
    mine.inc()
    metrics = Metrics(registry=registry)
    samples = scrape(metrics)
    assert samples.value("my_jobs_total") == 1
    assert metrics.registry is registry
    assert metrics.registry is not REGISTRY
    assert repr(metrics) == "Metrics(path='/metrics', flush_every=256)"


@pytest.mark.parametrize("flush_every", [0, -1, 1.5, True, "10"])
def test_a_bad_flush_every_is_refused_at_construction(flush_every: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="flush_every"):
        Metrics(flush_every=flush_every)


@pytest.mark.parametrize("path", ["metrics", "", 7])
def test_a_bad_path_is_refused_at_construction(path: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="path"):
        Metrics(path=path)


@pytest.mark.parametrize("value", ["yes", 1, object()])
def test_lilya_refuses_metrics_that_are_not_true_false_or_a_metrics(value: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"Lilya\(metrics=\) takes True, False"):
        Lilya(metrics=value)


def test_without_prometheus_client_the_error_gives_the_pip_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImproperlyConfigured, match=r"pip install 'lilya\[metrics\]'"):
        Metrics()


def test_in_multiprocess_mode_the_page_reads_the_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # This process writes its values in memory (the mode is chosen when
    # prometheus_client is imported), so the directory's page is empty: proof
    # that the page was read from it. Two real workers: test_metrics_server.py.
    metrics = Metrics()
    metrics.handshakes.labels("accepted", "101").inc()
    assert scrape(metrics).value(
        "lilya_websocket_handshakes_total", outcome="accepted", status="101"
    )
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert scrape(metrics) == {}


def test_a_scrape_forgets_the_live_gauges_of_workers_that_died(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import subprocess

    from prometheus_client.mmap_dict import MmapedDict

    finished = subprocess.Popen(["true"])  # a pid that has exited
    finished.wait()

    def value_file(name: str) -> None:
        # An empty values file, as a worker leaves it (prometheus_client's class is untyped).
        MmapedDict(str(tmp_path / name)).close()  # type: ignore[no-untyped-call]

    for pid in (finished.pid, 1):  # 1: init, alive
        value_file(f"gauge_livesum_{pid}.db")
    value_file(f"counter_{finished.pid}.db")  # counters stay
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    Metrics().render()
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        f"counter_{finished.pid}.db",
        "gauge_livesum_1.db",
    ]


def test_a_process_we_may_not_signal_counts_as_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from lilya.metrics import _alive

    def refuse(pid: int, signal: int) -> None:
        raise PermissionError(pid)

    monkeypatch.setattr(os, "kill", refuse)
    assert _alive(12345)


async def test_an_http_request_through_an_include_is_not_watched(anyio_backend: str) -> None:
    async def hello(request: Request) -> PlainText:
        return PlainText("hi")

    from lilya.routing import Path

    app = Lilya(routes=[Include("/api", routes=[Path("/hi", hello)])], metrics=Metrics())
    assert (await AsyncTestClient(app).get("/api/hi")).text == "hi"


def test_the_limit_reasons_are_the_documented_ones() -> None:
    assert LIMIT_REASONS == (
        "message_size",
        "rate",
        "origin",
        "drain",
        "send_timeout",
        "connection_cap",
        "heartbeat",
        "idle_timeout",
    )


async def test_a_resync_that_history_cannot_bridge_counts_a_reset(anyio_backend: str) -> None:
    metrics = Metrics()
    async with Channels("memory://", history_size=1) as channels, channels.subscribe("room") as sub:
        for n in range(3):
            await channels.publish("room", n)
        # Staged outage: this process last saw offset 0, history keeps only offset 3.
        channels._locals["room"].last = 0
        await channels.resync()
        assert not sub.recovered
    samples = scrape(metrics)
    assert samples.value("lilya_channel_recoveries_total", outcome="reset") == 1
    assert samples.value("lilya_channel_backend_reconnects_total", backend="memory") == 1


async def test_raw_code_s_odd_sequences_keep_the_gauge_exact(anyio_backend: str) -> None:
    """Accept twice, close after the client left, a failed accept: nothing counted twice."""

    async def odd(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        await send({"type": "websocket.close", "code": 1000})

    metrics = Metrics()
    app = Lilya(routes=[WebSocketPath("/odd", odd)], metrics=metrics)
    scope = {"type": "websocket", "path": "/odd", "headers": [], "query_string": b""}
    messages: Iterator[dict[str, Any]] = iter(
        [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 4000}]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: Any) -> None:
        pass

    await app(scope, receive, send)

    async def refuse(message: Any) -> None:
        raise OSError("gone before the accept")

    async def connect() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    with pytest.raises(OSError, match="gone before"):
        await app(dict(scope), connect, refuse)
    samples = scrape(metrics)
    # The accept is noted as it is handed over: the failed one counts, and ends 1006.
    assert samples.value("lilya_websocket_handshakes_total", outcome="accepted", status="101") == 2
    assert samples.value("lilya_websocket_closes_total", code="4000", side="client") == 1
    assert samples.value("lilya_websocket_closes_total", code="1006", side="client") == 1
    assert samples.value("lilya_websocket_connections_active", route="/odd") == 0


async def test_a_disconnect_without_a_code_counts_as_1005(anyio_backend: str) -> None:
    metrics = Metrics()
    app = Lilya(routes=[WebSocketPath("/ws", echo)], metrics=metrics)
    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
    messages: Iterator[dict[str, Any]] = iter(
        [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": None}]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: Any) -> None:
        pass

    await app(scope, receive, send)  # daphne sends code None (docs/servers.md)
    assert scrape(metrics).value("lilya_websocket_closes_total", code="1005", side="client") == 1


async def test_raw_code_sending_before_its_accept_gets_the_server_s_error_not_ours(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    async def eager(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.send", "text": "too early"})

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # where ticks flush
    metrics = Metrics(flush_every=1)  # the early message would flush at once
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")  # read this process's values back
    app = Lilya(routes=[WebSocketPath("/ws", eager)], metrics=metrics)
    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        if message["type"] == "websocket.send":
            raise RuntimeError("Expected ASGI message 'websocket.accept' (the server's words)")

    with pytest.raises(RuntimeError, match="the server's words"):
        await app(scope, receive, send)
    assert scrape(metrics).value("lilya_websocket_connections_active", route="/ws") == 0


async def test_a_client_that_stops_reading_then_vanishes_leaves_the_gauge_at_zero(
    anyio_backend: str,
) -> None:
    async def pusher(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            await websocket.send_text("tick")  # blocks while the client reads nothing

    metrics = Metrics()
    app = Lilya(routes=[WebSocketPath("/push", pusher)], metrics=metrics)
    async with AsyncTestClient(app).websocket_connect("/push") as session:
        assert await session.receive_text() == "tick"
        await session.pause_reading()
        await anyio.sleep(0.05)  # the handler's send now waits for the client
        assert scrape(metrics).value("lilya_websocket_connections_active", route="/push") == 1
        await session.drop()
    samples = scrape(metrics)
    assert samples.value("lilya_websocket_connections_active", route="/push") == 0
    assert samples.value("lilya_websocket_closes_total", code="1006", side="client") == 1


async def test_messages_the_rate_limit_drops_are_counted_on_both_handler_kinds(
    anyio_backend: str,
) -> None:
    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": "ok"})

    metrics = Metrics()
    limit = RateLimit(per_second=0.001, burst=1, on_exceed="drop", error_frame="slow down")
    app = Lilya(
        routes=[WebSocketPath("/ws", echo), WebSocketPath("/raw", raw)],
        metrics=metrics,
        rate_limit=limit,
    )
    client = AsyncTestClient(app)
    for path, first in (("/ws", "a"), ("/raw", "ok")):
        async with client.websocket_connect(path) as session:
            for text in ("a", "b", "c"):
                await session.send_text(text)
            assert [await session.receive_text() for _ in range(3)] == [
                first,
                "slow down",
                "slow down",
            ]
    samples = scrape(metrics)
    assert samples.value("lilya_websocket_dropped_messages_total", reason="rate") == 4
    assert samples.value("lilya_websocket_messages_total", route="/ws", direction="received") == 3
    assert samples.total("lilya_websocket_limit_closes_total") == 0


async def mixed(websocket: WebSocket) -> None:
    """Every way a ``WebSocket`` receives and sends, raw messages and typed, in turn."""
    await websocket.accept()
    raw = await websocket.receive()
    await websocket.send({"type": "websocket.send", "text": raw["text"]})
    await websocket.send_text(await websocket.receive_text())
    await websocket.send_bytes(await websocket.receive_bytes())
    await websocket.send_json(await websocket.receive_json())
    async for text in websocket.iter_text():
        await websocket.send_json(text, mode="binary")


async def test_a_websocket_counts_its_own_messages_past_the_wrappers_each_exactly_once(
    anyio_backend: str,
) -> None:
    seen: list[bool] = []

    async def handler(websocket: WebSocket) -> None:
        watch = websocket.scope[WATCH_KEY]
        seen.append(websocket._receive is watch.server_receive)  # no wrapper frame per message
        await mixed(websocket)

    metrics = Metrics(path=None)
    app = Lilya(routes=[WebSocketPath("/ws", handler)], metrics=metrics)
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        await session.send_text("a")
        await session.send_text("héllo")  # 6 bytes in UTF-8
        await session.send_bytes(b"\x01\x02")
        await session.send_text('{"k":"é"}')  # 10 bytes
        await session.send_text("zz")
        assert [await session.receive_text() for _ in range(2)] == ["a", "héllo"]
        assert await session.receive_bytes() == b"\x01\x02"
        assert await session.receive_text() == '{"k":"é"}'
        assert await session.receive_bytes() == b'"zz"'
        samples = scrape(metrics)  # mid-connection: a scrape flushes what was counted
        received = {"route": "/ws", "direction": "received"}
        sent = {"route": "/ws", "direction": "sent"}
        assert samples.value("lilya_websocket_messages_total", **received) == 5
        assert samples.value("lilya_websocket_message_bytes_total", **received) == 21
        assert samples.value("lilya_websocket_messages_total", **sent) == 5
        assert samples.value("lilya_websocket_message_bytes_total", **sent) == 23
    samples = scrape(metrics)
    assert seen == [True]
    assert samples.value("lilya_websocket_messages_total", **received) == 5
    assert samples.value("lilya_websocket_messages_total", **sent) == 5
    assert samples.value("lilya_websocket_closes_total", code="1000", side="client") == 1


async def test_a_websocket_behind_a_middleware_of_its_own_is_counted_by_the_wrappers(
    anyio_backend: str,
) -> None:
    class PassSend:
        """A user middleware that wraps ``send``: the handler talks through it."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            async def passing(message: Any) -> None:
                await send(message)

            await self.app(scope, receive, passing)

    seen: list[bool] = []

    async def handler(websocket: WebSocket) -> None:
        seen.append(websocket._receive is websocket.scope[WATCH_KEY].server_receive)
        await mixed(websocket)

    metrics = Metrics(path=None)
    app = Lilya(
        routes=[WebSocketPath("/ws", handler)],
        middleware=[DefineMiddleware(PassSend)],
        metrics=metrics,
    )
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        for text in ("a", "héllo"):
            await session.send_text(text)
        await session.send_bytes(b"\x01\x02")
        await session.send_text("[1]")
        assert [await session.receive_text() for _ in range(2)] == ["a", "héllo"]
        assert await session.receive_bytes() == b"\x01\x02"
        assert await session.receive_text() == "[1]"
    samples = scrape(metrics)
    assert seen == [False]
    assert samples.value("lilya_websocket_messages_total", route="/ws", direction="sent") == 4
    assert (
        samples.value("lilya_websocket_message_bytes_total", route="/ws", direction="received")
        == 12
    )


async def test_your_own_exposition_of_a_shared_registry_sees_open_connections_counts(
    anyio_backend: str,
) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(path=None, registry=registry)
    app = Lilya(routes=[WebSocketPath("/ws", echo)], metrics=metrics)
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        for _ in range(3):
            await session.send_text("hey")
            await session.receive_text()
        samples = parse(generate_latest(registry).decode())  # not through metrics.render()
        assert samples.value("lilya_websocket_messages_total", route="/ws", direction="sent") == 3
        assert (
            samples.value("lilya_websocket_message_bytes_total", route="/ws", direction="received")
            == 9
        )


def test_a_dropped_metrics_leaves_its_shared_registry_collectable() -> None:
    registry = CollectorRegistry()
    Metrics(path=None, registry=registry)  # dropped at once: nothing is left to flush
    gc.collect()
    assert b"# TYPE lilya_websocket_messages_total counter" in generate_latest(registry)


async def test_in_multiprocess_mode_a_connection_flushes_every_flush_every_messages(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # The other workers' files are only written by flushes, so the countdown
    # stays (values are in memory here: the mode is chosen at import).
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metrics = Metrics(path=None, flush_every=4)
    app = Lilya(routes=[WebSocketPath("/ws", echo)], metrics=metrics)
    sent = {"route": "/ws", "direction": "sent"}
    flushed = []
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        for _ in range(3):  # 6 messages: one flush, at the 4th
            await session.send_text("x")
            await session.receive_text()
            flushed.append(
                metrics.registry.get_sample_value("lilya_websocket_messages_total", sent)
            )
    assert flushed == [0.0, 2.0, 2.0]
    assert metrics.registry.get_sample_value("lilya_websocket_messages_total", sent) == 3.0


@pytest.mark.parametrize("method", ["receive_text", "receive_bytes", "receive_json"])
async def test_a_websocket_counting_for_itself_counts_the_client_s_close_it_reads(
    anyio_backend: str, method: str
) -> None:
    async def reader(websocket: WebSocket) -> None:
        await websocket.accept()
        with pytest.raises(WebSocketDisconnect):
            await getattr(websocket, method)()

    metrics = Metrics(path=None)
    app = Lilya(routes=[WebSocketPath("/ws", reader)], metrics=metrics)
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        await session.close(4001)
    samples = scrape(metrics)
    assert samples.value("lilya_websocket_closes_total", code="4001", side="client") == 1
    assert samples.total("lilya_websocket_closes_total") == 1


class Shout(msgspec.Struct, tag="shout"):
    """A typed message for the typed route's counting test."""

    text: str


async def test_a_typed_route_counts_its_decoded_and_encoded_messages_exactly_once(
    anyio_backend: str,
) -> None:
    async def handler(websocket: TypedWebSocket[Shout, Shout]) -> None:
        await websocket.accept()
        for _ in range(2):
            received = await websocket.receive_message()
            await websocket.send_message(Shout(text=received.text.upper()))

    metrics = Metrics(path=None)
    app = Lilya(
        routes=[WebSocketPath("/ws", handler, receives=Shout, sends=Shout)], metrics=metrics
    )
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        for text in ("hi", "é"):
            await session.send_text(msgspec.json.encode(Shout(text=text)).decode())
        replies = [await session.receive_text() for _ in range(2)]
    assert replies == ['{"type":"shout","text":"HI"}', '{"type":"shout","text":"É"}']
    samples = scrape(metrics)
    received = {"route": "/ws", "direction": "received"}
    sent = {"route": "/ws", "direction": "sent"}
    assert samples.value("lilya_websocket_messages_total", **received) == 2
    assert samples.value("lilya_websocket_messages_total", **sent) == 2
    # 28 bytes each: "é" and "É" are one character and two bytes in UTF-8.
    assert samples.value("lilya_websocket_message_bytes_total", **received) == 28 + 28
    assert samples.value("lilya_websocket_message_bytes_total", **sent) == 28 + 28
