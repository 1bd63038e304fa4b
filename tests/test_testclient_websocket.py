"""lilya/_testclient_websocket.py: WebSocket sessions, from the handshake to the close."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from lilya import status
from lilya.exceptions import WebSocketRuntimeError
from lilya.responses import PlainText
from lilya.testclient import (
    TestClient,
    WebSocketDenialResponse,
)
from lilya.types import Message, Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect
from tests.support.testclient import (
    ClientFactory,
    answering_handshake_with,
    call,
    echo,
    entered,
)


def test_a_close_before_accept_raises_websocket_disconnect_with_code_and_reason(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.close(status.WS_1008_POLICY_VIOLATION, "no entry")

    with (
        pytest.raises(WebSocketDisconnect) as caught,
        test_client_factory(app).websocket_connect("/"),
    ):
        pass  # pragma: no cover - never entered
    assert (caught.value.code, caught.value.reason) == (1008, "no entry")


@pytest.mark.anyio
async def test_a_denial_response_is_both_an_http_response_and_a_disconnect(
    any_client: Callable[..., Any],
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.send_denial_response(
            PlainText("go away", status_code=403, headers={"x-why": "banned"})
        )

    with pytest.raises(WebSocketDenialResponse) as caught:
        async with entered(any_client(app).websocket_connect("/")):
            pass  # pragma: no cover - never entered
    denial = caught.value
    assert isinstance(denial, httpx.Response)
    assert isinstance(denial, WebSocketDisconnect)
    assert denial.status_code == 403
    assert denial.headers["x-why"] == "banned"
    assert denial.text == "go away"
    assert denial.code == 1006
    assert denial.request.url == "ws://testserver/"
    assert str(denial) == "The application denied the WebSocket handshake with HTTP 403."
    assert repr(denial) == "<WebSocketDenialResponse [403]>"


def test_an_app_error_before_accept_is_raised_on_entering(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("broken handshake")

    with (
        pytest.raises(ValueError, match="broken handshake"),
        test_client_factory(app).websocket_connect("/"),
    ):
        pass  # pragma: no cover - never entered


def test_an_app_error_before_accept_gives_a_500_denial_when_not_raising() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("broken handshake")

    client = TestClient(app, raise_server_exceptions=False)
    with pytest.raises(WebSocketDenialResponse) as caught, client.websocket_connect("/"):
        pass  # pragma: no cover - never entered
    assert caught.value.status_code == 500


def test_an_app_returning_before_accept_gives_a_500_denial() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

    with pytest.raises(WebSocketDenialResponse) as caught, TestClient(app).websocket_connect("/"):
        pass  # pragma: no cover - never entered
    assert caught.value.status_code == 500


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"type": "websocket.send", "text": "hi"}], r"\"websocket.accept\".*'websocket.send'"),
        ([{"type": "websocket.receive"}], r"\"websocket.accept\".*'websocket.receive'"),
        (
            [
                {"type": "websocket.http.response.start", "status": 403, "headers": []},
                {"type": "websocket.accept"},
            ],
            r"\"websocket.http.response.body\".*'websocket.accept'",
        ),
    ],
)
def test_a_handshake_answer_out_of_protocol_is_a_clear_error(
    messages: list[Message], error: str
) -> None:
    app = answering_handshake_with(messages)

    with pytest.raises(WebSocketRuntimeError, match=error), TestClient(app).websocket_connect("/"):
        pass  # pragma: no cover - never entered


def test_a_handshake_that_never_comes_times_out_with_the_state() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep_forever()

    client = TestClient(app, websocket_timeout=0.05)
    with (
        pytest.raises(TimeoutError, match=r"handshake answer.*the handshake is pending") as caught,
        client.websocket_connect("/"),
    ):
        pass  # pragma: no cover - never entered
    assert str(caught.value).endswith(
        "To wait longer, pass websocket_timeout= to the test client "
        "(TestClient or AsyncTestClient)."
    )


def test_a_denial_body_that_never_comes_times_out_naming_websocket_timeout() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 403, "headers": []})
        await anyio.sleep_forever()

    client = TestClient(app, websocket_timeout=0.05)
    with (
        pytest.raises(TimeoutError, match=r"denial response body.*websocket_timeout= to the test"),
        client.websocket_connect("/"),
    ):
        pass  # pragma: no cover - never entered


def test_text_bytes_and_json_go_both_ways(test_client_factory: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.send_bytes(await websocket.receive_bytes())
        await websocket.send_json(await websocket.receive_json())
        await websocket.send_json(await websocket.receive_json(mode="binary"), mode="binary")
        await websocket.close()

    with test_client_factory(app).websocket_connect("/") as session:
        session.send_text("héllo")
        assert session.receive_text() == "héllo"
        session.send_bytes(b"\x00\x01")
        assert session.receive_bytes() == b"\x00\x01"
        session.send_json({"a": [1, "é"]})
        assert session.receive_json() == {"a": [1, "é"]}
        session.send_json({"b": None}, mode="binary")
        assert session.receive_json(mode="binary") == {"b": None}


def test_send_json_is_compact_and_keeps_utf8() -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        received.append(await websocket.receive())
        received.append(await websocket.receive())
        await websocket.close()

    with TestClient(app).websocket_connect("/") as session:
        session.send_json({"k": "é", "n": [1, 2]})
        session.send_json({"k": "é"}, mode="binary")
    assert received[0] == {"type": "websocket.receive", "text": '{"k":"é","n":[1,2]}'}
    assert received[1] == {"type": "websocket.receive", "bytes": '{"k":"é"}'.encode()}


def test_raw_messages_go_both_ways() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"].upper()})
        await send({"type": "websocket.close", "code": 1000})

    with TestClient(app).websocket_connect("/") as session:
        session.send({"type": "websocket.receive", "text": "raw"})
        assert session.receive() == {"type": "websocket.send", "text": "RAW"}
        assert session.receive() == {"type": "websocket.close", "code": 1000}


def test_a_close_from_the_app_raises_websocket_disconnect_on_receive(
    test_client_factory: ClientFactory,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.close(status.WS_1001_GOING_AWAY, "bye")

    with test_client_factory(app).websocket_connect("/") as session:
        for receive in (session.receive_text, session.receive_bytes, session.receive_json):
            with pytest.raises(WebSocketDisconnect) as caught:
                receive()
            assert (caught.value.code, caught.value.reason) == (1001, "bye")
            break
        with pytest.raises(WebSocketDisconnect) as again:
            session.receive_text()
        assert again.value.code == 1001  # the app has returned: its close, repeated


@pytest.mark.anyio
async def test_closing_the_session_tells_the_app_the_code_and_reason(
    any_client: Callable[..., Any],
) -> None:
    seen: list[tuple[int, str]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason))

    async with entered(any_client(app).websocket_connect("/")) as session:
        await call(session.close, status.WS_1001_GOING_AWAY, "Going Away")
    assert seen == [(1001, "Going Away")]


def test_leaving_the_session_disconnects_with_1000_and_waits_for_the_app(
    test_client_factory: ClientFactory,
) -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen.append(exc.code)
            await anyio.lowlevel.checkpoint()  # cleanup that awaits still runs
            seen.append("cleaned up")

    with test_client_factory(app).websocket_connect("/"):
        pass
    assert seen == [1000, "cleaned up"]


@pytest.mark.anyio
async def test_an_app_that_only_pushes_is_stopped_when_the_session_ends(
    any_client: Callable[..., Any],
) -> None:
    stopped = threading.Event()  # set in the app's loop, read in the test's

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        try:
            while True:
                await websocket.send_text("tick")
                await anyio.sleep(0.01)
        finally:
            stopped.set()

    async with entered(any_client(app).websocket_connect("/")) as session:
        assert await call(session.receive_text) == "tick"
    assert stopped.is_set()


@pytest.mark.anyio
async def test_an_app_error_after_accept_is_raised_on_leaving(
    any_client: Callable[..., Any],
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.receive_text()
        raise ValueError("handler failed")

    with pytest.raises(ValueError, match="handler failed"):
        async with entered(any_client(app).websocket_connect("/")) as session:
            await call(session.send_text, "go")


def test_an_app_error_is_raised_by_the_next_receive_and_only_once() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        raise ValueError("handler failed")

    with (
        TestClient(app).websocket_connect("/") as session,
        pytest.raises(ValueError, match="handler failed"),
    ):
        session.receive_text()
    # leaving did not raise it a second time


def test_an_app_error_after_accept_closes_with_1011_when_not_raising() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        raise ValueError("handler failed")

    client = TestClient(app, raise_server_exceptions=False)
    with client.websocket_connect("/") as session:
        with pytest.raises(WebSocketDisconnect) as caught:
            session.receive_text()
        assert caught.value.code == 1011


def test_an_app_returning_without_closing_ends_with_1006_after_its_messages() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_text("last words")

    with TestClient(app).websocket_connect("/") as session:
        assert session.receive_text() == "last words"
        with pytest.raises(WebSocketDisconnect) as caught:
            session.receive_text()
        assert caught.value.code == 1006


def test_sends_after_the_app_returned_are_dropped_and_after_the_session_refused() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.close()

    with TestClient(app).websocket_connect("/") as session:
        with pytest.raises(WebSocketDisconnect):
            session.receive_text()
        session.send_text("nobody listens")
    with pytest.raises(WebSocketRuntimeError, match="session is not open"):
        session.send_text("too late")


def test_receiving_text_when_the_app_sent_bytes_names_what_arrived() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_bytes(b"\x01")
        await websocket.send_text("t")
        await websocket.send({"type": "websocket.close", "code": 1000, "reason": ""})

    with TestClient(app).websocket_connect("/") as session:
        with pytest.raises(WebSocketRuntimeError, match=r"text frame.*bytes frame \(b'\\x01'\)"):
            session.receive_text()
        with pytest.raises(WebSocketRuntimeError, match=r"bytes frame.*text frame \('t'\)"):
            session.receive_bytes()


def test_receiving_a_frame_when_the_app_sent_another_message_is_a_clear_error() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.accept"})
        await receive()

    with TestClient(app).websocket_connect("/") as session:
        with pytest.raises(WebSocketRuntimeError, match=r"but got 'websocket\.accept'") as caught:
            session.receive_text()
        assert caught.value.message_type == "websocket.accept"


def test_invalid_json_and_a_bad_mode_are_clear_errors() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_text("{not json")
        await websocket.close()

    with TestClient(app).websocket_connect("/") as session:
        with pytest.raises(WebSocketRuntimeError, match='"mode" argument'):
            session.send_json({}, mode="xml")  # type: ignore[arg-type]  # the misuse under test
        with pytest.raises(WebSocketRuntimeError, match='"mode" argument'):
            session.receive_json(mode="xml")  # type: ignore[arg-type]  # the misuse under test
        with pytest.raises(ValueError, match="Expecting property name"):
            session.receive_json()


def test_receive_times_out_with_what_it_waited_for_and_the_state(
    test_client_factory: ClientFactory,
) -> None:
    client = test_client_factory(echo, websocket_timeout=0.05)
    with client.websocket_connect("/") as session:
        with pytest.raises(TimeoutError) as caught:
            session.receive_text()
        assert "Waited 0.05 s for a text frame" in str(caught.value)
        assert "the connection is open and the application is still running" in str(caught.value)
        assert str(caught.value).endswith(
            "To wait longer, pass timeout= to this call, or websocket_timeout= to the client."
        )
        with pytest.raises(TimeoutError, match=r"Waited 0\.01 s for a bytes frame") as explicit:
            session.receive_bytes(timeout=0.01)
        assert str(explicit.value).endswith(
            "To wait longer, pass a larger timeout= (None waits forever)."
        )
        session.send_text("late")
        assert session.receive_text(timeout=None) == "late"


def test_a_queued_message_is_returned_even_with_a_zero_timeout() -> None:
    with TestClient(echo).websocket_connect("/") as session:
        session.send_text("ready")
        session.send_text("sync")  # a round trip guarantees the first echo is queued
        assert session.receive_text() == "ready"
        assert session.receive_text(timeout=0) == "sync"


def test_a_timeout_after_the_test_disconnected_says_so() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.2)  # busy: has not yet read the disconnect

    with TestClient(app).websocket_connect("/") as session:
        session.close()
        with pytest.raises(TimeoutError, match="the test has disconnected with code 1000"):
            session.receive(timeout=0.01)


def test_a_timeout_after_the_app_closed_but_kept_running_says_so() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.close(1000)
        await anyio.sleep_forever()

    with TestClient(app).websocket_connect("/") as session:
        with pytest.raises(WebSocketDisconnect):
            session.receive_text()
        with pytest.raises(TimeoutError, match="closed the connection with code 1000"):
            session.receive(timeout=0.01)


@pytest.mark.anyio
async def test_a_receive_after_the_test_closed_raises_the_tests_own_close_code_and_reason(
    any_client: Callable[..., Any],
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_text("sent before the close arrived")
        with contextlib.suppress(WebSocketDisconnect):
            await websocket.receive_text()
        await websocket.close()  # a no-op: the client has already gone

    async with entered(any_client(app).websocket_connect("/")) as session:
        await call(session.close, status.WS_1001_GOING_AWAY, "Going Away")
        assert await call(session.receive_text) == "sent before the close arrived"
        for _ in range(2):
            with pytest.raises(WebSocketDisconnect) as caught:
                await call(session.receive_json)
            assert (caught.value.code, caught.value.reason) == (1001, "Going Away")
            assert "without closing" not in str(caught.value)


def test_a_receive_after_a_plain_close_raises_1000() -> None:
    with TestClient(echo).websocket_connect("/") as session:
        session.close()
        with pytest.raises(WebSocketDisconnect) as caught:
            session.receive_bytes()
        assert (caught.value.code, caught.value.reason) == (1000, "")


def test_a_raw_disconnect_without_a_code_is_reported_as_1005() -> None:
    with TestClient(echo).websocket_connect("/") as session:
        session.send({"type": "websocket.disconnect"})
        with pytest.raises(WebSocketDisconnect) as caught:
            session.receive()
        assert caught.value.code == 1005


def test_an_app_error_after_the_test_closed_still_reports_the_tests_close_when_not_raising() -> (
    None
):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await receive()
        raise ValueError("clean-up failed")

    client = TestClient(app, raise_server_exceptions=False)
    with client.websocket_connect("/") as session:
        session.close(4000, "done")
        with pytest.raises(WebSocketDisconnect) as caught:
            session.receive_text()
        assert (caught.value.code, caught.value.reason) == (4000, "done")


def test_an_app_error_after_the_test_closed_is_still_raised_when_raising() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await receive()
        raise ValueError("clean-up failed")

    with TestClient(app).websocket_connect("/") as session:
        session.close()
        with pytest.raises(ValueError, match="clean-up failed"):
            session.receive_text()


def test_an_app_close_after_the_test_closed_is_what_the_test_reads() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        await send({"type": "websocket.close", "code": 1001, "reason": "echo"})

    with TestClient(app).websocket_connect("/") as session:
        session.close()
        with pytest.raises(WebSocketDisconnect) as caught:
            session.receive_text()
        assert (caught.value.code, caught.value.reason) == (1001, "echo")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "data", "error"),
    [
        ("send_text", b"raw", r"send_text\(\) takes a str, but got bytes; call send_bytes\(\)"),
        ("send_text", 5, r"send_text\(\) takes a str, but got int; convert it .*send_json"),
        ("send_bytes", "text", r"send_bytes\(\) takes bytes.* got str; call send_text\(\)"),
        ("send_bytes", [1], r"send_bytes\(\) takes bytes.* got list; encode it to bytes"),
    ],
)
async def test_sending_the_wrong_payload_type_is_a_type_error_naming_the_right_method(
    any_client: Callable[..., Any], method: str, data: Any, error: str
) -> None:
    async with entered(any_client(echo).websocket_connect("/")) as session:
        with pytest.raises(TypeError, match=error):
            await call(getattr(session, method), data)
        await call(session.send_text, "still open")
        assert await call(session.receive_text) == "still open"


def test_send_bytes_takes_any_bytes_like_value() -> None:
    with TestClient(echo).websocket_connect("/") as session:
        session.send_bytes(bytearray(b"ab"))
        session.send_bytes(memoryview(b"cd"))
        assert (session.receive_bytes(), session.receive_bytes()) == (b"ab", b"cd")
