"""Values a connection exposes: its URL, headers, query parameters, state and peers.

``Header`` and ``QueryParam`` are built on :mod:`multidict` (the seed says so), so
they behave like every other multidict users meet in aiohttp and yarl: item
access gives the first value, ``getall`` every value. We add the names Starlette
users know (``getlist``, ``multi_items``) and the ASGI encodings (``raw``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from lilya.types import Scope

__all__ = [
    "URL",
    "Address",
    "Header",
    "MutableHeader",
    "QueryParam",
    "State",
    "URLPath",
    "encode_headers",
]

#: What callers may pass where headers are expected: a mapping, or pairs of
#: ``str`` or ``bytes`` (the raw ASGI form).
HeaderInput = (
    Mapping[str, str]
    | Mapping[bytes, bytes]
    | Iterable[tuple[str, str]]
    | Iterable[tuple[bytes, bytes]]
)

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _latin1(value: str | bytes) -> bytes:
    # RFC 9110 §5.5: field values are historically ISO-8859-1; encoding as
    # latin-1 maps every code point below 256 to one byte and refuses the rest
    # with a UnicodeEncodeError that names the offending character.
    return value if isinstance(value, bytes) else value.encode("latin-1")


def _pairs(headers: HeaderInput | None) -> Iterator[tuple[str | bytes, str | bytes]]:
    """Yield the (name, value) pairs of *headers*, refusing anything else clearly."""
    if headers is None:
        return
    items: Iterable[Any] = headers.items() if isinstance(headers, Mapping) else headers
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(
                f"Each header must be a (name, value) pair of str or bytes, got {item!r}."
            )
        name, value = item
        if not isinstance(name, (str, bytes)) or not isinstance(value, (str, bytes)):
            raise TypeError(
                f"Header names and values must be str or bytes, got {name!r}: {value!r}."
            )
        yield name, value


def encode_headers(headers: HeaderInput | None) -> list[tuple[bytes, bytes]]:
    """Return *headers* as the ``[(bytes, bytes)]`` list ASGI messages carry.

    You may pass a mapping or an iterable of pairs, of ``str`` (encoded as
    latin-1) or ``bytes``. Names are lower-cased, as HTTP/2 and ASGI expect.

    Raises:
        TypeError: an item is not a pair of ``str``/``bytes``.
        UnicodeEncodeError: a ``str`` has a character outside latin-1.
    """
    return [(_latin1(name).lower(), _latin1(value)) for name, value in _pairs(headers)]


class _HeaderMixin:
    """What read-only and mutable headers share: the Starlette names and raw bytes."""

    __slots__ = ()

    def getlist(self, key: str) -> list[str]:
        """Return every value of *key*, in order; ``[]`` when absent."""
        return self.getall(key, [])  # type: ignore[attr-defined, no-any-return]  # multidict API

    def multi_items(self) -> list[tuple[str, str]]:
        """Return every ``(name, value)`` pair, duplicates included."""
        return list(self.items())  # type: ignore[attr-defined]  # multidict API

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """Return the headers as ASGI ``(bytes, bytes)`` pairs, names lower-cased."""
        return [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in self.items()  # type: ignore[attr-defined]  # multidict API
        ]


def _to_cimultidict(headers: HeaderInput | None) -> CIMultiDict[str]:
    # Names lower-cased, as HTTP/2 and ASGI scopes have them, so that iteration
    # and dict() read the same whatever case the caller used.
    return CIMultiDict(
        (
            (name.decode("latin-1") if isinstance(name, bytes) else name).lower(),
            value.decode("latin-1") if isinstance(value, bytes) else value,
        )
        for name, value in _pairs(headers)
    )


def _one_source(
    cls: str, headers: HeaderInput | None, raw: Any, scope: Mapping[str, Any] | None
) -> HeaderInput | None:
    """The one header source given: *headers*, *raw* pairs or a *scope*'s ``headers``."""
    given = [
        name
        for name, value in (("headers", headers), ("raw", raw), ("scope", scope))
        if value is not None
    ]
    if len(given) > 1:
        raise TypeError(
            f"{cls}() takes one of headers, raw= and scope=, got {' and '.join(given)}."
        )
    if scope is not None:
        source: HeaderInput = scope.get("headers") or ()
        return source
    return raw if raw is not None else headers


class Header(_HeaderMixin, CIMultiDictProxy[str]):
    """Read-only, case-insensitive headers of a connection.

    ``h["Sec-WebSocket-Version"]`` is the first value; ``h.getlist(name)`` all of
    them. Bytes from the scope are decoded as latin-1, so no header a client
    sends can make reading them fail.

    Build it from a mapping or pairs, from ASGI pairs with ``raw=``, or from a
    scope (or message) with ``scope=``, as Starlette's ``Headers``. ``h | other``
    is a new ``Header`` with *other*'s values replacing those of the same names.
    """

    __slots__ = ()

    def __init__(
        self,
        headers: HeaderInput | None = None,
        *,
        raw: Iterable[tuple[bytes, bytes]] | None = None,
        scope: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(_to_cimultidict(_one_source("Header", headers, raw, scope)))

    def __or__(self, other: HeaderInput) -> Header:
        merged = self.mutablecopy()
        merged.update(MutableHeader(other))
        return Header(merged.items())

    @classmethod
    def from_scope(cls, scope: Scope) -> Header:
        """Build the headers of the ASGI *scope* (``scope["headers"]``, ``[]`` if absent)."""
        return cls(scope.get("headers") or ())

    def mutablecopy(self) -> MutableHeader:
        """Return a mutable copy, e.g. to build a response from a request's headers."""
        return MutableHeader(self.items())


class MutableHeader(_HeaderMixin, CIMultiDict[str]):
    """Case-insensitive headers you can change, used by responses.

    ``MutableHeader(scope=message)`` edits an ASGI message's (or scope's)
    headers in place, the middleware idiom Starlette users know::

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                MutableHeader(scope=message).append("x-served-by", "lilya")
            await send(message)

    Every change is written back to ``message["headers"]`` at once. ``h |
    other`` is a new copy with *other*'s values replacing those of the same
    names; ``h |= other`` does that in place.
    """

    __slots__ = ("_target",)

    def __init__(
        self,
        headers: HeaderInput | None = None,
        *,
        raw: Iterable[tuple[bytes, bytes]] | None = None,
        scope: MutableMapping[str, Any] | None = None,
    ) -> None:
        super().__init__(_to_cimultidict(_one_source("MutableHeader", headers, raw, scope)))
        self._target = scope
        self._write_back()

    def _write_back(self) -> None:
        if self._target is not None:
            self._target["headers"] = self.raw

    def append(self, key: str, value: str) -> None:
        """Add a value for *key*, keeping those it has (Starlette's name for ``add``)."""
        self.add(key, value)

    def add_vary_header(self, vary: str) -> None:
        """Add *vary* to the ``Vary`` header, keeping the names already there."""
        existing = self.get("vary")
        self["vary"] = vary if existing is None else f"{existing}, {vary}"

    def __or__(self, other: HeaderInput) -> MutableHeader:
        merged = MutableHeader(self.items())
        merged.update(MutableHeader(other))
        return merged

    def __ior__(self, other: HeaderInput) -> MutableHeader:
        self.update(MutableHeader(other))
        return self


def _writing_back(name: str) -> Any:
    method = getattr(CIMultiDict, name)

    @functools.wraps(method)
    def changed(self: MutableHeader, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        self._write_back()
        return result

    return changed


# Each way of changing a multidict, followed by the write-back to a scope.
for _name in (
    "__setitem__",
    "__delitem__",
    "add",
    "extend",
    "update",
    "merge",
    "setdefault",
    "pop",
    "popone",
    "popall",
    "popitem",
    "clear",
):
    setattr(MutableHeader, _name, _writing_back(_name))


class QueryParam(MultiDictProxy[str]):
    """Read-only query parameters: ``qp["search"]`` is the first value.

    Blank values are kept (``?a=&b=1`` has ``a == ""``), and bytes that are not
    UTF-8 become U+FFFD rather than an error: a query string is client input.
    """

    __slots__ = ()

    def __init__(
        self,
        params: str | bytes | Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    ) -> None:
        md: MultiDict[str] = MultiDict()
        if isinstance(params, bytes):
            params = params.decode("utf-8", errors="replace")
        if isinstance(params, str):
            md.extend(parse_qsl(params, keep_blank_values=True, errors="replace"))
        elif params is not None:
            items: Iterable[Any] = params.items() if isinstance(params, Mapping) else params
            for key, value in items:
                md.add(str(key), str(value))
        super().__init__(md)

    def getlist(self, key: str) -> list[str]:
        """Return every value of *key*, in order; ``[]`` when absent."""
        return self.getall(key, [])

    def multi_items(self) -> list[tuple[str, str]]:
        """Return every ``(name, value)`` pair, duplicates included."""
        return list(self.items())

    def __str__(self) -> str:
        return urlencode(self.multi_items())


class Address(NamedTuple):
    """A peer's ``(host, port)``; ``port`` is ``None`` for Unix sockets."""

    host: str
    port: int | None

    @classmethod
    def from_scope(cls, value: Sequence[Any] | None) -> Address | None:
        """Build an address from ``scope["client"]`` / ``scope["server"]``.

        Granian reports ports as strings; this casts them, so you always get an int.
        """
        if not value:
            return None
        host, port = value[0], value[1] if len(value) > 1 else None
        return cls(str(host), int(port) if port is not None else None)


class State:
    """Attribute access over a dict: ``state.db`` reads ``state_dict["db"]``.

    The dict is shared, not copied: ``scope["state"]`` carries lifespan state from
    the server into every connection, and writes through ``State`` land there.
    """

    __slots__ = ("_state",)

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_state", {} if state is None else state)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._state[name]
        except KeyError:
            raise AttributeError(
                f"'{type(self).__name__}' has no attribute {name!r}; "
                "set it first (e.g. in the lifespan) or use getattr(state, name, default)."
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._state[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._state[name]
        except KeyError:
            raise AttributeError(f"'{type(self).__name__}' has no attribute {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._state

    def __iter__(self) -> Iterator[str]:
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, State) and self._state == other._state

    __hash__ = None  # type: ignore[assignment]  # mutable, so unhashable like dict

    def copy(self) -> State:
        """Return a State over a shallow copy of the dict."""
        return State(dict(self._state))

    def __repr__(self) -> str:
        return f"State({self._state!r})"


class URL(str):
    """A URL that *is* its string (a ``str`` subclass) and exposes its parts.

    ``websocket.url == "ws://testserver/chat?a=1"`` holds, and so do
    ``url.scheme == "ws"``, ``url.path == "/chat"``, ``url.port is None``.
    Parsing happens once, on first access to a part.
    """

    __slots__ = ("_parts",)

    _parts: SplitResult | None

    def __new__(cls, url: str = "", *, scope: Scope | None = None) -> URL:
        if scope is not None:
            if url:
                raise TypeError("Pass either a url string or a scope, not both.")
            url = _url_from_scope(scope)
        elif not isinstance(url, str):
            raise TypeError(f"URL expects a str, got {type(url).__name__}.")
        self = super().__new__(cls, url)
        self._parts = None
        return self

    @classmethod
    def from_scope(cls, scope: Scope) -> URL:
        """Build the full URL of an ASGI connection *scope*."""
        return cls(scope=scope)

    @property
    def components(self) -> SplitResult:
        """The :func:`urllib.parse.urlsplit` result, computed once."""
        if self._parts is None:
            self._parts = urlsplit(str(self))
        return self._parts

    @property
    def scheme(self) -> str:
        """The scheme: ``ws``, ``wss``, ``http`` or ``https`` (``""`` for a bare path)."""
        return self.components.scheme

    @property
    def netloc(self) -> str:
        """Everything between ``//`` and the path: user info, host and port."""
        return self.components.netloc

    @property
    def path(self) -> str:
        """The path, as the client asked for it."""
        return self.components.path

    @property
    def query(self) -> str:
        """The query string, without the ``?``."""
        return self.components.query

    @property
    def fragment(self) -> str:
        """The fragment, without the ``#`` (browsers never send one)."""
        return self.components.fragment

    @property
    def username(self) -> str | None:
        """The user name of the URL's user info, or ``None``."""
        return self.components.username

    @property
    def password(self) -> str | None:
        """The password of the URL's user info, or ``None`` (``repr`` hides it)."""
        return self.components.password

    @property
    def hostname(self) -> str | None:
        """The host, lower-cased, without brackets for IPv6, or ``None``."""
        return self.components.hostname

    @property
    def port(self) -> int | None:
        """The explicit port, or ``None`` when the URL has none.

        Raises:
            ValueError: the port is not a number in 0–65535.
        """
        return self.components.port

    @property
    def is_secure(self) -> bool:
        """True for ``https`` and ``wss``."""
        return self.scheme in ("https", "wss")

    # ``str.replace`` is shadowed on purpose: Starlette and Lilya users call
    # ``url.replace(path=...)``; use ``str(url).replace(...)`` for the string one.
    def replace(self, **parts: Any) -> URL:  # type: ignore[override]
        """Return a copy with some parts changed.

        Args:
            parts: any of ``scheme``, ``netloc``, ``path``, ``query``,
                ``fragment``, or ``hostname``/``port``/``username``/``password``
                (which rebuild the netloc).
        """
        netloc_keys = {"hostname", "port", "username", "password"}
        unknown = set(parts) - netloc_keys - {"scheme", "netloc", "path", "query", "fragment"}
        if unknown:
            raise TypeError(f"URL.replace() got unknown parts: {', '.join(sorted(unknown))}.")
        if netloc_keys & parts.keys():
            hostname = parts.pop("hostname", self.hostname) or ""
            port = parts.pop("port", self.port)
            username = parts.pop("username", self.username)
            password = parts.pop("password", self.password)
            if ":" in hostname and not hostname.startswith("["):
                hostname = f"[{hostname}]"  # RFC 3986 §3.2.2: IPv6 literals in brackets
            netloc = hostname
            if port is not None:
                netloc = f"{netloc}:{port}"
            if username is not None:
                userinfo = username if password is None else f"{username}:{password}"
                netloc = f"{userinfo}@{netloc}"
            parts["netloc"] = netloc
        return URL(urlunsplit(self.components._replace(**parts)))

    def relative_url(self) -> URL:
        """Return the URL without scheme and host: path, query and fragment (as Lilya's)."""
        return URL(urlunsplit(("", "", self.path, self.query, self.fragment)))

    def include_query_params(self, **params: Any) -> URL:
        """Return a copy with *params* set, replacing existing values of those names."""
        query = MultiDict(parse_qsl(self.query, keep_blank_values=True))
        query.update({k: str(v) for k, v in params.items()})
        return self.replace(query=urlencode(list(query.items())))

    def replace_query_params(self, **params: Any) -> URL:
        """Return a copy whose query string is exactly *params*."""
        return self.replace(query=urlencode([(k, str(v)) for k, v in params.items()]))

    def remove_query_params(self, keys: str | Sequence[str]) -> URL:
        """Return a copy without the parameters named in *keys*."""
        drop = {keys} if isinstance(keys, str) else set(keys)
        query = [(k, v) for k, v in parse_qsl(self.query, keep_blank_values=True) if k not in drop]
        return self.replace(query=urlencode(query))

    def __repr__(self) -> str:
        shown = str(self)
        if self.password:
            shown = str(self.replace(password="********"))
        return f"URL({shown!r})"


# RFC 3986 §3.2.2-3: reg-name or IP literal, then an optional port.
_HOST = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=%]*|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?")


def _valid_host(host: str) -> bool:
    match = _HOST.fullmatch(host)
    return match is not None and (match.group(1) is None or int(match.group(1)) <= 65535)


def _url_from_scope(scope: Scope) -> str:
    default_scheme = "ws" if scope.get("type") == "websocket" else "http"
    scheme = scope.get("scheme") or default_scheme
    given = scope.get("root_path", "") or ""
    root_path = given.rstrip("/")
    path = scope.get("path", "") or ""
    if given != root_path and path.startswith(given + "/"):
        # "--root-path /api/": uvicorn joins it to the path as "/api//items".
        path = given + path[len(given) + 1 :]
    # Servers disagree on whether ``path`` already includes ``root_path``
    # (uvicorn ≥ 0.26 includes it, older ones and the ASGI spec's first drafts
    # do not); prefix only when it is missing so the URL never doubles it.
    if root_path and not path.startswith(root_path):
        path = root_path + path
    query_string = scope.get("query_string", b"")
    host = None
    for name, value in scope.get("headers") or ():
        if name == b"host":
            host = value.decode("latin-1")
            if not _valid_host(host):
                # Client input that would make every part of the URL raise
                # (``Host: [::1``): trust the server's address instead.
                host = None
            break
    server = Address.from_scope(scope.get("server"))
    if host is None and server is not None:
        host = server.host
        if ":" in host:
            host = f"[{host}]"
        if server.port is not None and server.port != _DEFAULT_PORTS.get(scheme):
            host = f"{host}:{server.port}"
    # ``path`` is percent-decoded; re-escape only what would end the path
    # part of the URL, so ``url.path`` stays the path the client asked for.
    url = path.replace("?", "%3F").replace("#", "%23")
    if host is not None:
        url = f"{scheme}://{host}{url}"
    if query_string:
        url = f"{url}?{query_string.decode('latin-1')}"
    return url


class URLPath(str):
    """A path produced by reverse routing, which knows its protocol.

    ``protocol`` is ``"http"`` or ``"websocket"`` (or ``""`` for either), so that
    :meth:`make_absolute_url` picks ``ws``/``wss`` for WebSocket routes.
    """

    __slots__ = ("host", "protocol")

    host: str
    protocol: str

    def __new__(cls, path: str, protocol: str = "", host: str = "") -> URLPath:
        if protocol not in ("http", "websocket", ""):
            raise ValueError(f'protocol must be "http", "websocket" or "", got {protocol!r}.')
        self = super().__new__(cls, path)
        self.protocol = protocol
        self.host = host
        return self

    def make_absolute_url(self, base_url: str | URL) -> URL:
        """Join this path to *base_url*, switching to ``ws``/``wss`` for WebSocket routes."""
        base = base_url if isinstance(base_url, URL) else URL(base_url)
        scheme = base.scheme
        if self.protocol == "websocket":
            scheme = "wss" if base.is_secure else "ws"
        elif self.protocol == "http":
            scheme = "https" if base.is_secure else "http"
        netloc = self.host or base.netloc
        path = base.path.rstrip("/") + str(self)
        return URL(f"{scheme}://{netloc}{path}")
