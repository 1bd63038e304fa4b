"""The AsyncAPI page in headless Chromium: the chat page links it, and it renders offline.

Set ``LILYA_ASYNCAPI_SCREENSHOT=docs/asyncapi.png`` to refresh the screenshot in the docs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS, needs_chromium
from tests.support.servers import ROOT, serve, tracebacks

pytestmark = [
    pytest.mark.browser,
    pytest.mark.server,
    needs_chromium,
]


def test_the_chat_links_its_asyncapi_page_which_renders_every_frame_offline(
    tmp_path: Path,
) -> None:
    from playwright.sync_api import sync_playwright

    command = [sys.executable, "-m", "lilya", "run", "examples.chat.app:app", "--port", "{port}"]
    with serve("examples.chat.app:app", command=command) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1100})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(server.http_url + "/")
            href = page.get_attribute("#api", "href")
            assert href == "/asyncapi"
            page.goto(server.http_url + href)
            page.wait_for_function("document.querySelectorAll('.msg').length >= 8", timeout=20_000)
            titles: Any = page.eval_on_selector_all(
                ".msg strong", "els => els.map(e => e.textContent)"
            )
            # The protocol endpoint's frames (/ws), then the one-room route's.
            one_room = ["Say", "Welcome", "History", "ChatMessage", "Presence", "Gap", "Reset"]
            assert titles[-8:] == [*one_room, "ChatError"]
            assert {"Connect", "Subscribe", "Publish", "MessagePush"} <= set(titles[:-8])
            assert page.text_content(".card .addr") == f"ws://127.0.0.1:{server.port}"
            shot = os.environ.get("LILYA_ASYNCAPI_SCREENSHOT")
            page.screenshot(path=str(ROOT / shot) if shot else str(tmp_path / "asyncapi.png"))
        finally:
            browser.close()
        assert tracebacks(server.log()) == []
    # Nothing but the page itself (and the chat page before it) was fetched.
    assert all(url.startswith(server.http_url) for url in requested)
