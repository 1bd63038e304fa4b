"""The chat demo in-process: history, presence, resume, and the handshake checks.

The same app runs in the browser test and under two workers
(``test_chat_browser.py``, ``test_chat_workers.py``); here every behaviour is
pinned down without a network, frame by frame.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

from examples.chat.app import HISTORY, MAX_MESSAGE, MAX_NICK, create_app
from lilya.apps import Lilya
from lilya.channels import BackendUnavailableError, Channels, PublishOutcomeUnknownError
from lilya.middleware.origin import CROSS_ORIGIN_REFUSAL
from lilya.testclient import TestClient
from lilya.types import Message
from lilya.websockets import WebSocketDisconnect
from tests.examples.chat_helpers import chat_path, denied, member, position
from tests.support.asgi import call_websocket, websocket_scope


def test_the_page_is_served_at_the_root(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    # The page speaks the protocol through the lilya.js the app serves.
    assert 'import { connect } from "/lilya.js";' in response.text
    assert client.get("/lilya.js").headers["content-type"] == "text/javascript; charset=utf-8"


def test_a_message_reaches_everyone_in_the_room_and_no_one_else(client: TestClient) -> None:
    with (
        member(client, nick="ann") as ann,
        member(client, nick="bob") as bob,
        member(client, room="kitchen", nick="cy") as cy,
    ):
        ann.say("hello")
        for someone in (ann, bob):
            frame = someone.next_message()
            assert frame["nick"] == "ann"
            assert frame["text"] == "hello"
            assert frame["offset"] == 1
        cy.say("only here")
        assert cy.messages_until("only here") == ["only here"]
        ann.say("second")
        assert bob.messages_until("second") == ["second"]


def test_a_newcomer_gets_the_last_fifty_messages_in_order(client: TestClient) -> None:
    with member(client, nick="ann") as ann:
        for n in range(1, HISTORY + 11):
            ann.say(f"m{n}")
        ann.messages_until(f"m{HISTORY + 10}")
    with member(client, nick="bob") as bob:
        assert bob.history is not None
        assert bob.history["reset"] is False
        texts = [m["text"] for m in bob.history["messages"]]
        assert texts == [f"m{n}" for n in range(11, HISTORY + 11)]
        assert [m["offset"] for m in bob.history["messages"]] == list(range(11, HISTORY + 11))
        assert {m["nick"] for m in bob.history["messages"]} == {"ann"}


def test_messages_are_stripped_and_blank_ones_ignored(client: TestClient) -> None:
    with member(client) as ann:
        ann.say("   ")
        ann.say("  hi  ")
        frame = ann.next_message()
        assert (frame["text"], frame["offset"]) == ("hi", 1)


def test_an_over_long_message_is_refused_to_its_sender_only(client: TestClient) -> None:
    with member(client, nick="ann") as ann, member(client, nick="bob") as bob:
        ann.say("x" * (MAX_MESSAGE + 1))
        assert ann.until(lambda f: f["type"] == "error")[-1]["reason"] == "message too long"
        ann.say("x" * MAX_MESSAGE)
        assert [len(t) for t in bob.messages_until("x" * MAX_MESSAGE)] == [MAX_MESSAGE]


def test_a_binary_frame_closes_with_1003(client: TestClient) -> None:
    with member(client) as ann:
        ann.session.send_bytes(b"\x00")
        message = ann.session.receive(timeout=5)
        while message["type"] == "websocket.send":
            message = ann.session.receive(timeout=5)
        assert message == {"type": "websocket.close", "code": 1003, "reason": "send text frames"}


def test_presence_lists_who_is_online_and_announces_joins_and_leaves(client: TestClient) -> None:
    with member(client, nick="ann") as ann:
        assert [m["nick"] for m in ann.welcome["online"]] == ["ann"]
        assert ann.welcome["member"] in {m["member"] for m in ann.welcome["online"]}
        with member(client, nick="bob") as bob:
            assert sorted(m["nick"] for m in bob.welcome["online"]) == ["ann", "bob"]
            joined = ann.event("join", "bob")
            assert joined["member"] == bob.welcome["member"]
        left = ann.event("leave", "bob")
        assert left["member"] == joined["member"]
    with member(client, nick="cy") as cy:
        assert [m["nick"] for m in cy.welcome["online"]] == ["cy"]


def test_the_welcome_names_the_worker_process(client: TestClient) -> None:
    import os

    with member(client) as ann:
        assert ann.welcome["pid"] == os.getpid()
        assert (ann.welcome["room"], ann.welcome["nick"]) == ("lobby", "ann")


# -- resuming -----------------------------------------------------------------


def test_a_client_that_resumes_gets_exactly_what_it_missed(client: TestClient) -> None:
    with member(client, nick="ann") as ann:
        with member(client, nick="bob") as bob:
            for text in ("one", "two", "three"):
                ann.say(text)
            frames = bob.until(lambda f: f.get("text") == "three")
            last = [f for f in frames if f["type"] == "message"][-1]
        for text in ("four", "five"):
            ann.say(text)
        ann.messages_until("five")
        with member(client, nick="bob", since=position(last)) as bob:
            assert bob.welcome["resumed"] is True
            assert bob.history is None  # no history frame: the missed messages follow
            ann.say("six")
            assert bob.messages_until("six") == ["four", "five", "six"]
            offsets = [f["offset"] for f in bob.seen if f["type"] == "message"]
            assert offsets == [4, 5, 6]


def test_resuming_with_nothing_missed_sends_nothing_twice(client: TestClient) -> None:
    with member(client, nick="ann") as ann:
        ann.say("one")
        frame = ann.next_message()
    with member(client, nick="ann", since=position(frame)) as ann:
        ann.say("two")
        assert ann.messages_until("two") == ["two"]


def test_a_resume_from_a_lost_history_reloads_it(client: TestClient) -> None:
    with member(client, nick="ann") as ann:
        ann.say("kept")
        ann.messages_until("kept")
    with member(client, nick="bob", since="some-old-epoch:7") as bob:
        assert bob.welcome["resumed"] is False
        assert bob.history is not None
        assert bob.history["reset"] is True
        assert [m["text"] for m in bob.history["messages"]] == ["kept"]
        bob.say("after")
        assert bob.messages_until("after") == ["after"]


def test_a_message_published_while_joining_is_sent_once(
    app: Lilya, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The newcomer's subscription is live before the history is read, so a
    # message published in between is in both: it must be sent only once.
    channels: Channels = app.state.channels
    real_history = channels.history
    published: list[Any] = []

    async def history_after_a_publish(channel: str, *, limit: int | None = None) -> Any:
        published.append(await channels.publish(channel, {"nick": "x", "text": "seam", "ts": 0}))
        return await real_history(channel, limit=limit)

    monkeypatch.setattr(channels, "history", history_after_a_publish)
    with member(client, nick="ann") as ann:
        assert ann.history is not None
        assert [m["text"] for m in ann.history["messages"]] == ["seam"]
        monkeypatch.setattr(channels, "history", real_history)
        ann.say("next")
        assert ann.messages_until("next") == ["next"]
    assert len(published) == 1


# -- the handshake checks --------------------------------------------------------


@pytest.mark.parametrize("nick", ["", "   ", "x" * (MAX_NICK + 1), "tab\there"])
def test_a_bad_nickname_is_denied_with_400(client: TestClient, nick: str) -> None:
    denial = denied(client, chat_path(nick=nick))
    assert denial.status_code == 400
    assert denial.text == f"Choose a nickname of 1 to {MAX_NICK} characters."


def test_a_missing_nickname_is_denied_with_400(client: TestClient) -> None:
    assert denied(client, "/ws/lobby").status_code == 400


def test_the_longest_nickname_is_accepted(client: TestClient) -> None:
    with member(client, nick="é" * MAX_NICK) as someone:
        assert someone.welcome["nick"] == "é" * MAX_NICK


@pytest.mark.parametrize("room", ["a" * 41, "no.dots", "spa%20ce"])
def test_a_bad_room_name_is_denied_with_400(client: TestClient, room: str) -> None:
    assert denied(client, chat_path(room=room)).status_code == 400


@pytest.mark.parametrize(
    "since",
    [
        "7",
        "epoch:",
        "epoch:x",
        ":3",
        "epoch:-1",
        "epoch:²",  # a digit to str.isdigit(), not to int()
        "epoch:١٢",  # Arabic-Indic digits
        "epoch:99999999999999999999999999999",  # beyond any offset
        "e" * 65 + ":1",  # longer than any epoch
    ],
)
def test_a_malformed_since_is_denied_with_400(client: TestClient, since: str) -> None:
    assert denied(client, chat_path(since=since)).status_code == 400


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://testserver.evil.example",
        "null",
        "ws://testserver",
        "http://[::1",
    ],
)
def test_a_foreign_origin_is_denied_with_403(client: TestClient, origin: str) -> None:
    denial = denied(client, chat_path(), headers={"origin": origin})
    assert denial.status_code == 403
    assert denial.text == CROSS_ORIGIN_REFUSAL


@pytest.mark.parametrize("origin", [None, "http://testserver", "http://TestServer:80"])
def test_the_pages_own_origin_and_no_origin_are_allowed(
    client: TestClient, origin: str | None
) -> None:
    headers = {"origin": origin} if origin else None
    with client.websocket_connect(chat_path(), headers=headers) as session:
        assert session.receive_json(timeout=5)["type"] == "welcome"


def test_origins_can_be_allowed_explicitly() -> None:
    app = create_app("memory://", allowed_origins=["https://chat.example.com"])
    with TestClient(app) as client:
        headers = {"origin": "https://chat.example.com"}
        with client.websocket_connect(chat_path(), headers=headers) as session:
            assert session.receive_json(timeout=5)["type"] == "welcome"
        assert denied(client, chat_path(), {"origin": "https://other.example"}).status_code == 403


def test_hosts_can_be_restricted() -> None:
    app = create_app("memory://", allowed_hosts=["chat.example.com"])
    with TestClient(app) as client:
        assert denied(client, chat_path()).status_code == 403
    with TestClient(app, base_url="http://chat.example.com") as client:
        assert client.get("/").status_code == 200
        with client.websocket_connect(f"ws://chat.example.com{chat_path()}") as session:
            assert session.receive_json(timeout=5)["type"] == "welcome"


@pytest.mark.anyio
async def test_without_the_denial_extension_a_refusal_is_a_close(anyio_backend: str) -> None:
    # daphne has no Denial Response extension: a close before accept, which
    # the server answers with a bare 403 (a close reason could not reach the
    # client before the handshake anyway).
    outcome = await call_websocket(create_app("memory://"), "/ws/lobby", extensions=False)
    assert outcome.error is None
    assert outcome.close == (1008, "")
    assert outcome.status is None


def test_the_app_reads_its_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LILYA_CHANNELS_URL", "memory://from-env")
    monkeypatch.setenv("LILYA_CHAT_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("LILYA_CHAT_HOSTS", "testserver")
    app = create_app()
    assert app.state.channels.url == "memory://from-env"
    with TestClient(app) as client:
        headers = {"origin": "https://b.example"}
        with client.websocket_connect(chat_path(), headers=headers) as session:
            assert session.receive_json(timeout=5)["type"] == "welcome"


# -- across processes: two apps sharing one Redis -----------------------------


@pytest.mark.redis
def test_two_apps_on_one_redis_share_rooms_history_and_presence(
    redis_url: str, prefix: str
) -> None:
    first = create_app(redis_url, key_prefix=prefix)
    second = create_app(redis_url, key_prefix=prefix)
    with TestClient(first) as one, TestClient(second) as two, member(one, nick="ann") as ann:
        ann.say("before bob")
        ann.messages_until("before bob")
        with member(two, nick="bob") as bob:
            assert bob.history is not None
            assert [m["text"] for m in bob.history["messages"]] == ["before bob"]
            assert sorted(m["nick"] for m in bob.welcome["online"]) == ["ann", "bob"]
            ann.event("join", "bob")
            bob.say("hi ann")
            assert ann.messages_until("hi ann") == ["hi ann"]
            ann.say("hi bob")
            assert bob.messages_until("hi bob") == ["hi ann", "hi bob"]


def test_an_unknown_path_is_refused(client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/ws/lobby/extra?nick=a"):
        pass


def test_an_unreachable_store_denies_the_handshake_with_503(
    app: Lilya, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels: Channels = app.state.channels

    async def down(channel: str) -> Any:
        raise BackendUnavailableError("redis://127.0.0.1:6379/0", "presence")

    monkeypatch.setattr(channels, "presence", down)
    denial = denied(client, chat_path())
    assert denial.status_code == 503
    assert denial.text == "The chat's message store is unavailable."


def test_a_message_the_store_refuses_is_reported_to_its_sender(
    app: Lilya, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels: Channels = app.state.channels

    async def down(channel: str, data: Any, *, message_id: str | None = None) -> Any:
        raise BackendUnavailableError("redis://127.0.0.1:6379/0", "publish")

    with member(client) as ann:
        monkeypatch.setattr(channels, "publish", down)
        ann.say("lost?")
        assert ann.until(lambda f: f["type"] == "error")[-1]["reason"] == "not sent, try again"


def test_the_docs_quote_the_refusals_and_settings_the_app_has() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "chat.md").read_text()
    for reason in (
        "lilya refuses it with **403** (`docs/security.md`)",
        f"Choose a nickname of 1 to {MAX_NICK} characters.",
        "lilya run examples.chat.app:app",
    ):
        assert reason in page
    source = inspect.getsource(create_app)
    for variable in re.findall(r"`(LILYA_[A-Z_]+)`", page):
        assert variable in source, variable


@pytest.mark.anyio
async def test_a_client_lost_during_a_send_ends_the_handler_quietly(anyio_backend: str) -> None:
    # The relay sends and receives at once. When a send finds the client gone
    # (the server raises an OSError), the receive already waiting then gets
    # the server's websocket.disconnect: the handler must end cleanly, not
    # raise about a message in DISCONNECTED (as lilya.websockets does when
    # that disconnect arrives after the failed send marked the socket closed).
    app = create_app("memory://")
    send_failed = anyio.Event()
    frames = 0

    async def receive() -> Message:
        nonlocal frames
        if frames == 0:
            frames += 1
            return {"type": "websocket.connect"}
        if frames == 1:
            frames += 1
            return {"type": "websocket.receive", "text": "into the void"}
        await send_failed.wait()
        return {"type": "websocket.disconnect", "code": 1006}

    async def send(message: Message) -> None:
        if message["type"] == "websocket.send" and "into the void" in message.get("text", ""):
            send_failed.set()
            raise OSError("client gone")

    scope = websocket_scope("/ws/lobby", query_string=b"nick=ann")
    async with app.state.channels:
        with anyio.fail_after(5):
            await app(scope, receive, send)


def test_a_message_sent_again_with_the_same_id_is_posted_once(client: TestClient) -> None:
    with member(client, nick="ann") as ann, member(client, nick="bob") as bob:
        for _ in range(3):  # the page resending after an error or a reconnect
            ann.session.send_text(json.dumps({"id": "6f1c-1", "text": "only once"}))
        ann.session.send_text(json.dumps({"id": "6f1c-2", "text": "next"}))
        got = bob.until(lambda f: f.get("text") == "next")
        posted = [(f["id"], f["text"]) for f in got if f["type"] == "message"]
        assert posted == [("6f1c-1", "only once"), ("6f1c-2", "next")]


def test_two_nicks_may_use_the_same_message_id(client: TestClient) -> None:
    with member(client, nick="ann") as ann, member(client, nick="bob") as bob:
        ann.session.send_text(json.dumps({"id": "1", "text": "from ann"}))
        bob.session.send_text(json.dumps({"id": "1", "text": "from bob"}))
        got = ann.until(lambda f: f.get("text") == "from bob")
        assert [f["text"] for f in got if f["type"] == "message"] == ["from ann", "from bob"]


@pytest.mark.parametrize(
    "frame",
    [
        "{not json",
        '{"text": 5}',
        '{"id": "a"}',
        '{"id": 7, "text": "x"}',
        '{"id": "", "text": "x"}',
        json.dumps({"id": "x" * 65, "text": "x"}),
        '{"text": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"text": "x", "n": ' + "9" * 5000 + "}",
    ],
)
def test_a_malformed_json_message_is_refused_to_its_sender(client: TestClient, frame: str) -> None:
    with member(client) as ann:
        ann.session.send_text(frame)
        error = ann.until(lambda f: f["type"] == "error")[-1]
        assert error["reason"]
        ann.say("still here")
        assert ann.until(lambda f: f.get("text") == "still here")


def test_a_publish_of_unknown_outcome_asks_the_page_to_retry_by_id(
    app: Lilya, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels: Channels = app.state.channels
    real = channels.publish
    calls: list[str | None] = []

    async def stalls_once(channel: str, data: Any, *, message_id: str | None = None) -> Any:
        calls.append(message_id)
        event = await real(channel, data, message_id=message_id)  # it did happen...
        if len(calls) == 1:  # ...but the reply was lost
            raise PublishOutcomeUnknownError("redis://x", channel, message_id, TimeoutError())
        return event

    with member(client, nick="ann") as ann:
        monkeypatch.setattr(channels, "publish", stalls_once)
        ann.session.send_text(json.dumps({"id": "m1", "text": "maybe"}))
        frames = ann.until(lambda f: f["type"] == "error")
        assert frames[-1] == {
            "type": "error",
            "id": "m1",
            "reason": "may not have been sent",
            "retry": True,
        }
        ann.session.send_text(json.dumps({"id": "m1", "text": "maybe"}))  # the retry
        ann.say("after")
        got = ann.until(lambda f: f.get("text") == "after")
    texts = [f["text"] for f in frames + got if f["type"] == "message"]
    assert texts == ["maybe", "after"]  # delivered once, although sent twice
    assert calls[:2] == ["ann\nm1", "ann\nm1"]
