"""The WebSocket side of the test client: one channel core, two thin sessions.

Theory of operation: :class:`WebSocketChannel` holds everything about one
connection between a test and an app: the app's task, the two message
streams, the handshake and the state. The messages themselves (building the
test's, checking and decoding the app's) are in ``_testclient_messages``. Its
methods are ``async`` and run in the app's event loop. The async session
awaits them; the sync session calls them through the client's blocking
portal. Neither session has logic of its own beyond that.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio
import anyio.abc
import anyio.from_thread
import httpx

from lilya._connection_state import STATE_KEY
from lilya._exception_handlers import ESCAPED_DISCONNECT_KEY
from lilya._testclient_messages import (
    BytesLike,
    Mode,
    bytes_message,
    check_app_message,
    check_mode,
    json_message,
    payload,
    text_message,
)
from lilya._testclient_transport import ClientSettings, PortalFactory, settle
from lilya.exceptions import WebSocketRuntimeError
from lilya.heartbeat import PONG_TEXT, is_ping
from lilya.status import (
    WS_1000_NORMAL_CLOSURE,
    WS_1005_NO_STATUS_RCVD,
    WS_1006_ABNORMAL_CLOSURE,
    WS_1011_INTERNAL_ERROR,
)
from lilya.types import Message, Scope
from lilya.websockets import WebSocketDisconnect

__all__ = ["WebSocketDenialResponse"]


class WebSocketDenialResponse(  # type: ignore[misc]  # httpx.Response and Exception both define __init__/__repr__
    httpx.Response, WebSocketDisconnect
):
    """The app refused the handshake with an HTTP response (``send_denial_response``).

    It is both the ``httpx.Response`` the client received (``status_code``,
    ``headers``, ``content``, ``text``, ``json()``) and a
    :class:`~lilya.websockets.WebSocketDisconnect`, so tests that only expect a
    refusal keep catching it. ``code`` is 1006: the connection ended without a
    close frame.
    """

    def __init__(
        self,
        status_code: int,
        *,
        headers: Sequence[tuple[bytes, bytes]] = (),
        content: bytes = b"",
        request: httpx.Request | None = None,
    ) -> None:
        httpx.Response.__init__(
            self, status_code, headers=list(headers), content=content, request=request
        )
        WebSocketDisconnect.__init__(self, WS_1006_ABNORMAL_CLOSURE, f"HTTP {status_code}")

    def __str__(self) -> str:
        return f"The application denied the WebSocket handshake with HTTP {self.status_code}."

    def __repr__(self) -> str:
        return f"<WebSocketDenialResponse [{self.status_code}]>"


_T = TypeVar("_T")


class _Timeout(enum.Enum):
    CLIENT_DEFAULT = "the client's websocket_timeout"


#: Pass nothing for ``timeout=`` to use the client's ``websocket_timeout``.
CLIENT_DEFAULT = _Timeout.CLIENT_DEFAULT
TimeoutArg = float | None | _Timeout
#: The one knob for the handshake: ``websocket_connect()`` takes no timeout.
_HANDSHAKE_HOW = "pass websocket_timeout= to the test client (TestClient or AsyncTestClient)"


class WebSocketChannel:
    """One test-to-app WebSocket connection: the app's task, its streams, its state."""

    def __init__(self, settings: ClientSettings, scope: Scope, request: httpx.Request) -> None:
        self.app = settings.app
        self.scope = scope
        if settings.raise_websocket_disconnect:
            scope[ESCAPED_DISCONNECT_KEY] = self._note_escaped
        self._request = request
        self._raise = settings.raise_server_exceptions
        self.timeout = settings.websocket_timeout
        self.accepted_subprotocol: str | None = None
        self.extra_headers: list[tuple[bytes, bytes]] | None = None
        self._accepted = False
        #: The close the app sent, once the test has read it.
        self._close: tuple[int, str] | None = None
        #: The close the test sent (``close()``, or leaving the session).
        self._client_close: tuple[int, str] | None = None
        self._error: Exception | None = None
        self._error_raised = False
        #: The test dropped the connection (``drop()``): no close frame either way.
        self._dropped = False
        #: Set while the test reads; cleared by ``pause_reading()``.
        self._reading: anyio.Event | None = None
        #: Heartbeat pings are answered (until ``stop_ponging()``).
        self._ponging = True

    # -- the app's task ------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Run the app on this connection until it returns (a task of its own)."""
        # The test's ends of the two streams live until finish(); the app's ends
        # close when it returns, so late sends from the test are dropped and
        # the test's receive() sees the end once the queued messages are read.
        self._to_app, to_app_rx = anyio.create_memory_object_stream[Message](math.inf)
        from_app_tx, self._from_app = anyio.create_memory_object_stream[Message](math.inf)
        self._done = anyio.Event()
        with anyio.CancelScope() as self._cancel_scope, to_app_rx:
            task_status.started()
            try:
                async with from_app_tx:

                    async def send(message: Message) -> None:
                        checked = check_app_message(message)
                        reading = self._reading
                        if reading is not None:
                            await reading.wait()  # the test stopped reading: the send waits
                        if self._dropped:
                            # ASGI 2.4: a send to a vanished client raises an OSError.
                            raise ConnectionResetError(
                                "The client dropped the connection (session.drop())."
                            )
                        if is_ping(checked) and self._heartbeat_route():
                            # What lilya's client libraries do: answer, and
                            # keep the ping out of the test's way.
                            if self._ponging:
                                await self.send({"type": "websocket.receive", "text": PONG_TEXT})
                            return
                        await from_app_tx.send(checked)

                    await self.app(self.scope, to_app_rx.receive, send)
            except Exception as exc:
                self._error = exc
            finally:
                self._done.set()

    def _heartbeat_route(self) -> bool:
        # Only a route with a heartbeat owes pings a pong: elsewhere a
        # {"type":"ping"} is the app's own message, for the test to read.
        state = self.scope.get(STATE_KEY)
        return state is not None and state.heartbeat is not None

    def _note_escaped(self, exc: Exception) -> None:
        # The routing layer ended the handler quietly (so the app's task ends
        # without an error of its own); the test asked to see the disconnect
        # raised anyway, as Starlette's client shows it.
        self._error = exc

    def describe(self) -> str:
        """Say in words where the connection stands, for error messages."""
        if self._close is not None:
            return f"the application closed the connection with code {self._close[0]}"
        if self._client_close is not None:
            return f"the test has disconnected with code {self._client_close[0]}"
        if self._accepted:
            return "the connection is open"
        return "the handshake is pending"

    # -- handshake and teardown ----------------------------------------

    async def enter(self) -> None:
        """Send ``websocket.connect`` and wait for the app to accept.

        Raises:
            WebSocketDisconnect: the app closed the connection instead.
            WebSocketDenialResponse: the app answered with an HTTP response.
            Exception: whatever the app raised before accepting.
        """
        try:
            await self._handshake()
        except BaseException:
            await self.finish()
            raise

    async def _handshake(self) -> None:
        await self.send({"type": "websocket.connect"})
        message = await self._next(self.timeout, "the handshake answer", _HANDSHAKE_HOW)
        message_type = message.get("type")
        if message_type == "websocket.accept":
            self._accepted = True
            self.accepted_subprotocol = message.get("subprotocol")
            # ASGI: "headers" is optional and defaults to none; tests compare to [].
            self.extra_headers = [(bytes(k), bytes(v)) for k, v in message.get("headers") or []]
            return
        if message_type == "websocket.close":
            raise WebSocketDisconnect(
                message.get("code", WS_1000_NORMAL_CLOSURE), message.get("reason")
            )
        if message_type == "websocket.http.response.start":
            await self._raise_denial(message)
        raise WebSocketRuntimeError(
            'Expected ASGI message "websocket.accept", "websocket.close" or '
            '"websocket.http.response.start" from the application, '
            f"but got {message_type!r}.",
            message_type=message_type,
        )

    async def _raise_denial(self, start: Message) -> None:
        body: list[bytes] = []
        more_body = True
        while more_body:
            message = await self._next(self.timeout, "the denial response body", _HANDSHAKE_HOW)
            if message.get("type") != "websocket.http.response.body":
                raise WebSocketRuntimeError(
                    'Expected ASGI message "websocket.http.response.body" from the '
                    f"application, but got {message.get('type')!r}.",
                    message_type=message.get("type"),
                )
            body.append(bytes(message.get("body", b"")))
            more_body = bool(message.get("more_body", False))
        raise WebSocketDenialResponse(
            int(start.get("status", 500)),
            headers=[(bytes(k), bytes(v)) for k, v in start.get("headers", [])],
            content=b"".join(body),
            request=self._request,
        )

    async def finish(self) -> None:
        """Disconnect (1000) if still connected, let the app end, re-raise its error.

        Raises:
            Exception: what the app raised, if it has not been raised in the
                test yet and the client raises server exceptions.
        """
        self._resume()
        if not self._done.is_set():
            if self._client_close is None:
                await self.disconnect(WS_1000_NORMAL_CLOSURE, None)
            await settle(self._done, self.timeout)
            self._cancel_scope.cancel()
            await self._done.wait()
        self._from_app.close()
        self._to_app.close()
        if self._error is not None and self._raise and not self._error_raised:
            self._error_raised = True
            raise self._error

    # -- traffic -------------------------------------------------------

    async def send(self, message: Message) -> None:
        """Hand *message* to the app's ``receive()`` (never blocks).

        Once the app has returned, messages are dropped, as Starlette's client
        does: the test may well send before it learns the app has closed.

        Raises:
            WebSocketRuntimeError: the session has ended (its context was left).
        """
        if message.get("type") == "websocket.disconnect" and self._client_close is None:
            # ASGI: a disconnect without a code means 1005, "no status received".
            self._client_close = (
                message.get("code", WS_1005_NO_STATUS_RCVD),
                message.get("reason") or "",
            )
        try:
            self._to_app.send_nowait(message)
        except anyio.BrokenResourceError:
            pass
        except anyio.ClosedResourceError:
            raise WebSocketRuntimeError(
                "This WebSocket session has ended; open a new one with websocket_connect()."
            ) from None

    async def disconnect(self, code: int, reason: str | None) -> None:
        """Tell the app the client has gone, with *code* and *reason*."""
        await self.send({"type": "websocket.disconnect", "code": code, "reason": reason or ""})

    # -- faults on demand ----------------------------------------------

    async def drop(self) -> None:
        """Vanish without a close frame: the app sees 1006, its sends raise ``OSError``."""
        if self._dropped:
            return
        await self.disconnect(WS_1006_ABNORMAL_CLOSURE, None)
        self._dropped = True
        self._resume()

    async def pause_reading(self) -> None:
        """Stop taking the app's messages: its next send waits until ``resume_reading()``."""
        if self._reading is None and not self._dropped:
            self._reading = anyio.Event()

    async def resume_reading(self) -> None:
        """Take the app's messages again: its waiting send goes through."""
        self._resume()

    async def stop_ponging(self) -> None:
        """Stop answering the heartbeat's pings: the app closes 1011 after its timeout."""
        self._ponging = False

    def _resume(self) -> None:
        reading, self._reading = self._reading, None
        if reading is not None:
            reading.set()

    async def receive(self, wait: TimeoutArg, waiting_for: str = "a message") -> Message:
        """Return the app's next message, waiting at most *wait* seconds.

        Raises:
            TimeoutError: nothing came in time.
            Exception: the app raised (and the client raises server exceptions).
            WebSocketDisconnect: the app ended without a close message: with
                the test's own code if the test had closed, else 1011 when the
                app raised and 1006 when it just returned.
            WebSocketDenialResponse: the app ended before the handshake (500).
        """
        if self._dropped:
            raise WebSocketDisconnect(
                WS_1006_ABNORMAL_CLOSURE, "The test dropped the connection (session.drop())."
            )
        if wait is CLIENT_DEFAULT:
            how = "pass timeout= to this call, or websocket_timeout= to the client"
            return await self._next(self.timeout, waiting_for, how)
        return await self._next(wait, waiting_for, "pass a larger timeout= (None waits forever)")

    async def _next(self, seconds: float | None, waiting_for: str, how: str) -> Message:
        """Return the app's next message; on expiry, the error says *how* to wait longer."""
        try:
            # A message already queued is returned even with timeout=0.
            message = self._from_app.receive_nowait()
        except anyio.WouldBlock:
            try:
                with anyio.fail_after(seconds):
                    message = await self._from_app.receive()
            except TimeoutError:
                raise TimeoutError(
                    f"Waited {seconds} s for {waiting_for} from the application and got "
                    f"nothing; {self.describe()} and the application is still running. "
                    f"To wait longer, {how}."
                ) from None
            except anyio.EndOfStream:
                self._raise_app_ended()
        except anyio.EndOfStream:
            self._raise_app_ended()
        if message.get("type") == "websocket.close":
            self._close = (
                message.get("code", WS_1000_NORMAL_CLOSURE),
                message.get("reason") or "",
            )
        return message

    def _raise_app_ended(self) -> Any:
        if self._error is not None and self._raise:
            self._error_raised = True
            raise self._error
        if self._close is not None:
            raise WebSocketDisconnect(*self._close)  # the close already seen, again
        if not self._accepted:
            # What uvicorn does when an app ends before the handshake.
            raise WebSocketDenialResponse(
                500, content=b"Internal Server Error", request=self._request
            )
        if self._client_close is not None:
            # The test closed first. A server's WebSocket layer answers a
            # client's close frame by echoing it (RFC 6455, 5.5.1) whatever the
            # app does next, so a real client reports its own code and reason.
            raise WebSocketDisconnect(*self._client_close)
        if self._error is not None:
            raise WebSocketDisconnect(
                WS_1011_INTERNAL_ERROR, "The application raised an exception."
            )
        raise WebSocketDisconnect(
            WS_1006_ABNORMAL_CLOSURE, "The application returned without closing the WebSocket."
        )

    async def receive_text(self, wait: TimeoutArg) -> str:
        message = await self.receive(wait, "a text frame")
        return str(payload(message, "text"))

    async def receive_bytes(self, wait: TimeoutArg) -> bytes:
        message = await self.receive(wait, "a bytes frame")
        return bytes(payload(message, "bytes"))

    async def receive_json(self, mode: Mode, wait: TimeoutArg) -> Any:
        check_mode(mode)
        if mode == "text":
            return json.loads(await self.receive_text(wait))
        return json.loads((await self.receive_bytes(wait)).decode("utf-8"))


class WebSocketTestSession:
    """A WebSocket connection to the app, driven from a synchronous test.

    You get one from ``TestClient.websocket_connect(...)`` and use it as a
    context manager: entering it performs the handshake, leaving it
    disconnects (code 1000) and waits for the app to end.
    """

    def __init__(self, channel: WebSocketChannel, portal_factory: PortalFactory) -> None:
        self._channel = channel
        self._portal_factory = portal_factory
        self.app = channel.app
        self.scope = channel.scope
        self.accepted_subprotocol: str | None = None
        self.extra_headers: list[tuple[bytes, bytes]] | None = None
        self._portal: anyio.from_thread.BlockingPortal | None = None

    def __enter__(self) -> WebSocketTestSession:
        with contextlib.ExitStack() as stack:
            self.portal = portal = stack.enter_context(self._portal_factory())
            portal.start_task(self._channel.run)
            portal.call(self._channel.enter)
            self._portal = portal
            self.accepted_subprotocol = self._channel.accepted_subprotocol
            self.extra_headers = self._channel.extra_headers
            self._exit_stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._exit_stack:
            self._portal = None
            self.portal.call(self._channel.finish)

    def _call(self, func: Callable[..., Awaitable[_T]], *args: object) -> _T:
        if self._portal is None:
            raise WebSocketRuntimeError(
                "This WebSocket session is not open; use it inside "
                "`with client.websocket_connect(...) as session:`."
            )
        return self._portal.call(func, *args)

    def send(self, message: Message) -> None:
        """Send the raw ASGI *message* to the app's ``receive()``."""
        self._call(self._channel.send, message)

    def send_text(self, data: str) -> None:
        """Send *data* to the app in a text frame.

        Raises:
            TypeError: *data* is not a ``str`` (use :meth:`send_bytes` for bytes).
        """
        self.send(text_message(data))

    def send_bytes(self, data: BytesLike) -> None:
        """Send *data* to the app in a binary frame.

        Raises:
            TypeError: *data* is not bytes-like (use :meth:`send_text` for a ``str``).
        """
        self.send(bytes_message(data))

    def send_json(self, data: Any, mode: Mode = "text") -> None:
        """Send *data* as compact JSON in a text (or, with ``mode="binary"``, binary) frame."""
        self.send(json_message(data, mode))

    def close(self, code: int = WS_1000_NORMAL_CLOSURE, reason: str | None = None) -> None:
        """Disconnect from the app: it receives ``websocket.disconnect`` with *code*."""
        self._call(self._channel.disconnect, code, reason)

    def drop(self) -> None:
        """Let the connection vanish, as a pulled cable or a killed client does.

        The app's pending ``receive()`` gets a disconnect with 1006 (no close
        frame); its sends raise ``OSError`` as real servers' do, which a
        ``WebSocket`` turns into ``WebSocketDisconnect(1006)``. Your own
        ``receive*`` calls raise ``WebSocketDisconnect(1006)`` from now on.
        """
        self._call(self._channel.drop)

    def pause_reading(self) -> None:
        """Stop reading, as a client on a stalled network does.

        The app's next send waits until :meth:`resume_reading` (or the
        session ends): this drives send timeouts and the channels'
        slow-consumer policies.
        """
        self._call(self._channel.pause_reading)

    def resume_reading(self) -> None:
        """Read again: the app's waiting send goes through, in order."""
        self._call(self._channel.resume_reading)

    def stop_ponging(self) -> None:
        """Stop answering the heartbeat's pings, as a frozen client does.

        On a route with ``heartbeat=(interval, timeout)`` the session answers
        every ``{"type":"ping"}`` with ``{"type":"pong"}`` and hides the pings
        from you, as lilya's client libraries do. After this the pings still
        stay hidden but go unanswered, so the app closes with 1011 after
        *interval* + *timeout* seconds: your next ``receive*`` raises
        ``WebSocketDisconnect(1011)``, and the handler's pending receive or
        send raises it too.
        """
        self._call(self._channel.stop_ponging)

    def receive(self, timeout: TimeoutArg = CLIENT_DEFAULT) -> Message:
        """Return the next raw ASGI message the app sent, waiting at most *timeout* s.

        Raises:
            TimeoutError: nothing came in time (``timeout=None`` waits forever).
        """
        return self._call(self._channel.receive, timeout)

    def receive_text(self, timeout: TimeoutArg = CLIENT_DEFAULT) -> str:
        """Return the next text frame.

        Raises:
            WebSocketDisconnect: the app closed the connection (``code``, ``reason``).
            WebSocketRuntimeError: the app sent a bytes frame or another message.
            TimeoutError: nothing came within *timeout* seconds.
        """
        return self._call(self._channel.receive_text, timeout)

    def receive_bytes(self, timeout: TimeoutArg = CLIENT_DEFAULT) -> bytes:
        """Return the next binary frame (errors as for :meth:`receive_text`)."""
        return self._call(self._channel.receive_bytes, timeout)

    def receive_json(self, mode: Mode = "text", timeout: TimeoutArg = CLIENT_DEFAULT) -> Any:
        """Return the next frame decoded as JSON (a text frame, or binary with ``mode="binary"``).

        Raises:
            ValueError: the frame is not valid JSON.
        """
        return self._call(self._channel.receive_json, mode, timeout)


class AsyncWebSocketTestSession:
    """A WebSocket connection to the app, driven from an async test.

    You get one from ``AsyncTestClient.websocket_connect(...)`` and use it with
    ``async with``; every method of :class:`WebSocketTestSession` is here, awaited.
    """

    def __init__(self, channel: WebSocketChannel) -> None:
        self._channel = channel
        self.app = channel.app
        self.scope = channel.scope
        self.accepted_subprotocol: str | None = None
        self.extra_headers: list[tuple[bytes, bytes]] | None = None

    async def __aenter__(self) -> AsyncWebSocketTestSession:
        # Errors are raised only after the task group has exited cleanly (the
        # channel has already ended the app), so they reach the test unwrapped
        # rather than inside an ExceptionGroup.
        self._exit_stack = contextlib.AsyncExitStack()
        group = await self._exit_stack.enter_async_context(anyio.create_task_group())
        await group.start(self._channel.run)
        try:
            await self._channel.enter()
        except BaseException:
            await self._exit_stack.aclose()
            raise
        self.accepted_subprotocol = self._channel.accepted_subprotocol
        self.extra_headers = self._channel.extra_headers
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._channel.finish()
        finally:
            await self._exit_stack.aclose()

    async def send(self, message: Message) -> None:
        """Send the raw ASGI *message* to the app's ``receive()``."""
        await self._channel.send(message)

    async def send_text(self, data: str) -> None:
        """Send *data* to the app in a text frame (``TypeError`` unless a ``str``)."""
        await self._channel.send(text_message(data))

    async def send_bytes(self, data: BytesLike) -> None:
        """Send *data* to the app in a binary frame (``TypeError`` unless bytes-like)."""
        await self._channel.send(bytes_message(data))

    async def send_json(self, data: Any, mode: Mode = "text") -> None:
        """Send *data* as compact JSON in a text (or binary) frame."""
        await self._channel.send(json_message(data, mode))

    async def close(self, code: int = WS_1000_NORMAL_CLOSURE, reason: str | None = None) -> None:
        """Disconnect from the app: it receives ``websocket.disconnect`` with *code*."""
        await self._channel.disconnect(code, reason)

    async def drop(self) -> None:
        """Let the connection vanish (see :meth:`WebSocketTestSession.drop`)."""
        await self._channel.drop()

    async def pause_reading(self) -> None:
        """Stop reading (see :meth:`WebSocketTestSession.pause_reading`)."""
        await self._channel.pause_reading()

    async def resume_reading(self) -> None:
        """Read again: the app's waiting send goes through."""
        await self._channel.resume_reading()

    async def stop_ponging(self) -> None:
        """Stop answering the heartbeat's pings (see :meth:`WebSocketTestSession.stop_ponging`)."""
        await self._channel.stop_ponging()

    async def receive(
        self,
        timeout: TimeoutArg = CLIENT_DEFAULT,  # noqa: ASYNC109  # the Starlette-style API
    ) -> Message:
        """Return the next raw ASGI message the app sent (as ``WebSocketTestSession``)."""
        return await self._channel.receive(timeout)

    async def receive_text(
        self,
        timeout: TimeoutArg = CLIENT_DEFAULT,  # noqa: ASYNC109  # the Starlette-style API
    ) -> str:
        """Return the next text frame (see :meth:`WebSocketTestSession.receive_text`)."""
        return await self._channel.receive_text(timeout)

    async def receive_bytes(
        self,
        timeout: TimeoutArg = CLIENT_DEFAULT,  # noqa: ASYNC109  # the Starlette-style API
    ) -> bytes:
        """Return the next binary frame."""
        return await self._channel.receive_bytes(timeout)

    async def receive_json(
        self,
        mode: Mode = "text",
        timeout: TimeoutArg = CLIENT_DEFAULT,  # noqa: ASYNC109  # the Starlette-style API
    ) -> Any:
        """Return the next frame decoded as JSON."""
        return await self._channel.receive_json(mode, timeout)
