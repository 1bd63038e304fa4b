"""The server side of ``benchmarks/e2e.py``: one ASGI app per stack, the same routes on each.

``E2E_STACK`` picks the stack and ``E2E_BACKEND`` the channel backend
(``memory://`` or a ``redis://`` URL) when the stack has one:

- ``raw``: a bare ASGI loop over a set of ``send`` callables, the floor;
- ``starlette``: Starlette + broadcaster, the loop users hand-roll;
- ``lilya``: a ``Lilya`` app, ``Channels`` and ``relay()``;
- ``protocol``: a ``Lilya`` app with the channels protocol endpoint
  (``lilya.protocol.ChannelsEndpoint``); its ``/sub`` speaks the protocol
  (``connect``, ``subscribe`` to ``"c"``, ``message`` pushes), and it runs
  on servers with a lifespan (not daphne).

Every stack serves:

- ``/echo``: sends back each text message as it came;
- ``/echo-json``: decodes each message as JSON and sends it back encoded;
- ``/sub``: subscribes to channel ``"c"`` before it accepts (so a finished
  handshake means a live subscriber), then relays every publication;
- ``GET /publish?count=K&interval=S&window=W``: starts publishing K messages
  ``"<seq> <monotonic ns>"``, one every S seconds (0: back to back), at most W
  in flight (default 1: each awaited before the next), and answers at once;
- ``GET /status``: ``{"subscribers": n, "published": k, "publishing": bool,
  "error": "<what stopped the publisher>"}``.

The payload carries ``time.monotonic_ns()``, a clock every process on the
machine shares, so the load client can measure publish-to-receive latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Publish = Callable[[str], Awaitable[Any]]

STACK = os.environ.get("E2E_STACK", "raw")
BACKEND = os.environ.get("E2E_BACKEND", "memory://")
CHANNEL = "c"


class Publisher:
    """Counts subscribers and runs one publishing task at a time, for every stack."""

    def __init__(self) -> None:
        self.subscribers = 0
        self.published = 0
        self.error = ""
        self.task: asyncio.Task[None] | None = None

    def start(self, publish: Publish, count: int, interval: float, window: int = 1) -> None:
        self.published = 0
        self.task = asyncio.get_running_loop().create_task(
            self._run(publish, count, interval, max(1, window))
        )

    async def _run(self, publish: Publish, count: int, interval: float, window: int) -> None:
        try:
            await self._publish(publish, count, interval, window)
        except Exception as exc:
            self.error = repr(exc)  # shown by /status: the benchmark stops and says why

    async def _publish(self, publish: Publish, count: int, interval: float, window: int) -> None:
        """Publish *count* messages on schedule, at most *window* of them in flight.

        ``window=1`` awaits each publish before the next, as one request
        handler does; a larger window is a server whose handlers publish
        concurrently. The publishes still start in order, one task each.
        """
        start = time.monotonic()
        in_flight: set[asyncio.Task[Any]] = set()
        for seq in range(count):
            if interval:
                # A fixed schedule, not a fixed sleep: a slow publish does not
                # lower the offered rate.
                delay = start + seq * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if window == 1:
                await publish(f"{seq} {time.monotonic_ns()}")
                self.published += 1
                continue
            while len(in_flight) >= window:
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                self._count(done)
            in_flight.add(asyncio.ensure_future(publish(f"{seq} {time.monotonic_ns()}")))
        if in_flight:
            done, _ = await asyncio.wait(in_flight)
            self._count(done)

    def _count(self, done: set[asyncio.Task[Any]]) -> None:
        for task in done:
            task.result()  # a failed publish stops the run, with its error
            self.published += 1

    def status(self) -> bytes:
        publishing = self.task is not None and not self.task.done()
        state = {"subscribers": self.subscribers, "published": self.published, "error": self.error}
        return json.dumps({**state, "publishing": publishing}).encode()


async def http(scope: Scope, send: Send, publisher: Publisher, publish: Publish) -> None:
    """Answer ``/publish`` and ``/status`` (any other path: 404), for every stack."""
    status, body = 404, b"not found"
    if scope["path"] == "/publish":
        query = parse_qs(scope["query_string"].decode())
        publisher.start(
            publish,
            int(query["count"][0]),
            float(query.get("interval", ["0"])[0]),
            int(query.get("window", ["1"])[0]),
        )
        status, body = 202, b'{"started": true}'
    elif scope["path"] == "/status":
        status, body = 200, publisher.status()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def beside(stack: Any, publisher: Publisher, publish: Publish) -> Any:
    """*stack* for WebSockets, with ``/publish`` and ``/status`` answered beside it."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await http(scope, send, publisher, publish)
        else:
            await stack(scope, receive, send)

    return app


# -- raw: the floor --------------------------------------------------------------


def make_raw() -> Any:
    publisher = Publisher()
    sends: set[Send] = set()

    async def publish(text: str) -> None:
        message = {"type": "websocket.send", "text": text}
        for send in list(sends):
            try:
                await send(message)
            except Exception:
                sends.discard(send)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] == "http":
            await http(scope, send, publisher, publish)
            return
        await receive()  # websocket.connect
        path = scope["path"]
        subscribed = path == "/sub"
        if subscribed:
            sends.add(send)
            publisher.subscribers += 1
        await send({"type": "websocket.accept"})
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                if path == "/echo":
                    await send({"type": "websocket.send", "text": message["text"]})
                elif path == "/echo-json":
                    text = json.dumps(json.loads(message["text"]), separators=(",", ":"))
                    await send({"type": "websocket.send", "text": text})
        finally:
            if subscribed:
                sends.discard(send)
                publisher.subscribers -= 1

    return app


# -- Starlette + broadcaster: what users hand-roll -------------------------------


def make_starlette() -> Any:
    import anyio
    from broadcaster import Broadcast
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    publisher = Publisher()
    broadcast = Broadcast(BACKEND)

    async def publish(text: str) -> None:
        await broadcast.publish(channel=CHANNEL, message=text)

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect:
            return

    async def echo_json(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_json(await websocket.receive_json())
        except WebSocketDisconnect:
            return

    async def sub(websocket: WebSocket) -> None:
        async with broadcast.subscribe(channel=CHANNEL) as subscriber:
            publisher.subscribers += 1
            try:
                await websocket.accept()

                async def forward() -> None:
                    async for event in subscriber:
                        await websocket.send_text(event.message)

                async with anyio.create_task_group() as group:
                    group.start_soon(forward)
                    try:
                        while (await websocket.receive())["type"] != "websocket.disconnect":
                            pass
                    finally:
                        group.cancel_scope.cancel()
            except (WebSocketDisconnect, RuntimeError, OSError):
                pass
            finally:
                publisher.subscribers -= 1

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await broadcast.connect()
        try:
            yield
        finally:
            await broadcast.disconnect()

    starlette = Starlette(
        routes=[
            WebSocketRoute("/echo", echo),
            WebSocketRoute("/echo-json", echo_json),
            WebSocketRoute("/sub", sub),
        ],
        lifespan=lifespan,
    )

    return beside(starlette, publisher, publish)


# -- lilya: Channels and relay() -------------------------------------------------


def make_lilya() -> Any:
    from lilya.apps import Lilya
    from lilya.channels import Channels, relay
    from lilya.routing import WebSocketPath
    from lilya.websockets import WebSocket

    publisher = Publisher()
    channels = Channels(BACKEND)

    lock = asyncio.Lock()

    async def connected() -> Channels:
        # Connected on first use rather than in the lifespan: daphne runs none.
        async with lock:
            if not channels.connected:
                await channels.connect()
        return channels

    async def publish(text: str) -> None:
        await (await connected()).publish(CHANNEL, text)

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text)

    async def echo_json(websocket: WebSocket) -> None:
        await websocket.accept()
        async for value in websocket.iter_json():
            await websocket.send_json(value)

    async def sub(websocket: WebSocket) -> None:
        async with (await connected()).subscribe(CHANNEL) as subscription:
            publisher.subscribers += 1
            try:
                await relay(websocket, subscription)
            finally:
                publisher.subscribers -= 1

    routes = [
        WebSocketPath("/echo", echo),
        WebSocketPath("/echo-json", echo_json),
        WebSocketPath("/sub", sub),
    ]
    # A benchmark is the flood the defaults exist to stop: thousands of
    # sockets from one address, messages as fast as they go.
    lilya = Lilya(routes=routes, rate_limit=None, connection_caps=None)

    return beside(lilya, publisher, publish)


# -- lilya's channels protocol: one ChannelsEndpoint ------------------------------


def make_protocol() -> Any:
    from lilya.apps import Lilya
    from lilya.channels import Channels
    from lilya.protocol import ChannelsEndpoint
    from lilya.routing import WebSocketPath

    publisher = Publisher()
    channels = Channels(BACKEND)

    async def publish(text: str) -> None:
        await channels.publish(CHANNEL, text)

    def authorize(user: Any, channel: str, action: str) -> bool:
        # Called once per subscribe: the benchmark's count of subscribers.
        if action == "subscribe":
            publisher.subscribers += 1
        return True

    endpoint = ChannelsEndpoint(channels, authorize=authorize)
    lilya = Lilya(
        routes=[WebSocketPath("/sub", endpoint)],
        lifespan=channels.lifespan,
        rate_limit=None,
        connection_caps=None,
    )

    return beside(lilya, publisher, publish)


STACKS: dict[str, Callable[[], Any]] = {
    "raw": make_raw,
    "starlette": make_starlette,
    "lilya": make_lilya,
    "protocol": make_protocol,
}

app = STACKS[STACK]()
