"""Prometheus metrics of an app's WebSockets and channels, one process or many.

Turn them on with ``Lilya(metrics=True)`` (the process's :func:`default_metrics`,
served at ``/metrics``) or ``Lilya(metrics=Metrics(path=..., ...))``. Off (the
default) nothing is wrapped: the cost is one ``if`` per connection.

What is measured (every name starts with ``lilya_``; see ``docs/operations.md``):

=====================================================  =========  =====================
metric                                                 type       labels
=====================================================  =========  =====================
``websocket_connections_active``                       gauge      ``route``
``websocket_handshakes_total``                         counter    ``outcome``, ``status``
``websocket_messages_total``                           counter    ``route``, ``direction``
``websocket_message_bytes_total``                      counter    ``route``, ``direction``
``websocket_closes_total``                             counter    ``code``, ``side``
``websocket_connection_duration_seconds``              histogram  ``route``
``websocket_limit_closes_total``                       counter    ``reason``
``websocket_dropped_messages_total``                   counter    ``reason``
``channel_publishes_total``                            counter    ``backend``
``channel_dropped_events_total``                       counter    ``policy``
``channel_gaps_total``                                 counter    ``policy``
``channel_recoveries_total``                           counter    ``outcome``
``channel_backend_reconnects_total``                   counter    ``backend``
=====================================================  =========  =====================

Why messages are counted in batches: a ``prometheus_client`` counter takes a
lock per increment (about 0.3 µs), more than lilya spends on a message. So a
connection counts its messages in plain integers (a ``WebSocket`` on its own
fast paths, see ``lilya/_telemetry.py``) and they are added to the counters
when the registry is collected (``/metrics``, or your own exposition of a
shared registry) and when the connection ends: a scrape is always exact. In
multi-process mode a scrape reads the other workers' files, which only their
own flushes write, so there a connection also flushes every ``flush_every``
messages, and their counts may lag by up to that many messages per open
connection; gauges, handshakes, closes and durations never lag.

Several workers: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory
before the workers start (``prometheus_client``'s multi-process mode); each
worker writes its values there and ``/metrics``, whichever worker answers,
sums them all (the active gauge is ``livesum``).
"""

from __future__ import annotations

import os
import re
import threading
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from lilya import _telemetry
from lilya._telemetry import Watch
from lilya.exceptions import ImproperlyConfigured
from lilya.requests import Request
from lilya.responses import Response

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["DEFAULT_DURATION_BUCKETS", "METRIC_NAMES", "Metrics", "default_metrics"]

#: Connection duration buckets (seconds): WebSockets live from seconds to days.
DEFAULT_DURATION_BUCKETS = (0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)

#: Every metric :class:`Metrics` exports, as Prometheus names it (counters with ``_total``).
METRIC_NAMES = (
    "lilya_websocket_connections_active",
    "lilya_websocket_handshakes_total",
    "lilya_websocket_messages_total",
    "lilya_websocket_message_bytes_total",
    "lilya_websocket_closes_total",
    "lilya_websocket_connection_duration_seconds",
    "lilya_websocket_limit_closes_total",
    "lilya_websocket_dropped_messages_total",
    "lilya_channel_publishes_total",
    "lilya_channel_dropped_events_total",
    "lilya_channel_gaps_total",
    "lilya_channel_recoveries_total",
    "lilya_channel_backend_reconnects_total",
)

_INSTALL = "pip install 'lilya[metrics]'"


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"lilya.metrics needs the prometheus_client package, which is not installed: {_INSTALL}"
        ) from exc
    return prometheus_client


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


#: A live gauge's file in the multi-process directory: ``gauge_livesum_<pid>.db``.
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]*_(\d+)\.db")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _forget_dead_workers(directory: str, mark_process_dead: Any) -> None:
    """Drop the live-gauge files of workers that died without saying so (``kill -9``).

    A worker's ``livesum`` gauge file stays in the directory after it dies,
    and the sockets it held would be counted as open for ever; supervisors
    are meant to call ``mark_process_dead`` (gunicorn's ``child_exit``), and
    uvicorn's has no hook. So each scrape checks the pids of those files (the
    workers share the host: the directory is local) and forgets the dead.
    """
    pids = set()
    for name in os.listdir(directory):
        found = _LIVE_GAUGE_FILE.fullmatch(name)
        if found is not None:
            pids.add(int(found.group(1)))
    for pid in pids:
        if not _alive(pid):
            mark_process_dead(pid, directory)


class _Connection:
    """One watched connection's labelled children and what was flushed of its counts."""

    __slots__ = ("bytes_in", "bytes_out", "flushed", "messages_in", "messages_out", "route")

    def __init__(self, metrics: Metrics, route: str) -> None:
        self.route = route
        self.messages_in = metrics.messages.labels(route, "received")
        self.messages_out = metrics.messages.labels(route, "sent")
        self.bytes_in = metrics.message_bytes.labels(route, "received")
        self.bytes_out = metrics.message_bytes.labels(route, "sent")
        self.flushed = [0, 0, 0, 0]


class _FlushOnCollect:
    """Registered ahead of lilya's collectors: collecting the registry first flushes the counts.

    So any exposition of the registry (``/metrics``, ``generate_latest``, a
    shared ``REGISTRY``'s own server) sees every open connection's messages
    up to now, without a per-message countdown. Holds the ``Metrics`` weakly:
    a dropped one leaves nothing to flush.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = weakref.ref(metrics)

    def describe(self) -> list[Any]:
        """No metric of its own (``prometheus_client`` asks at registration)."""
        return []

    def collect(self) -> list[Any]:
        """Flush the open connections' counts; yield no metric."""
        metrics = self._metrics()
        if metrics is not None:
            metrics.flush()
        return []


class Metrics:
    """The Prometheus collectors of lilya's WebSockets and channels, and their ``/metrics`` page.

    Give it to an app (``Lilya(metrics=Metrics())``); the app watches every
    WebSocket through it and serves :meth:`endpoint` at *path*. It also
    counts the events of every :class:`~lilya.channels.Channels` of the
    process while it lives.

    Args:
        path: where the app serves the metrics page; ``None`` serves none (mount
            :meth:`endpoint` yourself, on another port say).
        registry: the ``prometheus_client.CollectorRegistry`` to register in
            (a new one by default; pass ``prometheus_client.REGISTRY`` to
            share the global one with your own metrics).
        flush_every: in multi-process mode, add a connection's message
            counts to the counters every this many messages (always at its end
            and when the registry is collected).
        duration_buckets: the connection duration histogram's buckets (seconds).

    Raises:
        ImproperlyConfigured: ``prometheus_client`` is not installed (``pip
            install 'lilya[metrics]'``), or an argument is out of range.
    """

    def __init__(
        self,
        *,
        path: str | None = "/metrics",
        registry: CollectorRegistry | None = None,
        flush_every: int = 256,
        duration_buckets: Sequence[float] = DEFAULT_DURATION_BUCKETS,
    ) -> None:
        prometheus = _prometheus()
        if isinstance(flush_every, bool) or not isinstance(flush_every, int) or flush_every < 1:
            raise ImproperlyConfigured(
                f"Metrics(flush_every=) must be a whole number of messages >= 1, "
                f"got {flush_every!r}."
            )
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise ImproperlyConfigured(
                f"Metrics(path=) must be a path starting with '/' or None, got {path!r}."
            )
        self.path = path
        self.flush_every = flush_every
        # Ticks (the countdown per message) only where a collection cannot reach
        # the connections: the other workers' files (see the module's docstring).
        self.every = 0 if _multiprocess_dir() is None else flush_every
        self.registry = prometheus.CollectorRegistry() if registry is None else registry
        if not self.every:
            self.registry.register(_FlushOnCollect(self))
        self._prometheus = prometheus
        self._lock = threading.Lock()
        self._live: dict[Watch, int] = {}
        counter, gauge, histogram = prometheus.Counter, prometheus.Gauge, prometheus.Histogram
        reg = self.registry
        self.active = gauge(
            "lilya_websocket_connections_active",
            "WebSocket connections open now (accepted, not yet ended), by route.",
            ["route"],
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.handshakes = counter(
            "lilya_websocket_handshakes",
            "WebSocket handshakes by outcome (accepted, denied, abandoned) and HTTP status.",
            ["outcome", "status"],
            registry=reg,
        )
        self.messages = counter(
            "lilya_websocket_messages",
            "WebSocket data messages by route and direction (received, sent).",
            ["route", "direction"],
            registry=reg,
        )
        self.message_bytes = counter(
            "lilya_websocket_message_bytes",
            "WebSocket message payload bytes (UTF-8 for text) by route and direction.",
            ["route", "direction"],
            registry=reg,
        )
        self.closes = counter(
            "lilya_websocket_closes",
            "Closed WebSocket connections by close code and the side that closed first.",
            ["code", "side"],
            registry=reg,
        )
        self.duration = histogram(
            "lilya_websocket_connection_duration_seconds",
            "How long accepted WebSocket connections lasted, accept to end, by route.",
            ["route"],
            registry=reg,
            buckets=tuple(duration_buckets),
        )
        self.limit_closes = counter(
            "lilya_websocket_limit_closes",
            "Connections lilya closed or refused for a limit, by reason "
            "(message_size, rate, origin, drain, send_timeout, connection_cap, heartbeat, "
            "idle_timeout).",
            ["reason"],
            registry=reg,
        )
        self.dropped_messages = counter(
            "lilya_websocket_dropped_messages",
            "Client messages lilya dropped instead of closing, by reason "
            '(rate: a RateLimit with on_exceed="drop").',
            ["reason"],
            registry=reg,
        )
        self.publishes = counter(
            "lilya_channel_publishes",
            "Messages published through lilya.channels, by backend (URL scheme).",
            ["backend"],
            registry=reg,
        )
        self.dropped_events = counter(
            "lilya_channel_dropped_events",
            "Events a subscription's queue policy discarded, by policy.",
            ["policy"],
            registry=reg,
        )
        self.gaps = counter(
            "lilya_channel_gaps",
            "Gap events a subscription's queue policy put in its queue, by policy.",
            ["policy"],
            registry=reg,
        )
        self.recoveries = counter(
            "lilya_channel_recoveries",
            "Catch-ups from history (since= or after a reconnect): recovered or reset.",
            ["outcome"],
            registry=reg,
        )
        self.reconnects = counter(
            "lilya_channel_backend_reconnects",
            "Times a channel backend reconnected and resynced, by backend.",
            ["backend"],
            registry=reg,
        )
        _telemetry.channel_observers.add(self)

    # -- the connection observer (lilya._telemetry.watch calls these) ------------

    def started(self, watch: Watch, index: int) -> None:
        """Nothing to do until the handshake is answered."""

    def opened(self, watch: Watch, index: int) -> None:
        """The handshake was accepted: count it, and the connection as active on its route."""
        route = watch.route or "unknown"
        watch.states[index] = _Connection(self, route)
        self.handshakes.labels("accepted", "101").inc()
        self.active.labels(route).inc()
        with self._lock:
            self._live[watch] = index

    def refused(self, watch: Watch, index: int) -> None:
        """The handshake was denied with ``watch.status``."""
        self.handshakes.labels("denied", str(watch.status)).inc()

    def tick(self, watch: Watch, index: int, direction: str, size: int) -> None:
        """``flush_every`` messages passed (multi-process mode): add the counts to the counters."""
        if watch.states[index] is not None:  # None: raw code sent before accepting
            self._flush(watch, index)

    def limit(self, watch: Watch, index: int, reason: str) -> None:
        """lilya closed or refused the connection for *reason*."""
        self.limit_closes.labels(reason).inc()

    def dropped(self, watch: Watch, index: int, reason: str) -> None:
        """lilya dropped one of the client's messages for *reason*."""
        self.dropped_messages.labels(reason).inc()

    def ended(self, watch: Watch, index: int, error: BaseException | None) -> None:
        """The connection is over: flush, and count its close and duration."""
        connection: _Connection | None = watch.states[index]
        if connection is None:
            if watch.status is None:
                self.handshakes.labels("abandoned", "").inc()
            return
        with self._lock:
            del self._live[watch]
        self._flush(watch, index)
        self.closes.labels(str(watch.close_code), str(watch.close_side)).inc()
        accepted = cast(float, watch.accepted)  # set before opened() made the connection
        self.duration.labels(connection.route).observe(time.monotonic() - accepted)
        self.active.labels(connection.route).dec()

    def _flush(self, watch: Watch, index: int) -> None:
        connection: _Connection = watch.states[index]
        with self._lock:
            flushed = connection.flushed
            counts = (watch.received, watch.received_bytes, watch.sent, watch.sent_bytes)
            deltas = [now - before for now, before in zip(counts, flushed, strict=True)]
            connection.flushed = list(counts)
        children = (
            connection.messages_in,
            connection.bytes_in,
            connection.messages_out,
            connection.bytes_out,
        )
        for child, delta in zip(children, deltas, strict=True):
            if delta:
                child.inc(delta)

    def flush(self) -> None:
        """Add every open connection's message counts to the counters (a scrape does it)."""
        with self._lock:
            live = list(self._live.items())
        for watch, index in live:
            self._flush(watch, index)

    # -- the channel observer (lilya._telemetry's channel hooks call these) ------

    def channel_published(self, backend: str) -> None:
        """A message was published on *backend*."""
        self.publishes.labels(backend).inc()

    def channel_dropped(self, policy: str, count: int) -> None:
        """A queue *policy* discarded *count* events."""
        self.dropped_events.labels(policy).inc(count)

    def channel_gap(self, policy: str) -> None:
        """A queue *policy* started a new gap event."""
        self.gaps.labels(policy).inc()

    def channel_recovery(self, outcome: str) -> None:
        """A catch-up from history ended *outcome* (recovered or reset)."""
        self.recoveries.labels(outcome).inc()

    def backend_reconnected(self, backend: str) -> None:
        """*backend* reconnected."""
        self.reconnects.labels(backend).inc()

    # -- the page ----------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """Return the metrics in Prometheus' text format, and its content type.

        With ``PROMETHEUS_MULTIPROC_DIR`` set, the values of every worker
        (read from that directory; the live gauges of workers that died are
        forgotten first); otherwise this registry's.
        """
        self.flush()
        prometheus = self._prometheus
        registry = self.registry
        directory = _multiprocess_dir()
        if directory is not None:
            from prometheus_client import multiprocess

            _forget_dead_workers(directory, multiprocess.mark_process_dead)
            registry = prometheus.CollectorRegistry()
            # prometheus_client leaves this one constructor unannotated.
            multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return prometheus.generate_latest(registry), prometheus.CONTENT_TYPE_LATEST

    async def endpoint(self, request: Request) -> Response:
        """The ``/metrics`` page: an HTTP handler for a ``Path`` route."""
        body, content_type = self.render()
        return Response(body, media_type=content_type)

    def __repr__(self) -> str:
        return f"Metrics(path={self.path!r}, flush_every={self.flush_every})"


_default: Metrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> Metrics:
    """The process's :class:`Metrics`, made on first use: what ``Lilya(metrics=True)`` uses.

    One per process, so several apps (or tests) share its collectors instead
    of registering the same names twice, and in multi-process mode one set
    of values per worker is written.
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = Metrics()
        return _default
