"""What an HTTP request and a WebSocket have in common: a scope and what it says.

Every property is computed on first use and cached on the instance: a WebSocket
handler that never looks at its headers never pays for parsing them, and one that
looks twice pays once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cached_property
from http.cookies import SimpleCookie
from typing import Any

from lilya.datastructures import URL, Address, Header, QueryParam, State
from lilya.types import Scope

__all__ = ["Connection", "parse_cookie"]


def parse_cookie(cookie: str) -> dict[str, str]:
    """Parse a ``Cookie`` header into a dict, as browsers send it.

    Deliberately lenient (RFC 6265 §5.4 is what browsers do, not §4.2.1's
    grammar): a chunk without ``=`` is a value with an empty name, a quoted
    value is unquoted as :mod:`http.cookies` quoted it (``"a\\054 b"`` is
    ``a, b``: what ``set_cookie`` wrote), and the last of duplicate names
    wins. Malformed chunks never raise: a cookie is client input.
    """
    decoder = SimpleCookie()
    cookies: dict[str, str] = {}
    for chunk in cookie.split(";"):
        key, sep, value = chunk.partition("=")
        if not sep:
            key, value = "", key
        key, value = key.strip(), value.strip()
        value = decoder.value_decode(value)[0]
        if key or value:
            cookies[key] = value
    return cookies


class Connection(Mapping[str, Any]):
    """The base of :class:`~lilya.requests.Request` and :class:`~lilya.websockets.WebSocket`.

    It is a read-only mapping over the ASGI scope (``conn["path"]``), compared
    and hashed by identity: two wrappers of one scope are two connections.
    """

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    # -- mapping over the scope ---------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self.scope[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.scope)

    def __len__(self) -> int:
        return len(self.scope)

    # Mapping would compare by content; a connection is an identity.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    # -- connection data ----------------------------------------------------
    @cached_property
    def url(self) -> URL:
        """The full URL the client asked for (a ``str`` subclass with parts)."""
        return URL(scope=self.scope)

    @cached_property
    def base_url(self) -> URL:
        """The URL of the application root: scheme, host and ``root_path``, ending in ``/``.

        Inside an ``Include`` this is still the application's root (the
        ``root_path`` the server gave), not the prefix: ``path_for`` joins
        full paths to it.
        """
        scope = self.scope
        root_path = scope.get("app_root_path", scope.get("root_path", "")) or ""
        return self.url.replace(path=root_path.rstrip("/") + "/", query="", fragment="")

    @cached_property
    def headers(self) -> Header:
        """The request headers, case-insensitive, decoded as latin-1."""
        return Header.from_scope(self.scope)

    @cached_property
    def query_params(self) -> QueryParam:
        """The query parameters, blank values kept."""
        return QueryParam(self.scope.get("query_string", b""))

    @property
    def path_params(self) -> dict[str, Any]:
        """The parameters routing matched in the path (``{}`` outside routing)."""
        path_params: dict[str, Any] = self.scope.get("path_params", {})
        return path_params

    @cached_property
    def cookies(self) -> dict[str, str]:
        """The cookies the client sent, merged from every ``Cookie`` header."""
        cookies: dict[str, str] = {}
        for value in self.headers.getall("cookie", []):
            cookies.update(parse_cookie(value))
        return cookies

    @property
    def client(self) -> Address | None:
        """The client's ``Address(host, port)``, or ``None`` if the server didn't say."""
        return Address.from_scope(self.scope.get("client"))

    @property
    def server(self) -> Address | None:
        """The server's ``Address(host, port)``, or ``None`` if the server didn't say."""
        return Address.from_scope(self.scope.get("server"))

    @cached_property
    def state(self) -> State:
        """Per-connection state: attribute access over ``scope["state"]``.

        The server copies the lifespan state into each scope (ASGI lifespan
        "state" extension); servers without it (daphne) get a fresh dict.
        """
        state = self.scope.get("state")
        if state is None:
            state = self.scope["state"] = {}
        return State(state)

    @property
    def app(self) -> Any:
        """The application that received this connection (``scope["app"]``), or ``None``."""
        return self.scope.get("app")

    def path_for(self, name: str, /, **path_params: Any) -> URL:
        """Return the absolute URL of the route called *name*, filled with *path_params*.

        Raises:
            RuntimeError: this connection was not routed by a lilya app or router.
            lilya.exceptions.NoMatchFound: no route has that name and parameters.
        """
        router = self.scope.get("router") or self.scope.get("app")
        path_for = getattr(router, "path_for", None)
        if path_for is None:
            raise RuntimeError(
                "path_for() needs the router that dispatched this connection, but the scope "
                "has no 'router' or 'app' with a path_for() method; serve the handler "
                "through a lilya app or Router."
            )
        url: URL = path_for(name, **path_params).make_absolute_url(base_url=self.base_url)
        return url

    def url_for(self, name: str, /, **path_params: Any) -> URL:
        """Starlette's name for :meth:`path_for` (an absolute URL too)."""
        return self.path_for(name, **path_params)

    def url_path_for(self, name: str, /, **path_params: Any) -> URL:
        """Lilya's other name for :meth:`path_for` (an absolute URL too)."""
        return self.path_for(name, **path_params)

    @property
    def user(self) -> Any:
        """The user the authentication middleware found (``AnonymousUser()`` if none).

        Raises:
            RuntimeError: no ``AuthenticationMiddleware`` ran for this connection.
        """
        if "user" not in self.scope:
            raise RuntimeError(
                "connection.user needs lilya.middleware.authentication.AuthenticationMiddleware;"
                " add DefineMiddleware(AuthenticationMiddleware, backend=...) to the app."
            )
        return self.scope["user"]

    @property
    def auth(self) -> Any:
        """What the authentication backend returned with the user (``None`` if anonymous).

        Raises:
            RuntimeError: no ``AuthenticationMiddleware`` ran for this connection.
        """
        if "auth" not in self.scope:
            raise RuntimeError(
                "connection.auth needs lilya.middleware.authentication.AuthenticationMiddleware;"
                " add DefineMiddleware(AuthenticationMiddleware, backend=...) to the app."
            )
        return self.scope["auth"]
