"""What a port relies on, across the wire: uvicorn behind ``--root-path /api/``, real clients.

uvicorn joins a root path with a trailing slash to the request path
(``/api//rooms/x``); routing, ``url`` and reverse routing must still give
``/api/rooms/x``, once. The accept's headers that route middleware appended
reach a real WebSocket client, cookies read back as set, and an exception
handler reads the body the endpoint read, without hanging.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.support.servers import RunningServer, serve, tracebacks

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.support.porting_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--root-path",
        "/api/",
        "--log-level",
        "info",
        "--no-access-log",
    ]
    with serve("", "uvicorn", command=command) as running:
        yield running


def test_a_slashed_root_path_routes_and_reverses_once(server: RunningServer) -> None:
    response = httpx.get(server.http_url + "/", timeout=10)
    assert response.status_code == 200
    base = f"127.0.0.1:{server.port}"
    assert response.json() == {"path": "/api/", "chat": f"ws://{base}/api/rooms/x"}


def test_path_for_inside_an_include_over_a_real_websocket(server: RunningServer) -> None:
    with server.connect("/rooms/lobby") as ws:
        reply = json.loads(ws.recv(timeout=10))
        assert ws.response is not None
        served_by = ws.response.headers["x-served-by"]
    base = f"127.0.0.1:{server.port}"
    assert reply == {
        "inner": f"ws://{base}/api/rooms/y",
        "top": f"http://{base}/api/",
        "room": "lobby",
    }
    assert served_by == "lilya"


def test_cookies_read_back_as_set_over_http(server: RunningServer) -> None:
    with httpx.Client(base_url=server.http_url, timeout=10) as client:
        first = client.get("/cookies")
        assert first.headers.get_list("set-cookie")[0] == (
            'greeting="Hello\\054 cookies!"; Path=/; SameSite=lax'
        )
        assert client.get("/cookies").json() == {"greeting": "Hello, cookies!", "token": "YWJj=="}


def test_an_exception_handler_reads_the_body_again(server: RunningServer) -> None:
    response = httpx.post(server.http_url + "/refuse", json={"a": [1]}, timeout=10)
    assert (response.status_code, response.json()) == (422, {"again": {"a": [1]}})
    assert tracebacks(server.log()) == []
