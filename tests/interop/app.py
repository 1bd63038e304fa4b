"""The app every server runs in the interop suite: one route per scenario.

Handlers log what *they* observed (``EVENT <id> ...``, with the id the client
put in the query string) so a test can check the app's side of a connection,
not only what the client saw. The routing layer's promise (SPEC §4 and §7) is
what makes the servers agree: whatever a handler does, a ``websocket.close``
(or a denial) is sent before its task ends.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Literal

import anyio

from examples.seed import echo as seed_echo
from examples.seed import hello as seed_hello
from lilya.apps import Lilya
from lilya.caps import ConnectionCaps
from lilya.limits import RateLimit
from lilya.responses import PlainText
from lilya.routing import WebSocketPath
from lilya.websockets import WebSocket, WebSocketDisconnect

# Our own logger only: the servers' and lilya's loggers keep the setup the
# server gives them, so each error is printed as it would be in production.
log = logging.getLogger("interop")
log.setLevel(logging.INFO)
log.propagate = False
_handler = logging.StreamHandler(sys.stdout)
_handler.setFormatter(logging.Formatter("APP %(message)s"))
log.addHandler(_handler)

Handler = Callable[[WebSocket], Awaitable[None]]


def event(websocket: WebSocket, text: str) -> None:
    """Log what the app saw, tagged with the client's ``?id=``."""
    log.info("EVENT %s %s", websocket.query_params.get("id", "-"), text)


async def echo(websocket: WebSocket) -> None:
    offered = websocket["subprotocols"]
    await websocket.accept(
        subprotocol=offered[0] if offered else None, headers={"x-lilya": "accepted"}
    )
    try:
        # The client says which receive_* to use, then sends the frame.
        while True:
            kind = await websocket.receive_text()
            if kind == "text":
                await websocket.send_text(await websocket.receive_text())
            elif kind == "bytes":
                await websocket.send_bytes(await websocket.receive_bytes())
            elif kind in ("json-text", "json-binary"):
                mode: Literal["text", "binary"] = "text" if kind == "json-text" else "binary"
                data = await websocket.receive_json(mode=mode)
                await websocket.send_json({"got": data}, mode=mode)
            elif kind == "size":
                await websocket.send_text(f"len={len(await websocket.receive_bytes())}")
            elif kind == "close":
                await websocket.close(4001, "bye")
                return
    except WebSocketDisconnect as exc:
        event(websocket, f"disconnect code={exc.code} reason={exc.reason!r}")


#: The route limit of ``/limited`` (lilya's own check, far below every server's).
LIMITED = 64 * 1024


async def limited(websocket: WebSocket) -> None:
    """Reply with the length of each binary message; a route with ``max_message_size=LIMITED``."""
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(f"len={len(await websocket.receive_bytes())}")
    except WebSocketDisconnect as exc:
        event(websocket, f"disconnect code={exc.code} reason={exc.reason!r}")


async def rated(websocket: WebSocket) -> None:
    """Echo text; the routes ``/rated`` and ``/rated-drop`` allow bursts of 3 (``RATED``)."""
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect as exc:
        event(websocket, f"disconnect code={exc.code} reason={exc.reason!r}")


#: A burst of 3 and one token a minute: a fourth message at once is over the limit.
RATED = RateLimit(per_second=1 / 60, burst=3)
RATED_DROP = RateLimit(per_second=1 / 60, burst=3, on_exceed="drop", error_frame="dropped")


#: One socket per process (``/full``: 503) and per address (``/crowded``: 429).
FULL = ConnectionCaps(per_process=1, per_address=None, retry_after=7)
CROWDED = ConnectionCaps(per_process=None, per_address=1, retry_after=7)
#: The send timeout of ``/stalled``: a client that stops reading is closed 1013 after it.
STALL_TIMEOUT = 0.5
#: The most ``/stalled`` sends (in 64 KiB messages) waiting for a send to block.
STALL_CAP = 64 * 1024 * 1024


async def stalled(websocket: WebSocket) -> None:
    """Send 64 KiB messages to a client that reads nothing, until a send times out."""
    await websocket.accept()
    chunk = bytes(64 * 1024)
    sent = 0
    try:
        while sent < STALL_CAP:
            await websocket.send_bytes(chunk)
            sent += len(chunk)
    except WebSocketDisconnect as exc:
        event(websocket, f"send raised WebSocketDisconnect({exc.code})")
        return
    event(websocket, f"{STALL_CAP // (1024 * 1024)} MiB, no send waited")


#: The app's handshake timeout: ``/slow-accept`` answers after twice as long.
HANDSHAKE_TIMEOUT = 1.0


async def slow_accept(websocket: WebSocket) -> None:
    """Take longer than ``handshake_timeout`` to accept: lilya refuses and cancels it."""
    try:
        await anyio.sleep(2 * HANDSHAKE_TIMEOUT)
    except anyio.get_cancelled_exc_class():
        event(websocket, "cancelled")
        raise
    await websocket.accept()  # never reached: the timeout comes first


async def reject(websocket: WebSocket) -> None:
    await websocket.close(1008, "not you")


async def deny(websocket: WebSocket) -> None:
    try:
        await websocket.send_denial_response(
            PlainText("no token", status_code=401, headers={"x-why": "token"})
        )
    except RuntimeError as exc:
        # daphne has no Denial Response extension: fall back to a 403.
        event(websocket, f"no denial extension: {exc}")
        await websocket.close()


async def vanish_send(websocket: WebSocket) -> None:
    """Only send, never receive: learns of a vanished client only if a send fails."""
    await websocket.accept()
    await websocket.send_text("ready")
    with anyio.move_on_after(3):
        try:
            while True:
                await websocket.send_text("tick")
                await anyio.sleep(0.01)
        except WebSocketDisconnect as exc:
            event(websocket, f"send raised WebSocketDisconnect({exc.code})")
            return
    event(websocket, "sends still succeed after 3 s")


async def vanish_read(websocket: WebSocket) -> None:
    """Send while a reader task waits: the reader learns of the disconnect."""
    await websocket.accept()
    await websocket.send_text("ready")

    async def read() -> None:
        async for _ in websocket.iter_text():
            pass

    with anyio.move_on_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read)
            try:
                while True:
                    await websocket.send_text("tick")
                    await anyio.sleep(0.01)
            except WebSocketDisconnect as exc:
                event(websocket, f"send raised WebSocketDisconnect({exc.code})")
            tasks.cancel_scope.cancel()
            return
    event(websocket, "sends still succeed after 5 s")


async def close_1008(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")
    await websocket.close(1008, "policy")


async def returns(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")


async def raises_after_accept(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")
    raise RuntimeError("boom after accept")


async def raises_before_accept(websocket: WebSocket) -> None:
    raise RuntimeError("boom before accept")


ROUTES: dict[str, Handler] = {
    "/echo": echo,
    "/reject": reject,
    "/deny": deny,
    "/vanish-send": vanish_send,
    "/vanish-read": vanish_read,
    "/close-1008": close_1008,
    "/return": returns,
    "/raise-after": raises_after_accept,
    "/raise-before": raises_before_accept,
}


#: The heartbeat route's (interval, timeout): a silent client is closed within 2 s (+ 1 s).
HEARTBEAT = (1.0, 1.0)


async def heartbeat_send(websocket: WebSocket) -> None:
    """Only send, on a route with a heartbeat: its silent client is closed 1011 and it is told."""
    await websocket.accept()
    await websocket.send_text("ready")
    with anyio.move_on_after(10):
        try:
            while True:
                await websocket.send_text("tick")
                await anyio.sleep(0.05)
        except WebSocketDisconnect as exc:
            event(websocket, f"send raised WebSocketDisconnect({exc.code})")
            return
    event(websocket, "sends still succeed after 10 s")


#: The idle route's timeout: a client that sends nothing is closed 1001 within 1 s (+ 1 s).
IDLE_TIMEOUT = 1.0


async def idle(websocket: WebSocket) -> None:
    """Say ready, then wait in receive on a route with an idle timeout: it is told 1001."""
    await websocket.accept()
    await websocket.send_text("ready")
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect as exc:
        event(websocket, f"receive raised WebSocketDisconnect({exc.code})")


def logged(handler: Handler) -> Handler:
    """Log when *handler* is over, however it ends, so a test knows when to look."""

    async def run(websocket: WebSocket) -> None:
        try:
            await handler(websocket)
        finally:
            event(websocket, "handler done")

    run.__name__ = handler.__name__
    return run


app = Lilya(
    routes=[
        # The seed's examples are raw ASGI apps; routing serves them as they are.
        WebSocketPath("/seed/hello", seed_hello),
        WebSocketPath("/seed/echo", seed_echo),
        *(WebSocketPath(path, logged(handler)) for path, handler in ROUTES.items()),
        WebSocketPath("/limited", logged(limited), max_message_size=LIMITED),
        WebSocketPath("/rated", logged(rated), rate_limit=RATED),
        WebSocketPath("/rated-drop", logged(rated), rate_limit=RATED_DROP),
        # Caps of 1, against the app's counts: a client holding a socket to
        # /echo is over them (lingering sockets of other scenarios only add).
        WebSocketPath("/full", logged(rated), connection_caps=FULL),
        WebSocketPath("/crowded", logged(rated), connection_caps=CROWDED),
        WebSocketPath("/heartbeat-send", logged(heartbeat_send), heartbeat=HEARTBEAT),
        WebSocketPath("/stalled", logged(stalled), send_timeout=STALL_TIMEOUT),
        WebSocketPath("/idle", logged(idle), idle_timeout=IDLE_TIMEOUT),
        WebSocketPath("/slow-accept", logged(slow_accept)),
    ],
    handshake_timeout=HANDSHAKE_TIMEOUT,
    # No app-wide limit of lilya's: the size rows measure each server's own.
    max_message_size=None,
)
