"""A chat room on lilya: ``lilya run examples.chat.app:app``, then open the printed URL.

One page (``static/index.html``) and one WebSocket route, ``/ws/{room}?nick=ann``.
Messages fan out through :mod:`lilya.channels`: ``memory://`` by default (one
process), or the URL in ``LILYA_CHANNELS_URL`` (``redis://127.0.0.1:6379/0``)
for several workers or hosts. See ``docs/chat.md``.

What the server sends, one JSON text frame each:

- ``welcome``: ``room``, ``nick``, ``member`` (your presence id), ``pid`` (the
  worker process that serves you), ``resumed`` (your ``since=`` was honoured)
  and ``online`` (``[{"member", "nick"}]``);
- ``history``: ``messages`` (the last 50, oldest first) and ``reset`` (you asked
  to resume but that history is gone: replace what you show). Sent on a fresh
  join or when a resume is impossible; after a resume, the missed messages come
  as ordinary ``message`` frames instead;
- ``message``: ``epoch``, ``offset``, ``nick``, ``text``, ``ts``. Keep the last
  ``epoch:offset`` and reconnect with ``?since=EPOCH:OFFSET`` to get exactly
  what you missed;
- ``join`` / ``leave``: ``member``, ``nick``;
- ``reset``: the server lost your place (Redis restarted empty while you were
  connected); reconnect without ``since``;
- ``error``: ``reason``, for a message of yours that was refused.

What the client sends: text frames, each one chat message.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path as FilePath
from typing import Any

from lilya import status
from lilya.apps import Lilya
from lilya.channels import BackendUnavailableError, Channels, Event, Position, relay
from lilya.exceptions import HTTPException, WebSocketException
from lilya.middleware import DefineMiddleware
from lilya.middleware.trusted_host import TrustedHostMiddleware
from lilya.requests import Request
from lilya.responses import HTMLResponse
from lilya.routing import Path, WebSocketPath
from lilya.websockets import WebSocket

__all__ = [
    "HISTORY",
    "MAX_MESSAGE",
    "MAX_NICK",
    "app",
    "create_app",
    "read_handshake",
]

#: How many messages a newcomer (or a reloaded page) is shown.
HISTORY = 50
#: Longest nickname, in characters; longer (or empty) is refused with 400.
MAX_NICK = 24
#: Longest chat message, in characters; longer is refused with an ``error`` frame.
MAX_MESSAGE = 1000

ROOM = re.compile(r"[A-Za-z0-9_-]{1,40}")
PAGE = (FilePath(__file__).parent / "static" / "index.html").read_text(encoding="utf-8")


def _parse_since(text: str | None) -> Position | None:
    """``"EPOCH:OFFSET"`` to a position; ``ValueError`` if it is malformed."""
    if text is None or text == "":
        return None
    epoch, _, offset = text.rpartition(":")
    if not epoch or not offset.isdigit():
        raise ValueError(text)
    return Position(epoch, int(offset))


def _message(event: Event) -> dict[str, Any]:
    return {"type": "message", "epoch": event.epoch, "offset": event.offset, **event.data}


def read_handshake(websocket: WebSocket, room: str) -> tuple[str, Position | None]:
    """Check a handshake; return the nickname and the position to resume from.

    The ``Origin`` was checked before: lilya refuses a page of another site
    (cross-site WebSocket hijacking) with 403 unless it is in the app's
    ``allowed_origins`` (``docs/security.md``).

    Raises:
        HTTPException: 400 for a bad nickname, room or ``since``. Before
            accept, lilya sends it as a denial response (``PlainText`` with
            that status) where the server has the Denial Response extension,
            and closes with 1008 otherwise (daphne), which the client sees as
            403.
    """
    nick = (websocket.query_params.get("nick") or "").strip()
    if not nick or len(nick) > MAX_NICK or not nick.isprintable():
        raise HTTPException(400, f"Choose a nickname of 1 to {MAX_NICK} characters.")
    if not ROOM.fullmatch(room):
        raise HTTPException(400, "Room names are 1 to 40 letters, digits, - or _.")
    try:
        since = _parse_since(websocket.query_params.get("since"))
    except ValueError:
        raise HTTPException(400, "since must be EPOCH:OFFSET, from a message's fields.") from None
    return nick, since


def create_app(
    channels_url: str | None = None,
    *,
    key_prefix: str | None = None,
    allowed_origins: Sequence[str] | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> Lilya:
    """Build the chat app. Each argument defaults to its environment variable.

    Args:
        channels_url: ``LILYA_CHANNELS_URL``, else ``memory://``.
        key_prefix: ``LILYA_CHANNELS_PREFIX``, else ``lilya:chat`` (Redis key
            and pub/sub prefix; apps sharing one Redis need different ones).
        allowed_origins: ``LILYA_CHAT_ORIGINS`` (comma-separated): origins
            allowed besides the page's own, e.g. when a proxy rewrites ``Host``.
        allowed_hosts: ``LILYA_CHAT_HOSTS`` (comma-separated): when set, only
            these ``Host`` names are served (``TrustedHostMiddleware``), which
            defeats DNS rebinding.
    """
    env = os.environ
    url = channels_url or env.get("LILYA_CHANNELS_URL") or "memory://"
    prefix = key_prefix or env.get("LILYA_CHANNELS_PREFIX") or "lilya:chat"
    if allowed_origins is None:
        allowed_origins = [o for o in env.get("LILYA_CHAT_ORIGINS", "").split(",") if o.strip()]
    if allowed_hosts is None:
        allowed_hosts = [h.strip() for h in env.get("LILYA_CHAT_HOSTS", "").split(",") if h.strip()]
    # Twice what a newcomer sees, so a client that was away for a while can
    # still resume from history instead of starting over.
    channels = Channels(url, history_size=2 * HISTORY, key_prefix=prefix)

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE, headers={"cache-control": "no-store"})

    async def chat(websocket: WebSocket, room: str) -> None:
        nick, since = read_handshake(websocket, room)
        channel = f"room:{room}"

        async def say(data: Any) -> None:
            if not isinstance(data, str):
                raise WebSocketException(status.WS_1003_UNSUPPORTED_DATA, "send text frames")
            text = data.strip()
            if not text:
                return
            if len(text) > MAX_MESSAGE:
                await websocket.send_json({"type": "error", "reason": "message too long"})
                return
            try:
                await channels.publish(channel, {"nick": nick, "text": text, "ts": time.time()})
            except BackendUnavailableError:
                await websocket.send_json({"type": "error", "reason": "not sent, try again"})

        async with contextlib.AsyncExitStack() as stack:
            try:
                sub = await stack.enter_async_context(
                    channels.subscribe(channel, since=since, presence={"nick": nick})
                )
                online = await channels.presence(channel)
                # A fresh join, or a resume that history can no longer serve:
                # send the recent history. The subscription already queues
                # live events; those the history also holds are skipped below.
                backlog = None
                if since is None or not sub.recovered:
                    backlog = await channels.history(channel, limit=HISTORY)
            except BackendUnavailableError:
                raise HTTPException(503, "The chat's message store is unavailable.") from None
            await websocket.accept()
            await websocket.send_json(
                {
                    "type": "welcome",
                    "room": room,
                    "nick": nick,
                    "member": sub.member,
                    "pid": os.getpid(),
                    "resumed": backlog is None,
                    "online": [
                        {"member": member, "nick": (info or {}).get("nick", "?")}
                        for member, info in online.items()
                    ],
                }
            )
            floor: Position | None = None
            if backlog is not None:
                await websocket.send_json(
                    {
                        "type": "history",
                        "reset": since is not None,
                        "messages": [_message(event) for event in backlog],
                    }
                )
                if backlog:
                    floor = backlog[-1].position

            def encode(event: Event) -> Any:
                if event.type == "message":
                    if floor and event.epoch == floor.epoch and event.offset <= floor.offset:
                        return None  # already sent in the history
                    return _message(event)
                if event.type in ("join", "leave"):
                    info = event.data.get("info") or {}
                    return {
                        "type": event.type,
                        "member": event.data["member"],
                        "nick": info.get("nick", "?"),
                    }
                return {"type": "reset"}

            await relay(websocket, sub, on_receive=say, encode=encode)

    middleware = []
    if allowed_hosts:
        middleware.append(
            DefineMiddleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
        )
    app = Lilya(
        routes=[Path("/", page, name="page"), WebSocketPath("/ws/{room}", chat, name="chat")],
        middleware=middleware,
        lifespan=channels.lifespan,
        allowed_origins=[origin.strip() for origin in allowed_origins],
    )
    app.state.channels = channels
    return app


app = create_app()
