"""lilya.tracing: one span per connection, proved with the SDK's in-memory exporter."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from lilya.apps import Lilya
from lilya.exceptions import ImproperlyConfigured
from lilya.metrics import Metrics
from lilya.routing import WebSocketPath
from lilya.testclient import AsyncTestClient
from lilya.tracing import DEFAULT_SAMPLE_EVERY, Tracing
from lilya.websockets import WebSocket, WebSocketDisconnect
from tests.support.metrics import parse

pytestmark = pytest.mark.anyio


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    yield memory
    memory.clear()


def tracing_to(exporter: InMemorySpanExporter, **options: Any) -> Tracing:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(tracer_provider=provider, **options)


async def room(websocket: WebSocket, name: str) -> None:
    await websocket.accept()
    while True:
        try:
            text = await websocket.receive_text()
        except WebSocketDisconnect:
            return
        if text == "boom":
            raise RuntimeError("the handler failed")
        await websocket.send_text(text)


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, spans
    return spans[0]


async def test_one_span_per_connection_from_handshake_to_close_with_code_and_side(
    anyio_backend: str, exporter: InMemorySpanExporter
) -> None:
    app = Lilya(routes=[WebSocketPath("/rooms/{name}", room)], tracing=tracing_to(exporter))
    async with AsyncTestClient(app).websocket_connect("/rooms/lobby") as session:
        await session.send_text("hé")
        assert await session.receive_text() == "hé"
        assert exporter.get_finished_spans() == ()  # still open
        await session.close(3001, "leaving")
    span = only_span(exporter)
    assert span.name == "WebSocket /rooms/{name}"
    assert span.kind is SpanKind.SERVER
    assert dict(span.attributes or {}) == {
        "url.path": "/rooms/lobby",
        "http.route": "/rooms/{name}",
        "websocket.handshake.status": 101,
        "websocket.close.code": 3001,
        "websocket.close.side": "client",
        "websocket.close.reason": "leaving",
        "websocket.messages.received": 1,
        "websocket.messages.sent": 1,
        "websocket.messages.received_bytes": 3,
        "websocket.messages.sent_bytes": 3,
    }
    assert [event.name for event in span.events] == ["websocket.accept"]
    assert span.status.status_code is StatusCode.UNSET


async def test_message_events_are_sampled_every_n_messages(
    anyio_backend: str, exporter: InMemorySpanExporter
) -> None:
    app = Lilya(
        routes=[WebSocketPath("/rooms/{name}", room)], tracing=tracing_to(exporter, sample_every=3)
    )
    async with AsyncTestClient(app).websocket_connect("/rooms/a") as session:
        for n in range(5):  # 10 messages: events at the 3rd, 6th and 9th
            await session.send_text(str(n))
            await session.receive_text()
    span = only_span(exporter)
    events = [event for event in span.events if event.name == "websocket.message"]
    assert [dict(event.attributes or {}) for event in events] == [
        {"direction": "received", "size": 1, "count": 3},
        {"direction": "sent", "size": 1, "count": 6},
        {"direction": "received", "size": 1, "count": 9},
    ]
    assert span.attributes is not None
    assert span.attributes["websocket.close.side"] == "client"
    assert span.attributes["websocket.close.code"] == 1000


async def test_a_handler_s_exception_is_recorded_and_the_span_is_an_error(
    anyio_backend: str, exporter: InMemorySpanExporter
) -> None:
    app = Lilya(routes=[WebSocketPath("/rooms/{name}", room)], tracing=tracing_to(exporter))
    client = AsyncTestClient(app, raise_server_exceptions=False)
    async with client.websocket_connect("/rooms/a") as session:
        await session.send_text("boom")
        with pytest.raises(WebSocketDisconnect) as info:
            await session.receive_text()
        assert info.value.code == 1011
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["websocket.close.code"] == 1011
    assert span.attributes["websocket.close.side"] == "server"
    assert "websocket.close.reason" not in span.attributes
    exception = [event for event in span.events if event.name == "exception"]
    assert exception[0].attributes is not None
    assert exception[0].attributes["exception.type"] == "RuntimeError"


async def test_a_denied_handshake_has_its_status_and_the_limit_that_refused_it(
    anyio_backend: str, exporter: InMemorySpanExporter
) -> None:
    app = Lilya(routes=[WebSocketPath("/rooms/{name}", room)], tracing=tracing_to(exporter))
    client = AsyncTestClient(app)
    with pytest.raises(Exception, match="403"):
        async with client.websocket_connect("/rooms/a", headers={"origin": "https://evil.example"}):
            pass  # pragma: no cover - denied
    span = only_span(exporter)
    assert span.name == "WebSocket"  # refused before routing: no route
    assert span.attributes is not None
    assert span.attributes["websocket.handshake.status"] == 403
    assert span.attributes["websocket.limit"] == "origin"
    assert "websocket.close.code" not in span.attributes


async def test_a_client_that_leaves_mid_handshake_has_no_status(
    anyio_backend: str, exporter: InMemorySpanExporter
) -> None:
    async def slow(websocket: WebSocket) -> None:
        await websocket.receive()
        await websocket.receive()

    app = Lilya(routes=[WebSocketPath("/ws", slow)], tracing=tracing_to(exporter))
    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
    messages: Iterator[dict[str, Any]] = iter(
        [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1001}]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: Any) -> None:
        raise AssertionError("nothing is sent")  # pragma: no cover

    await app(scope, receive, send)
    span = only_span(exporter)
    assert span.attributes is not None
    assert "websocket.handshake.status" not in span.attributes


async def test_the_handshake_s_traceparent_is_the_span_s_parent(
    anyio_backend: str, exporter: InMemorySpanExporter
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{trace_id}-{parent}-01"}
    app = Lilya(routes=[WebSocketPath("/rooms/{name}", room)], tracing=tracing_to(exporter))
    async with AsyncTestClient(app).websocket_connect("/rooms/a", headers=headers):
        pass
    span = only_span(exporter)
    assert f"{span.context.trace_id:032x}" == trace_id
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == parent


async def test_metrics_and_tracing_together_each_get_their_own_rhythm(
    anyio_backend: str, exporter: InMemorySpanExporter
) -> None:
    metrics = Metrics(flush_every=4)
    app = Lilya(
        routes=[WebSocketPath("/rooms/{name}", room)],
        metrics=metrics,
        tracing=tracing_to(exporter, sample_every=6),
    )
    async with AsyncTestClient(app).websocket_connect("/rooms/a") as session:
        for n in range(6):  # 12 messages: tracing at 6 and 12; metrics flush at 4, 8, 12
            await session.send_text(str(n))
            await session.receive_text()
        body, _ = metrics.render()
    counts = [
        dict(event.attributes or {})["count"]
        for event in only_span(exporter).events
        if event.name == "websocket.message"
    ]
    assert counts == [6, 12]
    samples = parse(body.decode())
    assert (
        samples.value("lilya_websocket_messages_total", route="/rooms/{name}", direction="sent")
        == 6
    )


def test_tracing_true_uses_the_global_provider() -> None:
    app = Lilya(tracing=True)
    assert isinstance(app.tracing, Tracing)
    assert app.tracing.every == DEFAULT_SAMPLE_EVERY
    assert repr(app.tracing) == "Tracing(sample_every=100)"


@pytest.mark.parametrize("every", [0, -3, 2.5, True, None])
def test_a_bad_sample_every_is_refused_at_construction(every: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="sample_every"):
        Tracing(sample_every=every)


def test_lilya_refuses_tracing_that_is_not_true_false_or_a_tracing() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"Lilya\(tracing=\) takes True, False"):
        Lilya(tracing="otel")  # type: ignore[arg-type]  # the mistake under test


def test_without_opentelemetry_the_error_gives_the_pip_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImproperlyConfigured, match=r"pip install 'lilya\[otel\]'"):
        Tracing()


async def test_messages_the_rate_limit_drops_are_a_total_on_the_span(
    anyio_backend: str, exporter: InMemorySpanExporter
) -> None:
    from lilya.limits import RateLimit

    limit = RateLimit(per_second=0.001, burst=1, on_exceed="drop", error_frame="slow down")
    app = Lilya(
        routes=[WebSocketPath("/rooms/{name}", room)],
        tracing=tracing_to(exporter),
        rate_limit=limit,
    )
    async with AsyncTestClient(app).websocket_connect("/rooms/a") as session:
        await session.send_text("a")
        await session.send_text("b")
        assert await session.receive_text() == "a"
        assert await session.receive_text() == "slow down"
    span = only_span(exporter)
    assert span.attributes is not None
    assert span.attributes["websocket.messages.dropped"] == 1
    assert span.attributes["websocket.messages.received"] == 2
