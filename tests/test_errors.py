"""Every error row of the application layer, in-process (raw ASGI and the test client).

The same rows over a real uvicorn server are in ``test_errors_server.py``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from lilya.apps import Lilya
from lilya.exceptions import HTTPException, WebSocketException, WebSocketFrameError
from lilya.middleware import DefineMiddleware
from lilya.requests import Request
from lilya.responses import JSONResponse, PlainText, Response
from lilya.routing import Include, Path, WebSocketPath
from lilya.testclient import TestClient, WebSocketDenialResponse
from lilya.types import ASGIApp, Receive, Scope, Send
from lilya.websockets import WebSocket, WebSocketDisconnect
from tests.support.asgi import CONNECT, binary, call_http, call_websocket, text

pytestmark = pytest.mark.anyio


class Boom(Exception):
    """The error the handlers below raise."""


async def raise_before_accept(websocket: WebSocket) -> None:
    raise Boom("before accept")


async def raise_after_accept(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    raise Boom("after accept")


async def ws_exception_before(websocket: WebSocket) -> None:
    raise WebSocketException(4403, "go away")


async def ws_exception_after(websocket: WebSocket) -> None:
    await websocket.accept()
    raise WebSocketException(4001, "bye now")


async def http_exception_before(websocket: WebSocket) -> None:
    raise HTTPException(401, "who are you", headers={"www-authenticate": "Bearer"})


async def http_exception_after(websocket: WebSocket) -> None:
    await websocket.accept()
    raise HTTPException(403, "forbidden")


async def wants_text(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_text()


async def wants_json(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_json()


async def client_leaves(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.receive_text()


async def http_boom(request: Request) -> Response:
    raise Boom("http")


async def http_not_allowed(request: Request) -> Response:
    raise HTTPException(418, "teapot", headers={"x-tea": "earl grey"})


async def no_content(request: Request) -> Response:
    raise HTTPException(204)


ROUTES = [
    WebSocketPath("/before", raise_before_accept),
    WebSocketPath("/after", raise_after_accept),
    WebSocketPath("/ws-exc-before", ws_exception_before),
    WebSocketPath("/ws-exc-after", ws_exception_after),
    WebSocketPath("/http-exc-before", http_exception_before),
    WebSocketPath("/http-exc-after", http_exception_after),
    WebSocketPath("/wants-text", wants_text),
    WebSocketPath("/wants-json", wants_json),
    WebSocketPath("/leaves", client_leaves),
    Path("/boom", http_boom),
    Path("/teapot", http_not_allowed),
    Path("/nothing", no_content),
    Path("/only-get", http_not_allowed, methods=["GET"]),
]


def make_app(**kwargs: Any) -> Lilya:
    return Lilya(routes=ROUTES, **kwargs)


@pytest.fixture(autouse=True)
def _lilya_logs_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lilya")


def lilya_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """lilya's records at ERROR or with a traceback: the server logs those, never lilya."""
    return [
        r
        for r in caplog.records
        if r.name == "lilya" and (r.levelno >= logging.ERROR or r.exc_info is not None)
    ]


def lilya_notes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What lilya noted it answered for an unhandled error (INFO, one line, no traceback)."""
    return [
        r.getMessage() for r in caplog.records if r.name == "lilya" and r.levelno == logging.INFO
    ]


def answered_once(caplog: pytest.LogCaptureFixture) -> str:
    """Assert lilya noted one answer and logged no traceback; return the note."""
    assert lilya_errors(caplog) == [], "lilya logged a traceback; the server logs it"
    notes = lilya_notes(caplog)
    assert len(notes) == 1, notes
    return notes[0]


# -- no route ------------------------------------------------------------------------


async def test_no_route_closes_before_accept() -> None:
    outcome = await call_websocket(make_app(), "/nowhere")
    assert outcome.types == ["websocket.close"]
    assert outcome.error is None


def test_no_route_through_the_test_client_is_a_close_at_connect() -> None:
    with pytest.raises(WebSocketDisconnect), TestClient(make_app()).websocket_connect("/nowhere"):
        pass


# -- unhandled exceptions ------------------------------------------------------------------


async def test_an_error_before_accept_is_a_500_denial_reraised_for_the_server_to_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcome = await call_websocket(make_app(), "/before")
    assert outcome.status == 500
    assert outcome.body == b"Internal Server Error"
    assert isinstance(outcome.error, Boom)
    assert answered_once(caplog) == (
        "Answered the unhandled Boom in websocket /before with a 500 denial; "
        "re-raised it to the server."
    )


async def test_an_error_before_accept_without_the_extension_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcome = await call_websocket(make_app(), "/before", extensions=False)
    assert outcome.types == ["websocket.close"]
    assert isinstance(outcome.error, Boom)
    assert "with a close (403)" in answered_once(caplog)


async def test_an_error_after_accept_closes_1011_and_is_reraised_for_the_server_to_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcome = await call_websocket(make_app(), "/after")
    assert outcome.types == ["websocket.accept", "websocket.send", "websocket.close"]
    assert outcome.close == (1011, "")
    assert isinstance(outcome.error, Boom)
    assert "Boom in websocket /after with close 1011" in answered_once(caplog)


def test_the_test_client_reraises_server_errors(caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(make_app())
    with pytest.raises(Boom, match="before accept"), client.websocket_connect("/before"):
        pass

    def talk() -> None:
        with client.websocket_connect("/after") as ws:
            assert ws.receive_text() == "hello"
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert closed.value.code == 1011

    with pytest.raises(Boom, match="after accept"):
        talk()
    assert lilya_errors(caplog) == []  # the test, like a server, gets the traceback
    assert len(lilya_notes(caplog)) == 2


def test_without_raising_the_test_client_sees_the_500_and_the_1011() -> None:
    client = TestClient(make_app(), raise_server_exceptions=False)
    with pytest.raises(WebSocketDenialResponse) as denial, client.websocket_connect("/before"):
        pass
    assert denial.value.status_code == 500
    with client.websocket_connect("/after") as ws:
        assert ws.receive_text() == "hello"
        assert ws.receive() == {"type": "websocket.close", "code": 1011, "reason": ""}


async def test_nested_apps_answer_an_error_once_and_reraise_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outer = Lilya(routes=[Include("/inner", app=make_app())])
    outcome = await call_websocket(outer, "/inner/after")
    assert outcome.close == (1011, "")
    assert outcome.types.count("websocket.close") == 1
    assert isinstance(outcome.error, Boom)
    answered_once(caplog)


async def test_an_error_in_middleware_before_the_route_is_answered_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "websocket":
                raise Boom("middleware")
            await self.app(scope, receive, send)

    app = make_app(middleware=[DefineMiddleware(Broken)])
    outcome = await call_websocket(app, "/after")
    assert outcome.status == 500
    assert isinstance(outcome.error, Boom)
    answered_once(caplog)


async def test_a_client_that_leaves_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lilya")
    outcome = await call_websocket(make_app(), "/leaves", [CONNECT, text("a")])
    assert outcome.error is None
    assert outcome.types == ["websocket.accept"]  # no 1011, and no close after the client left
    assert lilya_errors(caplog) == []
    assert lilya_notes(caplog) == []


async def test_a_disconnect_raised_by_middleware_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def leaving(scope: Scope, receive: Receive, send: Send) -> None:
        raise WebSocketDisconnect(1001)

    outcome = await call_websocket(Lilya(middleware=[DefineMiddleware(lambda app: leaving)]))
    assert outcome.error is None
    assert lilya_errors(caplog) == []


# -- WebSocketException and HTTPException on websockets ----------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/ws-exc-before", (4403, "go away")), ("/ws-exc-after", (4001, "bye now"))],
)
async def test_websocket_exception_closes_with_its_code_and_reason(
    path: str, expected: tuple[int, str], caplog: pytest.LogCaptureFixture
) -> None:
    outcome = await call_websocket(make_app(), path)
    assert outcome.close == expected
    assert outcome.error is None
    assert lilya_errors(caplog) == []
    assert lilya_notes(caplog) == []


def test_websocket_exception_through_the_test_client() -> None:
    client = TestClient(make_app())
    with client.websocket_connect("/ws-exc-after") as ws:
        assert ws.receive() == {"type": "websocket.close", "code": 4001, "reason": "bye now"}
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/ws-exc-before"):
        pass
    assert (info.value.code, info.value.reason) == (4403, "go away")


async def test_http_exception_before_accept_is_a_denial_response_with_its_status() -> None:
    outcome = await call_websocket(make_app(), "/http-exc-before")
    assert outcome.status == 401
    assert outcome.body == b"who are you"
    assert outcome.headers["www-authenticate"] == "Bearer"
    assert outcome.error is None


async def test_http_exception_before_accept_without_the_extension_closes_1008() -> None:
    outcome = await call_websocket(make_app(), "/http-exc-before", extensions=False)
    assert outcome.close == (1008, "")


async def test_http_exception_after_accept_closes_1008_with_the_detail() -> None:
    outcome = await call_websocket(make_app(), "/http-exc-after")
    assert outcome.close == (1008, "forbidden")


async def test_http_exception_5xx_after_accept_closes_1011_with_a_short_reason() -> None:
    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        raise HTTPException(503, "é" * 200)

    outcome = await call_websocket(Lilya(routes=[WebSocketPath("/", handler)]))
    assert outcome.close is not None
    code, reason = outcome.close
    assert code == 1011
    assert len(reason.encode()) <= 123


# -- the client's bad data ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "frame", "code", "reason"),
    [
        ("/wants-text", binary(b"x"), 1003, "expected a text frame"),
        ("/wants-json", text("{nope"), 1007, "invalid JSON"),
    ],
)
async def test_bad_client_data_closes_with_1003_or_1007_as_a_warning(
    path: str, frame: dict[str, Any], code: int, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = await call_websocket(make_app(), path, [CONNECT, frame])
    assert outcome.close == (code, reason)
    assert outcome.error is None
    assert lilya_errors(caplog) == []
    warnings = [r for r in caplog.records if r.name == "lilya" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"with {code}" in warnings[0].getMessage()


# -- exception handlers --------------------------------------------------------------------


async def test_handlers_by_class_apply_to_websockets_and_get_the_websocket() -> None:
    seen: list[Any] = []

    async def on_boom(websocket: WebSocket, exc: Boom) -> None:
        seen.append((type(websocket).__name__, str(exc), websocket.application_state.name))
        await websocket.close(4500, "boom handled")

    outcome = await call_websocket(make_app(exception_handlers={Boom: on_boom}), "/after")
    assert outcome.close == (4500, "boom handled")
    assert outcome.error is None
    assert seen == [("WebSocket", "after accept", "CONNECTED")]


async def test_a_handler_by_close_code_beats_the_class_handler() -> None:
    def on_4001(websocket: WebSocket, exc: WebSocketException) -> None:
        raise WebSocketException(4999, "renumbered")  # declines, with another error

    async def by_code(websocket: WebSocket, exc: WebSocketException) -> None:
        await websocket.close(4002, f"code handler saw {exc.code}")

    app = make_app(exception_handlers={4001: by_code, WebSocketException: on_4001})
    outcome = await call_websocket(app, "/ws-exc-after")
    assert outcome.close == (4002, "code handler saw 4001")


async def test_a_websocket_handler_may_deny_the_handshake_with_a_response() -> None:
    def deny(websocket: WebSocket, exc: Boom) -> Response:
        return JSONResponse({"error": str(exc)}, 409)

    app = make_app(exception_handlers={Boom: deny})
    outcome = await call_websocket(app, "/before")
    assert (outcome.status, outcome.body) == (409, b'{"error":"before accept"}')
    outcome = await call_websocket(app, "/before", extensions=False)
    assert outcome.close == (1008, "")


async def test_a_handler_that_leaves_the_socket_open_gets_it_closed() -> None:
    async def shrug(websocket: WebSocket, exc: Boom) -> None:
        await websocket.send_text("sorry")

    outcome = await call_websocket(make_app(exception_handlers={Boom: shrug}), "/after")
    assert outcome.types[-2:] == ["websocket.send", "websocket.close"]
    assert outcome.close == (1000, "")


async def test_a_handler_that_reraises_declines_and_the_error_is_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def decline(connection: Any, exc: Boom) -> None:
        calls.append("declined")
        raise exc

    outcome = await call_websocket(make_app(exception_handlers={Boom: decline}), "/after")
    assert outcome.close == (1011, "")
    assert isinstance(outcome.error, Boom)
    assert calls == ["declined"]  # not consulted again by the app-level layer
    answered_once(caplog)


async def test_the_server_error_handler_customizes_but_still_reraises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def on_error(connection: Any, exc: Exception) -> Response | None:
        if isinstance(connection, WebSocket):
            await connection.close(4500, "custom")
            return None
        return PlainText(f"custom {exc}", 500)

    app = make_app(exception_handlers={Exception: on_error})
    outcome = await call_websocket(app, "/after")
    assert outcome.close == (4500, "custom")
    assert isinstance(outcome.error, Boom)
    outcome = await call_http(app, "/boom")
    assert (outcome.status, outcome.body) == (500, b"custom http")
    assert isinstance(outcome.error, Boom)
    assert lilya_errors(caplog) == []
    assert lilya_notes(caplog) == [
        "Answered the unhandled Boom in websocket /after through the server-error handler; "
        "re-raised it to the server.",
        "Answered the unhandled Boom in http GET /boom with the handler's response; "
        "re-raised it to the server.",
    ]


async def test_a_500_handler_may_deny_a_websocket_with_its_own_response() -> None:
    app = make_app(exception_handlers={500: lambda conn, exc: PlainText("down", 503)})
    outcome = await call_websocket(app, "/before")
    assert (outcome.status, outcome.body) == (503, b"down")


def test_a_bad_handler_key_is_refused_at_once() -> None:
    from lilya.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="exception class or a status"):
        Lilya(exception_handlers={"oops": lambda c, e: None})  # type: ignore[dict-item]


# -- HTTP ------------------------------------------------------------------------------------


async def test_http_exception_is_a_response_with_status_detail_and_headers() -> None:
    outcome = await call_http(make_app(), "/teapot")
    assert (outcome.status, outcome.body) == (418, b"teapot")
    assert outcome.headers["x-tea"] == "earl grey"
    assert outcome.error is None


async def test_http_exception_without_a_body_status_sends_no_body() -> None:
    outcome = await call_http(make_app(), "/nothing")
    assert (outcome.status, outcome.body) == (204, b"")


async def test_404_and_405_go_through_status_handlers() -> None:
    def not_found(request: Request, exc: HTTPException) -> Response:
        return JSONResponse({"missing": request.url.path}, 404)

    app = make_app(exception_handlers={404: not_found})
    outcome = await call_http(app, "/nope")
    assert (outcome.status, outcome.body) == (404, b'{"missing":"/nope"}')
    outcome = await call_http(app, "/only-get", "POST")
    assert outcome.status == 405
    assert outcome.headers["allow"] == "GET, HEAD"


async def test_an_unhandled_http_error_is_500_and_reraised_for_the_server_to_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcome = await call_http(make_app(), "/boom")
    assert (outcome.status, outcome.body) == (500, b"Internal Server Error")
    assert isinstance(outcome.error, Boom)
    assert "Boom in http GET /boom with 500" in answered_once(caplog)


async def test_debug_puts_the_traceback_in_the_500_body() -> None:
    outcome = await call_http(make_app(debug=True), "/boom")
    assert outcome.status == 500
    assert b"Traceback" in outcome.body
    assert b"Boom: http" in outcome.body


async def test_an_error_after_the_response_started_is_only_reraised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def half(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise Boom("midway")

    outcome = await call_http(Lilya(routes=[Path("/", half)]), "/")
    assert outcome.types == ["http.response.start"]
    assert isinstance(outcome.error, Boom)
    assert "the response had already started" in answered_once(caplog)


async def test_a_handled_exception_after_the_response_started_is_a_clear_error() -> None:
    async def half(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise HTTPException(400)

    outcome = await call_http(Lilya(routes=[Path("/", half)]), "/")
    assert isinstance(outcome.error, RuntimeError)
    assert "response already started" in str(outcome.error)


async def test_websocket_exception_in_http_is_a_server_error() -> None:
    async def wrong(request: Request) -> Response:
        raise WebSocketException(1008)

    outcome = await call_http(Lilya(routes=[Path("/", wrong)]), "/")
    assert outcome.status == 500
    assert isinstance(outcome.error, WebSocketException)


def test_the_test_client_raises_http_errors_or_shows_the_500() -> None:
    with pytest.raises(Boom):
        TestClient(make_app()).get("/boom")
    response = TestClient(make_app(), raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500


# -- edge states -------------------------------------------------------------------------------


async def test_a_handler_sees_the_client_gone_and_sends_nothing() -> None:
    states: list[str] = []

    async def reader(websocket: WebSocket) -> None:
        await websocket.accept()
        async for _ in websocket.iter_text():
            pass
        raise Boom("after the client left")

    async def on_boom(websocket: WebSocket, exc: Boom) -> None:
        states.append(websocket.client_state.name)
        await websocket.close(4000)  # a no-op: the client is gone

    app = Lilya(routes=[WebSocketPath("/", reader)], exception_handlers={Boom: on_boom})
    outcome = await call_websocket(app, "/", [CONNECT])
    assert states == ["DISCONNECTED"]
    assert outcome.types == ["websocket.accept"]


async def test_a_handler_sees_a_connection_the_app_already_closed() -> None:
    states: list[str] = []

    async def closer(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close(4100)
        raise WebSocketException(4200)

    async def on_exc(websocket: WebSocket, exc: WebSocketException) -> None:
        states.append(websocket.application_state.name)

    app = Lilya(
        routes=[WebSocketPath("/", closer)], exception_handlers={WebSocketException: on_exc}
    )
    outcome = await call_websocket(app, "/")
    assert states == ["DISCONNECTED"]
    assert outcome.close == (4100, "")
    default = await call_websocket(Lilya(routes=[WebSocketPath("/", closer)]), "/")
    assert default.types.count("websocket.close") == 1


async def test_an_error_midway_through_a_denial_finishes_the_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def half_denial(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.http.response.start", "status": 400, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"par", "more_body": True})
        raise Boom("midway")

    outcome = await call_websocket(Lilya(routes=[WebSocketPath("/", half_denial)]), "/")
    assert outcome.types[-1] == "websocket.http.response.body"
    assert outcome.sent[-1].get("more_body", False) is False
    assert isinstance(outcome.error, Boom)
    answered_once(caplog)


async def test_a_handler_state_in_the_middle_of_a_denial_is_response() -> None:
    states: list[str] = []

    async def half_denial(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.http.response.start", "status": 400, "headers": []})
        raise Boom("midway")

    def on_boom(websocket: WebSocket, exc: Boom) -> None:
        states.append(websocket.application_state.name)

    app = Lilya(routes=[WebSocketPath("/", half_denial)], exception_handlers={Boom: on_boom})
    outcome = await call_websocket(app, "/")
    assert states == ["RESPONSE"]
    assert outcome.types[-1] == "websocket.http.response.body"


async def test_frame_errors_raised_in_http_are_server_errors() -> None:
    from lilya.exceptions import WebSocketFrameError

    async def wrong(request: Request) -> Response:
        raise WebSocketFrameError("text", "bytes")

    outcome = await call_http(Lilya(routes=[Path("/", wrong)]), "/")
    assert outcome.status == 500


async def test_a_disconnect_raised_in_route_middleware_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Leave:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            raise WebSocketDisconnect(1001)

    route = WebSocketPath("/", raise_after_accept, middleware=[DefineMiddleware(Leave)])
    outcome = await call_websocket(Lilya(routes=[route]), "/")
    assert outcome.error is None
    assert lilya_errors(caplog) == []


async def test_an_http_error_crossing_two_apps_is_noted_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails(request: Request) -> str:
        raise LookupError("deep")

    inner = Lilya(routes=[Path("/x", fails)])
    outer = Lilya(routes=[Include("/in", app=inner)])
    with caplog.at_level(logging.INFO, logger="lilya"):
        outcome = await call_http(outer, "/in/x")
    assert isinstance(outcome.error, LookupError)
    assert outcome.status == 500
    notes = [r.getMessage() for r in caplog.records if r.name == "lilya"]
    assert len(notes) == 1
    assert "with 500" in notes[0]


async def test_bad_data_after_the_app_closed_is_a_warning_and_no_second_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def closes_then_reads(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close(4000)
        raise WebSocketFrameError("text", "bytes")  # as if read just before the close

    app = Lilya(routes=[WebSocketPath("/ws", closes_then_reads)])
    outcome = await call_websocket(app, "/ws")
    assert outcome.error is None
    assert outcome.types == ["websocket.accept", "websocket.close"]
    assert outcome.close == (4000, "")
    assert [r.levelno for r in caplog.records if r.name == "lilya"] == [logging.WARNING]
