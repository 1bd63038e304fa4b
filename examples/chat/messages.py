"""The chat's frames as types: what ``/ws/{room}`` receives and sends.

They document the socket (``/asyncapi`` renders them, linked from the page):
the route's handler carries them as its ``receives`` and ``sends``
attributes, which is where ``app.asyncapi()`` looks. The handler itself reads
frames with ``read_message`` (a client may also send plain text, which no
JSON type describes) and relays channel events as JSON.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "ChatError",
    "ChatMessage",
    "Gap",
    "History",
    "Member",
    "Presence",
    "Reset",
    "Say",
    "Welcome",
]


class Say(msgspec.Struct, kw_only=True):
    """A chat message from the client: a text frame of this JSON, or of plain text.

    With an ``id`` (the page sends a UUID), resending after an error or a
    reconnect can never post it twice.
    """

    text: str
    id: str | None = None


class Member(msgspec.Struct):
    """Someone in the room: their presence id and nickname."""

    member: str
    nick: str


class ChatMessage(msgspec.Struct, tag="message", kw_only=True):
    """A chat message; keep the last ``epoch:offset`` to resume with ``?since=``."""

    epoch: str
    offset: int
    nick: str
    text: str
    ts: float
    id: str | None = None


class Welcome(msgspec.Struct, tag="welcome", kw_only=True):
    """The first frame: who you are, which worker serves you, who is online."""

    room: str
    nick: str
    member: str
    pid: int
    resumed: bool
    online: list[Member]


class History(msgspec.Struct, tag="history", kw_only=True):
    """The last messages, oldest first (``reset``: replace what you show)."""

    reset: bool
    messages: list[ChatMessage]


class Gap(msgspec.Struct, tag="gap", kw_only=True):
    """Messages ``first`` to ``last`` were not delivered to you (they are in history)."""

    epoch: str
    first: int
    last: int


class Presence(msgspec.Struct, tag="presence", kw_only=True):
    """Who came and went since the last one (``snapshot``: the full list)."""

    snapshot: bool
    joined: list[Member]
    left: list[Member]


class Reset(msgspec.Struct, tag="reset"):
    """The server lost your place: reconnect without ``since``."""


class ChatError(msgspec.Struct, tag="error", kw_only=True):
    """A message of yours was refused; with ``retry``, send it again with the same id."""

    reason: str
    id: str | None = None
    retry: bool = False
