"""Cross-site WebSocket hijacking, tried in headless Chromium against ``lilya run``.

The chat (which has no origin check of its own any more) is served by
``lilya run`` on one port; a second server on another port plays the hostile
site. Its page opens a socket to the chat: the browser sends its real
``Origin``, and lilya must refuse the handshake, with one WARNING line in the
server's log naming the origin and the host. The chat's own page, on the
chat's port, opens the same socket and gets in.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS, needs_chromium
from tests.support.servers import serve, tracebacks

WAIT_MS = 20_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.server,
    needs_chromium,
]

#: Opens a socket and resolves with what happened to it: "open", or "closed CODE".
OPEN_SOCKET = """url => new Promise(resolve => {
    const socket = new WebSocket(url);
    socket.onopen = () => { resolve("open"); socket.close(); };
    socket.onclose = event => resolve("closed " + event.code);
})"""


def test_a_page_of_another_origin_is_refused_and_the_servers_own_page_gets_in(
    tmp_path: Path,
) -> None:
    from playwright.sync_api import sync_playwright

    (tmp_path / "index.html").write_text("<!doctype html><title>another site</title><p>hi</p>")
    chat = [sys.executable, "-m", "lilya", "run", "examples.chat.app:app", "--port", "{port}"]
    hostile = [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
    hostile += ["--directory", str(tmp_path)]
    env = {"LILYA_CHANNELS_URL": "memory://"}
    with (
        serve("", "lilya-run", command=chat, env=env) as server,
        serve("", "http.server", command=hostile) as other,
        sync_playwright() as playwright,
    ):
        socket_url = f"{server.ws_url}/ws/lobby?nick=mallory"
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page: Any = browser.new_page()
            page.goto(f"{other.http_url}/")
            assert page.evaluate(OPEN_SOCKET, socket_url) == "closed 1006"

            page.goto(f"{server.http_url}/?room=lobby&nick=ann")
            assert page.evaluate(OPEN_SOCKET, socket_url) == "open"
        finally:
            browser.close()
        log = server.wait_for_log("Refused a WebSocket handshake")
    warnings = [line for line in log.splitlines() if "Refused a WebSocket handshake" in line]
    assert len(warnings) == 1, log
    assert warnings[0].startswith("WARNING")
    assert f"from origin 'http://127.0.0.1:{other.port}'" in warnings[0]
    assert f"(host '127.0.0.1:{server.port}')" in warnings[0]
    assert "ERROR" not in log, log
    assert tracebacks(log) == [], log
