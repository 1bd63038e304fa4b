"""Small helpers for the chat demo's tests: join a room, read frames by type."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

from lilya.testclient import TestClient
from lilya.websockets import WebSocketDisconnect

#: Seconds any one frame may take to arrive before the test fails.
FRAME_TIMEOUT = 5.0

Frame = dict[str, Any]


def chat_path(room: str = "lobby", nick: str = "ann", since: str | None = None) -> str:
    query = {"nick": nick, **({"since": since} if since is not None else {})}
    return f"/ws/{room}?{urlencode(query)}"


class Member:
    """One test-client connection to the chat, with the frames it has read."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.welcome: Frame = self.next()
        assert self.welcome["type"] == "welcome", self.welcome
        self.history: Frame | None = None
        if not self.welcome["resumed"]:
            self.history = self.next()
            assert self.history["type"] == "history", self.history
        self.seen: list[Frame] = []

    def next(self) -> Frame:
        frame: Frame = self.session.receive_json(timeout=FRAME_TIMEOUT)
        return frame

    def say(self, text: str) -> None:
        self.session.send_text(text)

    def until(self, done: Callable[[Frame], bool]) -> list[Frame]:
        """Read frames until one satisfies *done*; return them all, that one last."""
        frames = []
        while True:
            frame = self.next()
            frames.append(frame)
            self.seen.append(frame)
            if done(frame):
                return frames

    def messages_until(self, text: str) -> list[str]:
        """The texts of the messages read up to and including the one saying *text*."""
        frames = self.until(lambda f: f["type"] == "message" and f["text"] == text)
        return [f["text"] for f in frames if f["type"] == "message"]

    def next_message(self) -> Frame:
        """Read until the next ``message`` frame (skipping presence) and return it."""
        return self.until(lambda f: f["type"] == "message")[-1]

    def event(self, kind: str, nick: str) -> Frame:
        """Read until a ``presence`` diff where *nick* joined (*kind* "join") or left; return it.

        The entry returned is ``{"member", "nick"}``.
        """
        side = "joined" if kind == "join" else "left"

        def names_it(frame: Frame) -> bool:
            return (
                frame["type"] == "presence"
                and not frame["snapshot"]
                and any(entry["nick"] == nick for entry in frame[side])
            )

        frame = self.until(names_it)[-1]
        return next(entry for entry in frame[side] if entry["nick"] == nick)


@contextmanager
def member(
    client: TestClient, room: str = "lobby", nick: str = "ann", since: str | None = None
) -> Iterator[Member]:
    with client.websocket_connect(chat_path(room, nick, since)) as session:
        yield Member(session)


def position(frame: Frame) -> str:
    """The ``since=`` value that resumes after message *frame*."""
    return f"{frame['epoch']}:{frame['offset']}"


def denied(client: TestClient, path: str, headers: dict[str, str] | None = None) -> Any:
    """Connect to *path* expecting a denial; return the denial (an ``httpx.Response``)."""
    from lilya.testclient import WebSocketDenialResponse

    try:
        with client.websocket_connect(path, headers=headers):
            pass
    except WebSocketDenialResponse as denial:
        return denial
    except WebSocketDisconnect as exc:  # pragma: no cover - the failure message
        raise AssertionError(f"expected a denial response, got a close {exc.code}") from exc
    raise AssertionError(f"{path} was accepted")  # pragma: no cover


def redis_prefix() -> str:
    return f"lilya-test-chat:{uuid.uuid4().hex}"
