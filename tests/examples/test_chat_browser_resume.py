"""lilya.js in Chromium while 500 messages are published: nothing lost, nothing twice.

The chat page (its rooms are lilya.js subscriptions) is the client; the
messages go into Redis from this process, as another worker would publish
them, so they keep coming whatever happens to the server or the page's
network. Two strikes, each mid-stream:

- the server process is killed (SIGKILL) and started again on the same port;
- the page's network goes offline for 10 s through the DevTools protocol's
  network emulation (``Network.emulateNetworkConditions``), which leaves the
  open socket silently dead, as a laptop's sleep does: only lilya.js's own
  ``ping`` notices.

Each time the page must end with offsets 1..500 exactly, once each, in order.
A second room that had received nothing before the strike (only its subscribe
reply's position) must get what was published into it meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.examples.chat_browser import (
    Publisher,
    lilya_run,
    messages,
    publish_directly,
    wait_messages,
    wait_state,
    wait_subscribed,
)
from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS, needs_chromium
from tests.support.servers import free_port, serve, tracebacks

pytestmark = [
    pytest.mark.browser,
    pytest.mark.server,
    pytest.mark.redis,
    pytest.mark.slow,
    needs_chromium,
]

COUNT = 500
#: History kept per room: more than can go by while the page is away.
HISTORY = 2000


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Any, port: int) -> Any:
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/?nick=watcher&rooms=flood,quiet")
    wait_state(page, "online")
    wait_subscribed(page, "flood")
    wait_subscribed(page, "quiet")
    return page


def assert_all_once(page: Any) -> None:
    wait_messages(page, "flood", COUNT, timeout_ms=60_000)
    time.sleep(0.3)  # anything doubled would arrive now
    shown = messages(page, "flood")
    assert [offset for offset, _, _ in shown] == list(range(1, COUNT + 1))
    assert [text for _, _, text in shown] == [f"flood {n}" for n in range(1, COUNT + 1)]
    wait_messages(page, "quiet", 3)
    assert messages(page, "quiet") == [(1, "x", "q1"), (2, "x", "q2"), (3, "x", "q3")]


def test_a_server_killed_and_restarted_mid_stream_loses_and_doubles_nothing(
    browser: Any, redis_url: str, prefix: str
) -> None:
    port = free_port()
    env = {
        "LILYA_CHANNELS_URL": redis_url,
        "LILYA_CHANNELS_PREFIX": prefix,
        "LILYA_CHAT_HISTORY": str(HISTORY),
    }
    logs = []
    publisher = Publisher(redis_url, prefix, "flood", COUNT, pause=0.005, history_size=HISTORY)
    with serve("", "lilya-run", command=lilya_run(), env=env, port=port) as server:
        page = open_page(browser, port)
        publisher.start()
        publisher.wait_for(150)
        server.process.kill()
        server.process.wait(10)
        logs.append(server.log())
        wait_state(page, "reconnecting")
        # "quiet" got nothing before the kill: lilya.js resumes it from the
        # position of its subscribe reply.
        publish_directly(redis_url, prefix, "quiet", "x", ["q1", "q2", "q3"])
    with serve("", "lilya-run", command=lilya_run(), env=env, port=port) as server:
        publisher.finish()
        assert_all_once(page)
        logs.append(server.log())
    for log in logs:
        assert tracebacks(log) == [], log


def test_ten_seconds_offline_mid_stream_loses_and_doubles_nothing(
    browser: Any, redis_url: str, prefix: str
) -> None:
    port = free_port()
    env = {
        "LILYA_CHANNELS_URL": redis_url,
        "LILYA_CHANNELS_PREFIX": prefix,
        "LILYA_CHAT_HISTORY": str(HISTORY),
    }
    publisher = Publisher(redis_url, prefix, "flood", COUNT, pause=0.02, history_size=HISTORY)
    with serve("", "lilya-run", command=lilya_run(), env=env, port=port) as server:
        page = open_page(browser, port)
        devtools = page.context.new_cdp_session(page)
        devtools.send("Network.enable")
        conditions = {"latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
        page.evaluate(
            "() => { window.drops = []; chat.client.on('state',"
            " s => s.state === 'disconnected' && drops.push(s.reason)); }"
        )
        publisher.start()
        publisher.wait_for(50)
        devtools.send("Network.emulateNetworkConditions", {"offline": True, **conditions})
        publish_directly(redis_url, prefix, "quiet", "x", ["q1", "q2", "q3"])
        # The socket is dead but not closed; lilya.js's ping finds out.
        wait_state(page, "reconnecting")
        time.sleep(10)
        devtools.send("Network.emulateNetworkConditions", {"offline": False, **conditions})
        wait_state(page, "online")
        publisher.finish()
        assert_all_once(page)
        # The browser never closed the dead socket: lilya.js's ping timed out.
        assert page.evaluate("() => drops")[0] == "ping timeout"
        log = server.log()
    assert tracebacks(log) == [], log


def test_a_page_away_longer_than_the_history_holds_says_so_and_shows_the_latest_in_order(
    browser: Any, redis_url: str, prefix: str
) -> None:
    """The one case where messages are missed, and the page says so (a ``reset``)."""
    port = free_port()
    env = {
        "LILYA_CHANNELS_URL": redis_url,
        "LILYA_CHANNELS_PREFIX": prefix,
        "LILYA_CHAT_HISTORY": "20",
    }
    with serve("", "lilya-run", command=lilya_run(), env=env, port=port) as server:
        page = open_page(browser, port)
        server.process.kill()
        server.process.wait(10)
        wait_state(page, "reconnecting")
        away = Publisher(redis_url, prefix, "flood", 30, pause=0, history_size=20)
        away.start()
        away.finish()
    with serve("", "lilya-run", command=lilya_run(), env=env, port=port) as server:
        page.wait_for_function(
            "() => [...document.querySelectorAll('.log[data-room=flood] li.notice')]"
            ".some(n => n.textContent.includes('history restarted'))",
            timeout=20_000,
        )
        wait_messages(page, "flood", 20)
        publish_directly(redis_url, prefix, "flood", "x", ["live"])
        wait_messages(page, "flood", 21)
        shown = messages(page, "flood")
        assert [offset for offset, _, _ in shown] == list(range(11, 32))
        assert shown[-1] == (31, "x", "live")
        log = server.log()
    assert tracebacks(log) == [], log
