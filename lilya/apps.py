"""The application: a router, middleware, exception handlers and a lifespan, as one ASGI app.

A connection goes through these layers, outermost first::

    ServerErrorMiddleware      unhandled errors -> 500 / 1011, re-raised (the server logs them)
      OriginMiddleware         cross-origin WebSocket handshakes -> 403 (``allowed_origins``)
        your middleware        in the order you list it (the first is outermost)
          exception handlers   HTTPException, WebSocketException, your handlers
            Router             routes (each applies the handlers first, too)

The stack is built on the first connection, so you can add routes,
middleware and handlers until then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from lilya._drain import Drain
from lilya._exception_handlers import ExceptionHandler, HandlerKey, split_handlers
from lilya._handshake import HandshakeTimeout
from lilya._telemetry import ConnectionObserver, watch
from lilya.asyncapi import asyncapi_document, asyncapi_page
from lilya.caps import (
    DEFAULT_CONNECTION_CAPS,
    ConnectionCaps,
    HasURL,
    RedisCounter,
    check_connection_caps,
    make_counter,
)
from lilya.datastructures import State, URLPath
from lilya.exceptions import ImproperlyConfigured
from lilya.heartbeat import Heartbeat, check_heartbeat
from lilya.limits import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_RATE_LIMIT,
    RateLimit,
    check_max_message_size,
    check_rate_limit,
)
from lilya.metrics import Metrics, default_metrics
from lilya.middleware import DefineMiddleware, wrap_middleware
from lilya.middleware.exceptions import ExceptionHandlerMiddleware
from lilya.middleware.origin import OriginMiddleware
from lilya.middleware.server_error import ServerErrorMiddleware
from lilya.requests import Request
from lilya.responses import HTMLResponse, JSONResponse
from lilya.routing import BaseRoute, Router
from lilya.status import WS_1012_SERVICE_RESTART
from lilya.timeouts import DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_SEND_TIMEOUT, check_timeout
from lilya.tracing import Tracing
from lilya.typed import OnInvalid
from lilya.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

__all__ = ["Lilya"]

_F = TypeVar("_F", bound=Callable[..., Any])
_O = TypeVar("_O")


def _observer(name: str, value: object, kind: type[_O], make: Callable[[], _O]) -> _O | None:
    # metrics=True / tracing=True: the default one; an instance as it is; False: none.
    if value is True:
        return make()
    if value is False or value is None:
        return None
    if not isinstance(value, kind):
        raise ImproperlyConfigured(
            f"Lilya({name}=) takes True, False or a {kind.__name__}, got {value!r:.80}."
        )
    return value


class Lilya:
    """A lilya application.

    Args:
        routes: ``Path``, ``WebSocketPath`` and ``Include`` objects, tried in order.
        middleware: ``DefineMiddleware`` entries; the first is the outermost.
        exception_handlers: ``{ExceptionClass or status/close code: handler}``;
            ``handler(request_or_websocket, exc)``, sync or async. A handler
            for ``Exception`` or ``500`` customizes the answer to unhandled
            errors (which are still re-raised).
        on_startup, on_shutdown: callables run once when the server starts
            and stops (sync or async).
        lifespan: ``lifespan(app)`` returning an async context manager, an
            alternative (or complement) to the hooks; startup hooks run before
            it is entered, shutdown hooks after it exits.
        debug: put tracebacks in HTTP 500 bodies.
        redirect_slashes: redirect HTTP requests that differ from a route only
            by a trailing slash (307).
        allowed_origins: origins besides the server's own whose pages may open
            a WebSocket (``"https://app.example.com"``, ``"https://*.example.com"``,
            or ``"*"`` for any). Browser handshakes from any other origin get a
            403 (see :mod:`lilya.middleware.origin`).
        allow_missing_origin: let handshakes without an ``Origin`` header
            (non-browser clients) through; ``False`` refuses them with 403.
        max_message_size: the largest WebSocket message (bytes, after
            decompression) a route takes unless it sets its own; a larger one
            closes 1009 (see :mod:`lilya.limits`). ``None`` leaves only the
            server's limit. ``lilya run`` gives the server the largest of them.
        rate_limit: how many messages a WebSocket connection may send, a
            :class:`~lilya.limits.RateLimit` (default 100 a second, bursts of
            1,000; over it: close 1008); a route can set its own; ``None``
            turns it off.
        connection_caps: how many WebSockets may be open at once, a
            :class:`~lilya.caps.ConnectionCaps` (default 10,000 per process:
            503 over it; 100 per client address and 50 per authenticated
            user: 429 over them; both with ``Retry-After`` 5); a route can
            set its own; ``None`` turns them off (see :mod:`lilya.caps`).
        connection_counter: where the address and user caps are counted:
            ``None`` in this process, a ``redis://`` URL, a
            :class:`~lilya.caps.RedisCounter`, or the app's ``Channels`` (on
            ``redis://``), across every worker sharing it.
        send_timeout: the longest a WebSocket send may wait for a client
            that is not reading, in seconds (default 10); past it lilya closes
            1013 and the handler sees ``WebSocketDisconnect(1013)``. A route
            can set its own, a call too; ``None`` waits for ever (see
            :mod:`lilya.timeouts`).
        handshake_timeout: the longest a WebSocket handler may take to
            accept or refuse, in seconds (default 10); past it the client gets
            a 503 and the handler is cancelled. ``None`` waits for ever.
        drain_code: the close code open WebSockets get when the app stops
            (1012 "service restart"; 1001 "going away" to keep clients away).
        drain_batch, drain_interval: close that many sockets at a time, that
            many seconds apart, so clients reconnect spread over time.
        drain_timeout: the longest the drain waits for handlers to finish.
        drain_retry_after: the ``Retry-After`` of the 503 a handshake gets
            while the app drains. See :meth:`drain` and ``docs/operations.md``.
        metrics: ``True`` (the process's :func:`~lilya.metrics.default_metrics`)
            or a :class:`~lilya.metrics.Metrics`: Prometheus metrics of every
            WebSocket, served at its ``path`` (``/metrics``). Needs
            ``lilya[metrics]``. Off by default, at no cost.
        tracing: ``True`` or a :class:`~lilya.tracing.Tracing`: an
            OpenTelemetry span per WebSocket connection. Needs ``lilya[otel]``.
        heartbeat: ``(interval, timeout)`` in seconds for every WebSocket
            route that does not set its own: lilya pings each client and
            closes 1011 when its pong is late (:mod:`lilya.heartbeat`).
            Default ``None``: off, leaving liveness to the server.
        idle_timeout: close a WebSocket with 1001 when no message has passed
            either way (heartbeat frames aside) for this many seconds after
            accept, unless its route sets its own; the handler sees
            ``WebSocketDisconnect(1001)`` (:mod:`lilya.idle`). Default
            ``None``: off.

    Raises:
        ImproperlyConfigured: an entry of *allowed_origins* is not an origin,
            *max_message_size* is not a positive ``int`` nor ``None``,
            *rate_limit* is not a ``RateLimit`` nor ``None``,
            *connection_caps* is not a ``ConnectionCaps`` nor ``None``,
            *connection_counter* is not ``None``, a Redis URL, a
            ``RedisCounter`` nor channels on ``memory://`` or ``redis://``, a ``drain_*``
            value is out of range, or *metrics* / *tracing* is not ``True``,
            ``False`` or an instance; *heartbeat* is not ``(interval,
            timeout)`` of positive seconds nor ``None``; or a timeout is not
            positive seconds nor ``None``.

    Attributes:
        state: application-wide state (``app.state.db = ...``).
        router: the :class:`~lilya.routing.Router` holding the routes.
        connection_counter: the :class:`~lilya.caps.ConnectionCounter` of
            the app's open WebSockets (``.counts``).
    """

    def __init__(
        self,
        routes: Sequence[BaseRoute] | None = None,
        middleware: Sequence[DefineMiddleware] | None = None,
        exception_handlers: Mapping[HandlerKey, ExceptionHandler] | None = None,
        on_startup: Sequence[Callable[[], Any]] | None = None,
        on_shutdown: Sequence[Callable[[], Any]] | None = None,
        lifespan: Lifespan[Lilya] | None = None,
        debug: bool = False,
        redirect_slashes: bool = True,
        allowed_origins: Sequence[str] = (),
        allow_missing_origin: bool = True,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
        connection_caps: ConnectionCaps | None = DEFAULT_CONNECTION_CAPS,
        connection_counter: str | RedisCounter | HasURL | None = None,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        drain_code: int = WS_1012_SERVICE_RESTART,
        drain_batch: int = 100,
        drain_interval: float = 0.1,
        drain_timeout: float = 30.0,
        drain_retry_after: int = 5,
        metrics: Metrics | bool = False,
        tracing: Tracing | bool = False,
        heartbeat: Heartbeat | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.debug = debug
        self.heartbeat = check_heartbeat(heartbeat, "Lilya")
        self.max_message_size = check_max_message_size(max_message_size, "Lilya")
        self.rate_limit = check_rate_limit(rate_limit, "Lilya")
        self.connection_caps = check_connection_caps(connection_caps, "Lilya")
        self.connection_counter = make_counter(connection_counter)
        self.send_timeout = check_timeout(send_timeout, "send_timeout", "Lilya")
        self.handshake_timeout = check_timeout(handshake_timeout, "handshake_timeout", "Lilya")
        self.idle_timeout = check_timeout(idle_timeout, "idle_timeout", "Lilya")
        self.state = State()
        self.router = Router(
            routes,
            redirect_slashes=redirect_slashes,
            on_startup=on_startup,
            on_shutdown=on_shutdown,
            lifespan=lifespan,
        )
        self.user_middleware: list[DefineMiddleware] = list(middleware or [])
        self.exception_handlers: dict[HandlerKey, ExceptionHandler] = dict(exception_handlers or {})
        split_handlers(self.exception_handlers)  # refuse bad keys now, not at first request
        self.allowed_origins = (
            [allowed_origins] if isinstance(allowed_origins, str) else list(allowed_origins)
        )
        self.allow_missing_origin = allow_missing_origin
        self._asyncapi_options: dict[str, Any] = {}
        # Built once here only to refuse a bad origin now, not at the first handshake.
        OriginMiddleware(self.router, self.allowed_origins, allow_missing_origin)
        self._drain = Drain(
            code=drain_code,
            batch=drain_batch,
            interval=drain_interval,
            timeout=drain_timeout,
            retry_after=drain_retry_after,
        )
        self._stack: ASGIApp | None = None
        self.metrics: Metrics | None = _observer("metrics", metrics, Metrics, default_metrics)
        self.tracing: Tracing | None = _observer("tracing", tracing, Tracing, Tracing)
        self._observers: list[ConnectionObserver] = [
            observer for observer in (self.metrics, self.tracing) if observer is not None
        ]
        if self.metrics is not None and self.metrics.path is not None:
            self.add_route(self.metrics.path, self.metrics.endpoint, name="metrics")

    @property
    def routes(self) -> list[BaseRoute]:
        """The app's routes (the router's list: appending to it adds a route)."""
        return self.router.routes

    def build_middleware_stack(self) -> ASGIApp:
        """Build the layers around the router (done once, on the first connection)."""
        handlers, server_error = split_handlers(self.exception_handlers)
        app: ASGIApp = ExceptionHandlerMiddleware(self.router, handlers)
        app = wrap_middleware(app, self.user_middleware)
        origin_check = OriginMiddleware(app, self.allowed_origins, self.allow_missing_origin)
        if not (origin_check.allow_any and origin_check.allow_missing):
            app = origin_check  # with "*" and no Origin required, nothing is left to check
        app = ServerErrorMiddleware(app, handler=server_error, debug=self.debug)
        if self.handshake_timeout is not None:
            app = HandshakeTimeout(app, self.handshake_timeout)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        if self._stack is None:
            self._stack = self.build_middleware_stack()
        scope_type = scope["type"]
        if scope_type == "websocket":
            if self._observers:
                await watch(self._observers, self._drain.serve, self._stack, scope, receive, send)
            else:
                await self._drain.serve(self._stack, scope, receive, send)
            return
        if scope_type == "lifespan":
            receive, send = self._drain_on_shutdown(receive, send)
        await self._stack(scope, receive, send)

    # -- stopping ----------------------------------------------------------------
    def _drain_on_shutdown(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        async def receive_then_drain() -> Message:
            message = await receive()
            if message.get("type") == "lifespan.shutdown":
                await self.drain()
            return message

        async def send_then_reset(message: Message) -> None:
            await send(message)
            if message.get("type") in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                # Stopped: a new lifespan may serve again (the next test's client).
                self._drain.reset()

        return receive_then_drain, send_then_reset

    @property
    def draining(self) -> bool:
        """Whether the app is stopping: new handshakes get 503, open sockets are being closed."""
        return self._drain.draining

    @property
    def open_websockets(self) -> int:
        """How many WebSockets the app is serving now."""
        return len(self._drain.open)

    async def wait_for_drain(self) -> None:
        """Return when the app starts to stop (at once if it has).

        Await it in a task beside your handler's loop to say goodbye before
        the socket is closed, or to stop work that would outlive it.
        """
        await self._drain.wait()

    async def drain(self) -> None:
        """Stop serving WebSockets without losing a client; return when done.

        New handshakes are refused with a 503 and ``Retry-After``; those
        waiting in :meth:`wait_for_drain` wake; the open sockets are closed
        with ``drain_code``, ``drain_batch`` at a time every
        ``drain_interval`` seconds (a handler's next send raises
        ``WebSocketDisconnect``, its pending receive gets the disconnect, so
        its ``finally`` blocks run); then it waits for the handlers to return,
        ``drain_timeout`` seconds at most. The server's ``lifespan.shutdown``
        runs it, and ``lilya run`` runs it on SIGTERM / SIGINT before the
        server closes the sockets itself. A second call does nothing; once the
        lifespan has ended the app serves again (a test suite may start many
        clients on one app).
        """
        await self._drain.run()

    # -- configuration -------------------------------------------------------
    def _check_not_started(self, what: str) -> None:
        if self._stack is not None:
            raise RuntimeError(
                f"Cannot {what} after the application has started serving; do it before the "
                "first connection (e.g. where you create the app)."
            )

    def add_middleware(self, cls: Any, /, *args: Any, **kwargs: Any) -> None:
        """Add middleware as the new outermost of yours.

        Raises:
            RuntimeError: the app already serves connections.
        """
        self._check_not_started("add middleware")
        self.user_middleware.insert(0, DefineMiddleware(cls, *args, **kwargs))

    def add_exception_handler(self, key: HandlerKey, handler: ExceptionHandler) -> None:
        """Register *handler* for an exception class or a status / close code.

        Raises:
            RuntimeError: the app already serves connections.
        """
        self._check_not_started("add an exception handler")
        self.exception_handlers[key] = handler
        split_handlers(self.exception_handlers)

    def add_route(
        self,
        path: str,
        handler: Any,
        *,
        methods: Sequence[str] | None = None,
        name: str | None = None,
        middleware: Sequence[DefineMiddleware] | None = None,
    ) -> None:
        """Add an HTTP route (see :class:`~lilya.routing.Path`)."""
        self.router.add_route(path, handler, methods=methods, name=name, middleware=middleware)

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
        """Add a WebSocket route (see :class:`~lilya.routing.WebSocketPath`)."""
        self.router.add_websocket_route(
            path,
            handler,
            name=name,
            middleware=middleware,
            receives=receives,
            sends=sends,
            on_invalid=on_invalid,
        )

    def include(
        self,
        path: str,
        app: ASGIApp | Sequence[BaseRoute],
        *,
        name: str | None = None,
        middleware: Sequence[DefineMiddleware] | None = None,
    ) -> None:
        """Mount an ASGI app or a list of routes under *path* (see ``Include``)."""
        self.router.include(path, app, name=name, middleware=middleware)

    def path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """Return the path of the route called *name* (see :meth:`Router.path_for`)."""
        return self.router.path_for(name, **path_params)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """Starlette's name for :meth:`path_for`."""
        return self.router.path_for(name, **path_params)

    # -- decorators --------------------------------------------------------------
    def route(
        self,
        path: str,
        *,
        methods: Sequence[str] | None = None,
        name: str | None = None,
        middleware: Sequence[DefineMiddleware] | None = None,
    ) -> Callable[[_F], _F]:
        """Decorate an HTTP handler for *path* and *methods* (default ``GET``)."""
        return self.router.route(path, methods=methods, name=name, middleware=middleware)

    def get(
        self, path: str, *, name: str | None = None, middleware: Sequence[Any] | None = None
    ) -> Callable[[_F], _F]:
        """Decorate a handler for ``GET`` (and ``HEAD``) requests to *path*."""
        return self.route(path, methods=["GET"], name=name, middleware=middleware)

    def post(
        self, path: str, *, name: str | None = None, middleware: Sequence[Any] | None = None
    ) -> Callable[[_F], _F]:
        """Decorate a handler for ``POST`` requests to *path*."""
        return self.route(path, methods=["POST"], name=name, middleware=middleware)

    def put(
        self, path: str, *, name: str | None = None, middleware: Sequence[Any] | None = None
    ) -> Callable[[_F], _F]:
        """Decorate a handler for ``PUT`` requests to *path*."""
        return self.route(path, methods=["PUT"], name=name, middleware=middleware)

    def patch(
        self, path: str, *, name: str | None = None, middleware: Sequence[Any] | None = None
    ) -> Callable[[_F], _F]:
        """Decorate a handler for ``PATCH`` requests to *path*."""
        return self.route(path, methods=["PATCH"], name=name, middleware=middleware)

    def delete(
        self, path: str, *, name: str | None = None, middleware: Sequence[Any] | None = None
    ) -> Callable[[_F], _F]:
        """Decorate a handler for ``DELETE`` requests to *path*."""
        return self.route(path, methods=["DELETE"], name=name, middleware=middleware)

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
        """Decorate a WebSocket handler for *path* (typed with *receives* / *sends*)."""
        return self.router.websocket(
            path,
            name=name,
            middleware=middleware,
            receives=receives,
            sends=sends,
            on_invalid=on_invalid,
        )

    # -- AsyncAPI ------------------------------------------------------------
    def asyncapi(self, **options: Any) -> dict[str, Any]:
        """Return the AsyncAPI 3.0 document of this app's WebSocket routes.

        Every WebSocket route is a channel; its ``receives`` / ``sends`` (on
        the route or its handler) are its operations and messages. *options*
        (``title``, ``version``, ``description``, ``servers``, ``security``,
        ``channels``) are those of :func:`lilya.asyncapi.asyncapi_document`;
        those given to :meth:`serve_asyncapi` are the defaults.
        """
        return asyncapi_document(self.routes, **{**self._asyncapi_options, **options})

    def serve_asyncapi(
        self, json_path: str = "/asyncapi.json", page_path: str = "/asyncapi", **options: Any
    ) -> None:
        """Serve the AsyncAPI document at *json_path* and a page rendering it at *page_path*.

        Unless *options* name ``servers``, the served document's server is the
        one the request reached (its ``Host``, ``ws`` or ``wss``), so the page
        shows URLs a client can use as they are.
        """
        self._asyncapi_options = dict(options)

        def document(request: Request) -> dict[str, Any]:
            if "servers" in self._asyncapi_options:
                return self.asyncapi()
            url = request.url
            protocol = "wss" if url.scheme == "https" else "ws"
            return self.asyncapi(servers={"default": {"host": url.netloc, "protocol": protocol}})

        async def asyncapi_json(request: Request) -> JSONResponse:
            return JSONResponse(document(request))

        async def asyncapi_html(request: Request) -> HTMLResponse:
            return HTMLResponse(asyncapi_page(document(request)))

        self.add_route(json_path, asyncapi_json, name="asyncapi_json")
        self.add_route(page_path, asyncapi_html, name="asyncapi_page")
