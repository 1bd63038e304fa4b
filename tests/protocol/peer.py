"""A protocol peer over the in-process test client: requests with ids, pushes kept apart.

Shared by the endpoint tests; the real-server tests use ``websockets`` directly.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from lilya._testclient_websocket import AsyncWebSocketTestSession


class Peer:
    """Send requests, get their replies; pushes that arrive meanwhile are kept in order."""

    def __init__(self, session: AsyncWebSocketTestSession) -> None:
        self.session = session
        self.pushes: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.session.send_text(json.dumps(frame))

    async def frame(self, timeout: float = 5.0) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(await self.session.receive_text(timeout=timeout))
        return value

    async def reply(self, request_id: Any, timeout: float = 5.0) -> dict[str, Any]:
        """Read frames until the reply to *request_id*; keep the pushes read on the way."""
        while True:
            frame = await self.frame(timeout)
            if "type" in frame:
                self.pushes.append(frame)
                continue
            assert frame["id"] == request_id, frame
            return frame

    async def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send a request of *kind* and return its whole reply (``{"id", "ok"|"error"}``)."""
        request_id = next(self._ids)
        await self.send({"type": kind, "id": request_id, **fields})
        return await self.reply(request_id)

    async def ok(self, kind: str, **fields: Any) -> dict[str, Any]:
        reply = await self.call(kind, **fields)
        assert "ok" in reply, reply
        ok: dict[str, Any] = reply["ok"]
        return ok

    async def error(self, kind: str, **fields: Any) -> dict[str, Any]:
        reply = await self.call(kind, **fields)
        assert "error" in reply, reply
        error: dict[str, Any] = reply["error"]
        return error

    async def closed(self, timeout: float = 5.0) -> tuple[int, str]:
        """Read until the server's close; keep the frames on the way; return (code, reason)."""
        while True:
            message = await self.session.receive(timeout=timeout)
            if message["type"] == "websocket.close":
                return int(message.get("code", 1000)), str(message.get("reason") or "")
            self.pushes.append(json.loads(message["text"]))

    async def push(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next push (one already read while waiting for a reply first)."""
        if self.pushes:
            return self.pushes.pop(0)
        frame = await self.frame(timeout)
        assert "type" in frame, frame
        return frame
