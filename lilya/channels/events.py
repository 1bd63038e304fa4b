"""What travels on a channel: events, positions and the payload codec.

Every backend hands subscribers the same :class:`Event` objects, and every
payload goes through the same codec, so that an app that works on
``memory://`` behaves the same on ``redis://`` (a tuple you publish comes back
as a list on both, a non-JSON object is refused on both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import orjson

from lilya._json import dumps_text, loads

__all__ = ["Event", "EventType", "Position", "decode", "encode", "encode_json"]

#: ``message`` is something you published. ``presence`` says who is here: its
#: ``data`` is ``{"snapshot": bool, "joined": {member: info}, "left": {member:
#: info}}``, the full list (``snapshot``; sent first to a subscription made with
#: ``presence=``) or the net changes since the previous one, at most one per
#: ``presence_interval``. ``join`` and ``leave`` are what backends carry between
#: processes; subscribers get them coalesced as ``presence``. ``reset`` tells a
#: live subscription that it lost its place (history no longer covers what it
#: missed while Redis was unreachable) and that you should reload state. ``gap``
#: tells a subscription whose drop policy discarded events which ones (``data``:
#: ``{"first", "last", "dropped"}``), so you can fetch them again with
#: ``since=(epoch, first - 1)``.
EventType = Literal["message", "presence", "join", "leave", "reset", "gap"]


class Position(NamedTuple):
    """A place in a channel's history: pass it as ``subscribe(..., since=...)``.

    The ``epoch`` names one unbroken history of the channel; when history is
    lost (Redis restarted empty, ``history_ttl`` expired) the channel starts a
    new epoch and offsets count from 1 again, so an offset alone would be
    ambiguous.
    """

    epoch: str
    offset: int


@dataclass(frozen=True, slots=True)
class Event:
    """One event delivered by a subscription.

    Attributes:
        channel: the channel's name.
        offset: for a ``message``, its place in the channel (1, 2, 3, … per
            epoch); for other types, the offset of the last message before it.
        epoch: the history the offset belongs to.
        data: what was published: a ``str``, ``bytes`` or decoded JSON value.
            Every subscriber of a process shares this object, so treat it as
            read-only.
        type: ``"message"``, ``"presence"``, ``"reset"`` or ``"gap"``.
    """

    channel: str
    offset: int
    epoch: str
    data: Any
    type: EventType = "message"
    # ``data`` as JSON text, made on first use: a thousand subscribers relaying
    # one event would otherwise encode the same object a thousand times. Not
    # part of what an event is (kept out of repr, equality and hashing). The
    # compromise: an event retained in memory:// history keeps its text too.
    _json: str | None = field(default=None, init=False, repr=False, compare=False)
    # The channels protocol's ``message`` push of this event (lilya/protocol.py),
    # for the same reason: made by the first socket that sends it, then shared
    # by every socket of the process subscribed to the channel (an event
    # belongs to one channel, so one frame fits them all).
    _frame: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def position(self) -> Position:
        """The position to resume after this event (``since=event.position``)."""
        return Position(self.epoch, self.offset)

    def _json_text(self) -> str:
        """Return ``data`` as the compact JSON text :meth:`WebSocket.send_json` would send.

        Raises:
            TypeError: ``data`` is not JSON-serialisable (nothing is cached then).
        """
        text = self._json
        if text is None:
            text = dumps_text(self.data)
            # The dataclass is frozen for users; this one slot is filled once.
            object.__setattr__(self, "_json", text)
        return text


# Payload tags: one byte in front of every stored payload so that a str, bytes
# or JSON value comes back as what it was, whichever backend carried it.
TAG_JSON = "j"
TAG_TEXT = "s"
TAG_BYTES = "b"


def encode(data: Any) -> tuple[str, bytes]:
    """Turn published data into a tagged payload.

    You get ``(tag, payload)``: ``str`` is kept as UTF-8 text, ``bytes`` as
    they are, anything else as compact JSON. orjson does the common case; the
    standard library takes over where orjson refuses but JSON allows (integer
    keys, integers beyond 64 bits).

    Raises:
        TypeError: *data* is neither ``str``, ``bytes`` nor JSON-serialisable.
        ValueError: a string in *data* holds a lone surrogate (not UTF-8).
    """
    if isinstance(data, str):
        return TAG_TEXT, _utf8(data)
    if isinstance(data, bytes | bytearray | memoryview):
        return TAG_BYTES, bytes(data)
    try:
        return TAG_JSON, orjson.dumps(data)
    except TypeError:
        pass
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"Channels carry str, bytes or JSON-serialisable data, got {type(data).__name__}: "
            f"{exc}. Convert it (e.g. to a dict) before publishing."
        ) from None
    return TAG_JSON, _utf8(text)


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        # Neither a frame nor Redis can carry it; say so here, not in a server.
        raise ValueError(
            f"Channels carry valid Unicode text only; this data holds a lone surrogate at "
            f"index {exc.start}. Decode your input with errors='replace' or refuse it."
        ) from None


def encode_json(value: Any) -> bytes:
    """Encode *value* as compact JSON (presence info is always JSON).

    Raises:
        TypeError: *value* is not JSON-serialisable.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        raise TypeError("Presence info must be JSON-serialisable; bytes are not.")
    tag, payload = encode(value)
    return payload if tag == TAG_JSON else orjson.dumps(value)


def decode(tag: str, payload: bytes) -> Any:
    """Turn a tagged payload back into what was published.

    Raises:
        ValueError: the tag is unknown (data written by something else).
    """
    if tag == TAG_JSON:
        return loads(payload, "binary")  # exact for integers beyond 64 bits too
    if tag == TAG_TEXT:
        return payload.decode()
    if tag == TAG_BYTES:
        return payload
    raise ValueError(f"Unknown channel payload tag {tag!r}; was it written by lilya?")
