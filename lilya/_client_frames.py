"""What the Python client reads off the wire: server frames checked against protocol v1.

Sans-I/O: :func:`parse` takes the text of one frame and returns a typed
object, or raises :class:`ProtocolError` naming the field and what is wrong
with it. The client never looks inside a raw dict; whatever reaches it has the
shape ``docs/protocol.md`` promises. (The server is the peer here: its bad
frames are *its* fault, so they are an error with fields, never a
``KeyError`` in the client's reader.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lilya._json import loads
from lilya.exceptions import InvalidJSONError

__all__ = [
    "Disconnect",
    "Gap",
    "Join",
    "Leave",
    "Message",
    "Ping",
    "Position",
    "ProtocolError",
    "Reply",
    "Reset",
    "parse",
]


class ProtocolError(Exception):
    """The server sent a frame that breaks protocol v1.

    The client closes that socket with 1002 and reconnects; requests that were
    waiting on it fail with this error (a publish is retried instead).

    Attributes:
        frame: the text of the offending frame (cut to 200 characters).
    """

    def __init__(self, message: str, frame: str = "") -> None:
        super().__init__(message)
        self.frame = frame[:200]


@dataclass(frozen=True)
class Position:
    """Where a channel's stream stands: its epoch and the offset of its last message."""

    epoch: str
    offset: int


@dataclass(frozen=True)
class Message:
    """A message published on ``channel``, at ``offset`` of ``epoch``."""

    channel: str
    epoch: str
    offset: int
    data: Any

    @property
    def position(self) -> Position:
        """The message's place in its channel, as ``since=`` takes it."""
        return Position(self.epoch, self.offset)


@dataclass(frozen=True)
class Join:
    """``member`` joined ``channel`` (sent only to subscriptions with ``presence=True``)."""

    channel: str
    member: str
    info: dict[str, Any]


@dataclass(frozen=True)
class Leave:
    """``member`` left ``channel`` (sent only to subscriptions with ``presence=True``)."""

    channel: str
    member: str
    info: dict[str, Any]


@dataclass(frozen=True)
class Gap:
    """The server dropped ``dropped`` messages (offsets ``first``..``last``) for this socket.

    It happens when the client reads too slowly for the server's buffer. The
    messages are lost to this subscription; fetch them with ``history()`` if
    you need them.
    """

    channel: str
    epoch: str
    first: int
    last: int
    dropped: int


@dataclass(frozen=True)
class Reset:
    """The channel could not be resumed from where this subscription was.

    Its history was trimmed or its epoch changed (a backend restarted without
    persistence): what was published in between is unknown. The stream goes
    on from ``epoch``/``offset``; reload your state from the source of truth.
    """

    channel: str
    epoch: str
    offset: int


@dataclass(frozen=True)
class Disconnect:
    """The server is about to close with ``code`` (sent just before the close)."""

    code: int
    reason: str
    reconnect: bool


@dataclass(frozen=True)
class Ping:
    """The server's heartbeat: the client answers ``{"type": "pong"}``."""


@dataclass(frozen=True)
class Reply:
    """The answer to request ``id``: ``ok`` (an object) or ``error`` (``code``, ``message``)."""

    id: int | str | None
    ok: dict[str, Any] | None
    error_code: str = ""
    error_message: str = ""


Push = Message | Join | Leave | Gap | Reset | Disconnect | Ping
Frame = Push | Reply


class _Reader:
    """Typed field access on one frame; every failure names the field."""

    def __init__(self, obj: dict[str, Any], text: str) -> None:
        self.obj = obj
        self.raw = text

    def fail(self, field: str, problem: str) -> ProtocolError:
        kind = self.obj.get("type", "reply")
        return ProtocolError(
            f"The server sent a {kind!r} frame whose {field!r} {problem}; "
            "the server does not speak lilya protocol v1.",
            self.raw,
        )

    def get(self, field: str, kind: type | tuple[type, ...], name: str) -> Any:
        if field not in self.obj:
            raise self.fail(field, "is missing")
        value = self.obj[field]
        # bool is an int in Python, never in JSON's sense of an offset.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(field, f"is a boolean, expected {name}")
        if not isinstance(value, kind):
            raise self.fail(field, f"is {type(value).__name__}, expected {name}")
        return value

    def text(self, field: str) -> str:
        value: str = self.get(field, str, "a string")
        return value

    def integer(self, field: str) -> int:
        value: int = self.get(field, int, "an integer")
        return value

    def object(self, field: str) -> dict[str, Any]:
        value: dict[str, Any] = self.get(field, dict, "an object")
        return value


def _reply(reader: _Reader) -> Reply:
    request_id = reader.obj["id"]
    if request_id is not None and (
        isinstance(request_id, bool) or not isinstance(request_id, int | str)
    ):
        raise reader.fail("id", "is not an integer, a string or null")
    if "ok" in reader.obj:
        return Reply(request_id, reader.object("ok"))
    if "error" not in reader.obj:
        raise reader.fail("ok", "is missing (and so is 'error')")
    error = _Reader(reader.object("error"), reader.raw)
    return Reply(request_id, None, error.text("code"), error.text("message"))


def _push(reader: _Reader, kind: str) -> Push:
    if kind == "message":
        return Message(
            reader.text("channel"),
            reader.text("epoch"),
            reader.integer("offset"),
            reader.obj.get("data"),
        )
    if kind in ("join", "leave"):
        cls = Join if kind == "join" else Leave
        return cls(reader.text("channel"), reader.text("member"), reader.object("info"))
    if kind == "gap":
        return Gap(
            reader.text("channel"),
            reader.text("epoch"),
            reader.integer("first"),
            reader.integer("last"),
            reader.integer("dropped"),
        )
    if kind == "reset":
        return Reset(reader.text("channel"), reader.text("epoch"), reader.integer("offset"))
    if kind == "disconnect":
        reconnect: bool = reader.get("reconnect", bool, "a boolean")
        return Disconnect(reader.integer("code"), reader.text("reason"), reconnect)
    if kind == "ping":
        return Ping()
    raise reader.fail("type", "is unknown (expected message, join, leave, gap, reset, ...)")


def parse(text: str) -> Frame:
    """Return the typed form of one server frame.

    Raises:
        ProtocolError: the frame is not JSON, not an object, or a field is
            missing or of the wrong type.
    """
    try:
        obj = loads(text)
    except InvalidJSONError:
        raise ProtocolError(
            "The server sent a frame that is not JSON; "
            "the server does not speak lilya protocol v1.",
            text,
        ) from None
    if not isinstance(obj, dict):
        raise ProtocolError(
            f"The server sent a JSON {type(obj).__name__}, not an object; "
            "the server does not speak lilya protocol v1.",
            text,
        )
    reader = _Reader(obj, text)
    if "id" in obj:
        return _reply(reader)
    return _push(reader, reader.text("type"))
