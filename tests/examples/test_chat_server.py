"""The chat demo served for real by ``lilya run``, alone and as two workers.

First the README's command as it is (``memory://``): the printed URL serves the
page, a client chats, and the handshake checks answer over the wire. Then two
workers, one room: ``lilya run --workers 2`` with the channels in Redis. The
workers share the listening socket, so which one serves a connection is up to
the kernel: the test connects until it holds one client of each worker process
(the welcome frame names the pid) and proves messages and presence cross.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from lilya.middleware.origin import CROSS_ORIGIN_REFUSAL
from tests.support.servers import serve, tracebacks

pytestmark = [pytest.mark.server, pytest.mark.redis, pytest.mark.slow]

#: Seconds any one frame, connect or the whole pid hunt may take.
FRAME_TIMEOUT = 10.0
HUNT_TIMEOUT = 30.0
HUNT_ATTEMPTS = 200


def receive(client: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(client.recv(timeout=FRAME_TIMEOUT))
    return frame


def receive_until(client: ClientConnection, kind: str, **fields: Any) -> dict[str, Any]:
    """Read frames until one of type *kind* with these *fields*; return it."""
    while True:
        frame = receive(client)
        if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items()):
            return frame


#: What uvicorn's websockets-sansio implementation logs after every denial
#: response (it never marks the handshake as answered). ``lilya run`` serves on
#: wsproto, which does not, so a refused handshake leaves no ERROR in the log.
UVICORN_DENIAL_NOISE = "ERROR:    ASGI callable returned without completing handshake."


def refused(url: str, **options: Any) -> InvalidStatus:
    with (
        pytest.raises(InvalidStatus) as refusal,
        connect(url, open_timeout=FRAME_TIMEOUT, **options),
    ):
        pass
    return refusal.value


def test_the_readme_command_serves_the_page_and_the_chat() -> None:
    command = [sys.executable, "-m", "lilya", "run", "examples.chat.app:app", "--port", "{port}"]
    with serve("", "lilya-run", command=command) as server:
        server.wait_for_log(f"at http://127.0.0.1:{server.port} ")
        page = httpx.get(f"{server.http_url}/", timeout=FRAME_TIMEOUT)
        assert page.status_code == 200
        assert "lilya chat" in page.text

        origin = server.http_url  # what a browser on the printed URL sends
        url = f"{server.ws_url}/ws/lobby?nick=ann"
        with connect(url, origin=Origin(origin), open_timeout=FRAME_TIMEOUT) as ann:
            welcome = receive(ann)
            assert (welcome["type"], welcome["online"][0]["nick"]) == ("welcome", "ann")
            assert receive(ann) == {"type": "history", "reset": False, "messages": []}
            ann.send("hello")
            assert receive_until(ann, "message")["text"] == "hello"

        foreign = refused(url, origin="http://evil.example")
        assert foreign.response.status_code == 403
        assert foreign.response.body == CROSS_ORIGIN_REFUSAL.encode()
        too_long = refused(f"{server.ws_url}/ws/lobby?nick={'x' * 25}")
        assert too_long.response.status_code == 400
        assert too_long.response.body == b"Choose a nickname of 1 to 24 characters."
        log = server.log()
    assert tracebacks(log) == [], log
    assert UVICORN_DENIAL_NOISE not in log
    assert "ERROR" not in log, log


def test_messages_and_presence_cross_between_two_workers(redis_url: str, prefix: str) -> None:
    command = [sys.executable, "-m", "lilya", "run", "examples.chat.app:app"]
    command += ["--port", "{port}", "--workers", "2"]
    env = {"LILYA_CHANNELS_URL": redis_url, "LILYA_CHANNELS_PREFIX": prefix}
    with serve("", "lilya-workers", command=command, env=env) as server:
        by_pid: dict[int, ClientConnection] = {}
        welcomes: dict[int, dict[str, Any]] = {}
        with contextlib.ExitStack() as stack:
            deadline = time.monotonic() + HUNT_TIMEOUT
            for attempt in range(HUNT_ATTEMPTS):
                if len(by_pid) == 2 or time.monotonic() > deadline:
                    break
                with contextlib.ExitStack() as this_one:
                    url = f"{server.ws_url}/ws/lobby?nick=user{attempt}"
                    client = this_one.enter_context(connect(url, open_timeout=FRAME_TIMEOUT))
                    welcome = receive(client)
                    if welcome["pid"] in by_pid:
                        continue  # closed on leaving the block
                    stack.enter_context(this_one.pop_all())  # kept open until the end
                by_pid[welcome["pid"]] = client
                welcomes[welcome["pid"]] = welcome
            assert len(by_pid) == 2, f"one worker served every connection ({attempt + 1} tried)"
            assert server.process.pid not in by_pid  # the workers, not the supervisor

            (first_pid, first), (second_pid, second) = by_pid.items()
            first_nick, second_nick = welcomes[first_pid]["nick"], welcomes[second_pid]["nick"]
            # Presence crosses: the second client's welcome lists the first one.
            assert first_nick in {m["nick"] for m in welcomes[second_pid]["online"]}
            while True:  # presence crosses live too: a diff naming the second client
                diff = receive_until(first, "presence", snapshot=False)
                if second_nick in {entry["nick"] for entry in diff["joined"]}:
                    break

            first.send(f"hello from worker {first_pid}")
            got = receive_until(second, "message", text=f"hello from worker {first_pid}")
            assert got["nick"] == first_nick
            second.send(f"hello from worker {second_pid}")
            got = receive_until(first, "message", text=f"hello from worker {second_pid}")
            assert got["nick"] == second_nick

        # Whichever worker serves a newcomer, the history holds both messages.
        with connect(f"{server.ws_url}/ws/lobby?nick=late", open_timeout=FRAME_TIMEOUT) as late:
            assert receive(late)["type"] == "welcome"
            history = receive(late)
            assert [m["text"] for m in history["messages"]][-2:] == [
                f"hello from worker {first_pid}",
                f"hello from worker {second_pid}",
            ]
        log = server.log()
    assert tracebacks(log) == [], log
    assert "in 2 worker processes" in log
