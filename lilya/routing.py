"""Routing: map a path (and a method) to a handler, and a route name back to a path.

Theory of operation
-------------------
Every path template is compiled once, when you build the route
(:mod:`lilya._matching`). For each connection the :class:`Router` tries its
routes **in the order you declared them**:

1. the first route that matches fully (path, scope type and, for HTTP,
   method) wins;
2. an ``Include`` with a list of routes matches only if one of *its* routes
   matches, so a request the include cannot serve falls through to the routes
   after it; an ``Include`` of an ASGI app matches on its prefix alone;
3. if only the method differed somewhere, the first such route answers 405;
4. otherwise: HTTP tries the path with its trailing slash toggled and
   redirects (307) if that matches (``redirect_slashes``); a WebSocket is
   closed before accept, which the server turns into HTTP 403.

Matching is exact about trailing slashes: ``/items`` and ``/items/`` are
different paths. Path parameters land typed in ``scope["path_params"]`` and,
for function handlers, in keyword arguments of the same name.

The routing layer owns the end of every WebSocket it dispatches: it sends
``websocket.close`` before the handler's task ends, whatever the handler did
(1000 after a normal return, 1011 after an unhandled error), because real
servers disagree on what an app that just returns means
(``docs/servers.md``).
"""

from __future__ import annotations

import abc
import difflib
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar, cast

import anyio.to_thread

from lilya._connection_state import state_of
from lilya._exception_handlers import HANDLERS_KEY, guard, handle
from lilya._handlers import HandlerCall, is_function_handler, name_of
from lilya._lifespan import lifespan_context, run_lifespan
from lilya._matching import (
    Match,
    compile_path,
    get_route_path,
    matched_scope,
    normalize_root_path,
    own_path_for,
)
from lilya._recorder import enter, server_callables, server_send
from lilya._telemetry import note_route
from lilya.caps import ConnectionCaps, check_connection_caps, serve_capped
from lilya.controllers import WebSocketController
from lilya.datastructures import URL, URLPath
from lilya.exceptions import HTTPException, ImproperlyConfigured, NoMatchFound
from lilya.heartbeat import Heartbeat, check_heartbeat
from lilya.heartbeat import serve as serve_with_heartbeat
from lilya.idle import check_idle_timeout
from lilya.idle import serve as serve_with_idle_timeout
from lilya.limits import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_RATE_LIMIT,
    MAX_MESSAGE_SIZE_KEY,
    RATE_LIMIT_KEY,
    RateLimit,
    check_max_message_size,
    check_rate_limit,
    limit_receive,
)
from lilya.middleware import DefineMiddleware, wrap_middleware
from lilya.requests import Request
from lilya.responses import PlainText, RedirectResponse, to_response
from lilya.timeouts import DEFAULT, DEFAULT_SEND_TIMEOUT, Default, check_timeout
from lilya.typed import OnInvalid, TypedWebSocket, check_on_invalid, codec_for
from lilya.types import ASGIApp, Lifespan, Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketClose

__all__ = [
    "BaseRoute",
    "Include",
    "Match",
    "NoMatchFound",
    "Path",
    "Router",
    "WebSocketPath",
    "get_route_path",
]

_F = TypeVar("_F", bound=Callable[..., Any])


# -- routes ------------------------------------------------------------------


class BaseRoute(abc.ABC):
    """What the router asks of a route: does it match, handle it, and build its path.

    Subclass it for a route of your own; a subclass that leaves one of these
    out cannot be instantiated (``TypeError`` naming what is missing).
    """

    name: str | None = None

    @abc.abstractmethod
    def matches(self, scope: Scope, route_path: str) -> tuple[Match, dict[str, Any]]:
        """Return how well *scope* matches, and the scope keys to set when handling it."""

    @abc.abstractmethod
    def handle(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Serve a connection this route matched (an ``async def`` is the usual way).

        lilya's own routes return the next layer's coroutine instead of awaiting
        it, where they have nothing to do after it: a suspended frame per layer
        is memory every idle socket holds (docs/benchmarks.md).
        """

    @abc.abstractmethod
    def path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """Return the path of route *name* filled with *path_params*.

        Raises:
            NoMatchFound: this route is not called *name* or takes other params.
        """

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """Starlette's name for :meth:`path_for`."""
        return self.path_for(name, **path_params)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a connection with this route alone: a route is an ASGI app too.

        A connection it does not match gets what a router would answer: 404
        for HTTP, a close before accept (HTTP 403) for a WebSocket. Lifespan
        scopes are ignored (a route has no startup); the server goes on
        without lifespan.
        """
        scope_type = scope["type"]
        if scope_type not in ("http", "websocket"):
            return
        normalize_root_path(scope)
        # Mounted at a prefix and asked for the prefix itself: that is "/".
        match, child = self.matches(scope, get_route_path(scope) or "/")
        if match is Match.NONE:
            if scope_type == "http":
                await PlainText("Not Found", 404)(scope, receive, send)
            else:
                await WebSocketClose()(scope, receive, send)
            return
        scope.update(child)
        await self.handle(scope, receive, send)


class Path(BaseRoute):
    """An HTTP route.

    Args:
        path: the path template, e.g. ``"/items/{id:int}"``.
        handler: ``async def h(request, **params)`` (or a sync function, run in
            a thread) returning a response, or any ASGI app.
        methods: the methods allowed. Default: ``GET`` (and ``HEAD``) for a
            function, every method for an ASGI app. ``GET`` implies ``HEAD``.
        name: the name for reverse routing; default: the handler's name.
        middleware: middleware around this route only.

    Raises:
        ImproperlyConfigured: a bad path template, or a function handler that
            needs parameters the path does not define.
    """

    def __init__(
        self,
        path: str,
        handler: Any,
        *,
        methods: Sequence[str] | None = None,
        name: str | None = None,
        middleware: Sequence[DefineMiddleware] | None = None,
    ) -> None:
        self.path = path
        self.handler = handler
        self.name = name if name is not None else name_of(handler)
        self._compiled = compile_path(path)
        self._call: HandlerCall | None = None
        if is_function_handler(handler):
            self._call = HandlerCall(handler, self._compiled.param_names)
            self._is_async = inspect.iscoroutinefunction(handler)
            if methods is None:
                methods = ["GET"]
        self.methods: frozenset[str] | None = None
        if methods is not None:
            upper = {method.upper() for method in methods}
            if "GET" in upper:
                upper.add("HEAD")
            self.methods = frozenset(upper)
        self.middleware = list(middleware or [])
        self.app = wrap_middleware(self._serve, self.middleware)

    def matches(self, scope: Scope, route_path: str) -> tuple[Match, dict[str, Any]]:
        if scope["type"] != "http":
            return Match.NONE, {}
        found = self._compiled.match(route_path)
        if found is None:
            return Match.NONE, {}
        child = matched_scope(scope, found[0])
        if self.methods is not None and scope["method"] not in self.methods:
            return Match.PARTIAL, child
        return Match.FULL, child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods is not None and scope["method"] not in self.methods:
            allow = ", ".join(sorted(self.methods))
            if HANDLERS_KEY in scope:
                raise HTTPException(405, headers={"allow": allow})
            await PlainText("Method Not Allowed", 405, {"allow": allow})(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        state, receive, send = enter(scope, receive, send)
        try:
            if self._call is None:
                await self.handler(scope, receive, send)
                return
            request = Request(scope, receive, send)
            params = scope.get("path_params") or {}
            if self._is_async:
                result = await self._call(request, params)
            else:
                result = await anyio.to_thread.run_sync(self._call, request, params)
            await to_response(result, self.handler)(scope, receive, send)
        except Exception as exc:
            if not await handle(scope, state, receive, send, exc):
                raise

    def path_for(self, name: str, /, **path_params: Any) -> URLPath:
        return own_path_for(self.name, self._compiled, "http", name, path_params)

    def __repr__(self) -> str:
        # Starlette's form; an ASGI app that takes every method shows [].
        methods = sorted(self.methods or [])
        return f"Path(path={self.path!r}, name={self.name!r}, methods={methods!r})"


class WebSocketPath(BaseRoute):
    """A WebSocket route.

    Args:
        path: the path template, e.g. ``"/ws/{room}"``.
        handler: ``async def h(websocket, **params)``, a
            :class:`~lilya.controllers.WebSocketController` subclass, or any
            ASGI app.
        name: the name for reverse routing; default: the handler's name.
        middleware: middleware around this route only.
        max_message_size: the largest message (bytes, after decompression)
            this route takes; a larger one closes 1009 and the handler sees
            ``WebSocketDisconnect(1009)``. Default: the app's
            (``Lilya(max_message_size=...)``, 1 MiB; see :mod:`lilya.limits`).
        rate_limit: a :class:`~lilya.limits.RateLimit` for this route's
            connections (over it: close 1008, or an error frame and the
            message dropped). Default: the app's (100 messages/s, bursts of 1,000).
        connection_caps: a :class:`~lilya.caps.ConnectionCaps` for this
            route's handshakes, compared with the app's counts (429 / 503
            over them). Default: the app's (``Lilya(connection_caps=...)``);
            ``ConnectionCaps(None, None, None)`` lifts every cap here.
        send_timeout: the longest a send to this route's clients may wait
            for one that is not reading, in seconds; past it lilya closes 1013
            and the handler sees ``WebSocketDisconnect(1013)``. ``None`` waits
            for ever. Default (:data:`~lilya.timeouts.DEFAULT`): the app's
            (``Lilya(send_timeout=...)``, 10 s; see :mod:`lilya.timeouts`).
        receives, sends: the message types of a function handler
            (:mod:`lilya.typed`): the handler then gets a
            :class:`~lilya.typed.TypedWebSocket` whose ``receive_message()``
            decodes and validates, and whose ``send_message()`` checks and
            encodes. ``app.asyncapi()`` documents them.
        on_invalid: ``"error"`` (default: an invalid message gets an
            ``invalid_message`` frame, the connection stays open) or
            ``"close"`` (close 1007).
        heartbeat: ``(interval, timeout)`` in seconds: lilya pings
            (``{"type":"ping"}``) every *interval* and closes 1011 when no
            ``{"type":"pong"}`` comes within *timeout* (:mod:`lilya.heartbeat`).
            Default: the app's (``Lilya(heartbeat=...)``, off); ``False``
            turns it off for this route.
        idle_timeout: close the connection with 1001 when no message has
            passed either way (heartbeat frames aside) for this many seconds
            after accept; the handler sees ``WebSocketDisconnect(1001)``
            (:mod:`lilya.idle`). Default (:data:`~lilya.timeouts.DEFAULT`):
            the app's (``Lilya(idle_timeout=...)``, off); ``None`` or
            ``False`` turns it off for this route.

    Whatever the handler does, the connection is closed when it ends: 1000
    after a normal return (before accept: the client sees 403), 1011 after an
    unhandled error once accepted (a 500 denial response before), nothing if
    the client already left.

    Raises:
        ImproperlyConfigured: a bad path template, a plain (non-async)
            function, a function that needs parameters the path lacks, a
            message type lilya cannot validate, or message types given for a
            handler that is not a function (declare them on the controller).
    """

    def __init__(
        self,
        path: str,
        handler: Any,
        *,
        name: str | None = None,
        middleware: Sequence[DefineMiddleware] | None = None,
        max_message_size: int | None = None,
        rate_limit: RateLimit | None = None,
        connection_caps: ConnectionCaps | None = None,
        send_timeout: float | Default | None = DEFAULT,
        receives: Any = None,
        sends: Any = None,
        on_invalid: OnInvalid = "error",
        heartbeat: Heartbeat | Literal[False] | None = None,
        idle_timeout: float | Default | Literal[False] | None = DEFAULT,
    ) -> None:
        self.path = path
        self.handler = handler
        where = f"WebSocketPath({path!r})"
        self.heartbeat = check_heartbeat(heartbeat, where)
        self.idle_timeout = check_idle_timeout(idle_timeout, where)
        self.max_message_size = check_max_message_size(max_message_size, where)
        self.rate_limit = check_rate_limit(rate_limit, where)
        self.connection_caps = check_connection_caps(connection_caps, where)
        self.send_timeout = (
            DEFAULT
            if send_timeout is DEFAULT
            else check_timeout(send_timeout, "send_timeout", where)
        )
        self.name = name if name is not None else name_of(handler)
        self._compiled = compile_path(path)
        self._call: HandlerCall | None = None
        if is_function_handler(handler):
            if not inspect.iscoroutinefunction(handler):
                raise ImproperlyConfigured(
                    f"WebSocket handler {getattr(handler, '__qualname__', handler)!r} must be "
                    "an async function (async def): it awaits the connection."
                )
            self._call = HandlerCall(handler, self._compiled.param_names)
        self._is_controller = isinstance(handler, type) and issubclass(handler, WebSocketController)
        # A handler object that makes its own WebSocket (lilya.protocol's
        # endpoint) applies the limits itself, as a controller's does.
        self._is_controller = (
            self._is_controller or getattr(handler, "applies_limits", None) is True
        )
        self.receives = receives
        self.sends = sends
        self.on_invalid = check_on_invalid(on_invalid)
        self._typed = receives is not None or sends is not None
        if self._typed:
            if self._call is None:
                raise ImproperlyConfigured(
                    f"receives= and sends= type the WebSocket a function handler gets; "
                    f"{handler!r} is not one: set them as attributes of the controller "
                    "(or endpoint) instead."
                )
            # Built now, so a type lilya cannot validate fails at import time.
            for message_type in (receives, sends):
                if message_type is not None:
                    codec_for(message_type)
        self.middleware = list(middleware or [])
        self.app = wrap_middleware(self._serve, self.middleware)

    def matches(self, scope: Scope, route_path: str) -> tuple[Match, dict[str, Any]]:
        if scope["type"] != "websocket":
            return Match.NONE, {}
        found = self._compiled.match(route_path)
        if found is None:
            return Match.NONE, {}
        return Match.FULL, matched_scope(scope, found[0])

    def handle(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # The route's stack itself, not a coroutine awaiting it: one frame fewer
        # held by every open socket.
        return self.app(scope, receive, send)

    def _serve(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Unset here: the app's default (the innermost lilya app's: a mounted one's own).
        app = scope.get("app")
        limit = self.max_message_size
        if limit is None:
            limit = getattr(app, "max_message_size", DEFAULT_MAX_MESSAGE_SIZE)
        scope[MAX_MESSAGE_SIZE_KEY] = limit
        rate = self.rate_limit
        if rate is None:
            rate = getattr(app, "rate_limit", DEFAULT_RATE_LIMIT)
        scope[RATE_LIMIT_KEY] = rate
        note_route(scope, self.path)
        beat = self.heartbeat
        if beat is None:
            beat = getattr(app, "heartbeat", None)
        idle = self.idle_timeout
        if idle is DEFAULT:
            idle = getattr(app, "idle_timeout", None)
        inner: ASGIApp = self._guarded
        if idle is not None:
            # Inside the heartbeat's pulse: pings and pongs never reach it.
            inner = self._idling(idle, server_send(send))
        if isinstance(beat, tuple):
            inner = self._beating(beat, inner)
        return serve_capped(inner, self.connection_caps, scope, receive, send)

    def _beating(self, beat: Heartbeat, inner: ASGIApp) -> ASGIApp:
        raw = self._call is None and not self._is_controller

        async def beating(scope: Scope, receive: Receive, send: Send) -> None:
            await serve_with_heartbeat(inner, beat, scope, receive, send, observe=raw)

        return beating

    def _idling(self, timeout: float, closer: Send) -> ASGIApp:
        raw = self._call is None and not self._is_controller

        async def idling(scope: Scope, receive: Receive, send: Send) -> None:
            await serve_with_idle_timeout(
                self._guarded, timeout, scope, receive, send, closer=closer, observe=raw
            )

        return idling

    def _guarded(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return guard(self._run, scope, receive, send)

    def _run(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function returning the handler's coroutine (guard() awaits
        # it, inside its try): no frame of the route's stays suspended for the
        # socket's life. Set once guard() has entered the connection (its
        # state exists now); guard's closing send reads it too.
        timeout = self.send_timeout
        if timeout is DEFAULT:
            timeout = getattr(scope.get("app"), "send_timeout", DEFAULT_SEND_TIMEOUT)
        state = state_of(scope)
        state.send_timeout = timeout
        if self._call is None:
            limit, rate = scope.get(MAX_MESSAGE_SIZE_KEY), scope.get(RATE_LIMIT_KEY)
            if (limit is not None or rate is not None) and not self._is_controller:
                # A raw ASGI handler reads the server's messages itself; a
                # controller's WebSocket applies the limits from the scope.
                receive = limit_receive(receive, send, limit, rate, scope=scope)
            return cast(Awaitable[None], self.handler(scope, receive, send))
        if self._typed:
            # As below, with the types: past the recorder, to the server's own
            # callables, and registered as the connection's WebSocket.
            typed: TypedWebSocket[Any, Any] = TypedWebSocket(
                scope,
                *server_callables(receive, send),
                receives=self.receives,
                sends=self.sends,
                on_invalid=self.on_invalid,
            )
            state.websocket = typed
            return cast(Awaitable[None], self._call(typed, scope.get("path_params") or {}))
        # Past the recorder, to the server's own callables: the WebSocket
        # moves the connection's state itself (lilya/_recorder.py).
        websocket = state.websocket = WebSocket(scope, *server_callables(receive, send))
        return cast(Awaitable[None], self._call(websocket, scope.get("path_params") or {}))

    def path_for(self, name: str, /, **path_params: Any) -> URLPath:
        return own_path_for(self.name, self._compiled, "websocket", name, path_params)

    def __repr__(self) -> str:
        return f"WebSocketPath(path={self.path!r}, name={self.name!r})"


class Include(BaseRoute):
    """Mount a list of routes, or any ASGI app, under a path prefix.

    Args:
        path: the prefix, e.g. ``"/api"`` or ``"/orgs/{org}"`` (``""`` or
            ``"/"`` for the root; a trailing ``/`` is dropped). It matches
            ``/api`` and everything under ``/api/``, never ``/apix``.
        routes: the routes below the prefix (nestable: an Include among them).
            An ASGI app passed here, second, is mounted as *app*: Starlette's
            ``Mount(path, app)`` and Lilya's ``Include(path, app)`` port as
            they are.
        app: an ASGI app to mount instead; it sees the prefix added to
            ``scope["root_path"]`` and the full ``scope["path"]``.
        name: the namespace for reverse routing: ``"name:route-name"``.
        middleware: middleware around everything below this prefix.

    Raises:
        ImproperlyConfigured: both or neither of *routes* and *app*, or a bad
            prefix.
    """

    def __init__(
        self,
        path: str,
        routes: Sequence[BaseRoute] | ASGIApp | None = None,
        app: ASGIApp | None = None,
        *,
        name: str | None = None,
        middleware: Sequence[DefineMiddleware] | None = None,
    ) -> None:
        given: Any = routes  # checked here: a port may pass anything second
        if given is not None and not isinstance(given, Sequence) and callable(given):
            if app is not None:
                raise ImproperlyConfigured(
                    f"Include({path!r}) got two apps: {given!r} second and app={app!r}; "
                    "mount one of them."
                )
            given, app = None, given  # Include(path, app), as both peers take it
        if (given is None) == (app is None):
            raise ImproperlyConfigured(
                f"Include({path!r}) needs either routes=[...] or app=..., not both or neither."
            )
        if given is not None and (isinstance(given, str) or not isinstance(given, Sequence)):
            raise ImproperlyConfigured(
                f"Include({path!r}) takes a list of routes or an ASGI app second, got "
                f"{type(given).__name__} {given!r}."
            )
        if app is not None and not callable(app):
            raise ImproperlyConfigured(
                f"Include({path!r}, app=...) needs an ASGI app (a callable), got {app!r}."
            )
        routes = given
        self.path = path.rstrip("/")
        self.name = name
        self._compiled = compile_path(self.path, prefix=True)
        self.router: Router | None = None
        inner: ASGIApp
        if routes is not None:
            self.router = Router(routes)
            inner = self.router
        else:
            inner = cast(ASGIApp, app)
        self.mounted = inner
        self.middleware = list(middleware or [])
        self.app = wrap_middleware(inner, self.middleware)

    @property
    def routes(self) -> list[BaseRoute]:
        """The routes below this prefix (those of a mounted app that has ``routes``)."""
        if self.router is not None:
            return self.router.routes
        return list(getattr(self.mounted, "routes", []))

    def matches(self, scope: Scope, route_path: str) -> tuple[Match, dict[str, Any]]:
        if scope["type"] not in ("http", "websocket"):
            return Match.NONE, {}
        found = self._compiled.match(route_path)
        if found is None:
            return Match.NONE, {}
        params, rest = found
        child = matched_scope(scope, params)
        root_path = (scope.get("root_path", "") or "").rstrip("/")
        child["root_path"] = root_path + route_path[: len(route_path) - len(rest)]
        # Reverse routing builds full paths from the app's root, not from
        # this prefix: keep the root the server gave (as Starlette's Mount).
        child["app_root_path"] = scope.get("app_root_path", root_path)
        if self.router is None:
            return Match.FULL, child
        match, _, _ = self.router.resolve({**scope, **child}, rest)
        return match, child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        note_route(scope, self.path)
        if self.router is None and scope["type"] == "websocket":
            # A mounted app gets the routing layer's promise too: it is closed
            # when it ends (a no-op if it closed it itself).
            await guard(self.app, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def path_for(self, name: str, /, **path_params: Any) -> URLPath:
        own = {key: value for key, value in path_params.items() if key in self._compiled.converters}
        rest = {key: value for key, value in path_params.items() if key not in own}
        if self.name is not None and name == self.name:
            if "path" not in rest:
                raise NoMatchFound(
                    name, path_params, hint=f'Include {self.path!r} needs path="/..." too'
                )
            path = rest.pop("path")
            if rest or set(own) != self._compiled.param_names:
                raise NoMatchFound(name, path_params)
            return URLPath(self._prefix(name, own, path_params) + "/" + str(path).lstrip("/"))
        if self.name is None:
            remaining = name
        elif name.startswith(self.name + ":"):
            remaining = name[len(self.name) + 1 :]
        else:
            raise NoMatchFound(name, path_params)
        hint = None
        for route in self.routes:
            try:
                child = route.path_for(remaining, **rest)
            except NoMatchFound as exc:
                hint = hint or exc.hint
                continue
            if set(own) != self._compiled.param_names:
                wanted = ", ".join(sorted(self._compiled.param_names))
                raise NoMatchFound(
                    name, path_params, hint=f"Include {self.path!r} needs params: {wanted}"
                )
            return URLPath(self._prefix(name, own, path_params) + child, child.protocol)
        raise NoMatchFound(name, path_params, hint=hint)

    def _prefix(self, name: str, own: Mapping[str, Any], params: Mapping[str, Any]) -> str:
        try:
            return self._compiled.format(own)
        except ValueError as exc:
            raise NoMatchFound(name, params, hint=str(exc)) from None

    def __repr__(self) -> str:
        return f"Include(path={self.path!r}, name={self.name or ''!r}, app={self.mounted!r})"


# -- the router ---------------------------------------------------------------


class Router:
    """An ASGI app that dispatches to routes and runs the lifespan.

    Args:
        routes: the routes, tried in this order.
        redirect_slashes: answer an HTTP request that matches nothing, but
            would with its trailing slash added or removed, with a 307 to that
            path. (WebSocket clients do not follow redirects: no match is 403.)
        on_startup, on_shutdown: callables (sync or async) run once at startup
            and shutdown, around *lifespan*.
        lifespan: ``lifespan(app)`` returning an async context manager; what
            it yields (a mapping) is added to the lifespan ``state``.
        middleware: middleware around the whole router (the first entry
            outermost), lifespan scopes included, as Starlette's ``Router``.
    """

    def __init__(
        self,
        routes: Sequence[BaseRoute] | None = None,
        *,
        redirect_slashes: bool = True,
        on_startup: Sequence[Callable[[], Any]] | None = None,
        on_shutdown: Sequence[Callable[[], Any]] | None = None,
        lifespan: Lifespan[Any] | None = None,
        middleware: Sequence[DefineMiddleware] | None = None,
    ) -> None:
        self.routes: list[BaseRoute] = list(routes or [])
        for route in self.routes:
            if not isinstance(route, BaseRoute):
                raise ImproperlyConfigured(
                    f"Routes must be Path, WebSocketPath or Include objects, got {route!r}."
                )
        self.redirect_slashes = redirect_slashes
        self.on_startup = list(on_startup or [])
        self.on_shutdown = list(on_shutdown or [])
        self.lifespan_context = lifespan_context(lifespan)
        self.middleware = list(middleware or [])
        self._stack: ASGIApp = wrap_middleware(self.dispatch, self.middleware)

    # -- building ----------------------------------------------------------
    def add_route(
        self,
        path: str,
        handler: Any,
        *,
        methods: Sequence[str] | None = None,
        name: str | None = None,
        middleware: Sequence[DefineMiddleware] | None = None,
    ) -> None:
        """Append an HTTP :class:`Path`."""
        self.routes.append(Path(path, handler, methods=methods, name=name, middleware=middleware))

    def add_websocket_route(
        self,
        path: str,
        handler: Any,
        *,
        name: str | None = None,
        middleware: Sequence[DefineMiddleware] | None = None,
        receives: Any = None,
        sends: Any = None,
        on_invalid: OnInvalid = "error",
    ) -> None:
        """Append a :class:`WebSocketPath` (*receives*, *sends*, *on_invalid*: see there)."""
        self.routes.append(
            WebSocketPath(
                path,
                handler,
                name=name,
                middleware=middleware,
                receives=receives,
                sends=sends,
                on_invalid=on_invalid,
            )
        )

    def include(
        self,
        path: str,
        app: ASGIApp | Sequence[BaseRoute],
        *,
        name: str | None = None,
        middleware: Sequence[DefineMiddleware] | None = None,
    ) -> None:
        """Append an :class:`Include` of an ASGI app or of a list of routes."""
        if isinstance(app, Sequence):
            self.routes.append(Include(path, routes=app, name=name, middleware=middleware))
        else:
            self.routes.append(Include(path, app=app, name=name, middleware=middleware))

    def route(
        self,
        path: str,
        *,
        methods: Sequence[str] | None = None,
        name: str | None = None,
        middleware: Sequence[DefineMiddleware] | None = None,
    ) -> Callable[[_F], _F]:
        """Decorate an HTTP handler to add it as a :class:`Path`."""

        def decorate(handler: _F) -> _F:
            self.add_route(path, handler, methods=methods, name=name, middleware=middleware)
            return handler

        return decorate

    def websocket(
        self,
        path: str,
        *,
        name: str | None = None,
        middleware: Sequence[DefineMiddleware] | None = None,
        receives: Any = None,
        sends: Any = None,
        on_invalid: OnInvalid = "error",
    ) -> Callable[[_F], _F]:
        """Decorate a WebSocket handler to add it as a :class:`WebSocketPath`."""

        def decorate(handler: _F) -> _F:
            self.add_websocket_route(
                path,
                handler,
                name=name,
                middleware=middleware,
                receives=receives,
                sends=sends,
                on_invalid=on_invalid,
            )
            return handler

        return decorate

    # -- reverse routing -----------------------------------------------------
    def path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """Return the path of the route called *name*, filled with *path_params*.

        Names inside an ``Include(name="api")`` are ``"api:route-name"``.

        Raises:
            NoMatchFound: no route has that name and exactly those parameters;
                the message says what the closest route expects.
        """
        hint = None
        for route in self.routes:
            try:
                return route.path_for(name, **path_params)
            except NoMatchFound as exc:
                hint = hint or exc.hint
        if hint is None:
            close = difflib.get_close_matches(name, list(self._names()), n=3)
            if close:
                hint = "did you mean " + " or ".join(repr(found) for found in close) + "?"
        raise NoMatchFound(name, path_params, hint=hint)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """Starlette's name for :meth:`path_for`."""
        return self.path_for(name, **path_params)

    def _names(self, prefix: str = "") -> Iterator[str]:
        for route in self.routes:
            if isinstance(route, Include):
                inner = prefix + (route.name + ":" if route.name else "")
                if route.name:
                    yield prefix + route.name
                if route.router is not None:
                    yield from route.router._names(inner)
            elif route.name:
                yield prefix + route.name

    # -- dispatch --------------------------------------------------------------
    def resolve(
        self, scope: Scope, route_path: str
    ) -> tuple[Match, BaseRoute | None, dict[str, Any]]:
        """Find the route for *scope*: the first full match, else the first partial."""
        partial: tuple[BaseRoute, dict[str, Any]] | None = None
        for route in self.routes:
            match, child = route.matches(scope, route_path)
            if match is Match.FULL:
                return match, route, child
            if match is Match.PARTIAL and partial is None:
                partial = (route, child)
        if partial is not None:
            return Match.PARTIAL, partial[0], partial[1]
        return Match.NONE, None, {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A coroutine function, so a server that inspects the app (uvicorn's
        # ASGI 2/3 detection) serves a bare Router as ASGI 3.
        await self._stack(scope, receive, send)

    def serve(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Route one connection as calling the router does; await what it returns.

        It returns the router's coroutine rather than awaiting it, so a lilya
        layer that calls it (``Lilya``'s exception handlers) holds no frame of
        the router's for an open socket's life.
        """
        return self._stack(scope, receive, send)

    def dispatch(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Route one connection (inside the router's middleware), or run the lifespan.

        It returns the route's coroutine rather than awaiting it (nothing is
        left to do after it), so an open socket holds no frame of the router.
        """
        scope_type = scope["type"]
        if scope_type == "lifespan":
            return self.lifespan(scope, receive, send)
        if scope_type not in ("http", "websocket"):
            raise RuntimeError(
                f"lilya serves 'http', 'websocket' and 'lifespan' scopes, got {scope_type!r}."
            )
        if "router" not in scope:
            scope["router"] = self
            normalize_root_path(scope)
        route_path = get_route_path(scope)
        _, route, child = self.resolve(scope, route_path)
        if route is not None:
            scope.update(child)
            return route.handle(scope, receive, send)
        if scope_type == "http" and self.redirect_slashes and route_path not in ("", "/"):
            other = route_path[:-1] if route_path.endswith("/") else route_path + "/"
            if self.resolve(scope, other)[0] is not Match.NONE:
                full = (scope.get("root_path", "") or "").rstrip("/") + other
                url = URL(scope=scope).replace(path=full)
                return RedirectResponse(url)(scope, receive, send)
        return self.not_found(scope, receive, send)

    async def not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a connection no route matched: 404, or a WebSocket close (403)."""
        if scope["type"] == "websocket":
            await WebSocketClose()(scope, receive, send)
        elif HANDLERS_KEY in scope:
            raise HTTPException(404)
        else:
            await PlainText("Not Found", 404)(scope, receive, send)

    # -- lifespan --------------------------------------------------------------
    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the ASGI lifespan protocol: startup hooks, then shutdown hooks.

        A failure is reported to the server as ``lifespan.startup.failed`` (or
        ``lifespan.shutdown.failed``) with the traceback as its message, then
        re-raised.
        """
        await run_lifespan(
            scope,
            receive,
            send,
            on_startup=self.on_startup,
            on_shutdown=self.on_shutdown,
            context=self.lifespan_context,
            app=scope.get("app", self),
        )
