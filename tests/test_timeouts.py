"""lilya.timeouts: send_timeout (app, route, call) on every send path, and handshake_timeout.

A fake server (:class:`StallingServer`) plays uvicorn's part: its ``send``
waits for ever while the client "is not reading", and its transport can be
aborted. The real servers are in tests/test_timeouts_server.py (uvicorn, one
stalled client beside healthy ones) and tests/interop (the rows on six setups).
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import struct
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, cast

import anyio
import pytest

from lilya import timeouts
from lilya._connection_state import ConnectionState, state_of
from lilya._handshake import HandshakeTimeout
from lilya.apps import Lilya
from lilya.controllers import WebSocketController
from lilya.exceptions import ImproperlyConfigured
from lilya.responses import PlainText
from lilya.routing import Path, WebSocketPath
from lilya.testclient import AsyncTestClient, WebSocketDenialResponse
from lilya.timeouts import (
    DEFAULT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_SEND_TIMEOUT,
    HANDSHAKE_REFUSAL,
    check_call_timeout,
    close_within,
    drop_connection,
    finish_within,
    send_timeout_reason,
)
from lilya.typed import TypedWebSocket
from lilya.types import Message
from lilya.websockets import WebSocket, WebSocketDisconnect
from tests.support.asgi import CONNECT, call_websocket, websocket_scope

pytestmark = pytest.mark.anyio

REASON = send_timeout_reason(0.05)


class Transport:
    """The transport of the fake server: ``abort()`` is what lilya calls to drop it."""

    def __init__(self, server: StallingServer) -> None:
        self.server = server
        self.aborted = False
        self.socket: socket.socket | None = None

    def get_extra_info(self, name: str) -> Any:
        return self.socket if name == "socket" else None

    def abort(self) -> None:
        self.aborted = True
        self.server.gone.set()
        self.server.writable.set()  # uvicorn wakes its waiting send, which then raises


class StallingServer:
    """A server whose sends wait while the client is not reading, as uvicorn's do.

    ``stall`` names the message types whose send waits (for ever, unless the
    test sets ``writable``); an aborted transport makes waiting sends raise an
    ``OSError`` and ``receive`` return a 1006 disconnect, as uvicorn does.
    """

    def __init__(self, *incoming: Message, stall: tuple[str, ...] = ("websocket.send",)) -> None:
        self.incoming = list(incoming)
        self.stall = stall
        self.sent: list[Message] = []
        #: Set when the client reads again (or the transport is aborted).
        self.writable = anyio.Event()
        self.gone = anyio.Event()
        self.transport = Transport(self)

    async def receive(self) -> Message:
        if self.incoming:
            return self.incoming.pop(0)
        await self.gone.wait()
        return {"type": "websocket.disconnect", "code": 1006}

    async def send(self, message: Message) -> None:
        if message["type"] in self.stall:
            await self.writable.wait()  # as uvicorn waits for its transport to drain
        if self.transport.aborted:
            raise ConnectionResetError("the transport was aborted")
        self.sent.append(message)

    @property
    def types(self) -> list[str]:
        return [message["type"] for message in self.sent]

    async def run(self, app: Any, path: str = "/ws") -> None:
        with anyio.fail_after(5):
            await app(websocket_scope(path), self.receive, self.send)


Sender = Callable[[WebSocket], Awaitable[None]]


@dataclass
class Tick:
    """A typed message for the typed-send test."""

    n: int


async def by_send_text(websocket: WebSocket) -> None:
    await websocket.send_text("x")


async def by_send_bytes(websocket: WebSocket) -> None:
    await websocket.send_bytes(b"x")


async def by_send_json(websocket: WebSocket) -> None:
    await websocket.send_json({"x": 1})


async def by_send_json_binary(websocket: WebSocket) -> None:
    await websocket.send_json({"x": 1}, mode="binary")


async def by_send(websocket: WebSocket) -> None:
    await websocket.send({"type": "websocket.send", "text": "x"})


async def by_send_message(websocket: WebSocket) -> None:
    await cast(TypedWebSocket[Any, Tick], websocket).send_message(Tick(1))


SENDERS = [by_send_text, by_send_bytes, by_send_json, by_send_json_binary, by_send, by_send_message]


def sending_app(sender: Sender, seen: list[Any], **route: Any) -> Lilya:
    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await sender(websocket)
        except WebSocketDisconnect as exc:
            seen.append(exc)
            seen.append(websocket.application_state.name)
            async for _ in websocket.iter_text():  # over: the loop ends at once
                seen.append("a message")  # pragma: no cover
            seen.append(websocket.client_state.name)
            await websocket.close()  # already closed by lilya: does nothing
        else:
            seen.append("sent")

    if sender is by_send_message:
        route["sends"] = Tick
    return Lilya(routes=[WebSocketPath("/ws", handler, **route)])


# -- send_timeout: a send that cannot complete closes 1013 --------------------------------


@pytest.mark.parametrize("sender", SENDERS)
async def test_a_send_the_client_does_not_take_closes_1013_and_raises_in_the_handler(
    sender: Sender, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Any] = []
    server = StallingServer(CONNECT, stall=("websocket.send", "websocket.close"))
    with caplog.at_level(logging.WARNING):
        await server.run(sending_app(sender, seen, send_timeout=0.05))
    error = seen[0]
    assert (type(error), error.code, error.reason) == (WebSocketDisconnect, 1013, REASON)
    # Both sides read as closed: iteration ends, and the handler's own close is a no-op.
    assert seen[1:] == ["DISCONNECTED", "DISCONNECTED"]
    # The close could not leave either: the TCP connection was dropped, so nothing stays open.
    assert server.transport.aborted
    assert server.types == ["websocket.accept"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"Closing /ws with 1013: {REASON}"]


async def test_a_slow_client_that_takes_the_close_gets_1013_and_is_not_dropped() -> None:
    seen: list[Any] = []
    server = StallingServer(CONNECT)  # data waits, the close goes
    await server.run(sending_app(by_send_text, seen, send_timeout=0.05))
    assert seen[0].code == 1013
    assert server.sent[-1] == {"type": "websocket.close", "code": 1013, "reason": REASON}
    assert not server.transport.aborted


@pytest.mark.parametrize("sender", SENDERS)
async def test_a_send_that_waits_but_completes_in_time_is_sent(sender: Sender) -> None:
    seen: list[Any] = []
    server = StallingServer(CONNECT)

    async def resume() -> None:
        await anyio.sleep(0.05)
        server.writable.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(resume)
        await server.run(sending_app(sender, seen, send_timeout=2))
    assert seen == ["sent"]
    assert server.types == ["websocket.accept", "websocket.send", "websocket.close"]


@pytest.mark.parametrize("sender", SENDERS)
async def test_send_timeout_none_waits_for_the_client(sender: Sender) -> None:
    seen: list[Any] = []
    server = StallingServer(CONNECT)

    async def resume() -> None:
        await anyio.sleep(0.1)
        server.writable.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(resume)
        await server.run(sending_app(sender, seen, send_timeout=None))
    assert seen == ["sent"]


async def test_a_call_timeout_overrides_the_route_both_ways() -> None:
    seen: list[Any] = []

    async def per_call(websocket: WebSocket) -> None:
        await websocket.accept()
        with pytest.raises(WebSocketDisconnect) as short:
            await websocket.send_text("x", timeout=0.05)  # the route waits for ever
        seen.append((short.value.code, short.value.reason))

    server = StallingServer(CONNECT)
    await server.run(Lilya(routes=[WebSocketPath("/ws", per_call, send_timeout=None)]))
    assert seen == [(1013, REASON)]

    async def waits(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_bytes(b"x", timeout=None)  # the route's 0.05 s does not apply
        await websocket.send_json([1], timeout=5)
        seen.append("sent")

    server = StallingServer(CONNECT)

    async def resume() -> None:
        await anyio.sleep(0.1)
        server.writable.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(resume)
        await server.run(Lilya(routes=[WebSocketPath("/ws", waits, send_timeout=0.05)]))
    assert seen[-1] == "sent"


async def test_a_route_takes_the_apps_send_timeout_unless_it_sets_its_own() -> None:
    timeouts_seen: list[float | None] = []

    async def report(websocket: WebSocket) -> None:
        timeouts_seen.append(state_of(websocket.scope).send_timeout)
        await websocket.close()

    app = Lilya(
        routes=[
            WebSocketPath("/inherits", report),
            WebSocketPath("/own", report, send_timeout=3),
            WebSocketPath("/never", report, send_timeout=None),
        ],
        send_timeout=7,
    )
    for path in ("/inherits", "/own", "/never"):
        await call_websocket(app, path)
    await call_websocket(Lilya(routes=[WebSocketPath("/ws", report)]), "/ws")
    assert timeouts_seen == [7.0, 3.0, None, DEFAULT_SEND_TIMEOUT]
    assert Lilya().send_timeout == DEFAULT_SEND_TIMEOUT == 10.0
    assert Lilya(send_timeout=None).send_timeout is None
    assert WebSocketPath("/ws", report).send_timeout is DEFAULT
    assert repr(DEFAULT) == "lilya.timeouts.DEFAULT"


async def test_a_bare_websocket_has_the_default_send_timeout() -> None:
    server = StallingServer(CONNECT)
    websocket = WebSocket(websocket_scope("/"), server.receive, server.send)
    assert websocket._send_timeout == DEFAULT_SEND_TIMEOUT


async def test_a_typed_send_and_a_controller_send_are_bounded_too() -> None:
    seen: list[Any] = []

    async def typed(websocket: Any) -> None:
        await websocket.accept()
        try:
            await websocket.send_message(Tick(1))
        except WebSocketDisconnect as exc:
            seen.append(("typed", exc.code))

    class Pusher(WebSocketController):
        async def on_connect(self, websocket: WebSocket) -> None:
            await websocket.accept()
            try:
                await websocket.send_json({"hello": True})
            except WebSocketDisconnect as exc:
                seen.append(("controller", exc.code))
                raise

    app = Lilya(
        routes=[
            WebSocketPath("/typed", typed, sends=Tick, send_timeout=0.05),
            WebSocketPath("/controller", Pusher, send_timeout=0.05),
        ]
    )
    await StallingServer(CONNECT).run(app, "/typed")
    await StallingServer(CONNECT).run(app, "/controller")
    assert seen == [("typed", 1013), ("controller", 1013)]


async def test_the_close_after_a_handler_returns_is_bounded_and_drops_a_stalled_client() -> None:
    async def returns(websocket: WebSocket) -> None:
        await websocket.accept()  # and returns: routing closes, the client takes nothing

    server = StallingServer(CONNECT, stall=("websocket.close",))
    await server.run(Lilya(routes=[WebSocketPath("/ws", returns, send_timeout=0.05)]))
    assert server.transport.aborted  # the handler's task ended: nothing waits for ever
    assert server.types == ["websocket.accept"]


async def test_a_close_of_your_own_is_bounded_too() -> None:
    async def closes(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close(4000, "bye")

    server = StallingServer(CONNECT, stall=("websocket.close",))
    await server.run(Lilya(routes=[WebSocketPath("/ws", closes, send_timeout=0.05)]))
    assert server.transport.aborted


async def test_other_clients_are_unaffected_by_a_stalled_one(anyio_backend: str) -> None:
    seen: list[Any] = []

    async def feed(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect as exc:
            seen.append(exc.code)

    app = Lilya(routes=[WebSocketPath("/ws", feed, send_timeout=0.2)])
    client = AsyncTestClient(app)
    async with client.websocket_connect("/ws") as stalled, client.websocket_connect("/ws") as ok:
        await stalled.pause_reading()
        await stalled.send_text("one")
        started = anyio.current_time()
        for n in range(20):  # while the stalled one's send waits, this one echoes at once
            await ok.send_text(str(n))
            assert await ok.receive_text(timeout=1) == str(n)
        assert anyio.current_time() - started < 0.2
        with anyio.fail_after(2):
            while not seen:
                await anyio.sleep(0.01)
        assert seen == [1013]
        await ok.send_text("still here")
        assert await ok.receive_text(timeout=1) == "still here"


async def test_pause_reading_in_the_test_client_drives_a_send_timeout(anyio_backend: str) -> None:
    seen: list[Any] = []

    async def pusher(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text("tick")
        except WebSocketDisconnect as exc:
            seen.append(exc.code)

    app = Lilya(routes=[WebSocketPath("/ws", pusher)], send_timeout=0.1)
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        await session.pause_reading()
        with anyio.fail_after(3):
            while not seen:
                await anyio.sleep(0.01)
    assert seen == [1013]


# -- bad settings ---------------------------------------------------------------------


BAD = [0, -1, math.inf, math.nan, "1", True, [1]]


@pytest.mark.parametrize("value", BAD)
def test_a_bad_app_or_route_timeout_is_refused_naming_the_setting(value: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="Lilya: send_timeout must be a positive"):
        Lilya(send_timeout=value)
    with pytest.raises(ImproperlyConfigured, match="Lilya: handshake_timeout must be"):
        Lilya(handshake_timeout=value)
    with pytest.raises(ImproperlyConfigured, match=r"WebSocketPath\('/ws'\): send_timeout"):
        WebSocketPath("/ws", by_send, send_timeout=value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("1", TypeError),
        (True, TypeError),
        (0, ValueError),
        (-2, ValueError),
        (math.inf, ValueError),
    ],
)
async def test_a_bad_call_timeout_is_your_mistake(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="timeout="):
        check_call_timeout(value)
    assert check_call_timeout(2) == 2.0
    assert check_call_timeout(None) is None


# -- the pieces -----------------------------------------------------------------------


def test_drop_connection_resets_the_socket_rather_than_leave_it_to_the_kernel() -> None:
    server = StallingServer()
    ours, theirs = socket.socketpair(socket.AF_UNIX)
    with ours, theirs:
        server.transport.socket = ours
        assert drop_connection(server.send)
        linger = ours.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.calcsize("ii"))
        assert struct.unpack("ii", linger) == (1, 0)  # closing it now sends a reset
    assert server.transport.aborted


def test_drop_connection_aborts_the_transport_of_the_servers_protocol() -> None:
    async def plain(message: Message) -> None:
        raise AssertionError("never called")  # pragma: no cover

    server = StallingServer()
    assert drop_connection(server.send)
    assert server.transport.aborted
    assert not drop_connection(plain)  # a server that offers no transport: nothing to do


async def test_a_close_that_cannot_leave_on_a_server_without_a_transport_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def stuck(message: Message) -> None:
        await anyio.sleep(10)

    with caplog.at_level(logging.WARNING):
        assert not await close_within(stuck, {"type": "websocket.close", "code": 1000}, 0.01)
    assert "offers no way to drop the connection" in caplog.text


async def test_close_within_without_a_limit_waits() -> None:
    sent: list[Message] = []

    async def slow(message: Message) -> None:
        await anyio.sleep(0.01)
        sent.append(message)

    assert await close_within(slow, {"type": "websocket.close"}, None)
    assert await close_within(slow, {"type": "websocket.close"}, 1)
    assert len(sent) == 2


async def gave_up(seconds: float) -> bool:
    return False


class Steps:
    """An awaitable's iterator by hand: what it yields, and what it does when cancelled."""

    def __init__(self, on_cancel: str) -> None:
        self.on_cancel = on_cancel

    def __await__(self) -> Generator[Any, Any, None]:
        return self.run()

    def run(self) -> Generator[Any, Any, None]:
        try:
            yield from anyio.sleep(10).__await__()
        except anyio.get_cancelled_exc_class():
            if self.on_cancel == "return":
                return  # the awaitable swallows the cancellation and finishes
            if self.on_cancel == "finish later":
                yield from anyio.sleep(0.01).__await__()  # and then it is done after all
                return
            if self.on_cancel == "fail":
                raise OSError("the transport is gone") from None  # an error of its own instead
            raise


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the stepped path is asyncio's
@pytest.mark.parametrize("on_cancel", ["return", "finish later", "raise"])
async def test_finish_within_passes_the_timers_cancellation_to_the_awaitable(
    on_cancel: str,
) -> None:
    step = Steps(on_cancel).__await__()
    pending = next(step)
    finished = await finish_within(step, pending, 0.02, gave_up)
    # One that swallowed the cancellation and finished did send; the other timed out.
    assert finished is (on_cancel != "raise")
    await anyio.sleep(0)  # and the task is not left cancelled
    task = asyncio.current_task()
    assert getattr(task, "cancelling", lambda: 0)() == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_finish_within_withdraws_its_cancellation_when_the_send_fails_otherwise() -> None:
    # The timer fired and the send answered its cancellation with an error of
    # its own: the error goes up, and the task is not left with a pending
    # cancellation request that would make a cancel scope entered before it
    # (lilya's handshake scope) refuse to swallow its own cancellation later.
    step = Steps("fail").__await__()
    pending = next(step)
    with pytest.raises(OSError, match="transport is gone"):
        await finish_within(step, pending, 0.02, gave_up)
    task = asyncio.current_task()
    assert getattr(task, "cancelling", lambda: 0)() == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_finish_within_lets_someone_elses_cancellation_through() -> None:
    step = Steps("raise").__await__()
    pending = next(step)
    with anyio.move_on_after(0.01) as outer:
        await finish_within(step, pending, 5, gave_up)
    assert outer.cancelled_caught


def test_the_rest_of_an_awaitable_closed_midway_closes_the_awaitable() -> None:
    closed: list[str] = []

    def awaitable() -> Generator[str, Any, None]:
        try:
            yield "first"
            yield "second"
        finally:
            closed.append("closed")

    step = awaitable()
    rest = timeouts._rest(step, next(step))
    assert rest.send(None) == "first"  # handed on to the loop
    rest.close()
    assert closed == ["closed"]


def test_the_rest_of_a_plain_iterator_awaitable_runs_and_lets_errors_through() -> None:
    # PEP 492 lets __await__ return any iterator (granian's awaitables do): no send/throw.
    rest = timeouts._rest(iter(["a", "b"]), "first")
    assert [rest.send(None), rest.send(None), rest.send(None)] == ["first", "a", "b"]
    with pytest.raises(StopIteration):
        rest.send(None)
    rest = timeouts._rest(iter(["a"]), "first")
    rest.send(None)
    with pytest.raises(KeyError):
        rest.throw(KeyError("x"))  # no throw() to hand it to: raised here
    rest = timeouts._rest(iter(["a"]), "first")
    rest.send(None)
    rest.close()  # no close() either: nothing to do


# -- handshake_timeout ----------------------------------------------------------------


async def test_a_handshake_left_unanswered_gets_503_and_the_handler_is_cancelled(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    async def slow_auth(websocket: WebSocket) -> None:
        try:
            await anyio.sleep(5)  # an authentication service that does not answer
        except anyio.get_cancelled_exc_class():
            seen.append("cancelled")
            raise

    app = Lilya(routes=[WebSocketPath("/ws", slow_auth)], handshake_timeout=0.05)
    with caplog.at_level(logging.WARNING), pytest.raises(WebSocketDenialResponse) as info:
        async with AsyncTestClient(app).websocket_connect("/ws"):
            pass  # pragma: no cover  # refused
    assert (info.value.status_code, info.value.text) == (503, HANDSHAKE_REFUSAL)
    assert seen == ["cancelled"]
    assert app.open_websockets == 0  # the slot is free
    warnings = [r.getMessage() for r in caplog.records if r.name == "lilya.timeouts"]
    assert warnings == [
        "Refusing WebSocket /ws with 503: the application neither accepted nor refused the "
        "handshake within handshake_timeout (0.05 s)."
    ]


async def test_without_the_denial_extension_an_unanswered_handshake_is_closed() -> None:
    async def slow(websocket: WebSocket) -> None:
        await anyio.sleep(5)

    app = Lilya(routes=[WebSocketPath("/ws", slow)], handshake_timeout=0.05)
    outcome = await call_websocket(app, "/ws", extensions=False)
    assert outcome.types == ["websocket.close"]  # the server answers 403
    assert outcome.close == (1013, "")


async def test_an_answered_handshake_runs_on_past_the_deadline(anyio_backend: str) -> None:
    async def patient(websocket: WebSocket) -> None:
        await websocket.accept()
        await anyio.sleep(0.15)  # three times the handshake timeout
        await websocket.send_text("still here")

    app = Lilya(routes=[WebSocketPath("/ws", patient)], handshake_timeout=0.05)
    async with AsyncTestClient(app).websocket_connect("/ws") as session:
        assert await session.receive_text(timeout=2) == "still here"


async def test_a_refusal_of_the_handlers_own_in_time_is_its_answer(anyio_backend: str) -> None:
    async def refuses(websocket: WebSocket) -> None:
        await websocket.send_denial_response(PlainText("no", status_code=401))
        await anyio.sleep(0.1)  # after the answer: no deadline applies

    app = Lilya(routes=[WebSocketPath("/ws", refuses)], handshake_timeout=0.05)
    with pytest.raises(WebSocketDenialResponse) as info:
        async with AsyncTestClient(app).websocket_connect("/ws"):
            pass  # pragma: no cover  # refused
    assert info.value.status_code == 401


async def test_a_handler_that_answers_after_swallowing_the_timeout_is_closed_1013() -> None:
    async def stubborn(websocket: WebSocket) -> None:
        try:
            await anyio.sleep(5)
        except anyio.get_cancelled_exc_class():
            await websocket.accept()  # too late, and it should not catch cancellation
            raise

    app = Lilya(routes=[WebSocketPath("/ws", stubborn)], handshake_timeout=0.05)
    outcome = await call_websocket(app, "/ws")
    assert outcome.types == ["websocket.accept", "websocket.close"]
    assert outcome.close == (1013, "")


async def test_handshake_timeout_defaults_to_10_s_and_none_leaves_the_layer_out() -> None:
    assert Lilya().handshake_timeout == DEFAULT_HANDSHAKE_TIMEOUT == 10.0
    stack: Any = Lilya().build_middleware_stack()
    assert isinstance(stack, HandshakeTimeout) and stack.timeout == 10.0
    assert not isinstance(Lilya(handshake_timeout=None).build_middleware_stack(), HandshakeTimeout)


async def test_http_requests_pass_the_handshake_layer_untouched(anyio_backend: str) -> None:
    async def hello(request: Any) -> PlainText:
        await anyio.sleep(0.1)  # longer than the handshake timeout: not a handshake
        return PlainText("hi")

    app = Lilya(routes=[Path("/", hello)], handshake_timeout=0.05)
    async with AsyncTestClient(app) as client:
        response = await client.get("/")
    assert (response.status_code, response.text) == (200, "hi")


async def test_the_state_calls_its_answer_hook_once() -> None:
    calls: list[str] = []
    state = ConnectionState()
    state.on_answer = lambda: calls.append("answered")
    state.take_send({"type": "websocket.accept"})
    state.take_send({"type": "websocket.close", "code": 1000})
    assert calls == ["answered"]
    assert state.on_answer is None


def test_uncancel_is_skipped_where_asyncio_does_not_count_cancellations() -> None:
    class OldTask:  # Python 3.10's Task has no uncancel()
        pass

    timeouts._uncancel(cast("asyncio.Task[Any]", OldTask()))


@pytest.mark.parametrize(("drained", "code"), [(1012, 1012), (None, 1013)])
async def test_a_send_that_times_out_after_someone_else_closed_ends_quietly(
    drained: int | None, code: int
) -> None:
    # The drain (or a limit's close, or another task) closes the connection
    # while a send waits behind a client that reads nothing: when the send's
    # time is up there is no second close to send, only the handler to tell.
    seen: list[Any] = []
    server = StallingServer(CONNECT)

    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()

        async def close_meanwhile() -> None:
            await anyio.sleep(0.01)
            state = state_of(websocket.scope)
            state.drained = drained
            state.take_send({"type": "websocket.close", "code": drained or 1008})

        async with anyio.create_task_group() as group:
            group.start_soon(close_meanwhile)
            try:
                await websocket.send_text("x", timeout=0.05)
            except WebSocketDisconnect as exc:
                seen.append(exc.code)

    await server.run(Lilya(routes=[WebSocketPath("/ws", handler)]))
    assert seen == [code]
    assert server.types == ["websocket.accept"]
