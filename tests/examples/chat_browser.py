"""What the chat's Chromium tests share: the server command, reading the page, publishing."""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio

from lilya.channels import Channels
from tests.support import rolling

__all__ = [
    "WAIT_MS",
    "Publisher",
    "lilya_run",
    "messages",
    "publish_directly",
    "say",
    "side_by_side",
    "wait_messages",
    "wait_online",
    "wait_state",
    "wait_subscribed",
    "wait_text",
]

#: Milliseconds any one thing a page shows may take to appear.
WAIT_MS = 20_000


def lilya_run(port: str = "{port}") -> list[str]:
    return rolling.lilya_run("examples.chat.app:app", port)


def messages(page: Any, room: str = "lobby") -> list[tuple[int, str, str]]:
    """(offset, nick, text) of every message the page shows in *room*, top to bottom."""
    rows: list[list[Any]] = page.eval_on_selector_all(
        f".log[data-room={room}] li.msg",
        "items => items.map(li => [Number(li.dataset.offset),"
        " li.querySelector('.nick').textContent, li.querySelector('.text').textContent])",
    )
    return [(int(offset), nick, text) for offset, nick, text in rows]


def wait_state(page: Any, state: str) -> None:
    page.wait_for_function(
        "state => document.body.dataset.state === state", arg=state, timeout=WAIT_MS
    )


def wait_text(page: Any, text: str, room: str = "lobby") -> None:
    page.wait_for_function(
        "([room, text]) => [...document.querySelectorAll(`.log[data-room=${room}] li.msg .text`)]"
        ".some(t => t.textContent === text)",
        arg=[room, text],
        timeout=WAIT_MS,
    )


def wait_messages(page: Any, room: str, count: int, timeout_ms: int = WAIT_MS) -> None:
    page.wait_for_function(
        "([room, count]) => document.querySelectorAll(`.log[data-room=${room}] li.msg`).length"
        " >= count",
        arg=[room, count],
        timeout=timeout_ms,
    )


def wait_subscribed(page: Any, room: str) -> None:
    """Until lilya.js has the room's subscribe reply (its position) on the current socket."""
    page.wait_for_function(
        "room => chat.rooms.get(room)?.sub?.active === true", arg=room, timeout=WAIT_MS
    )


def wait_online(page: Any, nicks: list[str]) -> None:
    """Until the active room's "Online" list is exactly *nicks*."""
    page.wait_for_function(
        "nicks => JSON.stringify([...document.querySelectorAll('#online li')]"
        ".map(li => li.textContent)) === JSON.stringify(nicks)",
        arg=nicks,
        timeout=WAIT_MS,
    )


def say(page: Any, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def publish_directly(url: str, prefix: str, room: str, nick: str, texts: list[str]) -> None:
    """Publish into the room through Redis, as another worker would.

    In a thread of its own: Playwright's sync API keeps an event loop running
    in this one.
    """

    async def publish() -> None:
        async with Channels(url, key_prefix=prefix) as channels:
            for text in texts:
                data = {"nick": nick, "text": text, "ts": time.time()}
                await channels.publish(f"room:{room}", data)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(anyio.run, publish).result(timeout=30)


class Publisher(threading.Thread):
    """Publish *count* messages into a room through Redis, *pause* seconds apart, in a thread.

    ``published`` counts them as they go, so a test can strike mid-stream. It
    keeps up to ``history_size`` messages in the room (a Redis publisher trims
    the room's history to its own setting), so the page can resume from them.
    """

    def __init__(
        self, url: str, prefix: str, room: str, count: int, pause: float, history_size: int
    ) -> None:
        super().__init__(daemon=True)
        self.history_size = history_size
        self.url, self.prefix, self.room = url, prefix, room
        self.count, self.pause = count, pause
        self.published = 0
        self.error: BaseException | None = None

    def texts(self) -> list[str]:
        return [f"flood {n}" for n in range(1, self.count + 1)]

    def run(self) -> None:
        async def publish() -> None:
            hub = Channels(self.url, key_prefix=self.prefix, history_size=self.history_size)
            async with hub as channels:
                for text in self.texts():
                    data = {"nick": "flood", "text": text, "ts": time.time()}
                    await channels.publish(f"room:{self.room}", data)
                    self.published += 1
                    await anyio.sleep(self.pause)

        try:
            anyio.run(publish)
        except BaseException as exc:  # handed to the test by finish()
            self.error = exc

    def wait_for(self, published: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.published < published:
            assert self.is_alive() or self.error is None, self.error
            assert time.monotonic() < deadline, f"only {self.published} published"
            time.sleep(0.01)

    def finish(self, timeout: float = 60.0) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the publisher did not finish"
        assert self.error is None, self.error
        assert self.published == self.count


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
