"""HTTP responses, usable as HTTP answers and as WebSocket denial responses.

A response is an ASGI app. On an ``http`` scope it sends ``http.response.start``
and ``http.response.body``; on a ``websocket`` scope it sends the same two with
the ``websocket.`` prefix of the Denial Response extension, which is how
``websocket.send_denial_response(response)`` refuses a handshake with, say, 401.

The body always goes out in **one** message with ``content-length`` set:
granian rejects ``more_body`` denial bodies and truncates them
(``docs/servers.md``), and a single message is also the fastest.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any, Literal
from urllib.parse import quote

from lilya import _json
from lilya.datastructures import URL, HeaderInput, MutableHeader
from lilya.types import ASGIApp, Receive, Scope, Send

__all__ = ["HTMLResponse", "JSONResponse", "PlainText", "RedirectResponse", "Response"]


class Response:
    """A complete HTTP response: status, headers and a body sent in one message.

    Args:
        content: ``bytes`` as they are, ``str`` encoded with ``charset``, or
            ``None`` for an empty body. Subclasses render other types.
        status_code: the HTTP status.
        headers: extra headers (mapping or pairs).
        media_type: the ``content-type`` (``; charset=…`` is added for ``text/*``).
    """

    media_type: str | None = None
    charset = "utf-8"

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: HeaderInput | None = None,
        media_type: str | None = None,
    ) -> None:
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.body = self.render(content)
        self.headers = MutableHeader(headers)
        self._init_headers()

    def render(self, content: Any) -> bytes:
        """Turn *content* into body bytes; override it to support other types.

        Raises:
            TypeError: *content* is not ``bytes``, ``str`` or ``None``.
        """
        if content is None:
            return b""
        if isinstance(content, (bytes, bytearray, memoryview)):
            return bytes(content)
        if isinstance(content, str):
            return content.encode(self.charset)
        raise TypeError(
            f"{type(self).__name__} content must be bytes or str, got {type(content).__name__}; "
            "use JSONResponse for data."
        )

    def _init_headers(self) -> None:
        headers = self.headers
        no_body = self.status_code < 200 or self.status_code in (204, 304)
        if "content-length" not in headers and not no_body:
            headers["content-length"] = str(len(self.body))
        if self.media_type is not None and "content-type" not in headers:
            content_type = self.media_type
            if content_type.startswith("text/") and "charset=" not in content_type:
                content_type += f"; charset={self.charset}"
            headers["content-type"] = content_type

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: int | None = None,
        expires: Any = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
    ) -> None:
        """Add a ``Set-Cookie`` header (RFC 6265 §4.1).

        Args:
            expires: a :class:`datetime.datetime` or a number of seconds.
        """
        parts = [f"{key}={quote(value, safe='')}"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if expires is not None:
            if isinstance(expires, (int, float)):
                expires = datetime.now(timezone.utc) + timedelta(seconds=expires)
            parts.append(f"expires={format_datetime(expires, usegmt=True)}")
        if path is not None:
            parts.append(f"Path={path}")
        if domain is not None:
            parts.append(f"Domain={domain}")
        if secure:
            parts.append("Secure")
        if httponly:
            parts.append("HttpOnly")
        if samesite is not None:
            if samesite.lower() not in ("lax", "strict", "none"):
                raise ValueError(f'samesite must be "lax", "strict" or "none", got {samesite!r}.')
            parts.append(f"SameSite={samesite.capitalize()}")
        self.headers.add("set-cookie", "; ".join(parts))

    def delete_cookie(self, key: str, path: str = "/", domain: str | None = None) -> None:
        """Tell the client to drop cookie *key* (an expired ``Set-Cookie``)."""
        self.set_cookie(key, max_age=0, path=path, domain=domain)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        prefix = "websocket." if scope.get("type") == "websocket" else ""
        await send(
            {
                "type": prefix + "http.response.start",
                "status": self.status_code,
                "headers": self.headers.raw,
            }
        )
        await send({"type": prefix + "http.response.body", "body": self.body})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code})"


class PlainText(Response):
    """A ``text/plain; charset=utf-8`` response."""

    media_type = "text/plain"


class HTMLResponse(Response):
    """A ``text/html; charset=utf-8`` response."""

    media_type = "text/html"


class JSONResponse(Response):
    """An ``application/json`` response: compact, UTF-8, as ``send_json`` writes it."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Encode *content* as ``send_json`` does (``TypeError`` if JSON cannot carry it)."""
        return _json.dumps_bytes(content)


class RedirectResponse(Response):
    """A redirect (307 by default, so the method is kept) to *url*."""

    def __init__(
        self,
        url: str | URL,
        status_code: int = 307,
        headers: HeaderInput | None = None,
    ) -> None:
        super().__init__(content=b"", status_code=status_code, headers=headers)
        self.headers["location"] = quote(str(url), safe=":/%#?=@[]!$&'()*+,;~")


def to_response(result: Any, handler: Any) -> ASGIApp:
    """Return what a handler returned as a response (lilya's routes and error layer use it).

    A Response (any ASGI app) is kept; plain values are a convenience: ``str``
    is text/plain, ``bytes`` a raw body, ``dict``/``list`` JSON.

    Raises:
        TypeError: anything else, ``None`` included (a forgotten ``return``).
    """
    if isinstance(result, str):
        return PlainText(result)
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Response(bytes(result))
    if isinstance(result, (dict, list)):
        return JSONResponse(result)
    if callable(result):
        app: ASGIApp = result  # any ASGI app (a Response is one)
        return app
    raise TypeError(
        f"Handler {getattr(handler, '__qualname__', handler)!r} returned {result!r}; return a "
        "Response, or a str, bytes, dict or list for lilya to wrap in one."
    )
