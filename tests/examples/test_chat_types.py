"""The chat's declared frame types (examples/chat/messages.py) describe what it really sends."""

from __future__ import annotations

import json

from examples.chat.app import MAX_MESSAGE
from examples.chat.messages import ChatError, ChatMessage, History, Presence, Say, Welcome
from lilya.apps import Lilya
from lilya.routing import WebSocketPath
from lilya.testclient import TestClient
from lilya.typed import codec_for
from tests.examples.chat_helpers import chat_path


def _chat_route(app: Lilya) -> WebSocketPath:
    return next(r for r in app.routes if isinstance(r, WebSocketPath) and r.name == "chat")


def test_every_frame_the_chat_sends_fits_its_declared_sends(client: TestClient, app: Lilya) -> None:
    handler = _chat_route(app).handler
    sends, receives = codec_for(handler.sends), codec_for(handler.receives)
    assert receives.decode(json.dumps({"id": "1", "text": "hi"})) == Say(text="hi", id="1")
    seen: list[type] = []
    with (
        client.websocket_connect(chat_path(nick="ann")) as ann,
        client.websocket_connect(chat_path(nick="bob")) as bob,
    ):
        ann.send_text(json.dumps({"id": "m1", "text": "hello"}))
        ann.send_text("x" * (MAX_MESSAGE + 1))
        ann.send_text("{not json")
        frames = [ann.receive_text() for _ in range(6)]
        frames += [bob.receive_text() for _ in range(3)]
    for frame in frames:
        seen.append(type(sends.decode(frame)))
    assert {Welcome, History, Presence, ChatMessage, ChatError} <= set(seen)
