"""Class-based WebSocket handlers: override the events you care about.

::

    class Echo(WebSocketController):
        encoding = "json"

        async def on_receive(self, websocket: WebSocket, data: Any) -> None:
            await websocket.send_json(data)

A controller class is itself an ASGI app: ``WebSocketPath("/ws/{room}", Echo)``
routes to it, and ``TestClient(Echo)`` or ``uvicorn module:Echo`` serve it
alone. Each connection gets a new instance (``Echo(scope, receive, send)``,
then awaited), so instance attributes are per-connection state.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar, Literal, TypeVar, cast

from lilya import _json
from lilya._close import received_code
from lilya._connection_state import state_of
from lilya._exception_handlers import close_for_peer_error, guard
from lilya._recorder import server_callables
from lilya.exceptions import ImproperlyConfigured, WebSocketFrameError, WebSocketPeerError
from lilya.responses import PlainText
from lilya.status import WS_1000_NORMAL_CLOSURE, WS_1011_INTERNAL_ERROR
from lilya.typed import (
    InvalidMessageError,
    OnInvalid,
    TypedWebSocket,
    check_on_invalid,
    codec_for,
)
from lilya.types import Message, Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect, WebSocketState

__all__ = ["WebSocketController"]


_ENCODINGS = ("text", "bytes", "json", None)

_C = TypeVar("_C", bound="WebSocketController")


class WebSocketController:
    """A WebSocket handler as a class: ``on_connect``, ``on_receive``, ``on_disconnect``.

    Attributes:
        encoding: what ``on_receive`` gets: ``"text"`` (``str``; a binary frame
            closes with 1003), ``"bytes"`` (``bytes``; a text frame closes with
            1003), ``"json"`` (parsed from a text frame, or a UTF-8 binary one;
            invalid JSON closes with 1007) or ``None`` (``str`` or ``bytes``, as
            sent). A wrong frame or bad JSON is the client's fault: it is logged
            as a warning on ``lilya``, never raised as a server error.
        receives: a message type (:mod:`lilya.typed`): ``on_receive`` then
            gets decoded, validated objects (``encoding`` is ignored), and an
            invalid message is answered as ``on_invalid`` says.
        sends: the message type ``websocket.send_message()`` checks and encodes;
            with either set, the ``websocket`` you get is a
            :class:`~lilya.typed.TypedWebSocket`.
        on_invalid: ``"error"`` (default: an ``invalid_message`` frame, the
            connection stays open) or ``"close"`` (close 1007).
        scope: the connection's ASGI scope (``path_params`` included).
    """

    encoding: ClassVar[Literal["text", "bytes", "json"] | None] = None
    receives: ClassVar[Any] = None
    sends: ClassVar[Any] = None
    on_invalid: ClassVar[OnInvalid] = "error"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.encoding not in _ENCODINGS:
            raise ImproperlyConfigured(
                f'{cls.__name__}.encoding is {cls.encoding!r}; use "text", "bytes", "json" or None.'
            )
        check_on_invalid(cls.on_invalid)
        for message_type in (cls.receives, cls.sends):
            if message_type is not None:
                codec_for(message_type)  # a type lilya cannot validate fails at import

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send

    def __await__(self) -> Generator[Any, None, None]:
        return self._run().__await__()

    @classmethod
    def with_init(cls: type[_C], *init_args: Any, **init_kwargs: Any) -> type[_C]:
        """Return this controller with extra constructor arguments baked in (as Lilya's).

        The framework builds a controller per connection as ``cls(scope,
        receive, send)``; a controller whose ``__init__`` takes more (a
        prefix, a repository) is routed as ``WebSocketPath("/ws",
        Echo.with_init(prefix="echo"))`` and built as ``Echo(scope, receive,
        send, prefix="echo")`` each time.

        The result is a subclass with the same name, so the route's default
        name and ``isinstance`` checks stay as they were.
        """
        parent = cls

        def __init__(self: Any, scope: Scope, receive: Receive, send: Send) -> None:
            parent.__init__(self, scope, receive, send, *init_args, **init_kwargs)

        namespace = {"__init__": __init__, "__qualname__": cls.__qualname__}
        namespace["__module__"] = cls.__module__
        return type(cls.__name__, (cls,), namespace)

    async def _run(self) -> None:
        scope_type = self.scope.get("type")
        if scope_type == "lifespan":
            await _lifespan(self.receive, self.send)
            return
        if scope_type != "websocket":
            response = PlainText("This URL serves WebSockets only.", 426, {"upgrade": "websocket"})
            await response(self.scope, self.receive, self.send)
            return
        if "router" in self.scope:
            await self.dispatch()  # the routing layer guards the connection
            return
        # Served alone: give it the routing layer's promise ourselves.
        await guard(self._guarded, self.scope, self.receive, self.send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.receive, self.send = receive, send
        await self.dispatch()

    async def dispatch(self) -> None:
        """Run the connection: ``on_connect``, ``on_receive`` per message, ``on_disconnect``.

        ``on_disconnect`` runs once the connection was accepted and then ended,
        whatever ended it, with the close code: the client's, 1003 / 1007 for
        bad data, 1011 when a handler raised (the error is then re-raised).
        """
        codec = None if self.receives is None else codec_for(self.receives)
        # Past the recorder, to the server's own callables: the WebSocket
        # moves the connection's state itself (lilya/_recorder.py).
        receive, send = server_callables(self.receive, self.send)
        websocket: WebSocket
        if self.receives is None and self.sends is None:
            websocket = WebSocket(self.scope, receive, send)
        else:
            websocket = TypedWebSocket(
                self.scope,
                receive,
                send,
                receives=self.receives,
                sends=self.sends,
                on_invalid=self.on_invalid,
            )
        state_of(self.scope).websocket = websocket  # the one exception handlers are given
        await self.on_connect(websocket)
        if websocket.application_state is not WebSocketState.CONNECTED:
            return  # refused (closed or denied) in on_connect
        close_code = WS_1000_NORMAL_CLOSURE
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    close_code = received_code(message)
                    break
                if codec is None:
                    await self.on_receive(websocket, self._decode(message))
                    continue
                data = message.get("text")
                try:
                    decoded = codec.decode(
                        data if data is not None else message.get("bytes") or b""
                    )
                except InvalidMessageError as exc:
                    await cast(TypedWebSocket[Any, Any], websocket).reject(exc)
                    continue
                await self.on_receive(websocket, decoded)
        except WebSocketPeerError as exc:
            close_code = exc.close_code
            await close_for_peer_error(websocket, exc)
        except WebSocketDisconnect as exc:
            close_code = exc.code  # a send found the client gone
        except Exception:
            close_code = WS_1011_INTERNAL_ERROR
            raise
        finally:
            await self.on_disconnect(websocket, close_code)

    def _decode(self, message: Message) -> Any:
        text, data = message.get("text"), message.get("bytes")
        if self.encoding == "text":
            if text is None:
                raise WebSocketFrameError("text", "bytes")
            return text
        if self.encoding == "bytes":
            if data is None:
                raise WebSocketFrameError("bytes", "text")
            return data
        if self.encoding == "json":
            if text is not None:
                return _json.loads(text, "text")
            return _json.loads(data or b"", "binary")
        return text if text is not None else data

    async def on_connect(self, websocket: WebSocket) -> None:
        """Decide on the handshake: the default accepts.

        Override it to pick a subprotocol from ``websocket["subprotocols"]``
        (``await websocket.accept(subprotocol=...)``), to refuse with
        ``await websocket.close()`` (the client sees 403) or
        ``await websocket.send_denial_response(response)``, or to raise
        :class:`~lilya.exceptions.WebSocketException`.
        """
        await websocket.accept()

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        """Handle one message, decoded as ``encoding`` says. The default ignores it."""

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        """Clean up after the connection ended with *close_code*. The default does nothing."""


async def _lifespan(receive: Receive, send: Send) -> None:
    # Served alone, a controller has nothing to start, but servers and test
    # clients still speak the lifespan protocol to it.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
