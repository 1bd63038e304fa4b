"""The chat demo in headless Chromium, served by ``lilya run`` in a subprocess.

Two pages chat; one reloads and sees the history; then the server process is
killed (SIGKILL: no goodbye to anyone) and started again on the same port. The
channels live in Redis, so history survives the restart, and a message is
published while the server is down: both pages must reconnect by themselves
and show it exactly once, with nothing lost or doubled, in offset order.

Set ``LILYA_CHAT_SCREENSHOT=docs/chat.png`` to keep the screenshot of the two
pages (it always goes to the test's tmp directory too).
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from lilya.channels import Channels
from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS, needs_chromium
from tests.support.servers import ROOT, free_port, serve, tracebacks

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

#: Milliseconds any one thing a page shows may take to appear.
WAIT_MS = 20_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.server,
    pytest.mark.redis,
    pytest.mark.slow,
    needs_chromium,
]


def lilya_run(port: str = "{port}") -> list[str]:
    return [sys.executable, "-m", "lilya", "run", "examples.chat.app:app", "--port", port]


def messages(page: Any) -> list[tuple[int, str, str]]:
    """(offset, nick, text) of every message the page shows, top to bottom."""
    rows: list[list[Any]] = page.eval_on_selector_all(
        "#log li.msg",
        "items => items.map(li => [Number(li.dataset.offset),"
        " li.querySelector('.nick').textContent, li.querySelector('.text').textContent])",
    )
    return [(int(offset), nick, text) for offset, nick, text in rows]


def wait_state(page: Any, state: str) -> None:
    page.wait_for_function(
        "state => document.body.dataset.state === state", arg=state, timeout=WAIT_MS
    )


def wait_text(page: Any, text: str) -> None:
    page.wait_for_function(
        "text => [...document.querySelectorAll('#log li.msg .text')]"
        ".some(t => t.textContent === text)",
        arg=text,
        timeout=WAIT_MS,
    )


def wait_online(page: Any, nicks: list[str]) -> None:
    page.wait_for_function(
        "nicks => JSON.stringify([...document.querySelectorAll('#online li')]"
        ".map(li => li.textContent)) === JSON.stringify(nicks)",
        arg=nicks,
        timeout=WAIT_MS,
    )


def say(page: Any, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def publish_directly(url: str, prefix: str, room: str, nick: str, text: str) -> None:
    """Publish into the room through Redis, as another worker would.

    In a thread of its own: Playwright's sync API keeps an event loop running
    in this one.
    """

    async def publish() -> None:
        async with Channels(url, key_prefix=prefix) as channels:
            data = {"nick": nick, "text": text, "ts": time.time()}
            await channels.publish(f"room:{room}", data)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(anyio.run, publish).result(timeout=10)


def side_by_side(browser: Any, left: bytes, right: bytes, path: Path) -> None:
    """Screenshot two page screenshots next to each other (no imaging library needed)."""
    page = browser.new_page(viewport={"width": 1300, "height": 520})
    try:
        images = "".join(
            f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}">'
            for png in (left, right)
        )
        page.set_content(
            "<style>body{margin:0;padding:10px;background:#d9dce3;display:flex;gap:10px}"
            "img{border-radius:8px;box-shadow:0 2px 10px rgba(0,0,0,.18)}</style>" + images
        )
        page.wait_for_function(
            "[...document.images].every(i => i.complete && i.naturalWidth > 0)", timeout=WAIT_MS
        )
        page.screenshot(path=str(path))
    finally:
        page.close()


def test_two_pages_chat_reload_and_resume_across_a_server_restart(
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
            with serve("", "lilya-run", command=lilya_run(), env=env, port=port) as server:
                ann.goto(home)  # no nickname yet: the page asks for one
                ann.fill("#nick", "ann")
                ann.fill("#roomname", "lobby")
                ann.click("#join button")
                bob.goto(f"{home}?room=lobby&nick=bob")
                for page in (ann, bob):
                    wait_state(page, "online")
                    wait_online(page, ["ann", "bob"])

                say(ann, "Hello Bob, are you there?")
                wait_text(bob, "Hello Bob, are you there?")
                say(bob, "Hi Ann! Loud and clear.")
                wait_text(ann, "Hi Ann! Loud and clear.")

                bob.reload()
                wait_state(bob, "online")
                wait_text(bob, "Hi Ann! Loud and clear.")
                assert messages(bob) == [
                    (1, "ann", "Hello Bob, are you there?"),
                    (2, "bob", "Hi Ann! Loud and clear."),
                ]

                server.process.kill()  # SIGKILL: no close frames, no lifespan shutdown
                server.process.wait(10)
                logs.append(server.log())
                for page in (ann, bob):
                    wait_state(page, "reconnecting")
                    assert not page.is_enabled("#send")

                # Another worker goes on publishing while this one is down.
                publish_directly(redis_url, prefix, "lobby", "carol", "Posted during the restart.")

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
                    assert messages(page) == expected
                    # Resumed, not reloaded: the page says so, and kept its log.
                    assert page.locator("#log li.notice", has_text="caught up").count() == 1
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


def test_on_memory_a_restart_loses_history_and_the_pages_start_over_cleanly(
    tmp_path: Path,
) -> None:
    """The README's default (``memory://``): a restart forgets the room.

    The pages must notice it (the server's history has a new epoch, so their
    position cannot be served), say so, drop the old log, and chat on, with the
    new epoch's offsets counting from 1 and nothing shown twice.
    """
    from playwright.sync_api import sync_playwright

    port = free_port()
    home = f"http://127.0.0.1:{port}/?room=lobby"
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
                        "() => [...document.querySelectorAll('#log li.notice')]"
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
    """Offsets are consecutive, so a page can tell it missed something, and recover.

    The page is made to miss two messages for real (its socket handler is
    swapped out while they arrive, and only the third is handed on): it must
    say so, reconnect from the last message it has, and end with every message
    exactly once, in order. Then a message it sent is resent after a reconnect
    (as after a lost reply), and twice before: the id makes the server post it
    only once.
    """
    from playwright.sync_api import sync_playwright

    port = free_port()
    home = f"http://127.0.0.1:{port}/?room=holes"
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
                wait_text(ann, "one")
                ann.evaluate(
                    "() => { window.held = []; chat.socket.onmessage = e => held.push(e.data); }"
                )
                for text in ("two", "three", "four"):
                    say(bob, text)
                wait_text(bob, "four")
                ann.wait_for_function("() => held.length >= 3", timeout=WAIT_MS)
                # Hand on only "four": "two" and "three" never reached the page.
                ann.evaluate(
                    "() => handle(JSON.parse(held.find(f => JSON.parse(f).text === 'four')))"
                )
                ann.wait_for_function(
                    "() => [...document.querySelectorAll('#log li.notice')]"
                    ".some(n => n.textContent.includes('Missed messages 2–3'))",
                    timeout=WAIT_MS,
                )
                wait_text(ann, "four")
                expected = [(1, "bob", "one"), (2, "bob", "two"), (3, "bob", "three")]
                expected.append((4, "bob", "four"))
                assert messages(ann) == expected

                # A message sent, then resent after a reconnect with the same id.
                ann.evaluate(
                    "() => { chat.pending.set('fixed-id', 'sent twice, shown once');"
                    " send('fixed-id', 'sent twice, shown once');"
                    " send('fixed-id', 'sent twice, shown once'); chat.socket.close(4001); }"
                )
                wait_state(ann, "online")
                say(ann, "after the resend")
                for page in (ann, bob):
                    wait_text(page, "after the resend")
                    texts = [text for _, _, text in messages(page)]
                    assert texts.count("sent twice, shown once") == 1
                assert ann.evaluate("() => chat.pending.size") == 0
                log = server.log()
        finally:
            browser.close()
    assert tracebacks(log) == [], log
