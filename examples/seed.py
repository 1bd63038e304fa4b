"""The seed's two examples as one ASGI app: serve it with ``uvicorn examples.seed:app``.

``/`` says hello in binary JSON and closes (the seed's first example);
``/echo`` echoes JSON messages until the client leaves (the second). A plain
HTTP request gets a page that opens the echo socket, so a browser can try it.
"""

from __future__ import annotations

from lilya.responses import HTMLResponse
from lilya.types import Receive, Scope, Send
from lilya.websockets import WebSocket

PAGE = """<!doctype html>
<title>lilya seed echo</title>
<input id="msg" value='{"hello": "lilya"}' size="40"> <button id="send">send</button>
<pre id="log"></pre>
<script>
const log = (line) => (document.getElementById("log").textContent += line + "\\n");
const ws = new WebSocket(`ws://${location.host}/echo`);
ws.binaryType = "arraybuffer";
ws.onopen = () => log("open");
ws.onmessage = (e) => log("got " + new TextDecoder().decode(e.data));
ws.onclose = (e) => log("closed " + e.code);
document.getElementById("send").onclick = () => ws.send(document.getElementById("msg").value);
</script>
"""


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    websocket = WebSocket(scope=scope, receive=receive, send=send)
    await websocket.accept()
    await websocket.send_json({"message": "Hello, world!"}, mode="binary")
    await websocket.close()


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    websocket = WebSocket(scope=scope, receive=receive, send=send)
    await websocket.accept()
    async for message in websocket.iter_json():
        data = {"message": f"Message text was: {message}"}
        await websocket.send_json(data, mode="binary")
    await websocket.close()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Dispatch on scope type and path; lifespan events are acknowledged."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "http":
        await HTMLResponse(PAGE)(scope, receive, send)
    elif scope["path"] == "/echo":
        await echo(scope, receive, send)
    else:
        await hello(scope, receive, send)
