"""Refuse connections whose ``Host`` header is not one of yours (DNS rebinding, host spoofing).

HTTP requests from an unknown host get ``400 Invalid host header``. WebSocket
handshakes get a ``403`` denial response where the server supports the
extension, and a close before accept otherwise, which the server turns into
403 too: either way the handler never runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from lilya._exception_handlers import deny
from lilya._recorder import enter
from lilya.datastructures import URL, Header
from lilya.exceptions import ImproperlyConfigured
from lilya.responses import PlainText, RedirectResponse
from lilya.status import WS_1008_POLICY_VIOLATION
from lilya.types import ASGIApp, Receive, Scope, Send

__all__ = ["TrustedHostMiddleware"]


class TrustedHostMiddleware:
    """Let through only connections whose ``Host`` is in *allowed_hosts*.

    Args:
        app: the app to guard.
        allowed_hosts: host names; ``"*.example.com"`` allows any subdomain
            (not ``example.com`` itself); ``"*"`` allows everything.
        www_redirect: when ``www.example.com`` is listed and an HTTP request
            asks for ``example.com``, redirect it to the ``www`` host instead
            of refusing it. (Not for WebSockets: clients do not follow
            redirects on a handshake.)

    Raises:
        ImproperlyConfigured: a wildcard anywhere but at the start.
    """

    def __init__(
        self, app: ASGIApp, allowed_hosts: Sequence[str] = ("*",), www_redirect: bool = True
    ) -> None:
        if isinstance(allowed_hosts, str):
            allowed_hosts = [allowed_hosts]
        for pattern in allowed_hosts:
            wildcard_ok = pattern == "*" or (pattern.startswith("*.") and "*" not in pattern[1:])
            if "*" in pattern and not wildcard_ok:
                raise ImproperlyConfigured(
                    f"Allowed host {pattern!r}: a wildcard must be '*' or start the name, "
                    "as in '*.example.com'."
                )
        self.app = app
        self.allowed_hosts = [host.lower() for host in allowed_hosts]
        self.allow_any = "*" in self.allowed_hosts
        self.www_redirect = www_redirect

    def _allowed(self, host: str) -> bool:
        for pattern in self.allowed_hosts:
            if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if self.allow_any or scope_type not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = Header.from_scope(scope).get("host", "")
        host = raw.rsplit(":", 1)[0] if not raw.endswith("]") else raw
        host = host.lower()
        if self._allowed(host):
            await self.app(scope, receive, send)
            return
        if scope_type == "websocket":
            state, receive, send = enter(scope, receive, send)
            response = PlainText("Invalid host header", 403)
            await deny(scope, state, receive, send, response, WS_1008_POLICY_VIOLATION)
            return
        if self.www_redirect and "www." + host in self.allowed_hosts:
            url = URL(scope=scope)
            netloc = "www." + url.netloc
            await RedirectResponse(url.replace(netloc=netloc), 301)(scope, receive, send)
            return
        await PlainText("Invalid host header", 400)(scope, receive, send)
