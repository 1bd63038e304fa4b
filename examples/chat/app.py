"""A chat on lilya: ``lilya run examples.chat.app:app``, then open the printed URL.

One page (``static/index.html``), several rooms over **one** WebSocket: the page
logs in (``POST /login`` with a nickname returns a signed token), imports
``lilya.js`` from ``/lilya.js`` and speaks the lilya channels protocol
(``docs/protocol.md``) to ``/ws``: a room is the channel ``room:{name}``,
with history, recovery and presence per room. See ``docs/chat.md``.

- ``POST /login`` with ``{"nick": "ann"}``: ``{"token", "expires_at"}``, a token
  signed with the app's secret that expires after ``token_ttl`` seconds (the
  page's ``getToken``; lilya.js refreshes it before it runs out).
- ``/ws``: a :class:`~lilya.protocol.ChannelsEndpoint`. Clients subscribe to
  ``room:NAME`` channels (with ``presence: true`` for joins and leaves), read
  ``history`` and ``presence``, and post with the rpc ``say``
  (``{"room", "text", "id"}``): the server publishes ``{"nick", "text", "ts",
  "id"}`` with the nickname of the token, so nobody can post as someone else,
  and with ``message_id`` ``nick + id``, so a ``say`` retried after a reconnect
  is posted once. Clients cannot ``publish`` directly (``publish="server"``).

The one-room route of the first version stays, for plain WebSocket clients
and the flood benchmarks: ``/ws/{room}?nick=ann``. What it sends, one JSON text
frame each:

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

What the client sends there: text frames, each one chat message: either plain
text, or ``{"id": "…", "text": "…"}`` so that resending after an error or a
reconnect can never post it twice. Both routes share the rooms: a message said
on one is seen on the other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path as FilePath
from typing import Any

from lilya import status
from lilya.apps import Lilya
from lilya.browser import LilyaJS
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
from lilya.protocol import ChannelOptions, ChannelsEndpoint, Client, ProtocolError
from lilya.requests import Request
from lilya.responses import HTMLResponse, JSONResponse
from lilya.routing import Path, WebSocketPath
from lilya.tokens import Authenticated
from lilya.websockets import WebSocket

from .login import MAX_NICK, check_nick, read_token, sign_token
from .messages import ChatError, ChatMessage, Gap, History, Presence, Reset, Say, Welcome

__all__ = [
    "HISTORY",
    "MAX_ID",
    "MAX_MESSAGE",
    "MAX_NICK",
    "MAX_ROOMS",
    "TOKEN_TTL",
    "app",
    "create_app",
    "read_handshake",
    "read_message",
    "read_say",
]

#: How many messages a newcomer (or a reloaded page) is shown.
HISTORY = 50
#: Rooms one socket of ``/ws`` may be in at once (more: error ``limit``).
MAX_ROOMS = 20
#: Seconds a login token is valid (lilya.js refreshes it before it expires).
TOKEN_TTL = 3600.0
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


def read_say(data: Any) -> tuple[str, str, str]:
    """Return the room, text and id of a ``say`` rpc's data, stripped and checked.

    Raises:
        ProtocolError: ``bad_request`` for what is not ``{"room": str, "text":
            str, "id": str}`` with a valid room, a text that is not blank and an
            id of 1 to ``MAX_ID`` characters; ``limit`` for a text longer than
            ``MAX_MESSAGE``. The endpoint answers with it; any other exception
            of an rpc handler is the server's bug (``internal``, logged).
    """
    if not isinstance(data, dict):
        raise ProtocolError("bad_request", 'say takes {"room": "…", "text": "…", "id": "…"}')
    room, text, message_id = data.get("room"), data.get("text"), data.get("id")
    if not isinstance(room, str) or not ROOM.fullmatch(room):
        raise ProtocolError("bad_request", "room: 1 to 40 letters, digits, - or _")
    if not isinstance(text, str) or not text.strip():
        raise ProtocolError("bad_request", "text: a non-blank str")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_ID:
        raise ProtocolError("bad_request", f"id: a str of 1 to {MAX_ID} characters")
    text = text.strip()
    if len(text) > MAX_MESSAGE:
        raise ProtocolError("limit", f"a message is at most {MAX_MESSAGE} characters")
    return room, text, message_id


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
    secret: bytes | None = None,
    token_ttl: float = TOKEN_TTL,
    history_size: int | None = None,
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
        secret: ``LILYA_CHAT_SECRET``, the key that signs login tokens; else
            one derived from the channels URL and prefix, so every worker of
            one chat accepts the tokens of the others. That default protects
            nothing here (``/login`` hands any free nickname to anyone); an app
            whose login checks something must set its own secret.
        token_ttl: seconds a login token is valid.
        history_size: ``LILYA_CHAT_HISTORY``, else ``2 * HISTORY`` (100): the
            messages each room keeps, so a page that was away resumes from
            them instead of starting over.
    """
    env = os.environ
    url = channels_url or env.get("LILYA_CHANNELS_URL") or "memory://"
    prefix = key_prefix or env.get("LILYA_CHANNELS_PREFIX") or "lilya:chat"
    if allowed_origins is None:
        allowed_origins = [o for o in env.get("LILYA_CHAT_ORIGINS", "").split(",") if o.strip()]
    if allowed_hosts is None:
        allowed_hosts = [h.strip() for h in env.get("LILYA_CHAT_HOSTS", "").split(",") if h.strip()]
    # By default twice what a newcomer sees, so a client that was away for a
    # while can still resume from history instead of starting over.
    if history_size is None:
        history_size = int(env.get("LILYA_CHAT_HISTORY") or 2 * HISTORY)
    channels = Channels(url, history_size=history_size, key_prefix=prefix)
    if secret is None:
        secret = env["LILYA_CHAT_SECRET"].encode() if env.get("LILYA_CHAT_SECRET") else None
    key = secret or hashlib.sha256(f"lilya chat\n{url}\n{prefix}".encode()).digest()

    async def login(request: Request) -> JSONResponse:
        body = await request.json()  # not JSON: 400, said by lilya
        try:
            nick = check_nick(body.get("nick") if isinstance(body, dict) else None)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        expires_at = time.time() + token_ttl
        return JSONResponse({"token": sign_token(key, nick, expires_at), "expires_at": expires_at})

    def authenticate(websocket: Any, token: str) -> Authenticated | None:
        return read_token(key, token)

    def authorize(user: Any, channel: str, action: str) -> bool:
        # The endpoint's pattern already limits channels to "room:*".
        return ROOM.fullmatch(channel.removeprefix("room:")) is not None

    async def say(client: Client, data: Any) -> dict[str, Any]:
        room, text, message_id = read_say(data)
        nick = str(client.user)
        message = {"nick": nick, "text": text, "ts": time.time(), "id": message_id}
        # Scoped by nick, so one client cannot suppress another's ids; the
        # backend's errors become the protocol's unavailable / unknown_outcome.
        event = await channels.publish(f"room:{room}", message, message_id=f"{nick}\n{message_id}")
        return {"epoch": event.epoch, "offset": event.offset}

    endpoint = ChannelsEndpoint(
        channels,
        authenticate=authenticate,
        authorize=authorize,
        rpc={"say": say},
        channels={"room:*": ChannelOptions(presence=True, publish="server")},
        max_channels=MAX_ROOMS,
    )

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
        routes=[
            Path("/", page, name="page"),
            Path("/login", login, methods=["POST"], name="login"),
            LilyaJS("/lilya.js"),
            WebSocketPath("/ws", endpoint, name="channels"),
            WebSocketPath("/ws/{room}", chat, name="chat"),
        ],
        middleware=middleware,
        lifespan=channels.lifespan,
        allowed_origins=[origin.strip() for origin in allowed_origins],
    )
    app.state.channels = channels
    app.serve_asyncapi(
        title="lilya chat",
        description=(
            "/ws: the lilya channels protocol (rooms are room:NAME channels; post with the "
            "rpc say). /ws/{room}?nick=NAME: one room per socket (since=EPOCH:OFFSET resumes)."
        ),
    )
    return app


app = create_app()
