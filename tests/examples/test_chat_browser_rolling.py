"""A rolling restart under the chat page in Chromium: every message once, in order (issue 11).

Two ``lilya run`` workers of the chat on ``redis://`` behind a TCP balancer
(:class:`tests.support.balancer.Balancer`, round robin, the next worker when
one refuses), so the page has one origin and reconnects through it wherever a
worker is up, as behind nginx. The page and a Python client (``lilya.client``)
sit on worker A; a publisher on worker B says one message every 10 ms into the
room through the chat's ``say`` rpc. Mid-stream worker A gets SIGTERM: it
drains (1012 to both clients, 503 to a handshake that still reaches it), exits
0 and is started again while the publisher goes on. Both clients must come back
through the balancer and end with exactly what was published: each message
once, in the order of its offset, none missing, as the page's DOM shows it
(each message's ``<li>`` carries ``data-epoch`` and ``data-offset``) and as
the Python client's subscription yields it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest

from lilya import client as lc
from tests.support import rolling
from tests.support.balancer import Balancer
from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS, needs_chromium
from tests.support.servers import RunningServer, free_port, tracebacks

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.browser,
    pytest.mark.server,
    pytest.mark.redis,
    pytest.mark.slow,
    needs_chromium,
]

CHAT = "examples.chat.app:app"
ROOM = "rolling"
#: Messages said before worker A gets its SIGTERM, and at least after it is back.
BEFORE, AFTER = 150, 150
#: Seconds between two messages said.
PACE = 0.01
#: Milliseconds the page may take to be online in the room.
WAIT_MS = 30_000
#: Seconds both clients may take, after the last message is said, to have them all.
SETTLE = 20.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Playwright's async API and lilya.client's network transport


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            await browser.close()


def token_source(base: str, nick: str) -> Callable[[], Awaitable[str]]:
    """The chat's login (``POST /login``) through the balancer, as the page's getToken does."""

    async def get_token() -> str:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(f"{base}/login", json={"nick": nick})
            response.raise_for_status()
            token: str = response.json()["token"]
            return token

    return get_token


async def count(page: Any) -> int:
    """How many messages the page shows in the room."""
    n: int = await page.evaluate(
        "room => document.querySelectorAll(`.log[data-room=${room}] li.msg`).length", ROOM
    )
    return n


async def shown(page: Any) -> list[tuple[str, int, str, str]]:
    """(epoch, offset, nick, text) of every message the page shows in the room, top to bottom."""
    rows: list[list[Any]] = await page.eval_on_selector_all(
        f".log[data-room={ROOM}] li.msg",
        "items => items.map(li => [li.dataset.epoch, Number(li.dataset.offset),"
        " li.querySelector('.nick').textContent, li.querySelector('.text').textContent])",
    )
    return [(str(epoch), int(offset), nick, text) for epoch, offset, nick, text in rows]


async def test_a_rolling_restart_under_the_chat_page_loses_and_repeats_nothing(
    browser: Any, redis_url: str, prefix: str
) -> None:
    env = {
        "LILYA_CHANNELS_URL": redis_url,
        "LILYA_CHANNELS_PREFIX": prefix,
        "LILYA_CHAT_HISTORY": "2000",  # more than the whole run: resuming never falls off it
    }
    a_port, b_port = free_port(), free_port()
    said: list[tuple[str, int, str]] = []  # (epoch, offset, text) as the server answered
    reader_got: list[lc.Event] = []
    reader_states: list[lc.State] = []
    logs: list[str] = []
    restarted: list[RunningServer] = []
    rolled = anyio.Event()
    with (
        contextlib.ExitStack() as a_stack,
        contextlib.ExitStack() as b_stack,
        Balancer([a_port]) as balancer,  # worker A only, until every client is placed
    ):
        workers: dict[int, RunningServer] = {}

        async def start(stack: contextlib.ExitStack, port: int) -> None:
            workers[port] = await rolling.start(stack, CHAT, port, env)

        async with anyio.create_task_group() as starting:  # both at once: half the wait
            starting.start_soon(start, a_stack, a_port)
            starting.start_soon(start, b_stack, b_port)
        a, b = workers[a_port], workers[b_port]
        page = await browser.new_page()
        await page.goto(f"{balancer.http_url}/?nick=watcher&rooms={ROOM}")
        await page.wait_for_function(
            "room => document.body.dataset.state === 'online'"
            " && chat.rooms.get(room)?.sub?.active === true",
            arg=ROOM,
            timeout=WAIT_MS,
        )
        # Every close lilya.js sees, by code (the page's own "reconnecting" status comes from it).
        await page.evaluate(
            "() => { window.drops = []; chat.client.on('state',"
            " s => s.state === 'disconnected' && drops.push(s.code)); }"
        )
        reader = lc.connect(
            f"{balancer.ws_url}/ws",
            get_token=token_source(balancer.http_url, "reader"),
            reconnect_delay=(0.05, 0.5),
            on_state=reader_states.append,
        )
        async with reader:
            sub = await reader.subscribe(f"room:{ROOM}")
            on_a = balancer.open_to(a_port)
            assert on_a >= 2, on_a  # the page's socket and the reader's (and page loads)
            balancer.targets = [b_port]
            publisher = lc.connect(
                f"{balancer.ws_url}/ws", get_token=token_source(balancer.http_url, "pub")
            )
            async with publisher, anyio.create_task_group() as group:
                assert balancer.open_to(b_port) >= 1  # the publisher's socket
                balancer.targets = [a_port, b_port]  # the balancer's steady state

                async def read() -> None:
                    async for event in sub:
                        reader_got.append(event)

                async def roll() -> None:
                    log, again = await rolling.restart(a, a_stack, CHAT, env)
                    logs.append(log)
                    restarted.append(again)
                    rolled.set()

                group.start_soon(read)
                with anyio.fail_after(45):
                    n = after = 0
                    tick = anyio.current_time()
                    while not (rolled.is_set() and n >= after + AFTER):
                        text = f"m{n}"
                        ok = await publisher.call("say", {"room": ROOM, "text": text, "id": text})
                        said.append((ok["epoch"], ok["offset"], text))
                        n += 1
                        if n == BEFORE:
                            group.start_soon(roll)
                        if not rolled.is_set():
                            after = n
                        # One every PACE seconds; one at a time, so slower when a
                        # round trip takes longer (the order said is the order sent).
                        tick += PACE
                        await anyio.sleep(max(0.0, tick - anyio.current_time()))
                # Until both clients have as many as were said (a client that
                # lost some stops short: the comparison below says which), then
                # a moment more, for a message shown twice to show up.
                with anyio.move_on_after(SETTLE):
                    while len(reader_got) < len(said) or await count(page) < len(said):
                        await anyio.sleep(0.1)
                await anyio.sleep(0.5)
                group.cancel_scope.cancel()
            on_page = await shown(page)
            drops = await page.evaluate("() => drops")
        (again,) = restarted
        logs += [again.log(), b.log()]

    # What the server numbered: one epoch, offsets 1..N in the order said.
    assert [offset for _, offset, _ in said] == list(range(1, len(said) + 1))
    assert len({epoch for epoch, _, _ in said}) == 1
    assert len(said) >= BEFORE + AFTER
    # The page: every message once, in order, none missing, none extra.
    assert [(e, o, t) for e, o, _, t in on_page] == said
    assert {nick for _, _, nick, _ in on_page} == {"pub"}
    # The Python client: the same, and not a gap or reset among them.
    assert all(isinstance(event, lc.Message) for event in reader_got), reader_got
    messages = [event for event in reader_got if isinstance(event, lc.Message)]
    assert [(m.epoch, m.offset, m.data["text"]) for m in messages] == said
    # Both were on worker A and were moved by its drain, and resumed (not restarted) after it.
    assert drops[0] == 1012, drops
    assert reader.connections >= 2 and sub.recovered
    assert reader_states[0] is lc.State.CONNECTED and lc.State.RECONNECTING in reader_states
    for log in logs:
        assert tracebacks(log) == [], log
