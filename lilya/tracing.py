"""OpenTelemetry tracing of WebSockets: one span per connection, sampled message events.

Turn it on with ``Lilya(tracing=True)`` (the global tracer provider) or
``Lilya(tracing=Tracing(tracer_provider=..., sample_every=...))``. Configure
the provider and its exporter as for any OpenTelemetry app
(``opentelemetry-sdk``, ``lilya[otel]``).

Each connection is one ``SERVER`` span, named ``WebSocket <route>``, from the
moment the handshake reaches the app to the end of the connection; its
parent is the ``traceparent`` of the handshake request, if it has one. At the
end it carries:

==============================  ===================================================
attribute                       value
==============================  ===================================================
``http.route``                  the route template (``/ws/{room}``)
``url.path``                    the handshake's path
``websocket.handshake.status``  101 accepted, or the denial's HTTP status
``websocket.close.code``        the first close code (1006: the client vanished)
``websocket.close.side``        ``"client"`` or ``"server"``, whoever closed first
``websocket.close.reason``      the close reason, when there is one
``websocket.limit``             the limit lilya closed for (``rate``, ``drain``…)
``websocket.messages.*``        ``received``, ``sent``, ``received_bytes``, ``sent_bytes``,
                                ``dropped`` (by the rate limit's ``"drop"``, if any)
==============================  ===================================================

Why message events are sampled: a span event per message would make a
long-lived connection's span grow without bound and cost more than the
message. So one ``websocket.message`` event is added every ``sample_every``
messages (both directions counted together; the 100th, 200th, … by
default), with ``direction``, ``size`` and ``count`` (how many messages so
far); the totals are exact, in the attributes. A handler's exception is
recorded on the span, whose status is then ``ERROR``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lilya._telemetry import Watch
from lilya.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["DEFAULT_SAMPLE_EVERY", "Tracing"]

#: One ``websocket.message`` event per this many messages of a connection.
DEFAULT_SAMPLE_EVERY = 100


def _opentelemetry() -> Any:
    try:
        from opentelemetry import propagate, trace
    except ImportError as exc:
        raise ImproperlyConfigured(
            "lilya.tracing needs the opentelemetry-api package, which is not installed: "
            "pip install 'lilya[otel]'"
        ) from exc
    return trace, propagate


class Tracing:
    """Make an OpenTelemetry span of every WebSocket connection an app serves.

    Args:
        tracer_provider: the provider to get lilya's tracer from (the global
            one, ``opentelemetry.trace.get_tracer_provider()``, by default).
        sample_every: add a ``websocket.message`` event every this many messages.

    Raises:
        ImproperlyConfigured: ``opentelemetry-api`` is not installed (``pip
            install 'lilya[otel]'``), or *sample_every* is not a whole number >= 1.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        sample_every: int = DEFAULT_SAMPLE_EVERY,
    ) -> None:
        trace, propagate = _opentelemetry()
        if isinstance(sample_every, bool) or not isinstance(sample_every, int) or sample_every < 1:
            raise ImproperlyConfigured(
                f"Tracing(sample_every=) must be a whole number of messages >= 1, "
                f"got {sample_every!r}."
            )
        self.every = sample_every
        self.tracer = trace.get_tracer("lilya", tracer_provider=tracer_provider)
        self._server = trace.SpanKind.SERVER
        self._error = trace.Status(trace.StatusCode.ERROR)
        self._extract = propagate.extract

    # -- the connection observer (lilya._telemetry.watch calls these) ------------

    def started(self, watch: Watch, index: int) -> None:
        """The handshake reached the app: start the connection's span."""
        scope = watch.scope
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers") or ()
        }
        path = scope.get("path", "")
        watch.states[index] = self.tracer.start_span(
            "WebSocket",
            kind=self._server,
            context=self._extract(carrier),
            attributes={"url.path": path},
        )

    def opened(self, watch: Watch, index: int) -> None:
        """The handshake was accepted."""
        watch.states[index].add_event("websocket.accept")

    def refused(self, watch: Watch, index: int) -> None:
        """The handshake was denied (the status is set at the end)."""

    def tick(self, watch: Watch, index: int, direction: str, size: int) -> None:
        """``sample_every`` messages passed: record the last one as an event."""
        watch.states[index].add_event(
            "websocket.message",
            {"direction": direction, "size": size, "count": watch.received + watch.sent},
        )

    def limit(self, watch: Watch, index: int, reason: str) -> None:
        """lilya closed or refused the connection for *reason*."""
        watch.states[index].set_attribute("websocket.limit", reason)

    def dropped(self, watch: Watch, index: int, reason: str) -> None:
        """lilya dropped a client's message (the total is set at the end)."""

    def ended(self, watch: Watch, index: int, error: BaseException | None) -> None:
        """The connection is over: set the outcome's attributes and end the span."""
        span = watch.states[index]
        route = watch.route
        if route:
            span.update_name(f"WebSocket {route}")
            span.set_attribute("http.route", route)
        if watch.status is not None:
            span.set_attribute("websocket.handshake.status", watch.status)
        if watch.close_code is not None:
            span.set_attribute("websocket.close.code", watch.close_code)
            span.set_attribute("websocket.close.side", str(watch.close_side))
            if watch.close_reason:
                span.set_attribute("websocket.close.reason", watch.close_reason)
        span.set_attributes(
            {
                "websocket.messages.received": watch.received,
                "websocket.messages.sent": watch.sent,
                "websocket.messages.received_bytes": watch.received_bytes,
                "websocket.messages.sent_bytes": watch.sent_bytes,
            }
        )
        if watch.dropped:
            span.set_attribute("websocket.messages.dropped", watch.dropped)
        if error is not None:
            span.record_exception(error)
            span.set_status(self._error)
        span.end()

    def __repr__(self) -> str:
        return f"Tracing(sample_every={self.every})"
