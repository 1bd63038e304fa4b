"""Refuse cross-origin WebSocket handshakes from browsers (cross-site WebSocket hijacking).

A WebSocket is not covered by the browser's same-origin policy: a page of any
site can open ``new WebSocket("wss://your.app/ws")`` and the browser sends your
users' cookies with it. What the browser does send, and a page cannot forge, is
the ``Origin`` header. So a handshake whose ``Origin`` is not the server's own
origin (or one you listed) is refused before your handler runs: a ``403``
denial response whose body names the setting to change, and one WARNING line
on the ``lilya`` logger with the origin and the host.

The server's own origin is the request's: its scheme (``ws`` is an ``http``
page, ``wss`` an ``https`` one), the ``Host`` header's name and its port (the
scheme's default when it names none), compared as RFC 6454 compares origins.
``Origin: null`` (a sandboxed frame, a ``file:`` page, some redirects) is never
an origin you can trust and is always refused. A handshake without ``Origin``
comes from a non-browser client (a script, a service, a test), which no
victim's cookies reach: it is let through unless you set
``allow_missing=False``.

A :class:`~lilya.apps.Lilya` app runs this check on every WebSocket handshake
(its ``allowed_origins`` and ``allow_missing_origin`` arguments). On a raw ASGI
app, wrap it yourself: ``app = OriginMiddleware(app, allowed_origins=[...])``.
HTTP requests pass through untouched: browsers already apply the same-origin
policy to them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Sequence
from typing import Final
from urllib.parse import urlsplit

from lilya._exception_handlers import deny
from lilya._recorder import enter
from lilya._telemetry import note_limit
from lilya.exceptions import ImproperlyConfigured
from lilya.responses import PlainText
from lilya.status import HTTP_403_FORBIDDEN, WS_1008_POLICY_VIOLATION
from lilya.types import ASGIApp, Receive, Scope, Send

__all__ = ["CROSS_ORIGIN_REFUSAL", "MISSING_ORIGIN_REFUSAL", "OriginMiddleware", "request_origin"]

logger = logging.getLogger("lilya")

#: Default ports, by scheme, of the origins a page can have and the requests it can make.
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
#: The origin scheme of a page that opens a socket with this request scheme.
_PAGE_SCHEMES: Final = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
#: Longest origin or host quoted in the log line (a header can be 8 KB or more).
_LOG_LIMIT: Final = 200

#: The 403 body for a browser handshake from another origin.
CROSS_ORIGIN_REFUSAL: Final = (
    "WebSocket handshake refused: the page's origin is not this server's origin and is not in "
    'allowed_origins. To allow it, add the page\'s origin (e.g. "https://app.example.com") to '
    "allowed_origins (Lilya(allowed_origins=[...]) or "
    "OriginMiddleware(app, allowed_origins=[...]))."
)
#: The 403 body for a handshake without ``Origin`` when one is required.
MISSING_ORIGIN_REFUSAL: Final = (
    "WebSocket handshake refused: it has no Origin header, and this server only lets browsers "
    "connect. To let other clients in, set allow_missing_origin=True "
    "(OriginMiddleware: allow_missing=True)."
)

#: An origin as a comparable triple: (scheme, host, port).
Origin = tuple[str, str, int]


# Parsing a URL costs ~5 µs; a server sees the same few origins and hosts
# again and again. The caches are bounded, so random values cannot grow them.
@functools.lru_cache(maxsize=512)
def _parse_netloc(scheme: str, netloc: str) -> tuple[str, int] | None:
    """Split *netloc* into a lower-case host and a port (the scheme's default if absent)."""
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    return parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


@functools.lru_cache(maxsize=512)
def _parse_origin(text: str) -> Origin | None:
    """Parse a serialized origin (``"https://example.com:8443"``); ``None`` if it is not one."""
    try:
        parts = urlsplit(text.strip().lower())
    except ValueError:  # "http://[::1": not something a browser sends
        return None
    if parts.scheme not in ("http", "https") or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment:
        return None
    host_port = _parse_netloc(parts.scheme, parts.netloc)
    if host_port is None:
        return None
    return parts.scheme, host_port[0], host_port[1]


def _header(scope: Scope, name: bytes) -> list[bytes]:
    return [value for key, value in scope.get("headers") or () if key.lower() == name]


def request_origin(scope: Scope) -> Origin | None:
    """Return the origin of a page served by the server that got *scope*, as (scheme, host, port).

    The scheme is the page's (``http`` for a ``ws`` request, ``https`` for
    ``wss``; a scope without one, as daphne sends, counts as ``ws``), the host
    and port come from the ``Host`` header (or the scope's ``server`` when
    there is none). Behind a TLS-terminating proxy the scheme is only right if
    the server trusts the proxy's ``X-Forwarded-Proto`` (uvicorn:
    ``--proxy-headers --forwarded-allow-ips``).

    Returns ``None`` when the request names no usable host.
    """
    scheme = _PAGE_SCHEMES.get(str(scope.get("scheme") or "ws"), "http")
    hosts = _header(scope, b"host")
    if len(hosts) > 1:
        return None
    if hosts:
        host_port = _parse_netloc(scheme, hosts[0].decode("latin-1").strip())
    else:
        server = scope.get("server")
        if not server:
            return None
        host, port = server[0], server[1]
        host_port = (str(host).lower(), int(port) if port is not None else _DEFAULT_PORTS[scheme])
    if host_port is None:
        return None
    return scheme, host_port[0], host_port[1]


def _clip(text: str) -> str:
    return text if len(text) <= _LOG_LIMIT else text[:_LOG_LIMIT] + "…"


class OriginMiddleware:
    """Let a browser open a WebSocket only from the server's own origin or one you allow.

    Args:
        app: the ASGI app to guard.
        allowed_origins: further origins to allow, as a browser sends them:
            ``"https://chat.example.com"``, ``"http://localhost:3000"``;
            ``"https://*.example.com"`` allows every subdomain (not
            ``example.com`` itself); ``"*"`` allows every origin (the check is
            then off, except for ``allow_missing``).
        allow_missing: let through handshakes that carry no ``Origin`` header
            (non-browser clients). Set it to ``False`` when only browsers
            should connect.

    Raises:
        ImproperlyConfigured: an entry of *allowed_origins* is not an origin
            (it has a path, no scheme, a wildcard elsewhere than the first
            label), or is ``"null"``.
    """

    def __init__(
        self,
        app: ASGIApp,
        allowed_origins: Sequence[str] = (),
        allow_missing: bool = True,
    ) -> None:
        if isinstance(allowed_origins, str):
            allowed_origins = [allowed_origins]
        self.app = app
        self.allow_missing = allow_missing
        self.allow_any = False
        self._exact: set[Origin] = set()
        self._suffixes: list[tuple[str, str, int]] = []
        for entry in allowed_origins:
            self._add(entry)

    def _add(self, entry: str) -> None:
        text = entry.strip().lower()
        if text == "*":
            self.allow_any = True
            return
        if text == "null":
            raise ImproperlyConfigured(
                'allowed_origins cannot list "null": every sandboxed frame and file: page of '
                "any site sends it, so allowing it allows everyone. List the real origins, "
                'or "*" to allow every origin on purpose.'
            )
        wildcard = "://*." in text
        origin = _parse_origin(text.replace("://*.", "://", 1) if wildcard else text)
        if origin is None or "*" in origin[1]:
            raise ImproperlyConfigured(
                f"allowed_origins entry {entry!r} is not an origin: write it as a browser sends "
                'it, scheme and host and optional port with no path, e.g. "https://example.com", '
                '"http://localhost:3000" or "https://*.example.com".'
            )
        if wildcard:
            self._suffixes.append((origin[0], "." + origin[1], origin[2]))
        else:
            self._exact.add(origin)

    def _listed(self, origin: Origin) -> bool:
        if origin in self._exact:
            return True
        scheme, host, port = origin
        return any(
            scheme == s and port == p and host.endswith(suffix) for s, suffix, p in self._suffixes
        )

    def refusal(self, scope: Scope) -> str | None:
        """Return why the handshake in *scope* is refused, or ``None`` if it may proceed.

        The reason is the text of the 403 body: what was wrong and the setting
        that would allow it.
        """
        origins = _header(scope, b"origin")
        if not origins:
            if self.allow_missing:
                return None
            return MISSING_ORIGIN_REFUSAL
        if self.allow_any and len(origins) == 1:
            return None
        text = origins[0].decode("latin-1")
        if len(origins) == 1 and text.strip().lower() != "null":
            origin = _parse_origin(text)
            if origin is not None and (origin == request_origin(scope) or self._listed(origin)):
                return None
        return CROSS_ORIGIN_REFUSAL

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A coroutine function, so a server that inspects the app (uvicorn's
        # ASGI 2/3 detection) serves this layer as ASGI 3 when it is outermost.
        await self.serve(scope, receive, send)

    def serve(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Check the handshake as calling the layer does; await what it returns.

        An allowed connection gets the next layer's own coroutine, so a lilya
        layer that calls this (``Lilya``'s server-error layer) holds no frame
        of this one for an open socket's life.
        """
        if scope["type"] != "websocket":
            return self.app(scope, receive, send)
        reason = self.refusal(scope)
        if reason is None:
            return self.app(scope, receive, send)
        return self._refuse(scope, receive, send, reason)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, reason: str) -> None:
        origins = b", ".join(_header(scope, b"origin")).decode("latin-1") or None
        hosts = b", ".join(_header(scope, b"host")).decode("latin-1") or None
        logger.warning(
            "Refused a WebSocket handshake to %s from origin %r (host %r): %s",
            _clip(str(scope.get("path", "?"))),
            _clip(origins) if origins is not None else None,
            _clip(hosts) if hosts is not None else None,
            "no Origin header" if origins is None else "not same-origin, not in allowed_origins",
        )
        state, receive, send = enter(scope, receive, send)
        note_limit(scope, "origin")
        response = PlainText(reason, HTTP_403_FORBIDDEN)
        await deny(scope, state, receive, send, response, WS_1008_POLICY_VIOLATION)
