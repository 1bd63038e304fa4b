"""The ASGI messages of a test client WebSocket: built for the app, checked from it.

The test's side is built here (``send_text`` and friends), and the app's side
is checked here before it reaches the test, as a real server checks it in its
``send()``: uvicorn, for one, fails deep inside when a text frame holds bytes or
a header name is a ``str``. We raise a ``TypeError`` that names the key and the
type instead, at the app's own ``await send(...)``, so the mistake shows up in
tests where it was made rather than as a bare ``AttributeError`` in production.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from lilya.exceptions import WebSocketRuntimeError
from lilya.status import WS_1000_NORMAL_CLOSURE
from lilya.types import Message
from lilya.websockets import WebSocketDisconnect

__all__: list[str] = []

Mode = Literal["text", "binary"]
#: What ``send_bytes`` takes, and what servers accept under ``"bytes"``.
BytesLike = bytes | bytearray | memoryview
_BYTES_LIKE = (bytes, bytearray, memoryview)


def check_mode(mode: str) -> None:
    """Raise ``WebSocketRuntimeError`` unless *mode* is ``"text"`` or ``"binary"``."""
    if mode not in ("text", "binary"):
        raise WebSocketRuntimeError('The "mode" argument should be "text" or "binary".')


def _type_name(value: object) -> str:
    return type(value).__name__


# -- from the test to the app --------------------------------------------------


def text_message(data: object) -> Message:
    """Return the ``websocket.receive`` message that carries *data* in a text frame.

    Raises:
        TypeError: *data* is not a ``str``.
    """
    if not isinstance(data, str):
        hint = (
            "call send_bytes() to send a binary frame"
            if isinstance(data, _BYTES_LIKE)
            else "convert it to str first, or call send_json()"
        )
        raise TypeError(f"send_text() takes a str, but got {_type_name(data)}; {hint}.")
    return {"type": "websocket.receive", "text": data}


def bytes_message(data: object) -> Message:
    """Return the ``websocket.receive`` message that carries *data* in a binary frame.

    Raises:
        TypeError: *data* is not bytes-like (``bytes``, ``bytearray``, ``memoryview``).
    """
    if not isinstance(data, _BYTES_LIKE):
        hint = (
            "call send_text() to send a text frame"
            if isinstance(data, str)
            else 'encode it to bytes first, or call send_json(mode="binary")'
        )
        raise TypeError(
            f"send_bytes() takes bytes, bytearray or memoryview, but got {_type_name(data)}; "
            f"{hint}."
        )
    return {"type": "websocket.receive", "bytes": bytes(data)}


def json_message(data: Any, mode: Mode) -> Message:
    """Return the ``websocket.receive`` message carrying *data* as compact JSON."""
    check_mode(mode)
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text_message(text) if mode == "text" else bytes_message(text.encode("utf-8"))


# -- from the app to the test --------------------------------------------------


def check_app_message(message: object) -> Message:
    """Return *message* from the app if a server could send it on, else raise.

    Only the value types are checked here: which message may come when is the
    business of the app's state table and of the test's ``receive*``. Headers
    given as a one-shot iterable come back as a list, read once, as a server
    reads them.

    Raises:
        TypeError: *message* is not a mapping, or one of its keys holds a value
            of the wrong type (ASGI WebSocket spec, "Send", "Accept", "Close",
            and the denial-response extension).
    """
    if not isinstance(message, Mapping):
        raise TypeError(
            f"The application called send() with a {_type_name(message)}; "
            'an ASGI message is a dict such as {"type": "websocket.send", "text": "..."}.'
        )
    checked = dict(message)
    kind = checked.get("type")
    if kind == "websocket.send":
        _check_frame(checked)
    elif kind == "websocket.accept":
        _check_optional(checked, kind, "subprotocol", str, "a str or None")
        _check_headers(checked, kind)
    elif kind == "websocket.close":
        _check_optional(checked, kind, "code", int, "an int")
        _check_optional(checked, kind, "reason", str, "a str or None")
    elif kind == "websocket.http.response.start":
        _check_optional(checked, kind, "status", int, "an int")
        _check_headers(checked, kind)
    elif kind == "websocket.http.response.body":
        _check_optional(checked, kind, "body", _BYTES_LIKE, "bytes")
    return checked


def _bad_value(kind: object, key: str, expected: str, value: object, hint: str = "") -> TypeError:
    return TypeError(
        f'ASGI message "{kind}" needs "{key}" to be {expected}, '
        f"but the application sent a {_type_name(value)} ({value!r:.60}){hint}."
    )


def _check_frame(message: Mapping[str, Any]) -> None:
    # ASGI: "Exactly one of bytes or text must be non-None. One or both keys
    # may be present, however."
    text, data = message.get("text"), message.get("bytes")
    if text is not None and not isinstance(text, str):
        hint = '; send bytes under the "bytes" key' if isinstance(text, _BYTES_LIKE) else ""
        raise _bad_value("websocket.send", "text", "a str", text, hint)
    if data is not None and not isinstance(data, _BYTES_LIKE):
        hint = '; send a str under the "text" key' if isinstance(data, str) else ""
        raise _bad_value("websocket.send", "bytes", "bytes", data, hint)
    if (text is None) == (data is None):
        which = "neither" if text is None else "both"
        raise TypeError(
            'ASGI message "websocket.send" needs exactly one of "text" and "bytes" '
            f"to be set, but the application set {which}."
        )


def _check_optional(
    message: Mapping[str, Any],
    kind: str,
    key: str,
    expected_type: type | tuple[type, ...],
    expected: str,
) -> None:
    value = message.get(key)
    if value is not None and not isinstance(value, expected_type):
        raise _bad_value(kind, key, expected, value)


def _check_headers(message: dict[str, Any], kind: str) -> None:
    headers = message.get("headers")
    if headers is None:  # ASGI: optional, defaults to none
        return
    expected = "an iterable of (name, value) pairs of bytes"
    if isinstance(headers, (str, *_BYTES_LIKE, Mapping)):
        raise _bad_value(kind, "headers", expected, headers)
    try:
        pairs = list(headers)
    except TypeError:
        raise _bad_value(kind, "headers", expected, headers) from None
    for pair in pairs:
        if (
            isinstance(pair, (str, *_BYTES_LIKE))
            or not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or not all(isinstance(part, _BYTES_LIKE) for part in pair)
        ):
            raise TypeError(
                f'ASGI message "{kind}" needs "headers" to be {expected}, '
                f"but one of them is {pair!r:.60}; encode names and values, "
                'e.g. (b"x-name", b"value").'
            )
    message["headers"] = pairs


# -- what the test reads ---------------------------------------------------------


def payload(message: Message, kind: Literal["text", "bytes"]) -> Any:
    """Return the *kind* payload of a ``websocket.send`` from the app.

    Raises:
        WebSocketDisconnect: the app closed the connection.
        WebSocketRuntimeError: the app sent another message, or a frame of the
            other kind.
    """
    message_type = message.get("type")
    if message_type == "websocket.close":
        raise WebSocketDisconnect(
            message.get("code", WS_1000_NORMAL_CLOSURE), message.get("reason")
        )
    if message_type != "websocket.send":
        raise WebSocketRuntimeError(
            'Expected ASGI message "websocket.send" or "websocket.close" '
            f"from the application, but got {message_type!r}.",
            message_type=message_type,
        )
    value = message.get(kind)
    if value is None:  # "is None": servers like hypercorn send both keys, one None
        other = "bytes" if kind == "text" else "text"
        raise WebSocketRuntimeError(
            f"Expected a {kind} frame from the application, but it sent a {other} frame "
            f"({message.get(other)!r:.60}); call receive_{other}() to read it.",
            message_type=message_type,
        )
    return value
