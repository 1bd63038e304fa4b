"""Tokens on a WebSocket handshake: where to find one, what an accepted one says, how to hide it.

Browsers cannot set headers on a WebSocket handshake, so a page has three
ways to send a token with it: the subprotocol list
(``new WebSocket(url, ["bearer", token])``, the only header a page controls),
a cookie, or the query string. This module finds the token in any of them
(:func:`find_token`), and lets your ``authenticate`` hook say who it names and
until when (:class:`Authenticated`). A query string ends up in access logs,
so :class:`RedactTokens` rewrites ``token=...`` to ``token=***`` in a log
record (``lilya run`` installs it on uvicorn's access log).

The same lookup serves two users: :class:`~lilya.protocol.ChannelsEndpoint`
(the channels protocol, which also takes the token in its ``connect`` frame)
and :class:`TokenBackend`, an authentication backend for plain WebSocket
routes through :class:`~lilya.middleware.authentication.AuthenticationMiddleware`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from lilya._handlers import call_maybe_async
from lilya.exceptions import ImproperlyConfigured
from lilya.middleware.authentication import AuthenticationError

__all__ = [
    "BEARER",
    "DEFAULT_SOURCES",
    "Authenticated",
    "Authenticator",
    "FoundToken",
    "RedactTokens",
    "TokenBackend",
    "TokenSources",
    "authenticated",
    "find_token",
    "redact",
]

#: The subprotocol a client offers before its token, and the one the server accepts.
BEARER = "bearer"

#: Where a token came from.
Source = Literal["subprotocol", "cookie", "query", "connect"]

#: ``authenticate(websocket, token)``: return the user (or an :class:`Authenticated`
#: with an expiry), or ``None`` to refuse the token. Sync or async.
Authenticator = Callable[[Any, str], "Any | Awaitable[Any]"]


@dataclass(frozen=True)
class Authenticated:
    """What ``authenticate`` returns for a token that expires.

    Return the user alone for a token that does not expire; return
    ``Authenticated(user, expires_at=...)`` when it does, and the protocol
    endpoint closes the socket with 4001 at that moment unless the client
    refreshed it first.

    Args:
        user: whoever the token names (any object; ``None`` is not a user).
        expires_at: the token's expiry as a Unix time in seconds (a JWT's
            ``exp``), or ``None``.
    """

    user: Any
    expires_at: float | None = None


def authenticated(result: Any) -> Authenticated | None:
    """Turn what an ``authenticate`` hook returned into an :class:`Authenticated`, or ``None``.

    Raises:
        TypeError: the hook returned an :class:`Authenticated` whose
            ``expires_at`` is not a number (your hook's bug).
    """
    if result is None:
        return None
    if isinstance(result, Authenticated):
        expires_at = result.expires_at
        if expires_at is not None and (
            isinstance(expires_at, bool) or not isinstance(expires_at, int | float)
        ):
            raise TypeError(
                f"Authenticated.expires_at must be a Unix time in seconds (a float) or None, "
                f"got {expires_at!r}."
            )
        return None if result.user is None else result
    return Authenticated(result)


@dataclass(frozen=True)
class TokenSources:
    """Where to look for a token on the handshake, in this order.

    Args:
        subprotocol: look at ``Sec-WebSocket-Protocol: bearer, <token>``; the
            server then accepts with the subprotocol ``bearer`` (a browser
            refuses a handshake that does not echo one it offered).
        cookie: the cookie holding the token, or ``None``.
        query: the query parameter holding the token, or ``None``. Query
            strings land in access logs: ``lilya run`` redacts it there, other
            proxies may not.

    Raises:
        ImproperlyConfigured: a cookie or query name that is not a non-empty ``str``.
    """

    subprotocol: bool = True
    cookie: str | None = "token"
    query: str | None = "token"

    def __post_init__(self) -> None:
        for field_name in ("cookie", "query"):
            value = getattr(self, field_name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ImproperlyConfigured(
                    f"TokenSources.{field_name} must be a non-empty name or None, got {value!r}."
                )


#: The usual three places: the ``bearer`` subprotocol, cookie ``token``, query ``token``.
DEFAULT_SOURCES: Final = TokenSources()


@dataclass(frozen=True)
class FoundToken:
    """A token found on the handshake, and where (``subprotocol``, ``cookie``, ``query``)."""

    token: str
    source: Source

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol to accept with: ``"bearer"`` if the token came in the list."""
        return BEARER if self.source == "subprotocol" else None


def find_token(websocket: Any, sources: TokenSources | None = None) -> FoundToken | None:
    """Return the token *websocket*'s handshake carries, or ``None``.

    The subprotocol list counts when its first entry is ``bearer`` and a
    second one follows (the token); then the cookie, then the query parameter.
    An empty value counts as none.

    Args:
        websocket: the connection (its handshake: scope, cookies, query).
        sources: where to look (default: :data:`DEFAULT_SOURCES`).
    """
    if sources is None:
        sources = DEFAULT_SOURCES
    if sources.subprotocol:
        offered = websocket.scope.get("subprotocols") or []
        if len(offered) >= 2 and offered[0] == BEARER and offered[1]:
            return FoundToken(str(offered[1]), "subprotocol")
    if sources.cookie is not None:
        value = websocket.cookies.get(sources.cookie)
        if value:
            return FoundToken(value, "cookie")
    if sources.query is not None:
        value = websocket.query_params.get(sources.query)
        if value:
            return FoundToken(value, "query")
    return None


class TokenBackend:
    """An authentication backend that checks the handshake's token, for plain WebSocket routes.

    ::

        app = Lilya(routes=[...], middleware=[
            DefineMiddleware(AuthenticationMiddleware, backend=TokenBackend(authenticate)),
        ])

    ``websocket.user`` is then the user, and ``websocket.auth`` the
    :class:`Authenticated` (with its ``expires_at``). Accept with
    ``await websocket.accept(subprotocol=TokenBackend.subprotocol_for(websocket))``,
    so that a browser that sent its token as a subprotocol sees ``bearer``
    echoed (it refuses the handshake otherwise). A missing or refused token is a 401 denial before
    the handshake is accepted (unless ``required=False``: then the connection
    is anonymous). HTTP requests pass through anonymous.

    Args:
        authenticate: ``authenticate(connection, token) -> user | Authenticated | None``.
        sources: where to look for the token.
        required: refuse a handshake without a token (default) or let it in anonymous.
    """

    def __init__(
        self,
        authenticate: Authenticator,
        sources: TokenSources = DEFAULT_SOURCES,
        *,
        required: bool = True,
    ) -> None:
        if not callable(authenticate):
            raise ImproperlyConfigured(
                f"TokenBackend needs authenticate(connection, token) -> user | None, "
                f"got {authenticate!r}."
            )
        self._authenticate = authenticate
        self.sources = sources
        self.required = required

    async def authenticate(self, connection: Any) -> tuple[Any, Any] | None:
        """Return ``(Authenticated, user)``, ``None`` for anonymous, or raise a 401.

        Raises:
            AuthenticationError: the token is missing (with ``required``) or refused.
        """
        if connection.scope.get("type") != "websocket":
            return None
        found = find_token(connection, self.sources)
        if found is None:
            if self.required:
                raise AuthenticationError("A token is required for this WebSocket.", 401)
            return None
        result = authenticated(await call_maybe_async(self._authenticate, connection, found.token))
        if result is None:
            raise AuthenticationError("The token was refused.", 401)
        connection.scope["lilya.token_source"] = found.source
        return result, result.user

    @staticmethod
    def subprotocol_for(websocket: Any) -> str | None:
        """The subprotocol to accept *websocket* with: ``"bearer"`` if its token came that way."""
        return BEARER if websocket.scope.get("lilya.token_source") == "subprotocol" else None


# -- redaction ------------------------------------------------------------------

_TOKEN_IN_QUERY = re.compile(r"([?&](?:access_)?token=)[^&#\s\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """Return *text* with every ``token=`` and ``access_token=`` query value as ``***``."""
    return _TOKEN_IN_QUERY.sub(r"\1***", text)


class RedactTokens(logging.Filter):
    """A logging filter that hides query tokens: ``/ws?token=abc`` becomes ``/ws?token=***``.

    It rewrites the record's arguments (uvicorn's access log passes the path
    as one) and its message, and never drops a record. ``lilya run`` installs
    it on ``uvicorn.access``; add it to your own handlers with
    ``handler.addFilter(RedactTokens())``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in args)
        elif isinstance(args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in args.items()}
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True
