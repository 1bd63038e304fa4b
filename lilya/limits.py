"""Limits on what a client may send: the settings, their documented defaults, and their rules.

Theory of operation
-------------------
A server buffers a whole WebSocket message before it hands it to the app, so
the only limit that protects memory is the server's own (uvicorn's
``ws_max_size``, 16 MiB by default). An app's messages are usually far
smaller (the chat's rule is 1,000 characters), so lilya keeps a limit of its
own, per app and per route:

* ``Lilya(max_message_size=...)`` is the app's default,
  :data:`DEFAULT_MAX_MESSAGE_SIZE` (1 MiB) unless you say otherwise; ``None``
  leaves only the server's limit.
* ``WebSocketPath(..., max_message_size=...)`` overrides it for one route.

The route puts the limit that applies in the scope (:data:`MAX_MESSAGE_SIZE_KEY`)
and the connection enforces it on every message it receives, counted in bytes
after decompression (the server hands over inflated messages; a text message
counts its UTF-8 bytes, as RFC 6455 §5.6 defines its payload). A larger
message is the peer's doing, so it gets a close code, not an exception: lilya
closes with **1009** (RFC 6455 §7.4.1, "message too big") and a reason naming
the setting, and the handler sees ``WebSocketDisconnect(1009)``.

``lilya run`` sets the server's own limit to the app's largest
(:func:`largest_message_size`), so the server never buffers more than your
largest route allows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from lilya.exceptions import ImproperlyConfigured
from lilya.status import WS_1009_MESSAGE_TOO_BIG
from lilya.types import Message, Receive, Send

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_MESSAGE_SIZE_KEY",
    "check_max_message_size",
    "largest_message_size",
    "limit_receive",
    "message_size",
    "too_big_reason",
]

#: The app default for ``max_message_size``: 1 MiB.
DEFAULT_MAX_MESSAGE_SIZE: Final = 1024 * 1024

#: Where a route puts the size limit of its connections in the scope (bytes, or ``None``).
MAX_MESSAGE_SIZE_KEY: Final = "lilya.max_message_size"


def check_max_message_size(value: Any, where: str) -> int | None:
    """Return *value* if it is a usable ``max_message_size``, else raise.

    Args:
        value: a positive number of bytes, or ``None``.
        where: who was given it (``"Lilya"``, ``"WebSocketPath('/ws')"``), for the message.

    Raises:
        ImproperlyConfigured: not a positive ``int`` nor ``None``.
    """
    if value is None or (type(value) is int and value > 0):
        return value
    raise ImproperlyConfigured(
        f"{where}: max_message_size must be a positive number of bytes (or None for no "
        f"limit of lilya's), got {value!r}."
    )


def message_size(message: Message) -> int:
    """The size in bytes of a ``websocket.receive`` message's payload (text as UTF-8)."""
    text = message.get("text")
    if text is not None:
        return len(text.encode("utf-8", "surrogatepass"))
    data = message.get("bytes")
    return 0 if data is None else len(data)


def too_big_reason(size: int, limit: int) -> str:
    """The close reason for a message of *size* bytes over *limit* (well under 123 bytes)."""
    return f"message of {size} bytes exceeds max_message_size ({limit} bytes)"


def largest_message_size(app: Any) -> int | None:
    """The largest message any WebSocket route of *app* takes, or ``None`` if one is unlimited.

    ``lilya run`` gives it to the server as ``ws_max_size``. An app that is
    not a lilya app (no ``max_message_size``), or any route that leaves the
    limit off, gives ``None``: then the server keeps its own default.
    """
    if not hasattr(app, "max_message_size"):
        return None
    sizes = list(_sizes(app.routes, app.max_message_size))
    return None if None in sizes else max(sizes)  # type: ignore[type-var]  # no None left


def _sizes(routes: Iterable[Any], default: int | None) -> Iterable[int | None]:
    yield default
    for route in routes:
        if hasattr(route, "max_message_size"):  # a WebSocketPath
            own = route.max_message_size
            yield default if own is None else own
        elif hasattr(route, "routes"):  # an Include: its routes, or a mounted app's
            mounted: Any = getattr(route, "mounted", None)
            if hasattr(mounted, "max_message_size"):  # a mounted lilya app: its own default
                yield from _sizes(mounted.routes, mounted.max_message_size)
            else:
                yield from _sizes(route.routes, default)


def limit_receive(receive: Receive, send: Send, limit: int) -> Receive:
    """Wrap *receive* so a message over *limit* closes 1009 and reads as a disconnect.

    For handlers that are raw ASGI apps (a ``WebSocketController``, your own
    app on a route): they get a ``websocket.disconnect`` with code 1009 and the
    reason, as if the client had left, after lilya has sent the close.
    """

    async def receive_limited() -> Message:
        message = await receive()
        if message.get("type") == "websocket.receive":
            size = message_size(message)
            if size > limit:
                reason = too_big_reason(size, limit)
                code = WS_1009_MESSAGE_TOO_BIG
                await send({"type": "websocket.close", "code": code, "reason": reason})
                return {"type": "websocket.disconnect", "code": code, "reason": reason}
        return message

    return receive_limited
