"""Test an ASGI app in-process: HTTP through httpx, WebSockets through sessions.

``TestClient`` is for ordinary (synchronous) tests; it runs the app in an event
loop of its own, on a thread, through an anyio blocking portal, so
``backend="trio"`` runs the app under trio. ``AsyncTestClient`` is for tests that
already run in an event loop: same API, awaited, no threads.

Both mirror the Starlette-style test client users know: a test suite written
for it ports by changing its imports.

    with TestClient(app) as client:            # runs the lifespan
        assert client.get("/").status_code == 200
        with client.websocket_connect("/ws") as session:
            session.send_text("hello")
            assert session.receive_text() == "hello"
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Generator, Mapping, Sequence
from typing import Any, Literal, TypedDict
from urllib.parse import urljoin

import anyio
import anyio.from_thread
import httpx

from lilya._testclient_transport import (
    AsyncTransport,
    ClientSettings,
    Lifespan,
    SyncTransport,
    build_websocket_scope,
)
from lilya._testclient_websocket import (
    AsyncWebSocketTestSession,
    WebSocketChannel,
    WebSocketDenialResponse,
    WebSocketTestSession,
)
from lilya.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "AsyncTestClient",
    "AsyncWebSocketTestSession",
    "TestClient",
    "WebSocketDenialResponse",
    "WebSocketTestSession",
]

_WEBSOCKET_DEFAULT_HEADERS = {
    "connection": "upgrade",
    "sec-websocket-key": "testserver==",
    "sec-websocket-version": "13",
}


class _ClientSetup:
    """What both clients share: one settings object and how a WebSocket connection starts.

    The settings are made once and handed, as the same object, to the
    transport, the lifespan and every session; the attributes below read and
    write it.
    """

    _settings: ClientSettings

    @property
    def app(self) -> ASGIApp:
        """The ASGI app under test."""
        return self._settings.app

    @property
    def app_state(self) -> dict[str, Any]:
        """The lifespan's ``scope["state"]``; each connection's scope gets a copy."""
        return self._settings.state

    @property
    def root_path(self) -> str:
        """The ASGI ``root_path`` put in every scope."""
        return self._settings.root_path

    @root_path.setter
    def root_path(self, root_path: str) -> None:
        self._settings.root_path = root_path

    @property
    def raise_server_exceptions(self) -> bool:
        """Whether what the app raised is re-raised in the test."""
        return self._settings.raise_server_exceptions

    @raise_server_exceptions.setter
    def raise_server_exceptions(self, value: bool) -> None:
        self._settings.raise_server_exceptions = value

    @property
    def websocket_timeout(self) -> float | None:
        """How long a session's ``receive*`` waits by default (``None``: forever)."""
        return self._settings.websocket_timeout

    @websocket_timeout.setter
    def websocket_timeout(self, value: float | None) -> None:
        self._settings.websocket_timeout = value

    @property
    def raise_websocket_disconnect(self) -> bool:
        """Whether a ``WebSocketDisconnect`` the handler let escape is re-raised in the test."""
        return self._settings.raise_websocket_disconnect

    @raise_websocket_disconnect.setter
    def raise_websocket_disconnect(self, value: bool) -> None:
        self._settings.raise_websocket_disconnect = value

    def _websocket_channel(
        self,
        build_request: Any,
        url: str,
        subprotocols: Sequence[str] | None,
        headers: Any,
        kwargs: dict[str, Any],
    ) -> WebSocketChannel:
        # Relative URLs are resolved against ws://testserver, not base_url,
        # exactly as Starlette's client does.
        merged = httpx.Headers(headers)
        for name, value in _WEBSOCKET_DEFAULT_HEADERS.items():
            merged.setdefault(name, value)
        if subprotocols is not None:
            merged.setdefault("sec-websocket-protocol", ", ".join(subprotocols))
        request: httpx.Request = build_request(
            "GET", urljoin("ws://testserver", url), headers=merged, **kwargs
        )
        scope = build_websocket_scope(request, self._settings)
        return WebSocketChannel(self._settings, scope, request)


class _AsyncBackend(TypedDict):
    backend: str
    backend_options: dict[str, Any]


def _is_asgi2(app: Any) -> bool:
    # ASGI 2 is app(scope) -> instance(receive, send); ASGI 3 is app(scope,
    # receive, send). Read the arity, not whether __call__ is async: an ASGI 3
    # class (a controller) is called synchronously and awaited after.
    try:
        parameters = inspect.signature(app).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: assume ASGI 3
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes_more = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    return len(positional) == 1 and not takes_more


def as_asgi3(app: Any) -> ASGIApp:
    """Return *app* as an ASGI 3 app, wrapping an ASGI 2 one (``app(scope)(receive, send)``)."""
    if not _is_asgi2(app):
        asgi3: ASGIApp = app
        return asgi3

    async def asgi2_app(scope: Scope, receive: Receive, send: Send) -> None:
        instance = app(scope)
        await instance(receive, send)

    return asgi2_app


def _default_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(headers or {})
    merged.setdefault("user-agent", "testclient")
    return merged


class TestClient(_ClientSetup, httpx.Client):
    """An ``httpx.Client`` wired to an ASGI app, for synchronous tests.

    Args:
        app: the ASGI app under test.
        base_url: the URL relative request paths are resolved against.
        raise_server_exceptions: re-raise in the test what the app raised; when
            false, an app that fails before responding gives a 500 response,
            and a WebSocket app a 500 denial (before accept) or a 1011 close.
        root_path: the ASGI ``root_path`` put in every scope.
        backend: ``"asyncio"`` or ``"trio"``, the event loop that runs the app.
        backend_options: passed to anyio for that backend.
        cookies, headers: sent with every request (``user-agent: testclient``
            unless you set one).
        follow_redirects: follow redirects by default.
        client: the ``(host, port)`` put in scopes as ``scope["client"]``.
        websocket_timeout: how many seconds a WebSocket session's ``receive*``
            waits by default before it raises ``TimeoutError``; ``None`` waits
            forever.
        raise_websocket_disconnect: re-raise, when the session ends, a
            ``WebSocketDisconnect`` that the handler let escape. lilya's
            routing treats it as the normal end of a handler (no error in the
            server log), so by default the test sees nothing; Starlette's and
            FastAPI's clients raise it, and a ported test that wraps
            ``websocket_connect`` in ``pytest.raises(WebSocketDisconnect)``
            needs this set.

    An ASGI 2 app (``app(scope)`` returning ``instance(receive, send)``) is
    accepted too, as Starlette's client accepts it: an app whose signature
    takes exactly one positional argument is taken for one.

    Use it as a context manager to run the app's lifespan: startup on entering
    (a failed startup raises), shutdown on leaving. All requests and sessions
    inside then share one event loop.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name
    portal: anyio.from_thread.BlockingPortal | None = None

    def __init__(
        self,
        app: ASGIApp,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        root_path: str = "",
        backend: Literal["asyncio", "trio"] = "asyncio",
        backend_options: dict[str, Any] | None = None,
        cookies: httpx._types.CookieTypes | None = None,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
        websocket_timeout: float | None = 30.0,
        raise_websocket_disconnect: bool = False,
    ) -> None:
        self._settings = ClientSettings(
            as_asgi3(app),
            raise_server_exceptions,
            root_path,
            client,
            websocket_timeout,
            raise_websocket_disconnect=raise_websocket_disconnect,
        )
        self.async_backend = _AsyncBackend(backend=backend, backend_options=backend_options or {})
        self._shared_lock = threading.Lock()
        self._shared: (
            tuple[
                contextlib.AbstractContextManager[anyio.from_thread.BlockingPortal],
                anyio.from_thread.BlockingPortal,
                list[int],
            ]
            | None
        ) = None
        super().__init__(
            base_url=base_url,
            headers=_default_headers(headers),
            transport=SyncTransport(self._settings, self._portal_factory),
            follow_redirects=follow_redirects,
            cookies=cookies,
        )

    @contextlib.contextmanager
    def _portal_factory(self) -> Generator[anyio.from_thread.BlockingPortal, None, None]:
        # Inside ``with client:`` everything shares the lifespan's loop.
        # Outside it, the requests and sessions open at the same time share
        # one loop too, started by the first and stopped by the last: an app
        # that broadcasts from one connection's handler to another's
        # WebSocket (the FastAPI docs' chat) needs both in one loop, as under
        # a real server, because anyio's streams are not thread-safe.
        if self.portal is not None:
            yield self.portal
            return
        with self._shared_lock:
            if self._shared is None:
                starting = anyio.from_thread.start_blocking_portal(**self.async_backend)
                self._shared = (starting, starting.__enter__(), [0])
            manager, portal, users = self._shared
            users[0] += 1
        try:
            yield portal
        finally:
            with self._shared_lock:
                users[0] -= 1
                last = users[0] == 0
                if last:
                    self._shared = None
            if last:
                manager.__exit__(None, None, None)

    def websocket_connect(
        self,
        url: str,
        subprotocols: Sequence[str] | None = None,
        headers: httpx._types.HeaderTypes | None = None,
        **kwargs: Any,
    ) -> WebSocketTestSession:
        """Return a session that connects to the WebSocket endpoint at *url* when entered.

        Args:
            url: a path (``"/ws?room=1"``) resolved against ``ws://testserver``,
                or an absolute ``ws://host:port/...`` URL.
            subprotocols: offered in ``sec-websocket-protocol`` and in
                ``scope["subprotocols"]``.
            headers: extra request headers, on top of the upgrade headers.
            kwargs: anything else ``httpx`` takes to build a request
                (``params``, ``cookies``, ...).

        Raises (on entering the session):
            WebSocketDisconnect: the app closed instead of accepting.
            WebSocketDenialResponse: the app answered with an HTTP response.
        """
        channel = self._websocket_channel(self.build_request, url, subprotocols, headers, kwargs)
        return WebSocketTestSession(channel, self._portal_factory)

    def __enter__(self) -> TestClient:
        with contextlib.ExitStack() as stack:
            self.portal = portal = stack.enter_context(
                anyio.from_thread.start_blocking_portal(**self.async_backend)
            )

            @stack.callback
            def reset_portal() -> None:
                self.portal = None

            lifespan = Lifespan(self._settings)
            portal.start_task(lifespan.run)
            portal.call(lifespan.startup)
            stack.callback(portal.call, lifespan.shutdown)
            stack.callback(self._transport.close)
            self._exit_stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._exit_stack.close()


class AsyncTestClient(_ClientSetup, httpx.AsyncClient):
    """An ``httpx.AsyncClient`` wired to an ASGI app, for tests in an event loop.

    It takes the arguments of :class:`TestClient` (``raise_websocket_disconnect``
    and ASGI 2 apps included) except ``backend`` and ``backend_options``: the
    app runs in the test's own loop, whichever it is.
    ``async with client:`` runs the lifespan. A response is read whole before
    it is returned, so an endless streaming response needs ``TestClient``.
    """

    __test__ = False

    def __init__(
        self,
        app: ASGIApp,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        root_path: str = "",
        cookies: httpx._types.CookieTypes | None = None,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
        websocket_timeout: float | None = 30.0,
        raise_websocket_disconnect: bool = False,
    ) -> None:
        self._settings = ClientSettings(
            as_asgi3(app),
            raise_server_exceptions,
            root_path,
            client,
            websocket_timeout,
            raise_websocket_disconnect=raise_websocket_disconnect,
        )
        super().__init__(
            base_url=base_url,
            headers=_default_headers(headers),
            transport=AsyncTransport(self._settings),
            follow_redirects=follow_redirects,
            cookies=cookies,
        )

    def websocket_connect(
        self,
        url: str,
        subprotocols: Sequence[str] | None = None,
        headers: httpx._types.HeaderTypes | None = None,
        **kwargs: Any,
    ) -> AsyncWebSocketTestSession:
        """Return a session to use with ``async with`` (as ``TestClient.websocket_connect``)."""
        channel = self._websocket_channel(self.build_request, url, subprotocols, headers, kwargs)
        return AsyncWebSocketTestSession(channel)

    async def __aenter__(self) -> AsyncTestClient:
        # As in the sessions: raise only once the task group has exited, so the
        # app's own error reaches the test, not an ExceptionGroup around it.
        self._exit_stack = contextlib.AsyncExitStack()
        group = await self._exit_stack.enter_async_context(anyio.create_task_group())
        self._lifespan = Lifespan(self._settings)
        await group.start(self._lifespan.run)
        try:
            await self._lifespan.startup()
        except BaseException:
            await self._exit_stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._lifespan.shutdown()
        finally:
            await self._exit_stack.aclose()
