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
- ``message``: ``epoch``, ``offset``, ``nick``, ``text``, ``ts``, and ``id`` when
  the sender gave one. Keep the last ``epoch:offset`` and reconnect with
  ``?since=EPOCH:OFFSET`` to get exactly what you missed; an offset that jumps
  ahead means you missed messages: reconnect with ``since`` the last one you have;
- ``gap``: ``epoch``, ``first``, ``last``: those messages were not delivered to
  you (they are in history: reconnect with ``since=EPOCH:FIRST-1``);
- ``presence``: ``snapshot``, ``joined`` and ``left`` (each ``[{"member",
  "nick"}]``): who came and went since the last one, at most four a second
  however many people join (``snapshot: true``: the full list, sent first);
- ``reset``: the server lost your place (Redis restarted empty while you were
  connected); reconnect without ``since``;
- ``error``: ``reason`` and the message's ``id``, for a message of yours that
  was refused; with ``retry: true`` its fate is unknown (the store stalled):
  send it again with the same ``id``, which is delivered once.

What the client sends: text frames, each one chat message: either plain text,
or ``{"id": "…", "text": "…"}`` (the page sends this) so that resending after
an error or a reconnect can never post it twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path as FilePath
from typing import Any

from lilya import status
from lilya.apps import Lilya
from lilya.channels import (
    BackendUnavailableError,
    Channels,
    Event,
    Position,
    PublishOutcomeUnknownError,
    check_position,
    relay,
)
from lilya.exceptions import HTTPException, WebSocketException
from lilya.middleware import DefineMiddleware
from lilya.middleware.trusted_host import TrustedHostMiddleware
from lilya.requests import Request
from lilya.responses import HTMLResponse
from lilya.routing import Path, WebSocketPath
from lilya.websockets import WebSocket

from .messages import ChatError, ChatMessage, Gap, History, Presence, Reset, Say, Welcome

__all__ = [
    "HISTORY",
    "MAX_ID",
    "MAX_MESSAGE",
    "MAX_NICK",
    "app",
    "create_app",
    "read_handshake",
    "read_message",
]

#: How many messages a newcomer (or a reloaded page) is shown.
HISTORY = 50
#: Longest nickname, in characters; longer (or empty) is refused with 400.
MAX_NICK = 24
#: Longest chat message, in characters; longer is refused with an ``error`` frame.
MAX_MESSAGE = 1000
#: Longest message id a client may give (the page sends 36-character UUIDs).
MAX_ID = 64

ROOM = re.compile(r"[A-Za-z0-9_-]{1,40}")
PAGE = (FilePath(__file__).parent / "static" / "index.html").read_text(encoding="utf-8")


def _parse_since(text: str | None) -> Position | None:
    """``"EPOCH:OFFSET"`` to a position; ``ValueError`` if it is malformed."""
    if text is None or text == "":
        return None
    epoch, _, offset = text.rpartition(":")
    if not epoch or not offset.isascii() or not offset.isdigit():
        raise ValueError(text)
    # The channels' own rules (offset range, epoch length, valid Unicode).
    return check_position(Position(epoch, int(offset)))


def _message(event: Event) -> dict[str, Any]:
    return {"type": "message", "epoch": event.epoch, "offset": event.offset, **event.data}


def read_message(data: str) -> tuple[str, str | None]:
    """Return the text and id of a chat frame: plain text, or ``{"id", "text"}`` JSON.

    Raises:
        ValueError: a JSON frame that is not an object with a str ``text`` and
            an optional str ``id`` of at most ``MAX_ID`` characters.
    """
    if not data.startswith("{"):
        return data, None
    try:
        frame = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, an over-long integer, too deep
        raise ValueError("a frame starting with { must be JSON") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("text"), str):
        raise ValueError('send {"id": "…", "text": "…"} or plain text')
    message_id = frame.get("id")
    if message_id is not None and (
        not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_ID
    ):
        raise ValueError(f"a message id is a str of 1 to {MAX_ID} characters")
    return frame["text"], message_id


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
            try:
                text, message_id = read_message(data)
            except ValueError as exc:
                await websocket.send_json({"type": "error", "reason": str(exc)})
                return
            text = text.strip()
            refused: dict[str, Any] = {"type": "error", "id": message_id}
            if not text:
                return
            if len(text) > MAX_MESSAGE:
                await websocket.send_json({**refused, "reason": "message too long"})
                return
            message: dict[str, Any] = {"nick": nick, "text": text, "ts": time.time()}
            if message_id is not None:
                message["id"] = message_id
            try:
                await channels.publish(
                    channel,
                    message,
                    # Scoped by nick, so one client cannot suppress another's ids.
                    message_id=None if message_id is None else f"{nick}\n{message_id}",
                )
            except BackendUnavailableError:
                await websocket.send_json({**refused, "reason": "not sent, try again"})
            except PublishOutcomeUnknownError:
                await websocket.send_json(
                    {**refused, "reason": "may not have been sent", "retry": message_id is not None}
                )

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
                if event.type == "presence":
                    # Joins and leaves come coalesced: one frame per burst.
                    return {
                        "type": "presence",
                        "snapshot": event.data["snapshot"],
                        **{
                            side: [
                                {"member": member, "nick": (info or {}).get("nick", "?")}
                                for member, info in event.data[side].items()
                            ]
                            for side in ("joined", "left")
                        },
                    }
                if event.type == "gap":
                    return {"type": "gap", "epoch": event.epoch, **event.data}
                return {"type": "reset"}

            await relay(websocket, sub, on_receive=say, encode=encode)

    # What the socket takes and sends, for app.asyncapi() (examples/chat/messages.py).
    chat.receives = Say  # type: ignore[attr-defined]  # documentation attributes
    chat.sends = Welcome | History | ChatMessage | Presence | Gap | Reset | ChatError  # type: ignore[attr-defined]

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
    app.serve_asyncapi(
        title="lilya chat",
        description="Rooms at /ws/{room}?nick=NAME (and since=EPOCH:OFFSET to resume).",
    )
    return app


app = create_app()
