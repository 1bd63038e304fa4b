"""A small in-memory server of protocol v1, written in the test, for lilya.client's tests.

It keeps channels (an epoch, a list of messages, a dedupe set of message ids),
answers every request type, and has switches a test flips to misbehave on
purpose: drop a socket after storing a publish and before answering it, send
raw frames after ``connect``, expire a token, forget its history (new epoch),
close every socket with a code. It is an ASGI app: run it in process through
``AsyncTestClient`` (asyncio and trio) or under uvicorn.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from lilya.types import Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect


@dataclass
class _Socket:
    websocket: WebSocket
    subs: dict[str, bool] = field(default_factory=dict)  # channel -> presence
    kill: anyio.Event = field(default_factory=anyio.Event)
    kill_code: int = 1012
    user: str | None = None
    #: Set by the killer before its close: nothing may be sent after it.
    closing: bool = False


@dataclass
class FakeServer:
    """The server's state and its switches (see the module docstring)."""

    epoch: str = "e1"
    tokens: dict[str, float | None] = field(default_factory=lambda: {"good": None})
    messages: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    seen_ids: dict[str, tuple[str, int]] = field(default_factory=dict)
    sockets: list[_Socket] = field(default_factory=list)
    #: Raw frames sent right after the next ``connect`` reply (then cleared).
    after_connect: list[str] = field(default_factory=list)
    #: Close the socket (this code) after storing the next N publishes, before answering.
    drop_after_publish: int = 0
    drop_code: int = 1012
    #: Answer the next publishes with this error code instead.
    publish_errors: list[str] = field(default_factory=list)
    #: Never answer these request types.
    silent: set[str] = field(default_factory=set)
    #: Send {"type": "ping"} this often (seconds) after connect, None: never.
    ping_every: float | None = None
    #: Hold each ``connect`` reply until this event is set.
    connect_gate: anyio.Event | None = None
    #: Hold requests of these types until their event is set (a busy server:
    #: the socket's later frames wait behind them, as they do on lilya's).
    gates: dict[str, anyio.Event] = field(default_factory=dict)
    pongs: int = 0
    connects: int = 0
    frames: list[dict[str, Any]] = field(default_factory=list)
    rpc_calls: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        sock = _Socket(websocket)
        self.sockets.append(sock)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._killer, sock, group.cancel_scope)
                with contextlib.suppress(WebSocketDisconnect):
                    await self._serve(sock, group)
                group.cancel_scope.cancel()
        finally:
            self.sockets.remove(sock)

    async def _killer(self, sock: _Socket, scope: anyio.CancelScope) -> None:
        await sock.kill.wait()
        if sock.kill_code == 4001:
            with contextlib.suppress(WebSocketDisconnect):
                await self._send(
                    sock,
                    {
                        "type": "disconnect",
                        "code": 4001,
                        "reason": "token expired",
                        "reconnect": False,
                    },
                )
        sock.closing = True
        with contextlib.suppress(WebSocketDisconnect):
            reason = "token expired" if sock.kill_code == 4001 else "bye"
            await sock.websocket.close(sock.kill_code, reason)
        scope.cancel()

    def close_all(self, code: int = 1012) -> None:
        """Close every open socket with *code* (a restart, a drain, a kill)."""
        for sock in self.sockets:
            sock.kill_code = code
            sock.kill.set()

    async def _send(self, sock: _Socket, frame: dict[str, Any]) -> None:
        # A reply racing the killer's close is dropped, as a real server's
        # would be: sending after one's own close is the app's error, and the
        # fake must not fail the test client's transport with it.
        if not sock.closing:
            await sock.websocket.send_text(json.dumps(frame))

    async def _pinger(self, sock: _Socket, every: float) -> None:
        while True:
            await anyio.sleep(every)
            await self._send(sock, {"type": "ping"})

    async def _expire(self, sock: _Socket, at: float) -> None:
        await anyio.sleep(max(0.0, at - time.time()))
        if sock.user is not None and self.tokens.get(sock.user, 0.0) == at:
            sock.kill_code = 4001
            sock.kill.set()

    async def _serve(self, sock: _Socket, group: anyio.abc.TaskGroup) -> None:
        while True:
            if sock.closing:
                # The killer closes and then cancels us: do not read after
                # one's own close (lilya raises on it, rightly).
                await anyio.sleep_forever()
            text = await sock.websocket.receive_text()
            frame = json.loads(text)
            self.frames.append(frame)
            if frame.get("type") == "pong":
                self.pongs += 1
                continue
            kind, request_id = frame["type"], frame["id"]
            if kind in self.silent:
                continue
            if kind in self.gates:
                await self.gates[kind].wait()
            reply = await self._handle(sock, group, kind, frame)
            if reply is None:
                return
            await self._send(sock, {"id": request_id, **reply})
            if kind == "connect" and "ok" in reply:
                frames, self.after_connect = self.after_connect, []
                for raw in frames:
                    if not sock.closing:
                        await sock.websocket.send_text(raw)
            if kind == "subscribe" and "ok" in reply:
                await self._replay(sock, frame)

    async def _handle(
        self, sock: _Socket, group: anyio.abc.TaskGroup, kind: str, frame: dict[str, Any]
    ) -> dict[str, Any] | None:
        if kind == "connect":
            if self.connect_gate is not None:
                await self.connect_gate.wait()
            token = frame.get("token")
            if token not in self.tokens:
                return {"error": {"code": "unauthorized", "message": "bad token"}}
            self.connects += 1
            sock.user = token
            expires_at = self.tokens[token]
            if expires_at is not None:
                group.start_soon(self._expire, sock, expires_at)
            if self.ping_every is not None:
                group.start_soon(self._pinger, sock, self.ping_every)
            client = f"c{self.connects}"
            return {
                "ok": {"client": client, "user": token, "expires_at": expires_at, "heartbeat": None}
            }
        if kind == "refresh":
            token = frame["token"]
            if token not in self.tokens:
                return {"error": {"code": "unauthorized", "message": "bad token"}}
            sock.user = token
            return {"ok": {"expires_at": self.tokens[token]}}
        if kind == "ping":
            return {"ok": {}}
        if kind == "subscribe":
            channel = frame["channel"]
            if channel.startswith("secret"):
                return {"error": {"code": "forbidden", "message": "not yours"}}
            if channel in sock.subs:
                return {"error": {"code": "already_subscribed", "message": channel}}
            sock.subs[channel] = bool(frame.get("presence"))
            since = frame.get("since")
            stored = self.messages.get(channel, [])
            top = stored[-1][0] if stored else 0
            recovered = since is not None and since["epoch"] == self.epoch
            return {"ok": {"epoch": self.epoch, "offset": top, "recovered": recovered}}
        if kind == "unsubscribe":
            if sock.subs.pop(frame["channel"], None) is None:
                return {"error": {"code": "not_subscribed", "message": frame["channel"]}}
            return {"ok": {}}
        if kind == "publish":
            return await self._publish(sock, frame)
        if kind == "rpc":
            self.rpc_calls += 1
            if frame["method"] == "echo":
                return {"ok": {"data": frame.get("data")}}
            if frame["method"] == "boom":
                return {"error": {"code": "internal", "message": "it raised"}}
            if frame["method"] == "hang":
                sock.kill_code = 1011
                sock.kill.set()
                await anyio.sleep_forever()
            return {"error": {"code": "not_found", "message": frame["method"]}}
        if kind == "presence":
            members = {
                s.user or "?": {"n": i}
                for i, s in enumerate(self.sockets)
                if frame["channel"] in s.subs
            }
            return {"ok": {"members": members}}
        if kind == "history":
            stored = self.messages.get(frame["channel"], [])
            limit = frame.get("limit")
            kept = stored[-limit:] if limit else stored
            top = stored[-1][0] if stored else 0
            return {
                "ok": {
                    "epoch": self.epoch,
                    "offset": top,
                    "messages": [{"epoch": self.epoch, "offset": o, "data": d} for o, d in kept],
                }
            }
        return {"error": {"code": "bad_request", "message": f"type {kind!r}"}}

    async def _publish(self, sock: _Socket, frame: dict[str, Any]) -> dict[str, Any] | None:
        if self.publish_errors:
            code = self.publish_errors.pop(0)
            return {"error": {"code": code, "message": "as told"}}
        channel, message_id = frame["channel"], frame.get("message_id")
        if message_id is not None and message_id in self.seen_ids:
            epoch, offset = self.seen_ids[message_id]
            return {"ok": {"epoch": epoch, "offset": offset}}
        stored = self.messages.setdefault(channel, [])
        offset = (stored[-1][0] if stored else 0) + 1
        stored.append((offset, frame["data"]))
        if message_id is not None:
            self.seen_ids[message_id] = (self.epoch, offset)
        push = {
            "type": "message",
            "channel": channel,
            "epoch": self.epoch,
            "offset": offset,
            "data": frame["data"],
        }
        for other in list(self.sockets):
            if channel in other.subs:
                await self._send(other, push)
        if self.drop_after_publish:
            self.drop_after_publish -= 1
            sock.kill_code = self.drop_code
            sock.kill.set()
            await anyio.sleep_forever()
        return {"ok": {"epoch": self.epoch, "offset": offset}}

    async def _replay(self, sock: _Socket, frame: dict[str, Any]) -> None:
        since = frame.get("since")
        if since is None:
            return
        channel = frame["channel"]
        if since["epoch"] != self.epoch:
            stored = self.messages.get(channel, [])
            top = stored[-1][0] if stored else 0
            await self._send(
                sock, {"type": "reset", "channel": channel, "epoch": self.epoch, "offset": top}
            )
            return
        for offset, data in self.messages.get(channel, []):
            if offset > since["offset"]:
                await self._send(
                    sock,
                    {
                        "type": "message",
                        "channel": channel,
                        "epoch": self.epoch,
                        "offset": offset,
                        "data": data,
                    },
                )

    def store(self, channel: str, data: Any) -> int:
        """Add a message to *channel*'s history without pushing it (published while away)."""
        stored = self.messages.setdefault(channel, [])
        offset = (stored[-1][0] if stored else 0) + 1
        stored.append((offset, data))
        return offset

    async def inject(self, frame: str | dict[str, Any]) -> None:
        """Send a raw frame (text, or an object as JSON) to every open socket."""
        text = frame if isinstance(frame, str) else json.dumps(frame)
        for sock in list(self.sockets):
            with contextlib.suppress(WebSocketDisconnect):
                await sock.websocket.send_text(text)

    def forget(self, epoch: str) -> None:
        """Lose all history under a new *epoch*, as a backend restarted without persistence."""
        self.epoch = epoch
        self.messages.clear()
