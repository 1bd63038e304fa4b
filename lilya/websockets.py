"""The WebSocket connection: the seed's ``WebSocket`` class and its companions."""

from __future__ import annotations

__all__ = ["WebSocketDisconnect"]


class WebSocketDisconnect(Exception):
    """The client has gone: raised by ``receive_*`` on a disconnect and by a send after it.

    Attributes:
        code: the close code the server reported (1005 when it reported none,
            1006 when the connection dropped without a close frame).
        reason: the close reason, ``""`` when there was none.
    """

    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""
        super().__init__(code, self.reason)

    def __str__(self) -> str:
        return f"WebSocket disconnected with code {self.code}" + (
            f": {self.reason}" if self.reason else ""
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r})"
