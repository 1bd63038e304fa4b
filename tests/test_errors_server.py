"""The application layer's error rows over a real uvicorn server and a real client.

What the ``websockets`` client sees is what a browser would: the handshake
status, or the close code and reason. The server's log shows what was logged:
an unhandled error's traceback exactly once (uvicorn's; lilya logs none), a
handled error not at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.support.servers import ROOT, RunningServer, free_port, raised, serve, tracebacks

pytestmark = pytest.mark.server

APP = "tests.support.app_layer_app:app"


@pytest.fixture(scope="module")
def uvicorn() -> Iterator[RunningServer]:
    with serve(APP, "uvicorn") as server:
        yield server


def _connect(server: RunningServer, path: str, **kwargs: object) -> ClientConnection:
    return server.connect(path, **kwargs)


def _handshake_status(server: RunningServer, path: str, **kwargs: object) -> tuple[int, bytes]:
    with pytest.raises(InvalidStatus) as info, _connect(server, path, **kwargs):
        pass
    return info.value.response.status_code, bytes(info.value.response.body or b"")


def _close_of(ws: ClientConnection) -> tuple[int, str]:
    def drain() -> None:
        while True:
            ws.recv(timeout=5)

    with pytest.raises(ConnectionClosed) as info:
        drain()
    assert info.value.rcvd is not None, "the server dropped the connection without a close frame"
    return info.value.rcvd.code, info.value.rcvd.reason


def _traceback_logged_once(server: RunningServer, exception_line: str) -> None:
    """Wait for the traceback ending in *exception_line*; then assert the log has it once."""
    server.wait_for_log(exception_line)
    time.sleep(0.3)
    log = server.log()
    assert [line for line in raised(log) if line.endswith(exception_line)] == [
        f"tests.support.app_layer_app.{exception_line}"
    ], log
    assert "Exception in ASGI application" in log  # uvicorn's copy is the one


def _never_logged(server: RunningServer, *names: str) -> None:
    """After a moment to settle, no line of the server's log mentions any of *names*."""
    time.sleep(0.3)
    log = server.log()
    assert not [name for name in names if name in log], log


def test_a_routed_handler_gets_its_path_params(uvicorn: RunningServer) -> None:
    with _connect(uvicorn, "/echo/lobby") as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "lobby: hi"


def test_no_route_is_a_403(uvicorn: RunningServer) -> None:
    assert _handshake_status(uvicorn, "/nowhere")[0] == 403


def test_an_error_before_accept_is_a_500_and_its_traceback_logged_once(
    uvicorn: RunningServer,
) -> None:
    status, body = _handshake_status(uvicorn, "/raise-before")
    assert (status, body) == (500, b"Internal Server Error")
    _traceback_logged_once(uvicorn, "Boom: before accept")


def test_an_error_after_accept_is_close_1011_and_its_traceback_logged_once(
    uvicorn: RunningServer,
) -> None:
    with _connect(uvicorn, "/raise-after") as ws:
        assert ws.recv(timeout=5) == "ready"
        assert _close_of(ws) == (1011, "")
    _traceback_logged_once(uvicorn, "Boom: after accept")


def test_websocket_exception_closes_with_its_code_and_reason(uvicorn: RunningServer) -> None:
    with _connect(uvicorn, "/ws-exception") as ws:
        assert _close_of(ws) == (4001, "bye now")
    assert _handshake_status(uvicorn, "/ws-exception-before")[0] == 403


def test_http_exception_before_accept_is_a_denial_with_its_status(uvicorn: RunningServer) -> None:
    assert _handshake_status(uvicorn, "/http-exception") == (401, b"who are you")


def test_returning_without_closing_is_close_1000(uvicorn: RunningServer) -> None:
    with _connect(uvicorn, "/returns-open") as ws:
        assert ws.recv(timeout=5) == "bye"
        assert _close_of(ws) == (1000, "")


def test_a_client_that_leaves_is_not_an_error(uvicorn: RunningServer) -> None:
    before = len(tracebacks(uvicorn.log()))
    with _connect(uvicorn, "/waits") as ws:
        ws.send("x")
    time.sleep(0.3)
    assert len(tracebacks(uvicorn.log())) == before


@pytest.mark.parametrize(
    ("path", "frame", "code"), [("/json", "{bad", 1007), ("/text", b"\x00", 1003)]
)
def test_a_controller_closes_on_bad_data(
    uvicorn: RunningServer, path: str, frame: str | bytes, code: int
) -> None:
    with _connect(uvicorn, path) as ws:
        ws.send(frame)
        assert _close_of(ws) == (code, "")


def test_a_controller_echoes_json(uvicorn: RunningServer) -> None:
    with _connect(uvicorn, "/json") as ws:
        ws.send(json.dumps({"a": 1}))
        assert json.loads(ws.recv(timeout=5)) == {"echo": {"a": 1}}


def test_authentication_failure_is_a_401_not_a_close(uvicorn: RunningServer) -> None:
    assert _handshake_status(uvicorn, "/private/whoami?token=nope") == (401, b"bad token")
    with _connect(uvicorn, "/private/whoami?token=secret") as ws:
        assert ws.recv(timeout=5) == "ann"


def test_an_untrusted_host_is_a_403(uvicorn: RunningServer) -> None:
    assert _handshake_status(uvicorn, "/hosted/ws") == (403, b"Invalid host header")
    url = f"ws://localhost:{uvicorn.port}/hosted/ws"
    with connect(url, open_timeout=10, close_timeout=5) as ws:
        assert ws.recv(timeout=5) == "bye"


def test_http_rows(uvicorn: RunningServer) -> None:
    with httpx.Client(base_url=uvicorn.http_url, timeout=5) as client:
        assert client.get("/page").text == "page"
        assert client.get("/missing").status_code == 404
        assert client.post("/page").status_code == 405
        response = client.get("/boom")
        assert (response.status_code, response.text) == (500, "Internal Server Error")
    _traceback_logged_once(uvicorn, "Boom: http")


# -- errors the app's exception handlers answer ----------------------------------


def test_a_class_handler_closes_the_websocket_with_its_code_and_reason(
    uvicorn: RunningServer,
) -> None:
    with _connect(uvicorn, "/handled/sold-out") as ws:
        assert ws.recv(timeout=5) == "ready"
        assert _close_of(ws) == (4409, "out of stock: tea (CONNECTED)")
    _never_logged(uvicorn, "OutOfStock")


def test_a_class_handler_may_deny_the_handshake_with_its_response(
    uvicorn: RunningServer,
) -> None:
    with pytest.raises(InvalidStatus) as info, _connect(uvicorn, "/handled/banned"):
        pass
    response = info.value.response
    assert (response.status_code, response.body) == (451, b"banned: mallory")
    assert response.headers["x-ban"] == "yes"
    _never_logged(uvicorn, "Banned")


def test_a_status_code_handler_answers_a_websocket_and_a_request_alike(
    uvicorn: RunningServer,
) -> None:
    status, body = _handshake_status(uvicorn, "/handled/pay")
    assert (status, json.loads(body)) == (402, {"pay": "/handled/pay", "detail": "pay first"})
    with httpx.Client(base_url=uvicorn.http_url, timeout=5) as client:
        response = client.get("/handled/pay")
        assert response.status_code == 402
        assert response.json() == {"pay": "/handled/pay", "detail": "pay first"}
        missing = client.get("/nothing/here")
        assert (missing.status_code, missing.json()) == (404, {"missing": "/nothing/here"})
    _never_logged(uvicorn, "HTTPException", "pay first")


def test_a_close_code_handler_replaces_the_close(uvicorn: RunningServer) -> None:
    with _connect(uvicorn, "/handled/ws-4003") as ws:
        assert _close_of(ws) == (4013, "the 4003 handler saw 'raw'")
    _never_logged(uvicorn, "WebSocketException")


def test_a_class_handler_answers_http_with_its_response(uvicorn: RunningServer) -> None:
    with httpx.Client(base_url=uvicorn.http_url, timeout=5) as client:
        response = client.get("/handled/sold-out")
    assert response.status_code == 409
    assert response.json() == {"error": "out of stock", "item": "coffee"}
    _never_logged(uvicorn, "OutOfStock")


def test_a_failing_startup_is_reported_to_uvicorn() -> None:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.support.app_layer_app:failing_startup",
        "--port",
        str(free_port()),
        "--host",
        "127.0.0.1",
    ]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "RuntimeError: cannot reach the database" in output
    assert "Application startup failed" in output
