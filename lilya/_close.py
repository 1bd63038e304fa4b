"""What a close frame may carry: which codes an endpoint may send, and how long a reason.

RFC 6455 §7.4.1 and the IANA registry: 1000–1003 and 1007–1014 are defined for
endpoints to send; 1004 is reserved, and 1005, 1006 and 1015 only ever *report*
a close (no code, no close frame, TLS failure) and must never be put in a
frame; 3000–3999 are registered by libraries, 4000–4999 are private. A close
frame is a control frame, so its payload (two bytes of code, then the reason in
UTF-8) is at most 125 bytes (§5.5): the reason is at most 123 bytes.

Servers differ on a bad value: uvicorn raises deep inside its protocol and
drops the TCP connection without a close frame. We check before sending, so the
mistake surfaces where it was made.
"""

from __future__ import annotations

from typing import Final

from lilya.status import WS_1000_NORMAL_CLOSURE, WS_1005_NO_STATUS_RCVD
from lilya.types import Message, Send

__all__ = [
    "MAX_REASON_BYTES",
    "check_close",
    "fit_reason",
    "received_code",
    "send_with_close_fallback",
    "sendable_code",
]

MAX_REASON_BYTES: Final = 123


def sendable_code(code: object) -> bool:
    """Whether an endpoint may put *code* in a close frame."""
    return (
        type(code) is int  # not bool, not float
        and (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999)
    )


def check_close(code: object, reason: object) -> str:
    """Return *reason* as the str to send, after checking *code* and *reason*.

    Raises:
        ValueError: *code* may not be sent, or *reason* is over 123 UTF-8 bytes.
        TypeError: *reason* is not a str (or ``None``).
    """
    if not sendable_code(code):
        raise ValueError(
            f"Close code {code!r} cannot be sent: use 1000-1003, 1007-1014 or 3000-4999 "
            "(1004-1006 and 1015 are reserved by RFC 6455 §7.4.1 to report a close, "
            "never to send one)."
        )
    if reason is None:
        return ""
    if not isinstance(reason, str):
        raise TypeError(f"A close reason must be a str, got {type(reason).__name__}.")
    size = len(reason.encode("utf-8", "surrogatepass"))
    if size > MAX_REASON_BYTES:
        raise ValueError(
            f"A close reason is at most {MAX_REASON_BYTES} bytes of UTF-8 (RFC 6455 §5.5), "
            f"this one is {size}; shorten it, and send details in a message before closing."
        )
    return reason


def fit_reason(reason: str) -> str:
    """Shorten *reason* to the 123 UTF-8 bytes a close frame allows, marking the cut.

    For reasons lilya makes from error details (an ``HTTPException`` after
    accept), where refusing to close would be worse than a shorter reason.
    """
    encoded = reason.encode("utf-8")
    if len(encoded) <= MAX_REASON_BYTES:
        return reason
    return encoded[: MAX_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."


def _private_range(message: Message) -> Message | None:
    if message.get("type") != "websocket.close":
        return None
    code = message.get("code", WS_1000_NORMAL_CLOSURE)
    if not sendable_code(code) or code == WS_1000_NORMAL_CLOSURE or code >= 3000:
        return None  # an invalid code, or one autobahn takes: not its refusal
    return {**message, "code": 4000 + code % 1000}  # the private range, same last digits


async def send_with_close_fallback(send: Send, message: Message) -> None:
    """Send *message*; if the server refuses a standard close code, resend it privately.

    autobahn, under daphne, lets a server send only 1000 and 3000-4999 (its
    ``sendClose()`` contract, stricter than RFC 6455 §7.4.1), and daphne's
    ``send`` raises a bare ``Exception`` for 1008, 1011 & co. We retry once with
    the same code moved into the private range (1008 -> 4008), so the client
    still learns why and nothing escapes into the server's log. Every other
    failure, and ``OSError`` always, is raised as it is.
    """
    try:
        await send(message)
    except OSError:
        raise
    except Exception:
        retry = _private_range(message)
        if retry is None:
            raise
        await send(retry)


def received_code(message: Message) -> int:
    """The close code of a ``websocket.disconnect`` message, as ASGI defines it.

    A missing code means 1005 (no code was received); daphne sends
    ``code: None`` for that (``docs/servers.md``).
    """
    code = message.get("code")
    return WS_1005_NO_STATUS_RCVD if code is None else int(code)
