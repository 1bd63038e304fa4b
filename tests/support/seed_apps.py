"""Raw ASGI apps (no routing) served by real servers in the WebSocket tests.

They use only what the seed documents, so they prove the seed against real
servers. The seed's own two examples are written once, in ``examples/seed.py``,
and imported from there. One app dispatches on the path to keep to one server
per test module.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import anyio

from examples.seed import echo as seed_echo
from examples.seed import hello as seed_hello
from lilya.responses import PlainText
from lilya.types import Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger("seed_apps")
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="APP %(message)s")


async def echo(websocket: WebSocket) -> None:
    offered = websocket["subprotocols"]
    await websocket.accept(
        subprotocol=offered[0] if offered else None, headers={"x-lilya": "accepted"}
    )
    # The client says which receive_* to use, then sends the frame.
    async for kind in websocket.iter_text():
        if kind == "text":
            await websocket.send_text(await websocket.receive_text())
        elif kind == "bytes":
            await websocket.send_bytes(await websocket.receive_bytes())
        elif kind in ("json-text", "json-binary"):
            mode: Literal["text", "binary"] = "text" if kind == "json-text" else "binary"
            data = await websocket.receive_json(mode=mode)
            await websocket.send_json({"got": data}, mode=mode)
        elif kind == "close":
            await websocket.close(4001, "bye")
            return
    await websocket.close()


async def vanish(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("ready")
    try:
        with anyio.fail_after(10):
            while True:
                await websocket.send_text("tick")
                await anyio.sleep(0.01)
    except WebSocketDisconnect as exc:
        log.info("vanish: send raised WebSocketDisconnect(%s)", exc.code)
    await websocket.close()  # the client is gone: must be a silent no-op
    log.info("vanish: closed cleanly, state %s", websocket.application_state.name)


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
        await PlainText("seed apps", status_code=404)(scope, receive, send)
        return
    path = scope["path"]
    if path == "/seed/hello":
        await seed_hello(scope, receive, send)
        return
    if path == "/seed/echo":
        await seed_echo(scope, receive, send)
        return
    websocket = WebSocket(scope, receive, send)
    if path == "/echo":
        await echo(websocket)
    elif path == "/vanish":
        await vanish(websocket)
    elif path == "/deny":
        response = PlainText("no token", status_code=401, headers={"x-why": "token"})
        await websocket.send_denial_response(response)
    else:  # /reject and anything else: close before accept, the server answers 403
        await websocket.close()
