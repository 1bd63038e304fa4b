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

from lilya.responses import PlainText
from lilya.types import Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from tests.support.seed_apps import seed_echo, seed_hello

log = logging.getLogger("interop")
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="APP %(message)s")

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


async def run_handler(handler: Handler, websocket: WebSocket) -> None:
    """What ``lilya.routing.WebSocketPath`` does around a handler (SPEC §4, §7)."""
    try:
        await handler(websocket)
    except Exception:
        log.exception("handler for %s raised", websocket["path"])
        if websocket.application_state is WebSocketState.CONNECTING:
            if "websocket.http.response" in (websocket.scope.get("extensions") or {}):
                await websocket.send_denial_response(
                    PlainText("Internal Server Error", status_code=500)
                )
            else:
                await websocket.close(1011)
        elif websocket.application_state is WebSocketState.CONNECTED:
            await websocket.close(1011)
    else:
        if websocket.application_state is not WebSocketState.DISCONNECTED:
            await websocket.close(1000)
    finally:
        event(websocket, "handler done")


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await PlainText("interop app", status_code=404)(scope, receive, send)
        return
    if scope["path"] == "/seed/hello":
        await seed_hello(scope, receive, send)
        return
    if scope["path"] == "/seed/echo":
        await seed_echo(scope, receive, send)
        return
    websocket = WebSocket(scope, receive, send)
    await run_handler(ROUTES.get(scope["path"], reject), websocket)
