"""The HTTP side of the test client: scopes, httpx transports and the lifespan.

Theory of operation: everything that talks to the application is an ``async``
method running in the event loop that runs the app. The async client awaits
those methods directly in the test's own loop; the sync client calls the very
same methods from the test's thread through an anyio blocking portal. So each
rule (what a scope holds, how a response is assembled, what a failed startup
means) is written once, and the two clients differ only in how they reach it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import anyio.abc
import anyio.from_thread
import httpx

from lilya.types import ASGIApp, Message, Scope

__all__: list[str] = []

#: The ASGI version block real servers put in every scope.
_ASGI = {"version": "3.0", "spec_version": "2.4"}
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}

PortalFactory = Callable[[], contextlib.AbstractContextManager[anyio.from_thread.BlockingPortal]]


@dataclass
class ClientSettings:
    """What a test client was set up with: one object, read by its transport and sessions.

    A client keeps one and hands the same object to its transport, its
    lifespan and every WebSocket session, so a setting changed on the client
    (``client.raise_server_exceptions = False``) holds for all of them.
    """

    app: ASGIApp
    raise_server_exceptions: bool = True
    root_path: str = ""
    #: The ``(host, port)`` put in scopes as ``scope["client"]``.
    client: tuple[str, int] = ("testclient", 50000)
    websocket_timeout: float | None = 30.0
    #: The lifespan's ``scope["state"]``; each connection's scope gets a copy.
    state: dict[str, Any] = field(default_factory=dict)
    #: Re-raise in the test a ``WebSocketDisconnect`` the handler let escape
    #: (Starlette's and FastAPI's test clients do; lilya treats it as the
    #: normal end of a handler).
    raise_websocket_disconnect: bool = False


# -- scopes --------------------------------------------------------------------


def _connection_scope(request: httpx.Request, settings: ClientSettings) -> dict[str, Any]:
    """Return the keys an http and a websocket scope share, read from *request*."""
    url = request.url
    port = url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme, 80)
    return {
        "asgi": dict(_ASGI),
        "http_version": "1.1",
        "scheme": url.scheme,
        # httpx has already percent-decoded ``url.path``; ``raw_path`` keeps the bytes.
        "path": url.path,
        "raw_path": url.raw_path.split(b"?", 1)[0],
        "root_path": settings.root_path,
        "query_string": url.query,
        "headers": [(key.lower(), value) for key, value in request.headers.raw],
        "client": settings.client,
        "server": [url.host, port],
        # Each connection gets a shallow copy of the lifespan state, as the ASGI
        # lifespan spec asks, so one request cannot rebind names for the next.
        "state": dict(settings.state),
    }


def build_http_scope(request: httpx.Request, settings: ClientSettings) -> Scope:
    """Return the ASGI ``http`` scope a server would build for *request*."""
    scope = _connection_scope(request, settings)
    scope.update(type="http", method=request.method, extensions={})
    return scope


def build_websocket_scope(request: httpx.Request, settings: ClientSettings) -> Scope:
    """Return the ASGI ``websocket`` scope for the upgrade *request*.

    The offered subprotocols come from the ``sec-websocket-protocol`` header, as
    a server reads them, and the denial-response extension is advertised.
    """
    scope = _connection_scope(request, settings)
    offered = request.headers.get("sec-websocket-protocol")
    subprotocols = [] if offered is None else [name.strip() for name in offered.split(",")]
    scope.update(
        type="websocket",
        subprotocols=subprotocols,
        extensions={"websocket.http.response": {}},
    )
    return scope


# -- letting an app wind down ------------------------------------------------


async def settle(done: anyio.Event, limit: float | None) -> None:
    """Wait until *done* is set or every task in the loop is blocked.

    This is how a session or lifespan ends: the app is told the client has
    gone, gets to react (handle the disconnect, clean up, raise), and once it
    can make no more progress on its own, whatever is left of it gets
    cancelled, as Starlette's test client does. Waiting for "blocked" rather
    than a fixed delay keeps the common case instant and a server-push loop
    from holding the test for seconds. *limit* (seconds) bounds the wait.
    """
    with anyio.move_on_after(limit):
        async with anyio.create_task_group() as group:

            async def when_done() -> None:
                await done.wait()
                group.cancel_scope.cancel()

            async def when_blocked() -> None:
                await anyio.wait_all_tasks_blocked()
                group.cancel_scope.cancel()

            group.start_soon(when_done)
            group.start_soon(when_blocked)


# -- the lifespan ----------------------------------------------------------


class Lifespan:
    """One run of the app's ``lifespan`` scope: startup, then later shutdown."""

    def __init__(self, settings: ClientSettings) -> None:
        self._app = settings.app
        self._state = settings.state
        self._timeout = settings.websocket_timeout
        self._error: Exception | None = None
        self._answered = True

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Run the app's lifespan scope until it returns (a task of its own)."""
        self._to_app, to_app_rx = anyio.create_memory_object_stream[Message](math.inf)
        from_app_tx, self._from_app = anyio.create_memory_object_stream[Message](math.inf)
        self._done = anyio.Event()
        scope = {"type": "lifespan", "asgi": dict(_ASGI), "state": self._state}
        with anyio.CancelScope() as self._cancel_scope, to_app_rx:
            task_status.started()
            try:
                async with from_app_tx:
                    await self._app(scope, to_app_rx.receive, from_app_tx.send)
            except Exception as exc:
                self._error = exc
            finally:
                self._done.set()

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the answer.

        Raises:
            Exception: whatever the app raised while starting up.
            RuntimeError: the app answered ``lifespan.startup.failed`` without
                raising, or answered with a message that is not a lifespan one.
        """
        try:
            await self._event("startup")
        except BaseException:
            self.close()
            raise

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown``, wait for the answer, then let the app end."""
        try:
            await self._event("shutdown")
        finally:
            await settle(self._done, self._timeout)
            self.close()

    def close(self) -> None:
        """Cancel what is left of the app's lifespan task and close the test's streams."""
        self._cancel_scope.cancel()
        self._to_app.close()
        self._from_app.close()

    async def _event(self, phase: str) -> None:
        if not self._answered:
            return  # the app does not speak lifespan; servers carry on without it
        with contextlib.suppress(anyio.BrokenResourceError):  # the app has returned
            self._to_app.send_nowait({"type": f"lifespan.{phase}"})
        try:
            message = await self._from_app.receive()
        except anyio.EndOfStream:
            # Returning, or raising, before answering startup is how an app
            # says it has no lifespan (ASGI lifespan spec): a bare WebSocket
            # app refuses a "lifespan" scope. uvicorn's default "auto" mode
            # goes on without lifespan then, and so do we. A framework's real
            # startup failure answers "lifespan.startup.failed" first (below).
            if self._error is not None and phase != "startup":
                raise self._error from None
            self._answered = False
            return
        kind = message.get("type")
        if kind == f"lifespan.{phase}.complete":
            return
        if kind == f"lifespan.{phase}.failed":
            # Frameworks send "failed" and then re-raise: the error is the news.
            # An app that instead waits on gets cancelled, not waited on forever.
            await settle(self._done, self._timeout)
            if self._error is not None:
                raise self._error
            raise RuntimeError(
                f"Lifespan {phase} failed: {message.get('message') or '(no message)'}"
            )
        raise RuntimeError(
            f'Expected ASGI message "lifespan.{phase}.complete" or "lifespan.{phase}.failed" '
            f"from the application, but got {kind!r}."
        )


# -- one HTTP request ------------------------------------------------------


class _SyncChunks(AsyncIterator[bytes]):
    """The body of a sync httpx request, read chunk by chunk from the event loop."""

    def __init__(self, stream: Any) -> None:
        self._chunks: Iterator[bytes] = iter(stream)

    async def __anext__(self) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None


class HTTPExchange:
    """One request through the app: the ``receive``/``send`` it sees, the response it builds.

    The body travels through a zero-size stream, so a streaming response is
    produced only as fast as the test reads it, and an endless one works.
    """

    def __init__(self, app: ASGIApp, scope: Scope, body: AsyncIterator[bytes]) -> None:
        self._app = app
        self._scope = scope
        self._request_body = body
        self._lookahead: bytes | None = None
        self._request_complete = False
        self.status_code = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.response_started = False
        self._body_complete = False
        self.error: Exception | None = None

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Run the app for this request until it returns (a task of its own)."""
        self._started = anyio.Event()
        self._response_complete = anyio.Event()
        self._done = anyio.Event()
        self._body_tx, self._body_rx = anyio.create_memory_object_stream[bytes](0)
        with anyio.CancelScope() as self._cancel_scope:
            task_status.started()
            try:
                async with self._body_tx:
                    await self._app(self._scope, self._receive, self._send)
            except Exception as exc:
                self.error = exc
            finally:
                self._started.set()
                self._done.set()

    async def _next_request_chunk(self) -> bytes | None:
        try:
            return await self._request_body.__anext__()
        except StopAsyncIteration:
            return None

    async def _receive(self) -> Message:
        if self._request_complete:
            # ASGI: after the body, receive() blocks until the client goes away,
            # which for us is when the whole response has been sent. Once it
            # has, answer at once, with no checkpoint: request.is_disconnected()
            # polls in an already-cancelled scope and must see this.
            if not self._response_complete.is_set():
                await self._response_complete.wait()
            return {"type": "http.disconnect"}
        chunk = self._lookahead
        if chunk is None:
            chunk = await self._next_request_chunk()
        # Read one chunk ahead so that the last one carries more_body=False.
        self._lookahead = None if chunk is None else await self._next_request_chunk()
        more_body = self._lookahead is not None
        self._request_complete = not more_body
        return {"type": "http.request", "body": chunk or b"", "more_body": more_body}

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            if self.response_started:
                raise RuntimeError('The application sent "http.response.start" twice.')
            self.status_code = int(message["status"])
            self.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            self.response_started = True
            self._started.set()
        elif kind == "http.response.body":
            if not self.response_started:
                raise RuntimeError(
                    'The application sent "http.response.body" before "http.response.start".'
                )
            if self._body_complete:
                raise RuntimeError(
                    'The application sent "http.response.body" after the body was complete.'
                )
            more_body = bool(message.get("more_body", False))
            await self._body_tx.send(bytes(message.get("body", b"")))
            if not more_body:
                self._body_complete = True
                self._response_complete.set()
                await self._body_tx.aclose()
        else:
            raise RuntimeError(
                'Expected ASGI message "http.response.start" or "http.response.body" '
                f"from the application, but got {kind!r}."
            )

    async def wait_started(self) -> None:
        """Wait until the app has sent ``http.response.start`` or returned."""
        await self._started.wait()

    async def next_chunk(self) -> bytes | None:
        """Return the next chunk of the response body, ``None`` once it has all come."""
        try:
            return await self._body_rx.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return None

    async def close(self) -> None:
        """Let the app finish; cancel it if the test stopped reading before the end."""
        if not self._response_complete.is_set():
            self._cancel_scope.cancel()
        await self._done.wait()
        self._body_rx.close()

    def response(self, request: httpx.Request, stream: Any, raise_errors: bool) -> httpx.Response:
        """Return the httpx response once the app has started one or returned.

        Raises:
            Exception: the app's own error, when *raise_errors* and it raised
                before starting a response.
            RuntimeError: the app returned without sending any response.
        """
        if not self.response_started:
            if raise_errors:
                if self.error is not None:
                    raise self.error
                raise RuntimeError(
                    "The application returned without sending a response; "
                    'send "http.response.start" and "http.response.body".'
                )
            return httpx.Response(500, request=request, stream=httpx.ByteStream(b""))
        return httpx.Response(
            self.status_code, headers=self.headers, stream=stream, request=request
        )


class _SyncResponseStream(httpx.SyncByteStream):
    """A response body pulled through the portal while the app keeps running."""

    def __init__(
        self,
        exchange: HTTPExchange,
        portal: anyio.from_thread.BlockingPortal,
        stack: contextlib.ExitStack,
        *,
        head: bool,
        raise_errors: bool,
    ) -> None:
        self._exchange = exchange
        self._portal = portal
        self._stack: contextlib.ExitStack | None = stack
        self._head = head
        self._raise_errors = raise_errors

    def __iter__(self) -> Iterator[bytes]:
        while (chunk := self._portal.call(self._exchange.next_chunk)) is not None:
            if chunk and not self._head:
                yield chunk

    def close(self) -> None:
        if self._stack is None:
            return
        stack, self._stack = self._stack, None
        stack.close()
        if self._raise_errors and self._exchange.error is not None:
            raise self._exchange.error


class SyncTransport(httpx.BaseTransport):
    """Runs each request through the app in the portal's event loop."""

    def __init__(self, settings: ClientSettings, portal_factory: PortalFactory) -> None:
        self._settings = settings
        self._portal_factory = portal_factory
        self._open: set[_SyncResponseStream] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        settings = self._settings
        raise_errors = settings.raise_server_exceptions
        scope = build_http_scope(request, settings)
        exchange = HTTPExchange(settings.app, scope, _SyncChunks(request.stream))
        with contextlib.ExitStack() as stack:
            portal = stack.enter_context(self._portal_factory())
            portal.start_task(exchange.run)
            stack.callback(portal.call, exchange.close)
            portal.call(exchange.wait_started)
            if not exchange.response_started:
                stack.close()
                return exchange.response(request, None, raise_errors)
            stream = _SyncResponseStream(
                exchange,
                portal,
                stack.pop_all(),
                head=request.method == "HEAD",
                raise_errors=raise_errors,
            )
        self._open.add(stream)
        return exchange.response(request, stream, raise_errors)

    def close(self) -> None:
        """Close the responses the test left open (and so stop their apps)."""
        with contextlib.ExitStack() as stack:
            while self._open:
                stack.callback(self._open.pop().close)


class AsyncTransport(httpx.AsyncBaseTransport):
    """Runs each request through the app in the test's own event loop.

    The whole response body is read before the response is returned: without a
    thread, the app can only run while the test awaits, so a response that
    never ends cannot be tested this way (use ``TestClient`` for that).
    """

    def __init__(self, settings: ClientSettings) -> None:
        self._settings = settings

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        settings = self._settings
        raise_errors = settings.raise_server_exceptions
        scope = build_http_scope(request, settings)
        # httpx itself refuses sync bodies on an AsyncClient before we get here.
        request_body = cast(httpx.AsyncByteStream, request.stream)
        exchange = HTTPExchange(settings.app, scope, request_body.__aiter__())
        chunks: list[bytes] = []
        async with anyio.create_task_group() as group:
            await group.start(exchange.run)
            await exchange.wait_started()
            while (chunk := await exchange.next_chunk()) is not None:
                chunks.append(chunk)
            await exchange.close()
        body = b"" if request.method == "HEAD" else b"".join(chunks)
        response = exchange.response(request, httpx.ByteStream(body), raise_errors)
        if raise_errors and exchange.error is not None:
            raise exchange.error
        return response
