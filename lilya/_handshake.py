"""The handshake timeout layer: a WebSocket the application leaves unanswered is refused.

See :mod:`lilya.timeouts` (``handshake_timeout``) for why and what the client
gets. This is the layer a ``Lilya`` app puts outermost around its stack: it
runs the application in a :class:`~lilya.timeouts.HandshakeTimer`'s cancel
scope, which the connection's state lifts when the application answers
(``ConnectionState.on_answer``), so an answered connection runs on with no
timer and no task beside it.
"""

from __future__ import annotations

import logging

from lilya._connection_state import state_of
from lilya._exception_handlers import deny
from lilya.responses import PlainText
from lilya.status import HTTP_503_SERVICE_UNAVAILABLE, WS_1013_TRY_AGAIN_LATER
from lilya.timeouts import HANDSHAKE_REFUSAL, HandshakeTimer, handshake_reason
from lilya.types import ASGIApp, Receive, Scope, Send

__all__ = ["HandshakeTimeout"]

logger = logging.getLogger("lilya.timeouts")


class HandshakeTimeout:
    """Refuse a WebSocket whose application has not answered the handshake in *timeout* s.

    Args:
        app: the application (the app's middleware stack).
        timeout: seconds.
    """

    __slots__ = ("app", "timeout")

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        state = state_of(scope)
        timer = HandshakeTimer(self.timeout)
        state.on_answer = timer.answered
        with timer.scope:
            await self.app(scope, receive, send)
        state.on_answer = None
        if not timer.scope.cancelled_caught:
            return
        if not state.started:
            logger.warning(
                "Refusing WebSocket %s with 503: %s.",
                scope.get("path", "?"),
                handshake_reason(self.timeout),
            )
        # deny() also closes (1013) a connection whose answer came as the
        # deadline struck: the application was cancelled just after it.
        refusal = PlainText(HANDSHAKE_REFUSAL, HTTP_503_SERVICE_UNAVAILABLE)
        await deny(scope, state, receive, send, refusal, WS_1013_TRY_AGAIN_LATER)
