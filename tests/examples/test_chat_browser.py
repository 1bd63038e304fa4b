"""The chat demo in headless Chromium, served by ``lilya run`` in a subprocess.

Two pages chat in two rooms, each page over one socket; one reloads and sees
the history; then the server process is killed (SIGKILL: no goodbye to
anyone) and started again on the same port. The channels live in Redis, so
history survives the restart, and a message is published while the server is
down: both pages must reconnect by themselves (logging in again: the new
process has a new token secret) and show it exactly once, with nothing lost or
doubled, in offset order.

Set ``LILYA_CHAT_SCREENSHOT=docs/chat.png`` to keep the screenshot of the two
pages (it always goes to the test's tmp directory too).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.examples.chat_browser import (
    WAIT_MS,
    lilya_run,
    messages,
    publish_directly,
    say,
    side_by_side,
    wait_online,
    wait_state,
    wait_text,
)
from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS, needs_chromium
from tests.support.servers import ROOT, free_port, serve, tracebacks

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow, needs_chromium]


def sockets_of(page: Any) -> list[str]:
    """Record the URL of every WebSocket *page* opens from now on; return the list."""
    urls: list[str] = []
    page.on("websocket", lambda ws: urls.append(ws.url))
    return urls


@pytest.mark.redis
def test_two_pages_chat_in_two_rooms_reload_and_resume_across_a_server_restart(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {"LILYA_CHANNELS_URL": redis_url, "LILYA_CHANNELS_PREFIX": prefix}
    home = f"http://127.0.0.1:{port}/"
    logs: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            viewport: ViewportSize = {"width": 630, "height": 500}
            ann = browser.new_page(viewport=viewport)
            bob = browser.new_page(viewport=viewport)
            ann_sockets, bob_sockets = sockets_of(ann), sockets_of(bob)
            with serve("", "lilya-run", command=lilya_run(), env=env, port=port) as server:
                ann.goto(home)  # no nickname yet: the page asks for one
                ann.fill("#nick", "ann")
                ann.fill("#roomnames", "lobby,dev")
                ann.click("#join button")
                bob.goto(f"{home}?rooms=lobby,dev&nick=bob")
                for page in (ann, bob):
                    wait_state(page, "online")
                    wait_online(page, ["ann", "bob"])

                say(ann, "Hello Bob, are you there?")
                wait_text(bob, "Hello Bob, are you there?")
                say(bob, "Hi Ann! Loud and clear.")
                wait_text(ann, "Hi Ann! Loud and clear.")
                # The second room, over the same socket.
                for page in (ann, bob):
                    page.click("#rooms .tab[data-room=dev]")
                say(bob, "Over in #dev too.")
                wait_text(ann, "Over in #dev too.", room="dev")
                assert messages(ann, "lobby") == [
                    (1, "ann", "Hello Bob, are you there?"),
                    (2, "bob", "Hi Ann! Loud and clear."),
                ]
                assert ann_sockets == [f"ws://127.0.0.1:{port}/ws"]
                assert bob_sockets == [f"ws://127.0.0.1:{port}/ws"]

                bob.reload()
                wait_state(bob, "online")
                wait_text(bob, "Hi Ann! Loud and clear.")
                wait_text(bob, "Over in #dev too.", room="dev")
                assert messages(bob, "lobby") == [
                    (1, "ann", "Hello Bob, are you there?"),
                    (2, "bob", "Hi Ann! Loud and clear."),
                ]
                bob.click("#rooms .tab[data-room=lobby]")
                ann.click("#rooms .tab[data-room=lobby]")

                server.process.kill()  # SIGKILL: no close frames, no lifespan shutdown
                server.process.wait(10)
                logs.append(server.log())
                for page in (ann, bob):
                    wait_state(page, "reconnecting")
                    assert not page.is_enabled("#send")

                # Another worker goes on publishing while this one is down.
                publish_directly(
                    redis_url, prefix, "lobby", "carol", ["Posted during the restart."]
                )

            with serve("", "lilya-run", command=lilya_run(), env=env, port=port) as server:
                for page in (ann, bob):
                    wait_state(page, "online")
                    wait_text(page, "Posted during the restart.")
                say(ann, "Back already? Nothing lost.")
                wait_text(bob, "Back already? Nothing lost.")
                say(bob, "And nothing twice.")
                wait_text(ann, "And nothing twice.")
                expected = [
                    (1, "ann", "Hello Bob, are you there?"),
                    (2, "bob", "Hi Ann! Loud and clear."),
                    (3, "carol", "Posted during the restart."),
                    (4, "ann", "Back already? Nothing lost."),
                    (5, "bob", "And nothing twice."),
                ]
                for page in (ann, bob):
                    assert messages(page, "lobby") == expected
                    assert messages(page, "dev") == [(1, "bob", "Over in #dev too.")]
                    # Resumed, not reloaded: the page says so, and kept its log.
                    notices = page.locator(".log[data-room=lobby] li.notice", has_text="caught up")
                    assert notices.count() == 1
                    wait_online(page, ["ann", "bob"])

                shot = tmp_path / "chat.png"
                side_by_side(browser, ann.screenshot(), bob.screenshot(), shot)
                assert shot.stat().st_size > 10_000
                keep = os.environ.get("LILYA_CHAT_SCREENSHOT")
                if keep:
                    shutil.copyfile(shot, ROOT / keep)
                logs.append(server.log())
        finally:
            browser.close()
    for log in logs:
        assert tracebacks(log) == [], log


def test_on_memory_a_restart_loses_history_and_the_pages_start_over_cleanly() -> None:
    """The README's default (``memory://``): a restart forgets the room.

    The pages must notice it (the server's history has a new epoch, so their
    position cannot be served: a ``reset``), say so, drop the old log, and chat
    on, with the new epoch's offsets counting from 1 and nothing shown twice.
    """
    from playwright.sync_api import sync_playwright

    port = free_port()
    home = f"http://127.0.0.1:{port}/?rooms=lobby"
    logs: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            ann = browser.new_page()
            bob = browser.new_page()
            with serve("", "lilya-run", command=lilya_run(), port=port) as server:
                ann.goto(home + "&nick=ann")
                bob.goto(home + "&nick=bob")
                for page in (ann, bob):
                    wait_state(page, "online")
                say(ann, "Before the restart.")
                wait_text(bob, "Before the restart.")
                server.process.kill()
                server.process.wait(10)
                logs.append(server.log())
                for page in (ann, bob):
                    wait_state(page, "reconnecting")

            with serve("", "lilya-run", command=lilya_run(), port=port) as server:
                for page in (ann, bob):
                    wait_state(page, "online")
                    page.wait_for_function(
                        "() => [...document.querySelectorAll('.log li.notice')]"
                        ".some(n => n.textContent.includes('history restarted'))",
                        timeout=WAIT_MS,
                    )
                    assert messages(page) == []  # the old epoch's log is gone
                say(bob, "After the restart.")
                for page in (ann, bob):
                    wait_text(page, "After the restart.")
                    assert messages(page) == [(1, "bob", "After the restart.")]
                logs.append(server.log())
        finally:
            browser.close()
    for log in logs:
        assert tracebacks(log) == [], log


def test_a_page_that_missed_messages_notices_the_hole_and_fetches_them_once() -> None:
    """Offsets are consecutive, so lilya.js can tell it missed something, and recover.

    The page is made to miss two messages for real (its socket's handler is
    swapped out while they arrive, and only the third is handed on): lilya.js
    must resubscribe from the last message it has and the page end with every
    message exactly once, in order. Then a ``say`` is sent twice with one id
    (as after a lost reply): the server posts it once.
    """
    from playwright.sync_api import sync_playwright

    port = free_port()
    home = f"http://127.0.0.1:{port}/?rooms=holes"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            ann, bob = browser.new_page(), browser.new_page()
            with serve("", "lilya-run", command=lilya_run(), port=port) as server:
                ann.goto(home + "&nick=ann")
                bob.goto(home + "&nick=bob")
                for page in (ann, bob):
                    wait_state(page, "online")
                say(bob, "one")
                wait_text(ann, "one", room="holes")
                ann.evaluate(
                    "() => { const ws = chat.client._ws; window.handler = ws.onmessage;"
                    " window.held = []; ws.onmessage = e => held.push(e); }"
                )
                for text in ("two", "three", "four"):
                    say(bob, text)
                wait_text(bob, "four", room="holes")
                ann.wait_for_function(
                    "() => held.filter(e => e.data.includes('\"message\"')).length >= 3",
                    timeout=WAIT_MS,
                )
                # Hand on only "four": "two" and "three" never reached lilya.js.
                ann.evaluate(
                    "() => { const ws = chat.client._ws; ws.onmessage = handler;"
                    " handler(held.find(e => e.data.includes('\"four\"'))); }"
                )
                wait_text(ann, "four", room="holes")
                expected = [(1, "bob", "one"), (2, "bob", "two"), (3, "bob", "three")]
                expected.append((4, "bob", "four"))
                ann.wait_for_function(
                    "() => document.querySelectorAll('.log[data-room=holes] li.msg').length >= 4",
                    timeout=WAIT_MS,
                )
                assert messages(ann, "holes") == expected

                ann.evaluate(
                    "async () => { const data = { room: 'holes', text: 'sent twice, shown once',"
                    " id: 'fixed-id' }; await chat.client.call('say', data);"
                    " await chat.client.call('say', data); }"
                )
                say(ann, "after the resend")
                for page in (ann, bob):
                    wait_text(page, "after the resend", room="holes")
                    texts = [text for _, _, text in messages(page, "holes")]
                    assert texts.count("sent twice, shown once") == 1
                log = server.log()
        finally:
            browser.close()
    assert tracebacks(log) == [], log


def test_a_room_joined_later_shares_the_pages_one_socket() -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            ann, bob = browser.new_page(), browser.new_page()
            sockets = sockets_of(ann)
            with serve("", "lilya-run", command=lilya_run(), port=port) as server:
                ann.goto(f"http://127.0.0.1:{port}/?nick=ann&rooms=lobby")
                bob.goto(f"http://127.0.0.1:{port}/?nick=bob&rooms=extra")
                for page in (ann, bob):
                    wait_state(page, "online")
                say(bob, "Said before ann came in.")
                wait_text(bob, "Said before ann came in.", room="extra")
                ann.fill("#newroom", "extra")
                ann.press("#newroom", "Enter")
                wait_text(ann, "Said before ann came in.", room="extra")  # its history
                wait_online(ann, ["ann", "bob"])
                say(ann, "Hello from the second room.")
                wait_text(bob, "Hello from the second room.", room="extra")
                assert ann.url.endswith("?nick=ann&rooms=lobby%2Cextra")
                assert sockets == [f"ws://127.0.0.1:{port}/ws"]
                assert messages(ann, "lobby") == []
                log = server.log()
        finally:
            browser.close()
    assert tracebacks(log) == [], log
