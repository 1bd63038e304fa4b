"""A TCP load balancer for tests: one loopback port in front of several workers.

A rolling restart is only a test of something when the clients have somewhere
else to go: a browser page knows one origin, and it must reconnect through it
to whichever worker is up, as it would behind nginx or a cloud balancer. This
balancer does what those do at layer 4, and nothing more: each new TCP
connection goes to the next of ``targets`` (round robin), and to the one after
that if the chosen worker refuses the connection (nginx's
``proxy_next_upstream error``); a connection no worker accepts is closed. Bytes
are copied both ways untouched, so the ``Host`` and ``Origin`` the workers see
are the balancer's, as the page sent them.

It runs its own event loop in a thread, so sync and async tests use it alike,
and it remembers where it sent each connection (``routed``) and which are
still open (``open_to``), so a test can say which worker a client is on.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Sequence
from types import TracebackType

from tests.support.servers import free_port

__all__ = ["Balancer"]

#: Bytes copied per read; a WebSocket frame larger than this just takes several.
CHUNK = 65536


class Balancer:
    """Listen on a free loopback port; spread new connections over *targets* (ports).

    Use it as a context manager. ``targets`` may be replaced at any time (a
    worker taken out of rotation, or put back); connections already open stay
    where they are, as on a real balancer.
    """

    def __init__(self, targets: Sequence[int]) -> None:
        self.targets: list[int] = list(targets)
        self.port = free_port()
        #: The worker port of every connection accepted so far, in order.
        self.routed: list[int] = []
        self._open: dict[int, int] = {}
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def open_to(self, port: int) -> int:
        """How many connections to the worker on *port* are open now."""
        with self._lock:
            return self._open.get(port, 0)

    def __enter__(self) -> Balancer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self._server = future.result(10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _dial(self) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Connect to the next target that accepts; ``None`` when none does."""
        targets = list(self.targets)
        start = next(self._turn)
        for i in range(len(targets)):
            port = targets[(start + i) % len(targets)]
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue  # that worker is down: the next one, as a balancer does
            return port, reader, writer
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            dialed = await self._dial()
            if dialed is None:
                writer.transport.abort()
                return
            port, upstream_reader, upstream_writer = dialed
            with self._lock:
                self.routed.append(port)
                self._open[port] = self._open.get(port, 0) + 1
            try:
                await asyncio.gather(_copy(reader, upstream_writer), _copy(upstream_reader, writer))
            finally:
                with self._lock:
                    self._open[port] -= 1
                upstream_writer.transport.abort()
        finally:
            writer.transport.abort()
            self._tasks.discard(task)


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until *source* ends, then pass the end on: a FIN as a half-close, a reset as one.

    Aborting *sink* on a reset ends its own reader too, so the copy the other
    way stops instead of waiting for bytes that will never come.
    """
    try:
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except OSError:
        sink.transport.abort()
