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

import re
import time
from datetime import datetime
from email.utils import format_datetime, formatdate
from http.cookies import SimpleCookie
from typing import Any, Literal
from urllib.parse import quote

from lilya import _json
from lilya.datastructures import URL, HeaderInput, MutableHeader
from lilya.types import ASGIApp, Receive, Scope, Send

__all__ = ["HTMLResponse", "JSONResponse", "Ok", "PlainText", "RedirectResponse", "Response"]

# RFC 6265 §4.1.1: a cookie-name is an RFC 2616 token.
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


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
        expires: datetime | str | int | float | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
        partitioned: bool = False,
    ) -> None:
        """Add a ``Set-Cookie`` header (RFC 6265 §4.1).

        The value is quoted as the standard library's :mod:`http.cookies` does
        (``"Hello\\054 cookies!"``), which is what ``request.cookies`` and
        ``websocket.cookies`` undo, so what you set is what you read back. The
        attributes come in the order Starlette writes them, so a test that
        compares the whole header ports unchanged.

        Args:
            max_age: seconds until the cookie expires.
            expires: a :class:`datetime.datetime`, a number of seconds from
                now, or a date string sent as it is.
            samesite: ``"lax"``, ``"strict"`` or ``"none"`` in any case; it is
                written as you spell it.
            partitioned: add ``Partitioned`` (CHIPS), for third-party contexts.

        Raises:
            ValueError: *samesite* is another word, or *key* is not a valid
                cookie name.
        """
        if not key or not _COOKIE_NAME.fullmatch(key):
            raise ValueError(
                f"Cookie name {key!r} is not a valid token (RFC 6265 §4.1.1); use letters, "
                "digits and !#$%&'*+-.^_`|~."
            )
        _, coded = SimpleCookie().value_encode(value)
        attributes: dict[str, str | None] = {}
        if domain is not None:
            attributes["Domain"] = domain
        if expires is not None:
            if isinstance(expires, datetime):
                expires = format_datetime(expires, usegmt=True)
            elif not isinstance(expires, str):
                # Seconds from now, read from time.time() as http.cookies does.
                expires = formatdate(time.time() + expires, usegmt=True)
            attributes["expires"] = expires
        if httponly:
            attributes["HttpOnly"] = None
        if max_age is not None:
            attributes["Max-Age"] = str(max_age)
        if partitioned:
            attributes["Partitioned"] = None
        if path is not None:
            attributes["Path"] = path
        if samesite is not None:
            if samesite.lower() not in ("lax", "strict", "none"):
                raise ValueError(f'samesite must be "lax", "strict" or "none", got {samesite!r}.')
            attributes["SameSite"] = samesite
        if secure:
            attributes["Secure"] = None
        parts = [f"{key}={coded}"]
        parts += [name if text is None else f"{name}={text}" for name, text in attributes.items()]
        self.headers.add("set-cookie", "; ".join(parts))

    def delete_cookie(
        self,
        key: str,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
    ) -> None:
        """Tell the client to drop cookie *key* (an expired ``Set-Cookie``).

        Pass the *path* and *domain* it was set with: a browser only drops the
        cookie they name.
        """
        self.set_cookie(
            key,
            max_age=0,
            expires=0,
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
        )

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers as ASGI ``(bytes, bytes)`` pairs (Starlette's name for ``headers.raw``)."""
        return self.headers.raw

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


class Ok(JSONResponse):
    """Lilya's name for a :class:`JSONResponse`: ``return Ok({"id": 1})`` ports as it is."""


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
