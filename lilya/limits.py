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

The **rate** of messages is limited the same way, per connection:
``Lilya(rate_limit=RateLimit(...))`` (default :data:`DEFAULT_RATE_LIMIT`,
100 messages a second with bursts of 1,000: far above what a person types)
and ``WebSocketPath(..., rate_limit=...)``. It is a token bucket
(:class:`TokenBucket`): each message takes a token, tokens come back at
``per_second`` up to ``burst``. Out of tokens, the connection closes **1008**
(policy violation) with a reason, or, with ``on_exceed="drop"``, lilya answers
``error_frame`` and drops the message. The bucket is filled lazily, only when
it runs dry, so a message costs one subtraction; the compromise is that right
after a long pause a client may send up to twice ``burst`` before the rate
applies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from lilya._telemetry import note_dropped, note_limit
from lilya.exceptions import ImproperlyConfigured
from lilya.status import WS_1008_POLICY_VIOLATION, WS_1009_MESSAGE_TOO_BIG
from lilya.types import Message, Receive, Send

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_RATE_LIMIT",
    "MAX_MESSAGE_SIZE_KEY",
    "RATE_LIMIT_KEY",
    "RateLimit",
    "TokenBucket",
    "check_max_message_size",
    "check_rate_limit",
    "largest_message_size",
    "limit_receive",
    "message_size",
    "too_big_reason",
]

#: The app default for ``max_message_size``: 1 MiB.
DEFAULT_MAX_MESSAGE_SIZE: Final = 1024 * 1024

#: Where a route puts the size limit of its connections in the scope (bytes, or ``None``).
MAX_MESSAGE_SIZE_KEY: Final = "lilya.max_message_size"


#: Where a route puts the rate limit of its connections in the scope (a RateLimit, or ``None``).
RATE_LIMIT_KEY: Final = "lilya.rate_limit"


@dataclass(frozen=True)
class RateLimit:
    """How many messages a connection may send: a token bucket.

    Args:
        per_second: tokens (messages) that come back each second: the
            sustained rate.
        burst: the bucket's size: how many messages may arrive at once.
        on_exceed: ``"close"`` closes the connection with 1008 and a reason
            (the handler sees ``WebSocketDisconnect(1008)``); ``"drop"`` sends
            *error_frame* to the client and drops the message, and the
            connection stays open.
        error_frame: the text frame ``"drop"`` answers with.

    Raises:
        ImproperlyConfigured: a rate or burst that is not a positive number, an
            unknown *on_exceed*, an *error_frame* that is not a ``str``.
    """

    per_second: float
    burst: int
    on_exceed: Literal["close", "drop"] = "close"
    error_frame: str = '{"error":"rate limit exceeded: message dropped"}'

    def __post_init__(self) -> None:
        rate, burst = self.per_second, self.burst
        if (
            not (
                isinstance(rate, (int, float))
                and not isinstance(rate, bool)
                and math.isfinite(rate)
            )
            or rate <= 0
        ):
            raise ImproperlyConfigured(
                f"RateLimit.per_second must be a positive number of messages, got {rate!r}."
            )
        if type(burst) is not int or burst < 1:
            raise ImproperlyConfigured(
                f"RateLimit.burst must be a whole number of messages >= 1, got {burst!r}."
            )
        if self.on_exceed not in ("close", "drop"):
            raise ImproperlyConfigured(
                f'RateLimit.on_exceed must be "close" or "drop", got {self.on_exceed!r}.'
            )
        if not isinstance(self.error_frame, str):
            raise ImproperlyConfigured(
                f"RateLimit.error_frame must be a str (a text frame), got "
                f"{type(self.error_frame).__name__}."
            )

    def reason(self) -> str:
        """The close reason when a connection goes over this limit."""
        return f"over rate_limit ({self.per_second:g} messages/s, burst {self.burst})"


#: The bucket's clock (tests replace it to move time without waiting).
_clock = time.monotonic

#: The app default: 100 messages a second, bursts of 1,000.
DEFAULT_RATE_LIMIT: Final = RateLimit(per_second=100, burst=1000)


class TokenBucket:
    """One connection's tokens under a :class:`RateLimit`, refilled when they run out.

    Whoever counts messages keeps the tokens itself (one subtraction per
    message, ``tokens -= 1``) and calls :meth:`refill` with them once they
    are below zero.
    """

    __slots__ = ("limit", "stamp")

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.stamp = _clock()

    def refill(self, tokens: float) -> float:
        """Return *tokens* plus what came back since the last refill, capped at ``burst``.

        *tokens* already counts the message that found them below zero; the
        cap applies to the bucket before that message took its token. The
        message is allowed if the result is >= 0.
        """
        now = _clock()
        limit = self.limit
        earned = (now - self.stamp) * limit.per_second
        tokens = min(float(limit.burst), tokens + 1 + earned) - 1
        self.stamp = now
        return tokens


def check_rate_limit(value: Any, where: str) -> RateLimit | None:
    """Return *value* if it is a usable ``rate_limit`` (a :class:`RateLimit` or ``None``).

    Raises:
        ImproperlyConfigured: anything else.
    """
    if value is None or isinstance(value, RateLimit):
        return value
    raise ImproperlyConfigured(
        f"{where}: rate_limit must be a lilya.limits.RateLimit (or None for no rate limit), "
        f"got {value!r}."
    )


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


#: No scope: nothing to tell the app's metrics.
_NO_SCOPE: Final[Mapping[str, Any]] = {}


def limit_receive(
    receive: Receive,
    send: Send,
    max_size: int | None,
    rate: RateLimit | None,
    *,
    scope: Mapping[str, Any] = _NO_SCOPE,
) -> Receive:
    """Wrap *receive* so raw ASGI handlers get the route's limits too.

    For handlers that are raw ASGI apps (your own app on a route): a message
    over *max_size* is answered with a close 1009, one over *rate* with a
    close 1008 (or, with ``on_exceed="drop"``, *error_frame* and nothing), and
    the handler then receives a ``websocket.disconnect`` with that code and
    reason, as if the client had left. Pass the connection's *scope* so the
    app's metrics count these closes.
    """
    size_limit = math.inf if max_size is None else max_size
    bucket = None if rate is None else TokenBucket(rate)
    tokens = math.inf if rate is None else float(rate.burst)

    async def closed(code: int, reason: str) -> Message:
        note_limit(scope, "message_size" if code == WS_1009_MESSAGE_TOO_BIG else "rate")
        await send({"type": "websocket.close", "code": code, "reason": reason})
        return {"type": "websocket.disconnect", "code": code, "reason": reason}

    async def receive_limited() -> Message:
        nonlocal tokens
        while True:
            message = await receive()
            if message.get("type") != "websocket.receive":
                return message
            tokens -= 1
            if tokens < 0:
                limited = cast(TokenBucket, bucket)  # tokens only run out under a limit
                tokens = limited.refill(tokens)
                if tokens < 0:
                    if limited.limit.on_exceed == "close":
                        return await closed(WS_1008_POLICY_VIOLATION, limited.limit.reason())
                    tokens += 1  # a dropped message takes no token
                    note_dropped(scope, "rate")
                    await send({"type": "websocket.send", "text": limited.limit.error_frame})
                    continue
            size = message_size(message)
            if size > size_limit:
                return await closed(WS_1009_MESSAGE_TOO_BIG, too_big_reason(size, int(size_limit)))
            return message

    return receive_limited
