"""The recorder at the door: raw ASGI code's messages, noted in the connection's state.

Theory of operation
-------------------
A :class:`~lilya.websockets.WebSocket` moves the connection's
:class:`~lilya._connection_state.ConnectionState` itself. Raw ASGI code does
not: a user middleware that closes on its own, an ASGI app mounted under an
``Include``, a raw route handler. So the first lilya layer to see a connection
(:func:`enter`: the server-error middleware of a ``Lilya`` app, else the route
or the controller served alone) puts the state in the scope and wraps
``receive``/``send`` in a :class:`Recorder`, which tells the state what passes
(leniently: raw code is never refused). Every layer further in finds the state
in the scope and wraps nothing.

Wrapping costs a coroutine frame per message. Where lilya itself builds the
``WebSocket`` (function handlers, ``WebSocketController``) and is handed the
recorder's own methods, :func:`server_callables` gives it the server's
callables instead: the ``WebSocket`` moves the same state strictly, so the
recorder has nothing to add, and the handler talks to the server at
bare-``WebSocket`` speed. A middleware in between that wraps ``send`` itself
hands on something else; the handler then talks through it, and through the
recorder, which sees the messages the ``WebSocket`` already moved on and finds
nothing left to note.
"""

from __future__ import annotations

from lilya._close import send_with_close_fallback
from lilya._connection_state import STATE_KEY, ConnectionState
from lilya.types import Message, Receive, Scope, Send

__all__ = ["Recorder", "enter", "server_callables", "server_send"]


class Recorder:
    """Wraps the server's ``receive``/``send`` and notes what passes in *state*."""

    __slots__ = ("server_receive", "server_send", "state")

    def __init__(self, state: ConnectionState, receive: Receive, send: Send) -> None:
        self.state = state
        self.server_receive = receive
        self.server_send = send

    async def receive(self) -> Message:
        """Receive from the server and note the message."""
        message = await self.server_receive()
        self.state.observe_receive(message)
        return message

    async def send(self, message: Message) -> None:
        """Note *message*, then send it; an ``OSError`` means the client is gone.

        A standard close code the server refuses is resent in the private
        range (:func:`~lilya._close.send_with_close_fallback`).
        """
        self.state.observe_send(message)
        try:
            await send_with_close_fallback(self.server_send, message)
        except OSError:
            self.state.lose()
            raise


def enter(scope: Scope, receive: Receive, send: Send) -> tuple[ConnectionState, Receive, Send]:
    """Return the connection's state, and the callables to hand on.

    The first layer to enter puts a new state in *scope* and gets a
    :class:`Recorder`'s callables; every later one gets the scope's state and
    its own callables back. (Child scopes are the same dict or shallow copies
    of it, so they share the state.)
    """
    state: ConnectionState | None = scope.get(STATE_KEY)
    if state is not None:
        return state, receive, send
    state = scope[STATE_KEY] = ConnectionState()
    recorder = Recorder(state, receive, send)
    return state, recorder.receive, recorder.send


def server_send(send: Send) -> Send:
    """The server's ``send`` under a recorder's own method; any other *send* as it is."""
    recorder = getattr(send, "__self__", None)
    return recorder.server_send if isinstance(recorder, Recorder) else send


def server_callables(receive: Receive, send: Send) -> tuple[Receive, Send]:
    """The server's callables under a recorder's own methods; any others as they are."""
    recorder = getattr(receive, "__self__", None)
    if isinstance(recorder, Recorder):
        receive = recorder.server_receive
    return receive, server_send(send)
