"""The chat on the channels protocol, in-process: login, tokens, rooms over one socket, say.

The page (``static/index.html``) does exactly this through lilya.js; the
browser tests (``test_chat_browser.py``) prove it in Chromium.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from examples.chat.app import MAX_MESSAGE, MAX_ROOMS, create_app, read_say
from examples.chat.login import MAX_NICK, check_nick, read_token, sign_token
from lilya.apps import Lilya
from lilya.protocol import ProtocolError
from lilya.testclient import AsyncTestClient, TestClient
from lilya.tokens import Authenticated
from lilya.websockets import WebSocketDisconnect
from tests.examples.chat_helpers import chat_path
from tests.protocol.peer import Peer

SECRET = b"test secret"


def test_login_returns_a_signed_token_for_the_nickname() -> None:
    with TestClient(create_app("memory://", secret=SECRET, token_ttl=60)) as client:
        response = client.post("/login", json={"nick": "  ann "})
    assert response.status_code == 200
    body = response.json()
    assert body["expires_at"] == pytest.approx(time.time() + 60, abs=5)
    assert read_token(SECRET, body["token"]) == Authenticated("ann", int(body["expires_at"]))


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"nick": ""}, 400, "Choose a nickname of 1 to 24 characters."),
        ({"nick": "x" * (MAX_NICK + 1)}, 400, "Choose a nickname"),
        ({"nick": "bell\x07"}, 400, "Choose a nickname"),
        ({"nick": 5}, 400, "Choose a nickname"),
        (["ann"], 400, "Choose a nickname"),
    ],
)
def test_login_refuses_what_is_not_a_nickname(body: Any, status: int, says: str) -> None:
    with TestClient(create_app("memory://", secret=SECRET)) as client:
        response = client.post("/login", json=body)
    assert response.status_code == status
    assert says in response.json()["error"]


def test_login_with_a_body_that_is_not_json_is_a_400() -> None:
    with TestClient(create_app("memory://", secret=SECRET)) as client:
        response = client.post("/login", content=b"{nick")
    assert response.status_code == 400
    assert "not valid JSON" in response.text


def test_a_token_is_refused_when_forged_expired_or_signed_by_another_secret() -> None:
    token = sign_token(SECRET, "ann", time.time() + 60)
    assert read_token(SECRET, token) is not None
    name, expiry, signature = token.split(".")
    assert read_token(SECRET, f"{name}.{int(expiry) + 999}.{signature}") is None
    assert read_token(SECRET, f"Ym9i.{expiry}.{signature}") is None  # "bob"
    assert read_token(b"other", token) is None
    assert read_token(SECRET, token, now=int(expiry)) is None
    assert read_token(SECRET, "garbage") is None
    assert read_token(SECRET, "a.-1.b") is None


def test_a_token_carries_any_printable_nickname_in_subprotocol_safe_characters() -> None:
    token = sign_token(SECRET, "Zoë 🦊", time.time() + 60)
    assert all(c.isalnum() or c in "-_." for c in token)
    found = read_token(SECRET, token)
    assert found is not None and found.user == "Zoë 🦊"
    assert check_nick(" Zoë 🦊 ") == "Zoë 🦊"


@asynccontextmanager
async def chat(app: Lilya | None = None) -> AsyncIterator[tuple[AsyncTestClient, Any]]:
    """The chat app in-process; yields the client and ``join(nick)``, a connected Peer."""
    app = app or create_app("memory://", secret=SECRET)
    async with AsyncTestClient(app) as client:

        @asynccontextmanager
        async def join(nick: str) -> AsyncIterator[Peer]:
            token = (await client.post("/login", json={"nick": nick})).json()["token"]
            async with client.websocket_connect("/ws", subprotocols=["bearer", token]) as session:
                assert session.accepted_subprotocol == "bearer"
                peer = Peer(session)
                ok = await peer.ok("connect", name="test")
                assert ok["user"] == nick
                yield peer

        yield client, join


@pytest.mark.anyio
async def test_one_socket_is_in_several_rooms_and_says_to_each_as_its_token_names_it() -> None:
    async with chat() as (_, join), join("ann") as ann, join("bob") as bob:
        for peer in (ann, bob):
            for room in ("lobby", "dev"):
                await peer.ok("subscribe", channel=f"room:{room}", presence=True)
        said = await ann.ok("rpc", method="say", data={"room": "dev", "text": " hi ", "id": "a1"})
        assert said["data"]["offset"] == 1
        push = await bob.push()
        while push["type"] != "message":
            push = await bob.push()
        assert push["channel"] == "room:dev"
        assert push["data"]["nick"] == "ann" and push["data"]["text"] == "hi"
        assert push["data"]["id"] == "a1"
        members = await bob.ok("presence", channel="room:lobby")
        assert sorted(info["user"] for info in members["members"].values()) == ["ann", "bob"]


@pytest.mark.anyio
async def test_a_say_retried_with_the_same_id_is_posted_once() -> None:
    async with chat() as (_, join), join("ann") as ann:
        data = {"room": "lobby", "text": "once", "id": "same"}
        first = await ann.ok("rpc", method="say", data=data)
        again = await ann.ok("rpc", method="say", data=data)
        assert first == again
        history = await ann.ok("history", channel="room:lobby")
        assert [m["data"]["text"] for m in history["messages"]] == ["once"]


@pytest.mark.anyio
async def test_the_same_id_from_two_nicknames_is_two_messages() -> None:
    async with chat() as (_, join), join("ann") as ann, join("bob") as bob:
        await ann.ok("rpc", method="say", data={"room": "lobby", "text": "a", "id": "1"})
        await bob.ok("rpc", method="say", data={"room": "lobby", "text": "b", "id": "1"})
        history = await ann.ok("history", channel="room:lobby")
        assert [m["data"]["nick"] for m in history["messages"]] == ["ann", "bob"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("data", "code", "says"),
    [
        ("hi", "bad_request", "say takes"),
        ({"room": "no room!", "text": "x", "id": "1"}, "bad_request", "room:"),
        ({"room": "lobby", "text": "   ", "id": "1"}, "bad_request", "text:"),
        ({"room": "lobby", "text": "x", "id": ""}, "bad_request", "id:"),
        ({"room": "lobby", "text": "x", "id": "x" * 65}, "bad_request", "id:"),
        ({"room": "lobby", "text": "x" * (MAX_MESSAGE + 1), "id": "1"}, "limit", "at most"),
    ],
)
async def test_a_bad_say_gets_an_error_that_says_why(data: Any, code: str, says: str) -> None:
    async with chat() as (_, join), join("ann") as ann:
        error = await ann.error("rpc", method="say", data=data)
        assert error["code"] == code
        assert says in error["message"]
        assert await ann.ok("ping") == {}  # the socket stays open


@pytest.mark.anyio
@pytest.mark.parametrize("channel", ["room:no room!", "room:", "news", "secret:x"])
async def test_only_room_channels_with_room_names_can_be_joined(channel: str) -> None:
    async with chat() as (_, join), join("ann") as ann:
        assert (await ann.error("subscribe", channel=channel))["code"] == "forbidden"


@pytest.mark.anyio
async def test_clients_cannot_publish_directly_so_nobody_posts_as_someone_else() -> None:
    async with chat() as (_, join), join("ann") as ann:
        fake = {"nick": "bob", "text": "I am bob", "ts": 0}
        error = await ann.error("publish", channel="room:lobby", data=fake)
        assert error["code"] == "forbidden"


@pytest.mark.anyio
async def test_one_socket_is_in_at_most_max_rooms_rooms() -> None:
    async with chat() as (_, join), join("ann") as ann:
        for n in range(MAX_ROOMS):
            await ann.ok("subscribe", channel=f"room:r{n}")
        assert (await ann.error("subscribe", channel="room:one-more"))["code"] == "limit"


@pytest.mark.anyio
async def test_a_bad_token_on_the_handshake_is_refused_before_accept() -> None:
    async with chat() as (client, _):
        forged = sign_token(b"another secret", "ann", time.time() + 60)
        with pytest.raises(WebSocketDisconnect) as refused:
            async with client.websocket_connect("/ws", subprotocols=["bearer", forged]):
                pass  # pragma: no cover - refused on entry
        assert getattr(refused.value, "status_code", None) == 401


@pytest.mark.anyio
async def test_without_a_token_nothing_but_connect_is_answered() -> None:
    async with chat() as (client, _), client.websocket_connect("/ws") as session:
        peer = Peer(session)
        assert (await peer.error("subscribe", channel="room:lobby"))["code"] == "unauthorized"
        assert (await peer.error("connect", token="nope"))["code"] == "unauthorized"


@pytest.mark.anyio
async def test_both_routes_share_the_rooms() -> None:
    async with chat() as (client, join), join("ann") as ann:
        await ann.ok("subscribe", channel="room:lobby")
        async with client.websocket_connect(chat_path("lobby", "old")) as old:
            assert (await old.receive_json(timeout=5))["type"] == "welcome"
            assert (await old.receive_json(timeout=5))["type"] == "history"
            await ann.ok("rpc", method="say", data={"room": "lobby", "text": "new", "id": "1"})
            frame = await old.receive_json(timeout=5)
            while frame["type"] != "message":  # presence frames come too
                frame = await old.receive_json(timeout=5)
            assert (frame["nick"], frame["text"], frame["offset"]) == ("ann", "new", 1)
            await old.send_text("from the old route")
            push = await ann.push()
            assert push["data"]["text"] == "new"
            push = await ann.push()
            assert push["data"]["text"] == "from the old route"
            assert push["offset"] == 2


def test_read_say_returns_the_stripped_fields() -> None:
    assert read_say({"room": "r", "text": " t ", "id": "i"}) == ("r", "t", "i")
    with pytest.raises(ProtocolError) as too_long:
        read_say({"room": "r", "text": "x" * (MAX_MESSAGE + 1), "id": "i"})
    assert too_long.value.code == "limit"
    with pytest.raises(ProtocolError) as bad:
        read_say({"room": "r", "text": "t"})
    assert (bad.value.code, bad.value.message) == ("bad_request", "id: a str of 1 to 64 characters")


def test_the_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LILYA_CHAT_SECRET", "from env")
    with TestClient(create_app("memory://")) as client:
        token = client.post("/login", json={"nick": "ann"}).json()["token"]
    assert read_token(b"from env", token) is not None


def test_workers_of_one_chat_accept_each_others_tokens_and_other_chats_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without LILYA_CHAT_SECRET, the key comes from the channels URL and prefix."""
    monkeypatch.delenv("LILYA_CHAT_SECRET", raising=False)
    token_of = {}
    for name, prefix in (("same chat", "lilya:chat"), ("other chat", "elsewhere")):
        with TestClient(create_app("memory://", key_prefix=prefix)) as client:
            token_of[name] = client.post("/login", json={"nick": "ann"}).json()["token"]
    with TestClient(create_app("memory://")) as client:  # another worker of the first
        for name, accepted in (("same chat", True), ("other chat", False)):
            try:
                with client.websocket_connect("/ws", subprotocols=["bearer", token_of[name]]):
                    refused = False
            except WebSocketDisconnect:
                refused = True
            assert refused is not accepted
